//! Finding and loading weights: `.safetensors` and PyTorch zip `.pth` files with the original
//! key names, a model manifest (`ModelSpec`), and discovery of the published Lumos, DINO and
//! VAE files in the usual places (explicit path, `$LUMOS_MODELS`, the app's data directory,
//! the Hugging Face cache).
//!
//! `.pth` files are pickles. Before any tensor is read, the pickle program is decoded (never
//! executed) and every class it references is checked against an allow-list of tensor
//! rebuilders, storages and plain containers; anything else is refused. Tensor sizes are
//! checked against the archive entry sizes so that a crafted header cannot ask for huge
//! allocations. candle's pickle and safetensors readers assume well-formed files in places (a
//! tensor rebuilt from too few arguments panicked, found by `tests/fuzz_parsers.rs`), so every
//! call into them runs under [`refusing_panics`]: a malformed file is an error, never a crash.

use std::collections::HashMap;
use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::error::{EngineError, Result};
use crate::models::{DinoConfig, LumosConfig, VaeConfig};

pub mod kind;
pub mod lazy;
pub mod sharded;
pub mod text_to_image;
pub mod zero123;

use crate::protocol::{ComponentSpec, ModelSpec, Precision};
pub use kind::{
    CheckpointKind, build_from_tensors, build_model_of_kind, ensure_found_kind, recognise,
    recognise_names,
};
pub use lazy::LazyWeights;
pub use sharded::{lazy_hf_weights, load_hf_tensors};

/// Key prefixes stripped on load (DINO checkpoints saved from DDP or as a backbone).
const STRIPPED_PREFIXES: [&str; 2] = ["module.", "backbone."];

fn checkpoint_error(path: &Path, reason: impl std::fmt::Display) -> EngineError {
    EngineError::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Runs a third-party parser on a file; a panic inside it (an assumption about well-formed
/// input that a malformed file breaks) becomes a checkpoint error naming the file.
fn refusing_panics<T>(path: &Path, failure: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown reason".into());
        Err(checkpoint_error(path, format!("{failure} ({what})")))
    })
}

/// Reads every tensor of a `.safetensors` or `.pth` file onto the CPU, with `module.` and
/// `backbone.` prefixes removed.
pub fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    load_tensors_selected(path, &|names| names.to_vec())
}

/// Chooses, from every tensor name in a file, the ones to read.
pub type TensorSelector<'a> = &'a dyn Fn(&[String]) -> Vec<String>;

/// [`load_tensors`] reading only the tensors `select` picks from the file's names (a
/// Zero123 checkpoint holds two copies of its UNet and an optimizer state; only one copy is
/// needed). Lightning checkpoints (`{"state_dict": {...}, ...}`) are read from their
/// `state_dict`. Safetensors files are memory-mapped, so unselected tensors cost nothing.
pub fn load_tensors_selected(
    path: &Path,
    select: TensorSelector<'_>,
) -> Result<HashMap<String, Tensor>> {
    if let Some(bytes) = crate::embedded::resolve(path) {
        return candle_core::safetensors::load_buffer(bytes?, &Device::Cpu)
            .map_err(|e| checkpoint_error(path, format!("bad embedded weights ({e})")));
    }
    let metadata = std::fs::metadata(path).map_err(|e| EngineError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    if metadata.len() == 0 {
        return Err(checkpoint_error(path, "the file is empty"));
    }
    let is_pth = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("pth" | "pt" | "bin" | "ckpt")
    );
    let tensors = refusing_panics(path, "the file is malformed and could not be read", || {
        if is_pth {
            load_pth(path, select)
        } else {
            load_safetensors(path, select)
        }
    })?;
    Ok(tensors
        .into_iter()
        .map(|(key, tensor)| (strip_prefixes(&key).to_string(), tensor))
        .collect())
}

fn load_safetensors(path: &Path, select: TensorSelector<'_>) -> Result<HashMap<String, Tensor>> {
    let unreadable = |e: candle_core::Error| {
        checkpoint_error(path, format!("not a readable safetensors file ({e})"))
    };
    // SAFETY: the file is mapped read-only and every selected tensor is copied out before the
    // map is dropped; a file truncated by another process meanwhile would fault, as with any
    // reader of a file that changes under it.
    let file =
        unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }.map_err(unreadable)?;
    let names: Vec<String> = file.tensors().into_iter().map(|(name, _)| name).collect();
    select(&names)
        .into_iter()
        .map(|name| {
            let tensor = file.load(&name, &Device::Cpu).map_err(unreadable)?;
            Ok((name, tensor))
        })
        .collect()
}

fn strip_prefixes(key: &str) -> &str {
    let mut key = key;
    while let Some(rest) = STRIPPED_PREFIXES
        .iter()
        .find_map(|prefix| key.strip_prefix(prefix))
    {
        key = rest;
    }
    key
}

/// Whether a class referenced by a checkpoint pickle is a tensor rebuilder, a storage type or
/// a plain container.
fn is_allowed_class(module: &str, name: &str) -> bool {
    match module {
        "collections" => name == "OrderedDict",
        "torch._utils" => matches!(
            name,
            "_rebuild_tensor_v2" | "_rebuild_parameter" | "_rebuild_parameter_with_state"
        ),
        "torch._tensor" => name == "_rebuild_from_type_v2",
        "torch" => name.ends_with("Storage") || name == "Tensor",
        "torch.nn.parameter" => name == "Parameter",
        // Lightning checkpoints (Zero123's `105000.ckpt`): the callback class is a dict key
        // and numpy scalars are learning rates. Decoding only records these names; nothing
        // is imported or called.
        "pytorch_lightning.callbacks.model_checkpoint" => name == "ModelCheckpoint",
        "numpy.core.multiarray" | "numpy._core.multiarray" => name == "scalar",
        "numpy" => name == "dtype",
        "_codecs" => name == "encode",
        _ => false,
    }
}

/// Walks a decoded pickle and returns the first disallowed class, if any.
fn find_disallowed_class(object: &Object) -> Option<String> {
    match object {
        Object::Class {
            module_name,
            class_name,
        } => (!is_allowed_class(module_name, class_name))
            .then(|| format!("{module_name}.{class_name}")),
        Object::Tuple(items) | Object::List(items) => items.iter().find_map(find_disallowed_class),
        Object::Dict(items) => items
            .iter()
            .find_map(|(k, v)| find_disallowed_class(k).or_else(|| find_disallowed_class(v))),
        Object::Reduce { callable, args } | Object::Build { callable, args } => {
            find_disallowed_class(callable).or_else(|| find_disallowed_class(args))
        }
        Object::PersistentLoad(inner) => find_disallowed_class(inner),
        _ => None,
    }
}

/// Walks a decoded pickle and says what is wrong with the first tensor record that has fewer
/// fields than candle's reader takes from it (it indexes them without checking).
fn find_incomplete_tensor(object: &Object) -> Option<&'static str> {
    let tuple_len = |o: &Object| match o {
        Object::Tuple(items) => Some(items.len()),
        _ => None,
    };
    match object {
        Object::Reduce { callable, args } => {
            if let Object::Class {
                module_name,
                class_name,
            } = callable.as_ref()
            {
                let wanted = match (module_name.as_str(), class_name.as_str()) {
                    ("torch._utils", "_rebuild_tensor_v2") => 4,
                    ("torch._tensor", "_rebuild_from_type_v2") => 3,
                    ("torch._utils", "_rebuild_parameter") => 1,
                    _ => 0,
                };
                if wanted > 0 && tuple_len(args).is_none_or(|n| n < wanted) {
                    return Some("a tensor record has too few fields");
                }
                if wanted == 4
                    && let Object::Tuple(items) = args.as_ref()
                    && let Object::PersistentLoad(storage) = &items[0]
                    && tuple_len(storage).is_none_or(|n| n < 5)
                {
                    return Some("a storage record has too few fields");
                }
            }
            find_incomplete_tensor(callable).or_else(|| find_incomplete_tensor(args))
        }
        Object::Build { callable, args } => {
            find_incomplete_tensor(callable).or_else(|| find_incomplete_tensor(args))
        }
        Object::Tuple(items) | Object::List(items) => items.iter().find_map(find_incomplete_tensor),
        Object::Dict(items) => items
            .iter()
            .find_map(|(k, v)| find_incomplete_tensor(k).or_else(|| find_incomplete_tensor(v))),
        Object::PersistentLoad(inner) => find_incomplete_tensor(inner),
        _ => None,
    }
}

fn load_pth(path: &Path, select: TensorSelector<'_>) -> Result<HashMap<String, Tensor>> {
    let pth = open_pth(path)?;
    let names: Vec<String> = pth.tensor_infos().keys().cloned().collect();
    let mut tensors = HashMap::new();
    for name in select(&names) {
        let tensor = pth
            .get(&name)
            .map_err(|e| checkpoint_error(path, format!("tensor `{name}`: {e}")))?
            .ok_or_else(|| checkpoint_error(path, format!("tensor `{name}` vanished")))?;
        tensors.insert(name, tensor);
    }
    if tensors.is_empty() {
        return Err(checkpoint_error(path, "no tensors found in the checkpoint"));
    }
    Ok(tensors)
}

/// Opens a `.pth`/`.ckpt` for reading tensors one at a time, after checking what can be
/// checked without reading them: the pickle's classes against the allow-list, every tensor
/// record complete, every tensor's size within its storage entry.
pub(crate) fn open_pth(path: &Path) -> Result<candle_core::pickle::PthTensors> {
    let file_len = std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| EngineError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
    let file = std::fs::File::open(path).map_err(|e| EngineError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
        checkpoint_error(
            path,
            format!(
                "not a PyTorch zip checkpoint ({e}); legacy (pre-1.6) pickles are not supported, \
                 re-save it with torch.save or convert it to safetensors"
            ),
        )
    })?;
    let pickle_name = zip
        .file_names()
        .filter_map(|name| name.ok().map(|n| n.into_owned()))
        .find(|name| name.ends_with("data.pkl"))
        .ok_or_else(|| checkpoint_error(path, "no data.pkl inside: not a torch.save checkpoint"))?;
    let mut pickle = Vec::new();
    zip.by_name(&pickle_name)
        .and_then(|mut entry| {
            if entry.size() > file_len {
                return Err(zip::result::ZipError::InvalidArchive(
                    "pickle larger than the file".into(),
                ));
            }
            entry.read_to_end(&mut pickle).map_err(Into::into)
        })
        .map_err(|e| checkpoint_error(path, format!("cannot read {pickle_name} ({e})")))?;
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut std::io::Cursor::new(&pickle))
        .map_err(|e| checkpoint_error(path, format!("malformed pickle ({e})")))?;
    let object = stack
        .finalize()
        .map_err(|e| checkpoint_error(path, format!("malformed pickle ({e})")))?;
    if let Some(class) = find_disallowed_class(&object) {
        return Err(checkpoint_error(
            path,
            format!(
                "the pickle references `{class}`; only tensors and plain containers are \
                 allowed, so this file was not loaded"
            ),
        ));
    }

    if let Some(problem) = find_incomplete_tensor(&object) {
        return Err(checkpoint_error(
            path,
            format!(
                "malformed pickle: {problem}; the file is damaged or was not written by torch.save"
            ),
        ));
    }

    // A Lightning checkpoint keeps its weights under `state_dict`, beside optimizer states.
    let key = is_lightning_checkpoint(&object).then_some("state_dict");
    let pth = candle_core::pickle::PthTensors::new(path, key)
        .map_err(|e| checkpoint_error(path, format!("cannot read tensors ({e})")))?;
    for (name, info) in pth.tensor_infos() {
        // Checked: a crafted shape can overflow the element count.
        let needed = info
            .layout
            .shape()
            .dims()
            .iter()
            .try_fold(info.dtype.size_in_bytes(), |bytes, &dim| {
                bytes.checked_mul(dim)
            })
            .ok_or_else(|| {
                checkpoint_error(path, format!("tensor `{name}` has an impossible shape"))
            })?;
        let entry_size = zip
            .by_name(&info.path)
            .map(|entry| entry.size())
            .map_err(|e| checkpoint_error(path, format!("tensor `{name}`: {e}")))?;
        if needed as u64 > entry_size || entry_size > file_len {
            return Err(checkpoint_error(
                path,
                format!(
                    "tensor `{name}` claims {needed} bytes but its storage holds {entry_size}: \
                     the file is truncated or corrupt"
                ),
            ));
        }
    }
    Ok(pth)
}

/// Whether a decoded checkpoint is a dict with a `state_dict` dict in it.
fn is_lightning_checkpoint(object: &Object) -> bool {
    matches!(object, Object::Dict(items) if items.iter().any(|(k, v)| {
        *k == Object::Unicode("state_dict".into()) && matches!(v, Object::Dict(_) | Object::Reduce { .. })
    }))
}

/// Turns a candle error raised while building or streaming a model from `path` into an
/// engine error naming the file, the key and the shapes.
pub fn model_error(path: &Path, error: candle_core::Error) -> EngineError {
    model_load_error(path, error)
}

/// Turns a candle error raised while building a model into a structured engine error.
fn model_load_error(path: &Path, error: candle_core::Error) -> EngineError {
    match error {
        candle_core::Error::WithBacktrace { inner, .. } => model_load_error(path, *inner),
        candle_core::Error::Context { inner, .. } => model_load_error(path, *inner),
        candle_core::Error::CannotFindTensor { path: key } => EngineError::MissingKey {
            path: path.to_path_buf(),
            key,
        },
        candle_core::Error::UnexpectedShape { msg, expected, got } => EngineError::ShapeMismatch {
            path: path.to_path_buf(),
            key: msg
                .strip_prefix("shape mismatch for ")
                .unwrap_or(&msg)
                .to_string(),
            expected: expected.dims().to_vec(),
            found: got.dims().to_vec(),
        },
        other => checkpoint_error(path, other),
    }
}

/// Loads a weights file and builds a model from it, mapping missing keys and wrong shapes to
/// errors that name the file, the key and both shapes.
pub fn build_model<M>(
    path: &Path,
    dtype: DType,
    device: &Device,
    build: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<M>,
) -> Result<M> {
    let tensors = load_tensors(path)?;
    let vb = VarBuilder::from_tensors(tensors, dtype, device);
    // A config the size checks missed must not take the caller down either.
    refusing_panics(
        path,
        "the model could not be built from these weights and its config",
        || build(vb).map_err(|e| model_load_error(path, e)),
    )
}

/// Resolves a VAE path: a diffusers folder (its `diffusion_pytorch_model.safetensors`) or a file.
pub fn vae_weights_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("diffusion_pytorch_model.safetensors")
    } else {
        path.to_path_buf()
    }
}

/// Reads a JSON config file.
pub fn read_config<C: serde::de::DeserializeOwned>(path: &Path) -> Result<C> {
    let text = std::fs::read_to_string(path).map_err(|e| EngineError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| checkpoint_error(path, format!("bad config: {e}")))
}

/// Checks that the sizes in a manifest describe a model that can be built: nothing zero that
/// is divided by, widths divisible by head counts, and every size within generous bounds (the
/// largest published models fit many times over), so that a damaged or hostile `model.json`
/// is refused with the field it got wrong instead of dividing by zero or asking for terabytes.
/// (A DINO `num_heads` of 0 divided by zero; found by `tests/fuzz_parsers.rs`.)
pub fn check_model_sizes(spec: &ModelSpec) -> std::result::Result<(), String> {
    fn within(
        what: &str,
        value: usize,
        range: std::ops::RangeInclusive<usize>,
    ) -> std::result::Result<(), String> {
        if range.contains(&value) {
            Ok(())
        } else {
            Err(format!(
                "{what} is {value}; it must be {} to {}",
                range.start(),
                range.end()
            ))
        }
    }
    fn divides(what: &str, width: usize, parts: usize) -> std::result::Result<(), String> {
        if parts > 0 && width.is_multiple_of(parts) {
            Ok(())
        } else {
            Err(format!("{what}: {width} is not divisible by {parts}"))
        }
    }
    fn ratio(what: &str, value: f64) -> std::result::Result<(), String> {
        if value.is_finite() && value > 0.0 && value <= 64.0 {
            Ok(())
        } else {
            Err(format!(
                "{what} is {value}; it must be above 0 and at most 64"
            ))
        }
    }
    const SIDE: std::ops::RangeInclusive<usize> = 1..=4096;
    const WIDTH: std::ops::RangeInclusive<usize> = 1..=16_384;
    const DEPTH: std::ops::RangeInclusive<usize> = 1..=512;
    const CHANNELS: std::ops::RangeInclusive<usize> = 1..=64;

    let prior = &spec.prior.config;
    within("prior.input_size", prior.input_size, SIDE)?;
    within("prior.patch_size", prior.patch_size, 1..=prior.input_size)?;
    divides(
        "prior.input_size / patch_size",
        prior.input_size,
        prior.patch_size,
    )?;
    within("prior.in_channels", prior.in_channels, CHANNELS)?;
    within(
        "prior.input_view_channels",
        prior.input_view_channels,
        0..=64,
    )?;
    within("prior.hidden_size", prior.hidden_size, WIDTH)?;
    within("prior.depth", prior.depth, DEPTH)?;
    within("prior.num_heads", prior.num_heads, 1..=prior.hidden_size)?;
    divides(
        "prior.hidden_size / num_heads",
        prior.hidden_size,
        prior.num_heads,
    )?;
    ratio("prior.mlp_ratio", prior.mlp_ratio)?;
    within("prior.caption_channels", prior.caption_channels, WIDTH)?;
    within("prior.model_max_length", prior.model_max_length, 1..=4096)?;
    within(
        "prior.spatial_condition_grid",
        prior.spatial_condition_grid,
        0..=64,
    )?;
    if !(prior.lewei_scale.is_finite() && prior.lewei_scale > 0.0) {
        return Err(format!(
            "prior.lewei_scale is {}; it must be above 0",
            prior.lewei_scale
        ));
    }
    match &spec.encoder.config {
        crate::models::EncoderConfig::Dino(dino) => {
            within("encoder.img_size", dino.img_size, SIDE)?;
            within("encoder.patch_size", dino.patch_size, 1..=dino.img_size)?;
            within("encoder.in_chans", dino.in_chans, CHANNELS)?;
            within("encoder.embed_dim", dino.embed_dim, WIDTH)?;
            within("encoder.depth", dino.depth, DEPTH)?;
            within("encoder.num_heads", dino.num_heads, 1..=dino.embed_dim)?;
            divides(
                "encoder.embed_dim / num_heads",
                dino.embed_dim,
                dino.num_heads,
            )?;
            ratio("encoder.mlp_ratio", dino.mlp_ratio)?;
        }
        crate::models::EncoderConfig::EfficientNetLite(net) => {
            within("encoder.image_size", net.image_size, 32..=4096)?;
        }
    }
    if let Some(vae) = &spec.vae {
        let vae = &vae.config;
        within("vae.in_channels", vae.in_channels, CHANNELS)?;
        within("vae.out_channels", vae.out_channels, CHANNELS)?;
        within("vae.latent_channels", vae.latent_channels, CHANNELS)?;
        within("vae.layers_per_block", vae.layers_per_block, 1..=16)?;
        within(
            "vae.block_out_channels (levels)",
            vae.block_out_channels.len(),
            1..=8,
        )?;
        within(
            "vae.norm_num_groups",
            vae.norm_num_groups,
            1..=WIDTH.end().to_owned(),
        )?;
        for &channels in &vae.block_out_channels {
            within("vae.block_out_channels", channels, WIDTH)?;
            divides(
                "vae.block_out_channels / norm_num_groups",
                channels,
                vae.norm_num_groups,
            )?;
        }
        if !(vae.scaling_factor.is_finite() && vae.scaling_factor != 0.0) {
            return Err(format!("vae.scaling_factor is {}", vae.scaling_factor));
        }
    }
    if let Some(fill) = spec.object_fill
        && !(fill > 0.0 && fill <= 1.0)
    {
        return Err(format!(
            "object_fill is {fill}; it must be above 0 and at most 1"
        ));
    }
    Ok(())
}

/// Reads a `ModelSpec` manifest; relative weight paths are relative to the manifest's folder
/// (so a trained model folder can be moved as a whole). Sizes are checked
/// ([`check_model_sizes`]) before anything is built from them.
pub fn read_manifest(path: &Path) -> Result<ModelSpec> {
    let mut spec = read_config::<ModelSpec>(path)?;
    check_model_sizes(&spec)
        .map_err(|reason| checkpoint_error(path, format!("impossible model sizes: {reason}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let anchor = |p: &mut PathBuf| {
        if p.is_relative() && crate::embedded::resolve(p).is_none() {
            *p = base.join(&*p);
        }
    };
    anchor(&mut spec.prior.path);
    anchor(&mut spec.encoder.path);
    if let Some(vae) = &mut spec.vae {
        anchor(&mut vae.path);
    }
    Ok(spec)
}

/// The shared parity fixtures: `$LUMOS_FIXTURES`, else `../shared/fixtures` next to the
/// workspace, else the copy vendored in `tests/fixtures`.
pub fn fixtures_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("LUMOS_FIXTURES") {
        return PathBuf::from(dir);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let shared = workspace.join("../shared/fixtures");
    if shared.is_dir() {
        shared
    } else {
        workspace.join("tests/fixtures")
    }
}

/// The tiny end-to-end model of the `pipeline_tiny` fixture (random weights, 64×64 output):
/// DINO from `dino_vit_tiny`, the DiT and VAE from `pipeline_tiny`.
pub fn pipeline_fixture_spec(fixtures_root: &Path) -> Result<ModelSpec> {
    let pipeline = fixtures_root.join("pipeline_tiny");
    let dino = fixtures_root.join("dino_vit_tiny");
    Ok(ModelSpec {
        name: "pipeline_tiny (test fixture, random weights)".into(),
        precision: Precision::default(),
        prior: ComponentSpec {
            path: pipeline.join("lumos_weights.safetensors"),
            config: read_config::<LumosConfig>(&pipeline.join("lumos_config.json"))?,
        },
        encoder: ComponentSpec {
            path: dino.join("weights.safetensors"),
            config: read_config::<DinoConfig>(&dino.join("config.json"))?.into(),
        },
        vae: Some(ComponentSpec {
            path: pipeline.join("vae"),
            config: read_config::<VaeConfig>(&pipeline.join("vae/config.json"))?,
        }),
        guidance: None,
        object_fill: None,
    })
}

/// File names of the published release.
pub mod published {
    /// The Lumos I2I prior (fp32 pickle, 3.3 GB).
    pub const PRIOR: &str = "Lumos_I2I.pth";
    /// The DINO ViT-B/16 weights.
    pub const ENCODER: &str = "dino_vitbase16_pretrain.pth";
    /// The VAE's diffusers weights file.
    pub const VAE_FILE: &str = "diffusion_pytorch_model.safetensors";
    /// Hugging Face repository of the VAE.
    pub const VAE_REPO: &str = "stabilityai/sd-vae-ft-mse";
}

/// What discovery found for the full Lumos I2I model.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    /// Folders searched, in order.
    pub searched: Vec<PathBuf>,
    /// `Lumos_I2I.pth` (or a `.safetensors` conversion).
    pub prior: Option<PathBuf>,
    /// `dino_vitbase16_pretrain.pth` (or a `.safetensors` conversion).
    pub encoder: Option<PathBuf>,
    /// The `sd-vae-ft-mse` diffusers folder.
    pub vae: Option<PathBuf>,
}

impl Discovery {
    /// The full model, if every part was found.
    pub fn spec(&self) -> Option<ModelSpec> {
        Some(ModelSpec {
            name: "Lumos I2I XL/2".into(),
            precision: Precision::default(),
            prior: ComponentSpec {
                path: self.prior.clone()?,
                config: LumosConfig::xl_2(),
            },
            encoder: ComponentSpec {
                path: self.encoder.clone()?,
                config: DinoConfig::vit_base_16().into(),
            },
            vae: Some(ComponentSpec {
                path: self.vae.clone()?,
                config: VaeConfig::sd_vae_ft_mse(),
            }),
            guidance: None,
            object_fill: None,
        })
    }

    /// A human-readable report: what was found where, what is missing and how to get it.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let line = |found: &Option<PathBuf>, what: &str, how: &str| match found {
            Some(path) => format!("found    {what}: {}\n", path.display()),
            None => format!("missing  {what}: {how}\n"),
        };
        out += &line(
            &self.prior,
            "Lumos I2I prior",
            "put Lumos_I2I.pth (from the Lumos release on Hugging Face) in a models folder",
        );
        out += &line(
            &self.encoder,
            "DINO ViT-B/16 encoder",
            "put dino_vitbase16_pretrain.pth (facebookresearch/dino) in a models folder",
        );
        out += &line(
            &self.vae,
            "SD VAE (sd-vae-ft-mse)",
            "put the stabilityai/sd-vae-ft-mse folder (config.json + \
             diffusion_pytorch_model.safetensors) in a models folder as `sd-vae-ft-mse/`",
        );
        out += "searched:\n";
        for dir in &self.searched {
            out += &format!("  {}\n", dir.display());
        }
        out
    }
}

/// The app's own models folder (`<data dir>/models`).
pub fn data_models_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "Lumos", "Lumos Studio")
        .map(|dirs| dirs.data_dir().join("models"))
}

/// Hugging Face hub cache roots, in priority order.
pub fn hf_cache_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
        roots.push(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("HF_HOME") {
        roots.push(PathBuf::from(dir).join("hub"));
    }
    if let Some(home) = directories::BaseDirs::new() {
        roots.push(home.home_dir().join(".cache/huggingface/hub"));
    }
    roots
}

/// Folders a model file may sit in: the folder itself, and every snapshot of every repository
/// when it is a Hugging Face cache (`models--ORG--NAME/snapshots/REV/`).
pub(crate) fn candidate_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    let Ok(entries) = std::fs::read_dir(root) else {
        return dirs;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("models--") {
            if let Ok(snapshots) = std::fs::read_dir(entry.path().join("snapshots")) {
                dirs.extend(snapshots.flatten().map(|s| s.path()));
            }
        } else if entry.path().is_dir() {
            dirs.push(entry.path());
        }
    }
    dirs
}

fn find_weights(dirs: &[PathBuf], stem: &str) -> Option<PathBuf> {
    dirs.iter().find_map(|dir| {
        ["pth", "safetensors"]
            .iter()
            .map(|ext| dir.join(format!("{stem}.{ext}")))
            .find(|p| p.is_file())
    })
}

fn find_vae(dirs: &[PathBuf]) -> Option<PathBuf> {
    let is_vae_dir =
        |d: &Path| d.join("config.json").is_file() && d.join(published::VAE_FILE).is_file();
    dirs.iter().find_map(|dir| {
        [dir.join("sd-vae-ft-mse"), dir.join("vae"), dir.clone()]
            .into_iter()
            .find(|d| is_vae_dir(d))
    })
}

/// Where models are looked for: `explicit` first, then `$LUMOS_MODELS`, the app's data
/// directory and the Hugging Face cache roots.
pub(crate) fn search_roots(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = explicit.map(Path::to_path_buf).into_iter().collect();
    if let Some(dir) = std::env::var_os("LUMOS_MODELS") {
        roots.push(PathBuf::from(dir));
    }
    roots.extend(data_models_dir());
    roots.extend(hf_cache_roots());
    roots
}

/// Looks for the published model files: `explicit` first, then `$LUMOS_MODELS`, the app's data
/// directory and the Hugging Face cache.
pub fn discover(explicit: Option<&Path>) -> Discovery {
    let roots = search_roots(explicit);
    let dirs: Vec<PathBuf> = roots.iter().flat_map(|r| candidate_dirs(r)).collect();
    Discovery {
        prior: find_weights(&dirs, "Lumos_I2I"),
        encoder: find_weights(&dirs, "dino_vitbase16_pretrain"),
        vae: find_vae(&dirs),
        searched: roots,
    }
}

/// Which model a front end asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelChoice {
    /// The published model if discovery finds it, else the built-in default.
    Auto,
    /// The small prior built into the engine.
    Default,
    /// The tiny random-weight model of the parity fixtures.
    Fixture,
    /// A `ModelSpec` JSON manifest, a folder holding one as `model.json`, or a folder to
    /// search for the published files.
    Path(PathBuf),
}

impl std::str::FromStr for ModelChoice {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s {
            "auto" => Self::Auto,
            "default" | "builtin" | "built-in" => Self::Default,
            "fixture" | "tiny" => Self::Fixture,
            other => Self::Path(PathBuf::from(other)),
        })
    }
}

/// The manifest a model folder holds (what `lumos train` and `install_default.py` write).
pub const MANIFEST_FILE: &str = "model.json";

/// A resolved model and, when it is not the real thing, why.
#[derive(Clone, Debug)]
pub struct ResolvedModel {
    /// The model to load.
    pub spec: ModelSpec,
    /// A warning for the user (e.g. falling back to the random-weight test model).
    pub warning: Option<String>,
}

/// Resolves a model choice into a spec.
pub fn resolve_model(choice: &ModelChoice) -> Result<ResolvedModel> {
    match choice {
        ModelChoice::Fixture => Ok(ResolvedModel {
            spec: pipeline_fixture_spec(&fixtures_root())?,
            warning: Some(
                "using the tiny random-weight test model: images will look like noise".into(),
            ),
        }),
        ModelChoice::Default => Ok(ResolvedModel {
            spec: crate::embedded::default_spec()?,
            warning: None,
        }),
        ModelChoice::Auto => match discover(None).spec() {
            Some(spec) => Ok(ResolvedModel {
                spec,
                warning: None,
            }),
            None => Ok(ResolvedModel {
                spec: crate::embedded::default_spec()?,
                warning: None,
            }),
        },
        ModelChoice::Path(path) if path.extension().is_some_and(|e| e == "json") => {
            Ok(ResolvedModel {
                spec: read_manifest(path)?,
                warning: None,
            })
        }
        // A folder holding a manifest (a `lumos train` run, an installed model).
        ModelChoice::Path(path) if path.join(MANIFEST_FILE).is_file() => Ok(ResolvedModel {
            spec: read_manifest(&path.join(MANIFEST_FILE))?,
            warning: None,
        }),
        ModelChoice::Path(path) => {
            let found = discover(Some(path));
            let spec = found.spec().ok_or_else(|| {
                checkpoint_error(
                    path,
                    format!("the full model is incomplete here:\n{}", found.report()),
                )
            })?;
            Ok(ResolvedModel {
                spec,
                warning: None,
            })
        }
    }
}

/// Resolves the choice of a Lumos novel-view model: `builtin`, and `auto` (which a caller takes
/// once no Zero123-family checkpoint was found), is the built-in multi-view model.
pub fn resolve_novel_view_model(choice: &ModelChoice) -> Result<ModelSpec> {
    match choice {
        ModelChoice::Auto | ModelChoice::Default => crate::embedded::multiview_spec(),
        other => Ok(resolve_model(other)?.spec),
    }
}
