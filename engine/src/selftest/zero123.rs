//! Parity checks of the Zero-1-to-3 family (`README_ZERO123.md`): the camera embeddings of
//! every convention, the CLIP tower and its preprocessing, `cc_projection`, the autoencoder,
//! every UNet block (EMA and live weights), the stand-alone blocks, the DDIM sampler as the
//! demo runs it (η = 1 and 0, and diffusers' all-steps variant), decoding and the 8-bit
//! output — from the ldm `.ckpt`, its safetensors twin and the diffusers conversion.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use super::{Check, EXACT, Fixture, PARITY, Tolerance, compare, network_tolerance};
use crate::camera::zero123 as camera;
use crate::checkpoints::read_config;
use crate::checkpoints::zero123::{self as loader, LoadedZero123, UnetWeights};
use crate::error::{EngineError, Result};
use crate::models::clip_vision;
use crate::models::ldm_unet::{LdmUnetTrace, RESBLOCK_NORM_EPS, ResBlock};
use crate::models::vae::{NORM_EPS as VAE_NORM_EPS, ResnetBlock};
use crate::models::zero123::Zero123Config;
use crate::pipelines::zero123 as zero123_pipeline;
use crate::sampling::ldm_ddim::{self, LdmDdimSchedule};

/// Camera embeddings: the originals mix f32 and f64 arithmetic (README: exact to ~1e-7).
const CAMERA: Tolerance = Tolerance::Elementwise {
    atol: 1e-6,
    rtol: 0.0,
};
/// The demo's canvas: Pillow's arithmetic reproduced (README: `|u8 - png| <= 1` on at most
/// 1 % of values).
const PILLOW: Tolerance = Tolerance::Bytes {
    levels: 1.0,
    fraction: 0.01,
};
/// Sampled latents, relative to their magnitude (README: 1e-4 × max|ref|).
const LATENT: Tolerance = Tolerance::Scaled { tol: 1e-4 };
/// 8-bit outputs in f32: at most one level on 0.5 % of values (README); in half precision
/// the network tolerance relative to the 255-level range, on any number of values.
fn byte_tolerance(dtype: DType) -> Tolerance {
    match network_tolerance(dtype, PARITY) {
        Tolerance::Scaled { tol } => Tolerance::Bytes {
            levels: (tol * 255.0).ceil(),
            fraction: 1.0,
        },
        _ => Tolerance::Bytes {
            levels: 1.0,
            fraction: 0.005,
        },
    }
}

/// `zero123_tiny`: everything in `io.safetensors` and `blocks.safetensors`.
pub fn check_zero123(dir: &Path, device: &Device, dtype: DType) -> Result<Vec<Check>> {
    let group = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let config: Zero123Config = read_config(&dir.join("config.json"))?;
    let description: serde_json::Value = read_config(&dir.join("config.json"))?;
    let guidance = description["sampling"]["unconditional_guidance_scale"]
        .as_f64()
        .ok_or_else(|| EngineError::MissingKey {
            path: dir.join("config.json"),
            key: "sampling.unconditional_guidance_scale".into(),
        })?;
    let io = Fixture::open(&dir.join("io.safetensors"))?;
    let mut checks = check_cameras(&group, &io)?;
    checks.extend(check_preprocessing(dir, &group, &io)?);
    checks.extend(check_keeping_framing(dir, &group, &io)?);
    if dir.join("blocks.safetensors").is_file() {
        checks.extend(check_blocks(
            &group,
            &Fixture::open(&dir.join("blocks.safetensors"))?,
            device,
            dtype,
        )?);
    }
    let files: Vec<_> = ["weights.ckpt", "weights.safetensors", "diffusers"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .collect();
    if files.is_empty() {
        return Err(EngineError::InvalidRequest(format!(
            "no weights in {}",
            dir.display()
        )));
    }
    for file in files {
        let label = format!(
            "{group} [{}]",
            file.file_name().unwrap_or_default().to_string_lossy()
        );
        let loaded = loader::load(&file, Some(&config), dtype, device)?;
        checks.extend(check_model(&label, &loaded, &io, guidance, device, dtype)?);
        if !file.is_dir() && io.has("unet_live.eps_cond") {
            let live =
                loader::load_weights(&file, Some(&config), UnetWeights::Live, dtype, device)?;
            let eps = unet_eps(&live, &io, device, "cond")?;
            let reference = io.get("unet_live.eps_cond", device)?;
            checks.push(compare(
                &label,
                "unet_live.eps_cond",
                &eps,
                &reference,
                network_tolerance(dtype, PARITY),
            )?);
        }
    }
    Ok(checks)
}

fn rows_f64(io: &Fixture, name: &str) -> Result<Vec<Vec<f64>>> {
    let tensor = io
        .tensors
        .get(name)
        .ok_or_else(|| EngineError::MissingKey {
            path: io.path.clone(),
            key: name.into(),
        })?;
    Ok(tensor.to_dtype(DType::F64)?.to_vec2::<f64>()?)
}

fn embeddings_tensor(rows: Vec<[f32; 4]>) -> Result<Tensor> {
    let n = rows.len();
    Ok(Tensor::from_vec(
        rows.into_iter().flatten().collect::<Vec<_>>(),
        (n, 4),
        &Device::Cpu,
    )?)
}

/// Every convention's `T` from its stored inputs.
fn check_cameras(group: &str, io: &Fixture) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let mut check = |name: &str, rows: Vec<[f32; 4]>| -> Result<()> {
        if io.has(name) {
            let reference = io.get(name, &Device::Cpu)?;
            let ours = embeddings_tensor(rows)?.reshape(reference.shape())?;
            checks.push(compare(group, name, &ours, &reference, CAMERA)?);
        }
        Ok(())
    };
    if io.has("camera.zero123_gradio.input") {
        let rows = rows_f64(io, "camera.zero123_gradio.input")?;
        check(
            "camera.zero123_gradio.T",
            rows.iter()
                .map(|r| camera::demo(r[0], r[1], r[2]))
                .collect(),
        )?;
    }
    if io.has("poses_gradio") {
        let rows = rows_f64(io, "poses_gradio")?;
        check(
            "T",
            rows.iter()
                .map(|r| camera::demo(r[0], r[1], r[2]))
                .collect(),
        )?;
    }
    if io.has("camera.get_T.cond_RT") {
        let matrices = |name: &str| -> Result<Vec<[[f64; 4]; 3]>> {
            let t = io.tensors[name].to_dtype(DType::F64)?.to_vec3::<f64>()?;
            Ok(t.iter()
                .map(|m| std::array::from_fn(|r| std::array::from_fn(|c| m[r][c])))
                .collect())
        };
        let inputs = matrices("camera.get_T.cond_RT")?;
        let views = matrices("camera.get_T.target_RT")?;
        check(
            "camera.get_T.T",
            inputs
                .iter()
                .zip(&views)
                .map(|(i, v)| camera::from_world_to_camera(i, v))
                .collect(),
        )?;
    }
    if io.has("camera.threestudio.input") {
        let cams = rows_f64(io, "camera.threestudio.input")?;
        for (name, stable) in [
            ("camera.threestudio_zero123", false),
            ("camera.threestudio_stable_zero123", true),
        ] {
            let cond_name = format!("{name}.cond");
            if !io.has(&cond_name) {
                continue;
            }
            let cond = io.tensors[&cond_name]
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?;
            let rows = cams
                .iter()
                .map(|c| {
                    if stable {
                        camera::stable_zero123(c[0], c[1], cond[0], cond[1])
                    } else {
                        camera::threestudio(c[0], c[1], c[2], (cond[0], cond[1], cond[2]))
                    }
                })
                .collect();
            check(&format!("{name}.T"), rows)?;
        }
    }
    if io.has("camera.comfyui.input") {
        let rows = rows_f64(io, "camera.comfyui.input")?;
        check(
            "camera.comfyui.T",
            rows.iter()
                .map(|r| camera::stable_zero123(r[0], r[1], 0.0, 0.0))
                .collect(),
        )?;
    }
    if io.has("stable.camera_input") && io.has("camera.threestudio_stable_zero123.cond") {
        let cams = rows_f64(io, "stable.camera_input")?;
        let cond = io.tensors["camera.threestudio_stable_zero123.cond"]
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?;
        check(
            "stable.T",
            cams.iter()
                .map(|c| camera::stable_zero123(c[0], c[1], cond[0], cond[1]))
                .collect(),
        )?;
    }
    Ok(checks)
}

/// The demo's preparation of each `input_K.png`: the matte's box and the thumbnail size
/// exactly, the 256² canvas against `input_K.preprocessed_256.png`, and the model input made
/// from that PNG against `input_im`.
fn check_preprocessing(dir: &Path, group: &str, io: &Fixture) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let input_im = io.get("input_im", &Device::Cpu)?;
    let size = input_im.dim(2)?;
    for k in 0..input_im.dim(0)? {
        let source = dir.join(format!("input_{k}.png"));
        let reference = dir.join(format!("input_{k}.preprocessed_256.png"));
        if !source.is_file() || !reference.is_file() {
            continue;
        }
        let bytes = std::fs::read(&source).map_err(|e| EngineError::Io {
            path: source.clone(),
            source: e,
        })?;
        let rgb = crate::imageio::load_image(&source)?;
        let alpha = crate::imageio::decode_alpha(&bytes);
        let prefix = format!("preprocess.input_{k}");
        if let Some(matte) = &alpha
            && io.has(&format!("{prefix}.bbox_xywh"))
        {
            let (x, y, w, h) = zero123_pipeline::object_box(matte).unwrap_or_default();
            let ours = Tensor::new(&[x as f64, y as f64, w as f64, h as f64], &Device::Cpu)?;
            let expected = io.get(&format!("{prefix}.bbox_xywh"), &Device::Cpu)?;
            checks.push(compare(
                group,
                &format!("{prefix}.bbox_xywh"),
                &ours,
                &expected,
                EXACT,
            )?);
            let (tw, th) = crate::pillow::thumbnail_size(w, h, zero123_pipeline::OBJECT_SIDE);
            let ours = Tensor::new(&[tw as f64, th as f64], &Device::Cpu)?;
            let expected = io.get(&format!("{prefix}.thumbnail_wh"), &Device::Cpu)?;
            checks.push(compare(
                group,
                &format!("{prefix}.thumbnail_wh"),
                &ours,
                &expected,
                EXACT,
            )?);
        }
        let prepared = zero123_pipeline::prepare_input(&rgb, alpha.as_ref())?;
        let png = crate::imageio::load_image(&reference)?;
        checks.push(compare(
            group,
            &format!("input_{k}.preprocessed_256.png"),
            &bytes_as_tensor(prepared.image.as_raw())?,
            &bytes_as_tensor(png.as_raw())?,
            PILLOW,
        )?);
        for (from, canvas) in [
            (format!("input_{k}.png"), &prepared.image),
            (format!("input_{k}.preprocessed_256.png"), &png),
        ] {
            let model_input = zero123_pipeline::to_model_input(canvas, size, &Device::Cpu)?;
            checks.push(compare(
                group,
                &format!("input_im[{k}] from {from}"),
                &model_input,
                &input_im.narrow(0, k, 1)?,
                Tolerance::Elementwise {
                    atol: 5e-4,
                    rtol: 0.0,
                },
            )?);
        }
    }
    Ok(checks)
}

/// Image bytes as one flat f32 tensor (values 0–255), for comparing pixels exactly.
fn bytes_as_tensor(raw: &[u8]) -> Result<Tensor> {
    let values: Vec<f32> = raw.iter().map(|&v| f32::from(v)).collect();
    Ok(Tensor::from_vec(values, raw.len(), &Device::Cpu)?)
}

/// The demo's `preprocess=False` path: the RGBA resize against
/// `input_nopre.resized_rgba_256.png`, and the rows of its flattening onto white stored as
/// `nopre.out_rows`.
fn check_keeping_framing(dir: &Path, group: &str, io: &Fixture) -> Result<Vec<Check>> {
    let reference = dir.join("input_nopre.resized_rgba_256.png");
    if !reference.is_file() || !io.has("nopre.image_index") {
        return Ok(Vec::new());
    }
    let index = io.f32s("nopre.image_index")?[0] as usize;
    let source = dir.join(format!("input_{index}.png"));
    let read_rgba = |path: &Path| -> Result<image::RgbaImage> {
        Ok(image::open(path)
            .map_err(|e| EngineError::InvalidRequest(format!("{}: {e}", path.display())))?
            .to_rgba8())
    };
    let (source, expected) = (read_rgba(&source)?, read_rgba(&reference)?);
    let ours = crate::pillow::resize_rgba(
        &source,
        expected.width(),
        expected.height(),
        crate::pillow::Filter::Lanczos,
    );
    let mut checks = vec![compare(
        group,
        "input_nopre.resized_rgba_256.png",
        &bytes_as_tensor(ours.as_raw())?,
        &bytes_as_tensor(expected.as_raw())?,
        PILLOW,
    )?];
    let rows: Vec<u32> = io.f32s("nopre.rows")?.iter().map(|&r| r as u32).collect();
    let width = expected.width() as usize;
    let flat_rows = |image: &image::RgbaImage| -> Result<Tensor> {
        let flat = zero123_pipeline::flatten_on_white(image);
        let height = flat.len() / (3 * width);
        Ok(Tensor::from_vec(flat, (height, width, 3), &Device::Cpu)?
            .index_select(&Tensor::new(rows.as_slice(), &Device::Cpu)?, 0)?)
    };
    let stored = io.get("nopre.out_rows", &Device::Cpu)?;
    checks.push(compare(
        group,
        "nopre.out_rows from the stored resize",
        &flat_rows(&expected)?,
        &stored,
        Tolerance::Elementwise {
            atol: 1e-6,
            rtol: 0.0,
        },
    )?);
    checks.push(compare(
        group,
        "nopre.out_rows from input_0.png",
        &flat_rows(&ours)?,
        &stored,
        Tolerance::Elementwise {
            atol: 1.0 / 255.0 + 1e-6,
            rtol: 0.0,
        },
    )?);
    Ok(checks)
}

/// The stand-alone ResBlock, autoencoder ResnetBlock and GroupNorms.
fn check_blocks(
    group: &str,
    blocks: &Fixture,
    device: &Device,
    dtype: DType,
) -> Result<Vec<Check>> {
    let group = format!("{group} [blocks]");
    let tolerance = network_tolerance(dtype, PARITY);
    let weights = |prefix: &str| -> HashMap<String, Tensor> {
        blocks
            .tensors
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
            .collect()
    };
    let mut checks = Vec::new();
    let mut check = |name: &str, ours: &Tensor, tol: Tolerance| -> Result<()> {
        let reference = blocks.get(name, device)?;
        checks.push(compare(&group, name, ours, &reference, tol)?);
        Ok(())
    };
    if blocks.has("unet_resblock.x") {
        let tensors = weights("unet_resblock.weight.");
        let x = blocks.get("unet_resblock.x", device)?.to_dtype(dtype)?;
        let emb = blocks.get("unet_resblock.emb", device)?.to_dtype(dtype)?;
        let (c_in, c_out, emb_dim) = (
            x.dim(1)?,
            tensors["emb_layers.1.weight"].dim(0)?,
            emb.dim(1)?,
        );
        let block = ResBlock::load(
            c_in,
            c_out,
            emb_dim,
            VarBuilder::from_tensors(tensors.clone(), dtype, device),
        )?;
        let trace = block.forward_traced(&x, &emb)?;
        check("unet_resblock.h_in_layers", &trace.h_in_layers, tolerance)?;
        check("unet_resblock.emb_out", &trace.emb_out, tolerance)?;
        let h_plus_emb = trace
            .h_in_layers
            .broadcast_add(&trace.emb_out.unsqueeze(2)?.unsqueeze(3)?)?;
        check("unet_resblock.h_plus_emb", &h_plus_emb, tolerance)?;
        check("unet_resblock.out", &trace.out, tolerance)?;
        let mut zeroed = tensors;
        for key in ["emb_layers.1.weight", "emb_layers.1.bias"] {
            let t = zeroed[key].zeros_like()?;
            zeroed.insert(key.into(), t);
        }
        let block = ResBlock::load(
            c_in,
            c_out,
            emb_dim,
            VarBuilder::from_tensors(zeroed, dtype, device),
        )?;
        let out = block.forward_traced(&x, &emb)?.out;
        check("unet_resblock.out_zero_emb_layers", &out, tolerance)?;
    }
    if blocks.has("vae_resnetblock.x") {
        let tensors: HashMap<String, Tensor> = weights("vae_resnetblock.weight.")
            .into_iter()
            .map(|(k, v)| (k.replace("nin_shortcut", "conv_shortcut"), v))
            .collect();
        let x = blocks.get("vae_resnetblock.x", device)?.to_dtype(dtype)?;
        let c_out = tensors["conv1.weight"].dim(0)?;
        let block = ResnetBlock::load(
            x.dim(1)?,
            c_out,
            32,
            VarBuilder::from_tensors(tensors, dtype, device),
        )?;
        check("vae_resnetblock.out", &block.forward(&x)?, tolerance)?;
    }
    for (which, eps) in [("unet", RESBLOCK_NORM_EPS), ("vae", VAE_NORM_EPS)] {
        let weight = format!("groupnorm.{which}.weight");
        if !blocks.has(&weight) {
            continue;
        }
        let w = blocks.get(&weight, device)?.to_dtype(dtype)?;
        let b = blocks
            .get(&format!("groupnorm.{which}.bias"), device)?
            .to_dtype(dtype)?;
        let channels = w.dim(0)?;
        let norm = candle_nn::GroupNorm::new(w, b, channels, 32, eps)?;
        for (input, output) in [("x", "out"), ("x_small", "out_small")] {
            let x = blocks
                .get(&format!("groupnorm.{input}"), device)?
                .to_dtype(dtype)?;
            check(
                &format!("groupnorm.{which}.{output}"),
                &norm.forward(&x)?,
                tolerance,
            )?;
        }
    }
    Ok(checks)
}

/// The UNet's noise for the fixture's `x_t` and `t` with the conditional (`cond`) or the
/// zero (`uncond`) inputs.
fn unet_eps(loaded: &LoadedZero123, io: &Fixture, device: &Device, which: &str) -> Result<Tensor> {
    let x_t = io.get("unet.x_t", device)?;
    let t = io.f32s("unet.t")?;
    let (c_concat, context) = if which == "cond" {
        (io.get("c_concat", device)?, io.get("cond", device)?)
    } else {
        (
            io.get("uc.c_concat", device)?,
            io.get("uc.c_crossattn", device)?,
        )
    };
    Ok(loaded.model.predict_noise(&x_t, &t, &c_concat, &context)?)
}

fn check_model(
    group: &str,
    loaded: &LoadedZero123,
    io: &Fixture,
    scale: f64,
    device: &Device,
    dtype: DType,
) -> Result<Vec<Check>> {
    let model = &loaded.model;
    let tolerance = network_tolerance(dtype, PARITY);
    let latent = match dtype {
        DType::F32 => LATENT,
        _ => tolerance,
    };
    let mut checks = Vec::new();
    let mut check = |name: &str, ours: &Tensor, tol: Tolerance| -> Result<()> {
        if io.has(name) {
            let reference = io.get(name, device)?;
            checks.push(compare(group, name, ours, &reference, tol)?);
        }
        Ok(())
    };
    let input_im = io.get("input_im", device)?;

    // CLIP: preprocessing (stored rows of sample 0), the tower, the embedding.
    let pixels = clip_vision::preprocess(&input_im, model.clip.config().resolution)?;
    if io.has("clip_pixel.b0_rows") {
        let rows: Vec<u32> = io
            .f32s("clip_pixel.rows")?
            .iter()
            .map(|&r| r as u32)
            .collect();
        let index = Tensor::new(rows.as_slice(), device)?;
        let ours = pixels.narrow(0, 0, 1)?.index_select(&index, 2)?;
        check(
            "clip_pixel.b0_rows",
            &ours,
            Tolerance::Elementwise {
                atol: 1e-3,
                rtol: 0.0,
            },
        )?;
    }
    let trace = model.clip.forward_traced(&pixels)?;
    check(
        "clip.ln_pre_out",
        &trace.ln_pre_out.narrow(0, 0, 1)?,
        tolerance,
    )?;
    for (i, block) in trace.blocks.iter().enumerate() {
        check(
            &format!("clip.blocks.{i}.out"),
            &block.narrow(0, 0, 1)?,
            tolerance,
        )?;
    }
    check("clip.ln_post_out", &trace.ln_post_out, tolerance)?;
    check("clip.encode_image", &trace.embedding, tolerance)?;
    let cameras = io.get("T", device)?.squeeze(1)?;
    let condition = model.condition(&input_im, &cameras)?;
    check("clip_embed", &condition.clip_embed, tolerance)?;
    check("cond", &condition.context, tolerance)?;
    if io.has("stable.T") {
        let stable = model.condition(&input_im, &io.get("stable.T", device)?.squeeze(1)?)?;
        check("stable.cond", &stable.context, tolerance)?;
    }

    // The autoencoder's posterior.
    check("vae.moments", &model.encode_moments(&input_im)?, tolerance)?;
    check("c_concat", &model.input_latent(&input_im)?, tolerance)?;

    // The UNet, block by block, then with zero inputs, as one CFG batch and with 3 tokens.
    let x_t = io.get("unet.x_t", device)?;
    let t = io.f32s("unet.t")?;
    let c_concat = io.get("c_concat", device)?;
    let cond = io.get("cond", device)?;
    let x_in = Tensor::cat(&[&x_t, &c_concat], 1)?;
    let unet_trace: LdmUnetTrace =
        model
            .unet
            .forward_traced(&x_in.to_dtype(model.unet.dtype())?, &t, &cond)?;
    check(
        "unet.t_freq",
        &unet_trace.t_freq,
        Tolerance::Elementwise {
            atol: 3e-4,
            rtol: 0.0,
        },
    )?;
    check("unet.emb", &unet_trace.emb, tolerance)?;
    for (i, out) in unet_trace.input_blocks.iter().enumerate() {
        check(&format!("unet.input_blocks.{i}.out"), out, tolerance)?;
    }
    for (i, emb) in &unet_trace.input_emb_outs {
        check(
            &format!("unet.input_blocks.{i}.0.emb_layers.out"),
            emb,
            tolerance,
        )?;
    }
    check("unet.middle_block.out", &unet_trace.middle_block, tolerance)?;
    for (i, emb) in unet_trace.middle_emb_outs.iter().enumerate() {
        check(
            &format!("unet.middle_block.{}.emb_layers.out", 2 * i),
            emb,
            tolerance,
        )?;
    }
    for (i, out) in unet_trace.output_blocks.iter().enumerate() {
        check(&format!("unet.output_blocks.{i}.out"), out, tolerance)?;
    }
    for (i, emb) in unet_trace.output_emb_outs.iter().enumerate() {
        check(
            &format!("unet.output_blocks.{i}.0.emb_layers.out"),
            emb,
            tolerance,
        )?;
    }
    check("unet.eps_cond", &unet_trace.out, tolerance)?;
    check(
        "unet.eps_uncond",
        &unet_eps(loaded, io, device, "uncond")?,
        tolerance,
    )?;
    let b = x_t.dim(0)?;
    if io.has("unet.cfg_batch_out") {
        let uc_concat = io.get("uc.c_concat", device)?;
        let uc_cross = io.get("uc.c_crossattn", device)?;
        let both = model.predict_noise(
            &Tensor::cat(&[&x_t, &x_t], 0)?,
            &[t.clone(), t.clone()].concat(),
            &Tensor::cat(&[&uc_concat, &c_concat], 0)?,
            &Tensor::cat(&[&uc_cross, &cond], 0)?,
        )?;
        check("unet.cfg_batch_out", &both, tolerance)?;
    }
    if io.has("unet_multi.context") {
        let context = io.get("unet_multi.context", device)?;
        let eps = model.predict_noise(&x_t, &t, &c_concat, &context)?;
        check("unet_multi.eps", &eps, tolerance)?;
    }

    // The sampler: schedule arrays, every update from the recorded noise, the final latent.
    let steps = io.f32s("ddim.timesteps")?.len();
    let schedule = LdmDdimSchedule::new(&loaded.alphas_cumprod, steps, 1.0)?;
    let timesteps: Vec<f64> = schedule.timesteps.iter().map(|&t| t as f64).collect();
    check(
        "ddim.timesteps",
        &Tensor::new(timesteps.as_slice(), device)?,
        EXACT,
    )?;
    let run: Vec<f64> = schedule
        .updates(true)
        .iter()
        .map(|&(_, t)| t as f64)
        .collect();
    check(
        "ddim.timesteps_run",
        &Tensor::new(run.as_slice(), device)?,
        EXACT,
    )?;
    for (name, values) in [
        ("ddim.alphas", &schedule.alphas),
        ("ddim.alphas_prev", &schedule.alphas_prev),
        ("ddim.sigmas", &schedule.sigmas),
        (
            "ddim.sqrt_one_minus_alphas",
            &schedule.sqrt_one_minus_alphas,
        ),
    ] {
        check(
            name,
            &Tensor::new(values.as_slice(), device)?,
            Tolerance::Elementwise {
                atol: 1e-7,
                rtol: 1e-6,
            },
        )?;
    }
    for requested in [50usize, 75] {
        let prefix = format!("ddim_schedule.S{requested}");
        if !io.has(&format!("{prefix}.timesteps")) {
            continue;
        }
        let s = LdmDdimSchedule::new(&loaded.alphas_cumprod, requested, 1.0)?;
        let ts: Vec<f64> = s.timesteps.iter().map(|&t| t as f64).collect();
        check(
            &format!("{prefix}.timesteps"),
            &Tensor::new(ts.as_slice(), device)?,
            EXACT,
        )?;
        let close = Tolerance::Elementwise {
            atol: 1e-7,
            rtol: 1e-6,
        };
        check(
            &format!("{prefix}.alphas"),
            &Tensor::new(s.alphas.as_slice(), device)?,
            close,
        )?;
        check(
            &format!("{prefix}.alphas_prev"),
            &Tensor::new(s.alphas_prev.as_slice(), device)?,
            close,
        )?;
        check(
            &format!("{prefix}.sigmas_eta1"),
            &Tensor::new(s.sigmas.as_slice(), device)?,
            close,
        )?;
    }

    let uc_concat = io.get("uc.c_concat", device)?;
    let uc_cross = io.get("uc.c_crossattn", device)?;
    let guided = |x: &Tensor, timestep: usize| -> Result<(Tensor, Tensor, Tensor)> {
        let ts = vec![timestep as f32; 2 * b];
        let eps = model.predict_noise(
            &Tensor::cat(&[x, x], 0)?,
            &ts,
            &Tensor::cat(&[&uc_concat, &c_concat], 0)?,
            &Tensor::cat(&[&uc_cross, &cond], 0)?,
        )?;
        let (uncond, cond) = (eps.narrow(0, 0, b)?, eps.narrow(0, b, b)?);
        let guided = (&uncond + ((&cond - &uncond)? * scale)?)?;
        Ok((uncond, cond, guided))
    };
    let x_t_start = io.get("ddim.x_T", device)?;
    let mut x = x_t_start.clone();
    for (n, (index, timestep)) in schedule.updates(true).into_iter().enumerate() {
        let step = format!("ddim.step{n:02}");
        check(&format!("{step}.x"), &x, latent)?;
        let scalars = schedule.scalars(index);
        check(
            &format!("{step}.scalars"),
            &Tensor::new(&scalars, device)?,
            Tolerance::Elementwise {
                atol: 1e-7,
                rtol: 1e-6,
            },
        )?;
        let (uncond, cond_eps, eps) = guided(&x, timestep)?;
        check(&format!("{step}.eps_uncond"), &uncond, latent)?;
        check(&format!("{step}.eps_cond"), &cond_eps, latent)?;
        check(&format!("{step}.eps_guided"), &eps, latent)?;
        let noise = io.get(&format!("{step}.noise"), device)?;
        let (x_prev, pred_x0) = ldm_ddim::update(&x, &eps, scalars, Some(&noise))?;
        check(&format!("{step}.pred_x0"), &pred_x0, latent)?;
        check(&format!("{step}.x_prev"), &x_prev, latent)?;
        x = x_prev;
    }
    check("ddim.final_latent", &x, latent)?;
    for (name, drop_highest) in [("ddim_eta0", true), ("ddim_allsteps_eta0", false)] {
        let deterministic = LdmDdimSchedule::new(&loaded.alphas_cumprod, steps, 0.0)?;
        let mut x = x_t_start.clone();
        for (index, timestep) in deterministic.updates(drop_highest) {
            let (_, _, eps) = guided(&x, timestep)?;
            x = ldm_ddim::update(&x, &eps, deterministic.scalars(index), None)?.0;
        }
        check(&format!("{name}.final_latent"), &x, latent)?;
    }

    // Decoding and the 8-bit images.
    let final_latent = io.get("ddim.final_latent", device)?;
    let scaled = (&final_latent * (1.0 / model.config().scale_factor) as f32 as f64)?;
    check("decode.latent_scaled", &scaled, tolerance)?;
    let decoded = model.decode(&final_latent)?;
    check(
        "decoded",
        &decoded,
        match dtype {
            DType::F32 => PARITY,
            _ => tolerance,
        },
    )?;
    check(
        "image_u8",
        &to_u8_truncated(&decoded)?,
        byte_tolerance(dtype),
    )?;

    // The demo end to end: input 0 at pose 0, its conditioning tiled over the samples, from
    // the demo's own noise.
    if io.has("demo.x_T") {
        let x_start = io.get("demo.x_T", device)?;
        let samples = x_start.dim(0)?;
        let noise = io.get("demo.noise", device)?;
        let first = input_im.narrow(0, 0, 1)?;
        let condition = model.condition(&first, &cameras.narrow(0, 0, 1)?)?;
        let context = condition.context.repeat((samples, 1, 1))?;
        let view = model.input_latent(&first)?.repeat((samples, 1, 1, 1))?;
        let mut x = x_start;
        for (n, (index, timestep)) in schedule.updates(true).into_iter().enumerate() {
            let eps = model.predict_noise(
                &Tensor::cat(&[&x, &x], 0)?,
                &vec![timestep as f32; 2 * samples],
                &Tensor::cat(&[&view.zeros_like()?, &view], 0)?,
                &Tensor::cat(&[&context.zeros_like()?, &context], 0)?,
            )?;
            let (uncond, cond) = (eps.narrow(0, 0, samples)?, eps.narrow(0, samples, samples)?);
            let eps = (&uncond + ((&cond - &uncond)? * scale)?)?;
            let (x_prev, _) =
                ldm_ddim::update(&x, &eps, schedule.scalars(index), Some(&noise.get(n)?))?;
            x = x_prev;
        }
        check("demo.final_latent", &x, latent)?;
        check(
            "demo.image_u8",
            &to_u8_truncated(&model.decode(&x)?)?,
            byte_tolerance(dtype),
        )?;
    }
    Ok(checks)
}

/// `(255 · clamp((x + 1)/2, 0, 1)).astype(uint8)` as `(b, h, w, 3)`: truncation, as the demo.
pub fn to_u8_truncated(decoded: &Tensor) -> Result<Tensor> {
    Ok((decoded.affine(0.5, 0.5)?.clamp(0f32, 1f32)? * 255.0)?
        .floor()?
        .permute((0, 2, 3, 1))?)
}
