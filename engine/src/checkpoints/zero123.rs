//! Loading Zero123-family checkpoints in both layouts users have:
//!
//! - **ldm** (`105000.ckpt`, `zero123-xl.ckpt`, `stable_zero123.ckpt`, or a safetensors
//!   conversion with the same keys): the EMA UNet (`model_ema.diffusion_model…` — LitEma
//!   strips the dots, so each EMA key is derived from its live key) replaces the live one, as
//!   the demo's `ema_scope` does; the live copy and any optimizer state are never read. The
//!   autoencoder's ldm keys are renamed to the diffusers ones the engine's autoencoder reads.
//! - **diffusers** (`kxic/zero123-*`, `scripts/convert_zero123_to_diffusers.py`): `unet/`,
//!   `vae/`, `image_encoder/`, `cc_projection/` with their configs; the UNet is renamed to ldm
//!   keys and the Hugging Face CLIP tower to OpenAI's (q, k, v joined into `in_proj`).
//!
//! Sizes come from the configs of a diffusers folder; an ldm file has none (the original code
//! hard-codes its yaml), so the published sizes are assumed unless a `config.json` with a
//! `unet` section lies beside it. The camera convention is Stable Zero123's when the file name
//! says so, else Zero123's.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::{
    checkpoint_error, load_tensors_selected, model_load_error, read_config, refusing_panics,
};
use crate::camera::zero123::CameraConvention;
use crate::error::{EngineError, Result};
use crate::models::VaeConfig;
use crate::models::clip_vision::ClipVisionConfig;
use crate::models::ldm_unet::LdmUnetConfig;
use crate::models::zero123::{LdmVaeConfig, Zero123, Zero123Config};
use crate::sampling::ldm_ddim::sd1_alphas_cumprod;

const UNET: &str = "model.diffusion_model.";
const EMA: &str = "model_ema.";
const VAE: &str = "first_stage_model.";
const CLIP: &str = "cond_stage_model.model.visual.";
const PROJECTION: &str = "cc_projection.";

/// Whose weights and which terms of use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zero123Licence {
    /// Zero123, Zero123-XL: MIT.
    Mit,
    /// Stable Zero123: non-commercial research use only.
    StabilityNonCommercial,
    /// Stable Zero123 C: CC-BY (commercial use with attribution / a Stability membership).
    StabilityCommercial,
}

impl Zero123Licence {
    /// The sentence shown beside the model.
    pub fn notice(self) -> &'static str {
        match self {
            Self::Mit => "Zero-1-to-3 weights, MIT licence (Columbia University).",
            Self::StabilityNonCommercial => {
                "Stable Zero123: Stability AI non-commercial research licence — results may not \
                 be used commercially."
            }
            Self::StabilityCommercial => {
                "Stable Zero123 C: Stability AI community licence — commercial use under its \
                 terms."
            }
        }
    }
}

/// A loaded Zero123-family model and what the sampler needs beside it.
#[derive(Debug, Clone)]
pub struct LoadedZero123 {
    /// The networks.
    pub model: Zero123,
    /// The training schedule's `alphas_cumprod`.
    pub alphas_cumprod: Vec<f32>,
    /// The camera embedding the checkpoint was trained with.
    pub camera: CameraConvention,
    /// Its terms of use.
    pub licence: Zero123Licence,
    /// Whether the EMA weights were used (the demo's choice) or, missing, the live ones.
    pub uses_ema: bool,
}

/// Whether `path` looks like a Zero123-family checkpoint: a diffusers folder with a
/// `cc_projection`, a Lightning `.ckpt` (no Lumos file is one), or a file whose name says
/// zero123.
pub fn is_zero123_path(path: &Path) -> bool {
    if path.is_dir() {
        return path.join("cc_projection").is_dir();
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    name.contains("zero123") || name.ends_with(".ckpt")
}

/// The name that tells a user which checkpoint this is: its file (or folder) name, or
/// `ORG/NAME` for a snapshot folder of the Hugging Face cache (whose own name is a revision
/// hash).
pub fn checkpoint_name(path: &Path) -> String {
    let file_name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string())
    };
    // `models--ORG--NAME/snapshots/REV`
    let repository = path
        .parent()
        .filter(|snapshots| snapshots.file_name().is_some_and(|n| n == "snapshots"))
        .and_then(Path::parent)
        .and_then(|repo| repo.file_name()?.to_str()?.strip_prefix("models--"))
        .map(|repo| repo.replacen("--", "/", 1));
    match repository {
        Some(repository) if path.is_dir() => repository,
        _ => file_name(path),
    }
}

/// The terms of use of a checkpoint, from its name (the published files and repositories
/// say which one they are: `stable_zero123.ckpt`, `stable_zero123_c.ckpt`, `zero123-xl.ckpt`).
pub fn licence_of(path: &Path) -> Zero123Licence {
    let name = checkpoint_name(path).to_ascii_lowercase();
    if !name.contains("stable") {
        Zero123Licence::Mit
    } else if name.contains("_c.")
        || name.contains("-c.")
        || name.ends_with("_c")
        || name.ends_with("-c")
    {
        Zero123Licence::StabilityCommercial
    } else {
        Zero123Licence::StabilityNonCommercial
    }
}

/// The camera embedding a checkpoint was trained with, from its name.
fn camera_of(path: &Path) -> CameraConvention {
    if checkpoint_name(path)
        .to_ascii_lowercase()
        .contains("stable")
    {
        CameraConvention::StableZero123
    } else {
        CameraConvention::Zero123
    }
}

/// The published files by name, the MIT-licensed ones first (Stable Zero123's licence forbids
/// commercial use, so it is only chosen when it is the one present).
const PUBLISHED: [&str; 10] = [
    "zero123-xl.ckpt",
    "zero123-xl.safetensors",
    "165000.ckpt",
    "105000.ckpt",
    "zero123-165000.safetensors",
    "zero123-105000.safetensors",
    "stable_zero123_c.ckpt",
    "stable_zero123_c.safetensors",
    "stable_zero123.ckpt",
    "stable_zero123.safetensors",
];

/// Every Zero123-family checkpoint in `root` (the folder itself, its sub-folders, and the
/// snapshots of a Hugging Face cache): the published files by name (MIT-licensed first), then
/// other `.ckpt`/`.safetensors` files whose name says zero123 (a user's renamed copy), then
/// diffusers folders with a `cc_projection`.
pub fn find_in(root: &Path) -> Vec<std::path::PathBuf> {
    let dirs = super::candidate_dirs(root);
    let mut found: Vec<std::path::PathBuf> = PUBLISHED
        .iter()
        .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
        .filter(|p| p.is_file())
        .collect();
    for dir in &dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut renamed: Vec<std::path::PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                p.is_file()
                    && name.contains("zero123")
                    && (name.ends_with(".ckpt") || name.ends_with(".safetensors"))
            })
            .filter(|p| !found.contains(p))
            .collect();
        renamed.sort();
        found.extend(renamed);
    }
    found.extend(
        dirs.iter()
            .filter(|d| d.join("cc_projection").is_dir())
            .cloned(),
    );
    found
}

/// Looks for a Zero123-family checkpoint where the published Lumos files are looked for
/// (`explicit`, `$LUMOS_MODELS`, the app's data directory, the Hugging Face cache — where the
/// diffusers conversions `kxic/zero123-*` land as folders with a `cc_projection`), the first
/// root that has one winning (so a folder named explicitly is never passed over for the
/// cache). Returns it and the folders searched.
pub fn discover(explicit: Option<&Path>) -> (Option<std::path::PathBuf>, Vec<std::path::PathBuf>) {
    let roots = super::search_roots(explicit);
    let found = roots
        .iter()
        .find_map(|root| find_in(root).into_iter().next());
    (found, roots)
}

/// Loads a checkpoint (an ldm file or a diffusers folder). `config` overrides the sizes.
pub fn load(
    path: &Path,
    config: Option<&Zero123Config>,
    dtype: DType,
    device: &Device,
) -> Result<LoadedZero123> {
    load_weights(path, config, UnetWeights::Ema, dtype, device)
}

/// Which of an ldm checkpoint's two UNets to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnetWeights {
    /// The EMA copy when the file has a complete one (what the demo samples with).
    Ema,
    /// The live (training) copy.
    Live,
}

/// [`load`] choosing the UNet copy.
pub fn load_weights(
    path: &Path,
    config: Option<&Zero123Config>,
    unet: UnetWeights,
    dtype: DType,
    device: &Device,
) -> Result<LoadedZero123> {
    let (tensors, found_config, uses_ema) = if path.is_dir() {
        let (tensors, config) = diffusers_tensors(path)?;
        (tensors, config, true)
    } else {
        ldm_tensors(path, unet)?
    };
    let config = config.cloned().unwrap_or(found_config);
    let alphas_cumprod = match tensors.get("alphas_cumprod") {
        Some(t) => t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?,
        None => sd1_alphas_cumprod(0.00085, 0.012, 1000),
    };
    let (camera, licence) = (camera_of(path), licence_of(path));
    let vb = VarBuilder::from_tensors(tensors, dtype, device);
    let model = refusing_panics(
        path,
        "the model could not be built from these weights and its config",
        || Zero123::load(&config, vb).map_err(|e| model_load_error(path, e)),
    )?;
    Ok(LoadedZero123 {
        model,
        alphas_cumprod,
        camera,
        licence,
        uses_ema,
    })
}

/// The EMA key LitEma stores for a live UNet key: `model.` dropped, every dot removed.
pub fn ema_key(live_key: &str) -> String {
    let rest = live_key.strip_prefix("model.").unwrap_or(live_key);
    format!("{EMA}{}", rest.replace('.', ""))
}

fn ldm_tensors(
    path: &Path,
    unet: UnetWeights,
) -> Result<(HashMap<String, Tensor>, Zero123Config, bool)> {
    // File name → engine name of every tensor to read, planned from the file's names.
    let plan: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
    let uses_ema = Cell::new(false);
    let select = |names: &[String]| -> Vec<String> {
        let all: HashSet<&str> = names.iter().map(String::as_str).collect();
        let live: Vec<&String> = names.iter().filter(|n| n.starts_with(UNET)).collect();
        let ema_complete = unet == UnetWeights::Ema
            && !live.is_empty()
            && live.iter().all(|n| all.contains(ema_key(n).as_str()));
        uses_ema.set(ema_complete);
        let vae_levels = names
            .iter()
            .filter_map(|n| {
                n.strip_prefix(VAE)?
                    .strip_prefix("decoder.up.")?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .max()
            .map_or(0, |top| top + 1);
        let mut plan = plan.borrow_mut();
        for name in names {
            if let Some(rest) = name.strip_prefix(VAE) {
                plan.insert(
                    name.clone(),
                    format!("{VAE}{}", ldm_vae_to_diffusers(rest, vae_levels)),
                );
            } else if name.starts_with(CLIP)
                || name.starts_with(PROJECTION)
                || name == "alphas_cumprod"
                || (name.starts_with(UNET) && !ema_complete)
            {
                plan.insert(name.clone(), name.clone());
            }
        }
        if ema_complete {
            for name in live {
                plan.insert(ema_key(name), name.clone());
            }
        }
        plan.keys().cloned().collect()
    };
    let loaded = load_tensors_selected(path, &select)?;
    let plan = plan.into_inner();
    let mut tensors = HashMap::with_capacity(loaded.len());
    for (key, tensor) in loaded {
        let name = plan.get(&key).cloned().unwrap_or(key);
        // ldm's autoencoder attention uses 1×1 convolutions; the engine's, linear layers.
        let tensor = if name.contains(".mid_block.attentions.") && tensor.rank() == 4 {
            tensor.flatten_from(1)?
        } else {
            tensor
        };
        tensors.insert(name, tensor);
    }
    check_parts(path, &tensors)?;
    let config = sidecar_config(path)?.unwrap_or_default();
    Ok((tensors, config, uses_ema.get()))
}

/// A clear error when a part the pipeline needs is absent.
fn check_parts(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let has = |prefix: &str| tensors.keys().any(|k| k.starts_with(prefix));
    let missing = [
        (CLIP, "the CLIP image tower (`cond_stage_model.model.visual.*`), which conditions every view on the input image"),
        (PROJECTION, "`cc_projection`, which joins the image and camera embeddings"),
        (UNET, "the UNet (`model.diffusion_model.*`)"),
        (VAE, "the autoencoder (`first_stage_model.*`)"),
    ]
    .into_iter()
    .filter(|(prefix, _)| !has(prefix))
    .map(|(_, what)| what)
    .collect::<Vec<_>>();
    if missing.is_empty() {
        return Ok(());
    }
    Err(checkpoint_error(
        path,
        format!(
            "not a complete Zero123-family checkpoint: it has no {}",
            missing.join(", no ")
        ),
    ))
}

/// Sizes from a `config.json` with a `unet` section beside an ldm file, if there is one.
fn sidecar_config(path: &Path) -> Result<Option<Zero123Config>> {
    let Some(candidate) = path.parent().map(|dir| dir.join("config.json")) else {
        return Ok(None);
    };
    if !candidate.is_file() {
        return Ok(None);
    }
    let value: serde_json::Value = read_config(&candidate)?;
    if value.get("unet").is_none() {
        return Ok(None);
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| checkpoint_error(&candidate, format!("bad Zero123 config: {e}")))
}

/// ldm autoencoder key (after `first_stage_model.`) → diffusers key; `levels` is the number
/// of resolution levels (the decoder's `up.L` is diffusers' `up_blocks.(levels − 1 − L)`).
pub fn ldm_vae_to_diffusers(key: &str, levels: usize) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    let resnet = |rest: &[&str]| -> String {
        let layer = if rest[0] == "nin_shortcut" {
            "conv_shortcut"
        } else {
            rest[0]
        };
        std::iter::once(layer)
            .chain(rest[1..].iter().copied())
            .collect::<Vec<_>>()
            .join(".")
    };
    let attention = |rest: &[&str]| -> String {
        let layer = match rest[0] {
            "norm" => "group_norm",
            "q" => "to_q",
            "k" => "to_k",
            "v" => "to_v",
            "proj_out" => "to_out.0",
            other => other,
        };
        std::iter::once(layer)
            .chain(rest[1..].iter().copied())
            .collect::<Vec<_>>()
            .join(".")
    };
    let up = |level: &str| {
        level.parse::<usize>().map_or_else(
            |_| level.to_string(),
            |l| levels.saturating_sub(l + 1).to_string(),
        )
    };
    match parts.as_slice() {
        [side, "down", level, "block", block, rest @ ..] if !rest.is_empty() => {
            format!(
                "{side}.down_blocks.{level}.resnets.{block}.{}",
                resnet(rest)
            )
        }
        [side, "down", level, "downsample", rest @ ..] => {
            format!(
                "{side}.down_blocks.{level}.downsamplers.0.{}",
                rest.join(".")
            )
        }
        [side, "up", level, "block", block, rest @ ..] if !rest.is_empty() => {
            format!(
                "{side}.up_blocks.{}.resnets.{block}.{}",
                up(level),
                resnet(rest)
            )
        }
        [side, "up", level, "upsample", rest @ ..] => {
            format!(
                "{side}.up_blocks.{}.upsamplers.0.{}",
                up(level),
                rest.join(".")
            )
        }
        [side, "mid", "block_1", rest @ ..] if !rest.is_empty() => {
            format!("{side}.mid_block.resnets.0.{}", resnet(rest))
        }
        [side, "mid", "block_2", rest @ ..] if !rest.is_empty() => {
            format!("{side}.mid_block.resnets.1.{}", resnet(rest))
        }
        [side, "mid", "attn_1", rest @ ..] if !rest.is_empty() => {
            format!("{side}.mid_block.attentions.0.{}", attention(rest))
        }
        [side, "norm_out", rest @ ..] => format!("{side}.conv_norm_out.{}", rest.join(".")),
        _ => key.to_string(),
    }
}

/// The diffusers folder's tensors under engine names, and its sizes.
fn diffusers_tensors(dir: &Path) -> Result<(HashMap<String, Tensor>, Zero123Config)> {
    let component = |name: &str, files: &[&str]| -> Result<std::path::PathBuf> {
        files
            .iter()
            .map(|f| dir.join(name).join(f))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                checkpoint_error(
                    dir,
                    format!(
                        "the diffusers folder has no {name}/ weights ({})",
                        files.join(" or ")
                    ),
                )
            })
    };
    let weights = [
        "diffusion_pytorch_model.safetensors",
        "diffusion_pytorch_model.bin",
    ];
    let unet_json: serde_json::Value = read_config(&dir.join("unet/config.json"))?;
    let vae_config: VaeConfig = read_config(&dir.join("vae/config.json"))?;
    let clip_json: serde_json::Value = read_config(&dir.join("image_encoder/config.json"))?;
    let unet_config = unet_config_from_diffusers(&unet_json)
        .map_err(|e| checkpoint_error(&dir.join("unet/config.json"), e))?;
    let clip_config = clip_config_from_hf(&clip_json)
        .map_err(|e| checkpoint_error(&dir.join("image_encoder/config.json"), e))?;
    let up_attention: Vec<bool> = unet_json["up_block_types"]
        .as_array()
        .map(|types| {
            types
                .iter()
                .map(|t| t.as_str().is_some_and(|t| t.contains("CrossAttn")))
                .collect()
        })
        .unwrap_or_default();

    let mut tensors = HashMap::new();
    let all = |names: &[String]| names.to_vec();
    for (key, tensor) in load_tensors_selected(&component("unet", &weights)?, &all)? {
        let name = diffusers_unet_to_ldm(&key, unet_config.num_res_blocks, &up_attention);
        tensors.insert(format!("{UNET}{name}"), tensor);
    }
    for (key, tensor) in load_tensors_selected(&component("vae", &weights)?, &all)? {
        tensors.insert(format!("{VAE}{key}"), tensor);
    }
    let clip_file = component("image_encoder", &["model.safetensors", "pytorch_model.bin"])?;
    let clip = load_tensors_selected(&clip_file, &all)?;
    tensors.extend(hf_clip_to_openai(&clip_file, clip, clip_config.layers)?);
    for (key, tensor) in load_tensors_selected(&component("cc_projection", &weights)?, &all)? {
        let name = key.strip_prefix("projection.").unwrap_or(&key);
        tensors.insert(format!("{PROJECTION}{name}"), tensor);
    }
    check_parts(dir, &tensors)?;
    let config = Zero123Config {
        unet: unet_config,
        vae: LdmVaeConfig {
            ch: vae_config.block_out_channels.first().copied().unwrap_or(1),
            ch_mult: vae_config
                .block_out_channels
                .iter()
                .map(|c| c / vae_config.block_out_channels[0].max(1))
                .collect(),
            num_res_blocks: vae_config.layers_per_block,
            z_channels: vae_config.latent_channels,
        },
        clip: clip_config,
        scale_factor: vae_config.scaling_factor,
    };
    Ok((tensors, config))
}

/// The ldm sizes of a diffusers `UNet2DConditionModel` config.
fn unet_config_from_diffusers(
    json: &serde_json::Value,
) -> std::result::Result<LdmUnetConfig, String> {
    let number = |key: &str| -> std::result::Result<usize, String> {
        let value = &json[key];
        value
            .as_u64()
            .or_else(|| value.as_array()?.first()?.as_u64())
            .map(|n| n as usize)
            .ok_or_else(|| format!("`{key}` missing or not a number"))
    };
    let channels: Vec<usize> = json["block_out_channels"]
        .as_array()
        .ok_or("`block_out_channels` missing")?
        .iter()
        .map(|c| {
            c.as_u64()
                .map(|c| c as usize)
                .ok_or("bad `block_out_channels`")
        })
        .collect::<std::result::Result<_, _>>()?;
    let first = *channels.first().ok_or("`block_out_channels` is empty")?;
    if first == 0 || channels.iter().any(|c| c % first != 0) {
        return Err("`block_out_channels` are not multiples of the first".into());
    }
    let down_types = json["down_block_types"]
        .as_array()
        .ok_or("`down_block_types` missing")?;
    Ok(LdmUnetConfig {
        in_channels: number("in_channels")?,
        out_channels: number("out_channels")?,
        model_channels: first,
        channel_mult: channels.iter().map(|c| c / first).collect(),
        num_res_blocks: number("layers_per_block")?,
        attention_resolutions: down_types
            .iter()
            .enumerate()
            .filter(|(_, t)| t.as_str().is_some_and(|t| t.contains("CrossAttn")))
            .map(|(i, _)| 1 << i)
            .collect(),
        // diffusers' `attention_head_dim` is the number of heads for SD-1 UNets.
        num_heads: number("attention_head_dim")?,
        transformer_depth: number("transformer_layers_per_block").unwrap_or(1),
        context_dim: number("cross_attention_dim")?,
    })
}

/// The OpenAI sizes of a Hugging Face `CLIPVisionConfig`.
fn clip_config_from_hf(json: &serde_json::Value) -> std::result::Result<ClipVisionConfig, String> {
    let number = |key: &str| -> std::result::Result<usize, String> {
        json[key]
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| format!("`{key}` missing or not a number"))
    };
    if json["hidden_act"]
        .as_str()
        .is_some_and(|a| a != "quick_gelu")
    {
        return Err(format!(
            "activation `{}`: OpenAI CLIP towers use quick_gelu",
            json["hidden_act"]
        ));
    }
    Ok(ClipVisionConfig {
        width: number("hidden_size")?,
        layers: number("num_hidden_layers")?,
        heads: number("num_attention_heads")?,
        patch: number("patch_size")?,
        resolution: number("image_size")?,
        embed_dim: number("projection_dim")?,
    })
}

/// diffusers UNet key → ldm key (`layers` ResBlocks per down level; `up_attention[i]` whether
/// up block `i` has attentions).
pub fn diffusers_unet_to_ldm(key: &str, layers: usize, up_attention: &[bool]) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    let resnet = |rest: &[&str]| -> String {
        let layer = match rest[0] {
            "norm1" => "in_layers.0",
            "conv1" => "in_layers.2",
            "time_emb_proj" => "emb_layers.1",
            "norm2" => "out_layers.0",
            "conv2" => "out_layers.3",
            "conv_shortcut" => "skip_connection",
            other => other,
        };
        std::iter::once(layer)
            .chain(rest[1..].iter().copied())
            .collect::<Vec<_>>()
            .join(".")
    };
    let index = |s: &str| s.parse::<usize>().unwrap_or(usize::MAX);
    let per_level = layers + 1;
    match parts.as_slice() {
        ["conv_in", rest @ ..] => format!("input_blocks.0.0.{}", rest.join(".")),
        ["time_embedding", "linear_1", rest @ ..] => format!("time_embed.0.{}", rest.join(".")),
        ["time_embedding", "linear_2", rest @ ..] => format!("time_embed.2.{}", rest.join(".")),
        ["down_blocks", i, "resnets", j, rest @ ..] if !rest.is_empty() => format!(
            "input_blocks.{}.0.{}",
            1 + index(i) * per_level + index(j),
            resnet(rest)
        ),
        ["down_blocks", i, "attentions", j, rest @ ..] => format!(
            "input_blocks.{}.1.{}",
            1 + index(i) * per_level + index(j),
            rest.join(".")
        ),
        ["down_blocks", i, "downsamplers", "0", "conv", rest @ ..] => format!(
            "input_blocks.{}.0.op.{}",
            (index(i) + 1) * per_level,
            rest.join(".")
        ),
        ["mid_block", "resnets", j, rest @ ..] if !rest.is_empty() => {
            format!("middle_block.{}.{}", 2 * index(j), resnet(rest))
        }
        ["mid_block", "attentions", "0", rest @ ..] => format!("middle_block.1.{}", rest.join(".")),
        ["up_blocks", i, "resnets", j, rest @ ..] if !rest.is_empty() => format!(
            "output_blocks.{}.0.{}",
            index(i) * per_level + index(j),
            resnet(rest)
        ),
        ["up_blocks", i, "attentions", j, rest @ ..] => format!(
            "output_blocks.{}.1.{}",
            index(i) * per_level + index(j),
            rest.join(".")
        ),
        ["up_blocks", i, "upsamplers", "0", "conv", rest @ ..] => {
            let attention = up_attention.get(index(i)).copied().unwrap_or(false);
            format!(
                "output_blocks.{}.{}.conv.{}",
                index(i) * per_level + layers,
                if attention { 2 } else { 1 },
                rest.join(".")
            )
        }
        ["conv_norm_out", rest @ ..] => format!("out.0.{}", rest.join(".")),
        ["conv_out", rest @ ..] => format!("out.2.{}", rest.join(".")),
        _ => key.to_string(),
    }
}

/// Hugging Face `CLIPVisionModelWithProjection` tensors → OpenAI names under
/// `cond_stage_model.model.visual.` (q, k, v joined into `in_proj`, the projection transposed).
fn hf_clip_to_openai(
    path: &Path,
    mut hf: HashMap<String, Tensor>,
    layers: usize,
) -> Result<HashMap<String, Tensor>> {
    let mut take = |name: &str| -> Result<Tensor> {
        hf.remove(name).ok_or_else(|| EngineError::MissingKey {
            path: path.to_path_buf(),
            key: name.to_string(),
        })
    };
    let mut out = HashMap::new();
    let mut put = |name: &str, tensor: Tensor| {
        out.insert(format!("{CLIP}{name}"), tensor);
    };
    let vm = "vision_model";
    put(
        "conv1.weight",
        take(&format!("{vm}.embeddings.patch_embedding.weight"))?,
    );
    put(
        "class_embedding",
        take(&format!("{vm}.embeddings.class_embedding"))?,
    );
    put(
        "positional_embedding",
        take(&format!("{vm}.embeddings.position_embedding.weight"))?,
    );
    for (ours, theirs) in [("ln_pre", "pre_layrnorm"), ("ln_post", "post_layernorm")] {
        for p in ["weight", "bias"] {
            put(&format!("{ours}.{p}"), take(&format!("{vm}.{theirs}.{p}"))?);
        }
    }
    for n in 0..layers {
        let hf_layer = format!("{vm}.encoder.layers.{n}");
        let ours = format!("transformer.resblocks.{n}");
        for p in ["weight", "bias"] {
            let qkv = ["q_proj", "k_proj", "v_proj"]
                .iter()
                .map(|proj| take(&format!("{hf_layer}.self_attn.{proj}.{p}")))
                .collect::<Result<Vec<_>>>()?;
            put(&format!("{ours}.attn.in_proj_{p}"), Tensor::cat(&qkv, 0)?);
            for (o, t) in [
                ("attn.out_proj", "self_attn.out_proj"),
                ("ln_1", "layer_norm1"),
                ("ln_2", "layer_norm2"),
                ("mlp.c_fc", "mlp.fc1"),
                ("mlp.c_proj", "mlp.fc2"),
            ] {
                put(
                    &format!("{ours}.{o}.{p}"),
                    take(&format!("{hf_layer}.{t}.{p}"))?,
                );
            }
        }
    }
    put("proj", take("visual_projection.weight")?.t()?.contiguous()?);
    Ok(out)
}
