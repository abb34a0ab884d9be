//! The built-in prior is trained on a GPU by `tools/gpu/train_prior.py` (PyTorch) and run by the
//! engine, so the PyTorch mirrors of its networks (`tools/gpu/lumos_torch.py`) must compute what
//! the engine computes. `tools/gpu/check_parity.py` wrote what they compute into
//! `tests/data/torch_mirror.safetensors`; these tests load the same weights and inputs here.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use lumos_engine::checkpoints::build_model;
use lumos_engine::models::vae::{AutoencoderKl, VaeConfig};
use lumos_engine::models::{
    EfficientNetLite, EfficientNetLiteConfig, ImageEncoder, LumosConfig, LumosI2I,
};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/torch_mirror.safetensors")
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .expect("difference")
}

fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .expect("max")
}

/// A config stored in the data file's metadata under `key`.
fn config_in_metadata<C: serde::de::DeserializeOwned>(key: &str) -> C {
    let buffer = std::fs::read(data()).expect("read");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&buffer).expect("safetensors header");
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(key))
        .unwrap_or_else(|| panic!("{key} in the metadata"))
        .clone();
    serde_json::from_str(&json).expect("config")
}

#[test]
fn the_prior_with_every_option_matches_its_pytorch_mirror() {
    let dev = Device::Cpu;
    let tensors = candle_core::safetensors::load(data(), &dev).expect("torch_mirror data");
    let config: LumosConfig = config_in_metadata("prior_config");
    assert!(config.adaln_condition && config.final_conv);
    let vb = VarBuilder::from_tensors(tensors.clone(), DType::F32, &dev);
    let prior = LumosI2I::load(&config, vb.pp("prior")).expect("load");
    for (t_key, out_key) in [("t", "out"), ("t_same", "out_same")] {
        let t: Vec<f32> = tensors[t_key].to_vec1().expect("t");
        let ours = prior
            .forward(&tensors["x"], &t, &tensors["y"])
            .expect("forward");
        let reference = &tensors[out_key];
        let err = max_abs_diff(&ours, reference);
        let scale = max_abs(reference);
        eprintln!("{out_key}: max |diff| {err:.2e} (max |out| {scale:.2})");
        assert!(err <= 1e-4 * scale.max(1.0), "{out_key}: {err} vs {scale}");
    }
}

#[test]
fn the_novel_view_prior_matches_its_pytorch_mirror() {
    let dev = Device::Cpu;
    let tensors = candle_core::safetensors::load(data(), &dev).expect("torch_mirror data");
    let config: LumosConfig = config_in_metadata("nvs_prior_config");
    assert!(config.pose_condition && config.input_view_channels == 3);
    let vb = VarBuilder::from_tensors(tensors.clone(), DType::F32, &dev);
    let prior = LumosI2I::load(&config, vb.pp("nvs_prior")).expect("load");
    let t: Vec<f32> = tensors["t"].to_vec1().expect("t");
    let y = prior
        .with_pose(&tensors["y"], &tensors["nvs_pose"])
        .expect("pose");
    let ours = prior.forward(&tensors["nvs_x"], &t, &y).expect("forward");
    let reference = &tensors["nvs_out"];
    let err = max_abs_diff(&ours, reference);
    let scale = max_abs(reference);
    eprintln!("nvs_out: max |diff| {err:.2e} (max |out| {scale:.2})");
    assert!(err <= 1e-4 * scale.max(1.0), "nvs_out: {err} vs {scale}");
}

#[test]
fn the_encoder_matches_its_pytorch_mirror() {
    let dev = Device::Cpu;
    let tensors = candle_core::safetensors::load(data(), &dev).expect("torch_mirror data");
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let config = EfficientNetLiteConfig::lite0(128);
    let net = build_model(
        &assets.join("encoder/efficientnet_lite0.safetensors"),
        DType::F32,
        &dev,
        |vb| EfficientNetLite::load(&config, vb),
    )
    .expect("encoder");
    let encoder = ImageEncoder::EfficientNetLite(net);
    let images = &tensors["encoder_images"]; // (b, 3, 128, 128) u8
    let reference = &tensors["encoder_embeddings"];
    for i in 0..images.dim(0).expect("batch") {
        let chw: Vec<u8> = images
            .get(i)
            .and_then(|t| t.permute((1, 2, 0)))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .expect("pixels");
        let image = image::RgbImage::from_raw(128, 128, chw).expect("image");
        let ours = encoder.embed(&image, None, &dev).expect("embed");
        let expected = reference.get(i).and_then(|t| t.unsqueeze(0)).expect("row");
        let err = max_abs_diff(&ours, &expected);
        eprintln!("image {i}: max |diff| {err:.2e}");
        assert!(err < 1e-4, "image {i}: {err}");
        // The global token and the 2×2 spatial tokens (`train_prior.py --spatial-tokens 2`).
        let ours = encoder.embed_tokens(&image, None, 2, &dev).expect("tokens");
        let expected = tensors["encoder_tokens"]
            .get(i)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.unsqueeze(0))
            .expect("tokens row");
        let err = max_abs_diff(&ours, &expected);
        eprintln!("image {i} tokens: max |diff| {err:.2e}");
        assert!(err < 1e-4, "image {i} tokens: {err}");
    }
}

/// The built-in latent model's autoencoder is diffusers' `AutoencoderKL` in a small shape
/// (`tools/gpu/train_autoencoder.py`); the engine loads it by its diffusers config and keys.
#[test]
fn the_built_in_autoencoder_shape_matches_diffusers() {
    let dev = Device::Cpu;
    let tensors = candle_core::safetensors::load(data(), &dev).expect("torch_mirror data");
    let config: VaeConfig = config_in_metadata("autoencoder_config");
    assert_eq!(config.norm_num_groups, 16);
    let vb = VarBuilder::from_tensors(tensors.clone(), DType::F32, &dev);
    let vae = AutoencoderKl::load(&config, vb.pp("autoencoder")).expect("load");
    let images = tensors["encoder_images"]
        .narrow(2, 32, 64)
        .and_then(|t| t.narrow(3, 32, 64))
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| (t / 127.5)? - 1.0)
        .expect("the 64 px crop the mirror encoded");
    let mean = vae.encode(&images).expect("encode").mean;
    let decoded = vae.decode(&tensors["ae_mean"]).expect("decode");
    for (name, ours, reference) in [
        ("mean", &mean, &tensors["ae_mean"]),
        ("decoded", &decoded, &tensors["ae_decoded"]),
    ] {
        let err = max_abs_diff(ours, reference);
        let scale = max_abs(reference);
        eprintln!("{name}: max |diff| {err:.2e} (max |value| {scale:.2})");
        assert!(err <= 1e-4 * scale.max(1.0), "{name}: {err} vs {scale}");
    }
}
