//! Loading checkpoints: both file formats give the same weights; truncated, empty, wrong-shape
//! and malicious files are refused with an error that names the file (and key and shapes).

use std::io::Write;
use std::path::Path;

use candle_core::{DType, Device};
use lumos_engine::EngineError;
use lumos_engine::checkpoints::{self, fixtures_root, read_config};
use lumos_engine::models::{LumosConfig, LumosI2I};

fn lumos_dir() -> std::path::PathBuf {
    fixtures_root().join("lumos_i2i_tiny")
}

fn load_lumos(path: &Path, config: &LumosConfig) -> Result<LumosI2I, EngineError> {
    checkpoints::build_model(path, DType::F32, &Device::Cpu, |vb| {
        LumosI2I::load(config, vb)
    })
}

#[test]
fn pth_and_safetensors_hold_identical_tensors() {
    let pth = checkpoints::load_tensors(&lumos_dir().join("weights.pth")).expect("pth");
    let st =
        checkpoints::load_tensors(&lumos_dir().join("weights.safetensors")).expect("safetensors");
    assert_eq!(pth.len(), st.len());
    for (key, a) in &pth {
        let b = &st[key];
        let diff = (a - b)
            .expect("same shape")
            .abs()
            .expect("abs")
            .max_all()
            .expect("max");
        assert_eq!(diff.to_scalar::<f32>().expect("scalar"), 0.0, "{key}");
    }
}

#[test]
fn prefixed_keys_are_stripped() {
    let tensors =
        checkpoints::load_tensors(&lumos_dir().join("weights.safetensors")).expect("load");
    let prefixed: std::collections::HashMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (format!("module.backbone.{k}"), v))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("prefixed.safetensors");
    candle_core::safetensors::save(&prefixed, &path).expect("save");
    let config: LumosConfig = read_config(&lumos_dir().join("config.json")).expect("config");
    load_lumos(&path, &config).expect("prefixes are stripped");
}

#[test]
fn wrong_shape_names_file_key_and_shapes() {
    let mut config: LumosConfig = read_config(&lumos_dir().join("config.json")).expect("config");
    config.caption_channels += 1;
    let path = lumos_dir().join("weights.pth");
    let error = load_lumos(&path, &config).expect_err("must not load");
    let text = error.to_string();
    assert!(matches!(error, EngineError::ShapeMismatch { .. }), "{text}");
    assert!(
        text.contains("weights.pth") && text.contains("y_embedder"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}", config.caption_channels)),
        "{text}"
    );
}

#[test]
fn missing_key_is_named() {
    let tensors =
        checkpoints::load_tensors(&lumos_dir().join("weights.safetensors")).expect("load");
    let without: std::collections::HashMap<_, _> = tensors
        .into_iter()
        .filter(|(k, _)| k != "y_embedder.y_embedding")
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("partial.safetensors");
    candle_core::safetensors::save(&without, &path).expect("save");
    let config: LumosConfig = read_config(&lumos_dir().join("config.json")).expect("config");
    let error = load_lumos(&path, &config).expect_err("must not load");
    assert!(
        matches!(&error, EngineError::MissingKey { key, .. } if key == "y_embedder.y_embedding"),
        "{error}"
    );
}

#[test]
fn truncated_and_empty_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["weights.pth", "weights.safetensors"] {
        let bytes = std::fs::read(lumos_dir().join(name)).expect("read");
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
        let error = checkpoints::load_tensors(&path).expect_err("truncated file must fail");
        assert!(error.to_string().contains(name), "{error}");
        std::fs::write(&path, b"").expect("write");
        let error = checkpoints::load_tensors(&path).expect_err("empty file must fail");
        assert!(error.to_string().contains("empty"), "{error}");
    }
}

/// A zip-format "checkpoint" whose pickle calls `os.system` when unpickled by Python.
fn write_malicious_pth(path: &Path, marker: &Path) {
    let command = format!("touch {}", marker.display());
    let mut pickle = b"\x80\x02cos\nsystem\nq\x00X".to_vec();
    pickle.extend_from_slice(&(command.len() as u32).to_le_bytes());
    pickle.extend_from_slice(command.as_bytes());
    pickle.extend_from_slice(b"q\x01\x85q\x02Rq\x03.");
    let file = std::fs::File::create(path).expect("create");
    let mut zip = zip::ZipWriter::new(file);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", options).expect("entry");
    zip.write_all(&pickle).expect("write");
    zip.start_file("archive/version", options).expect("entry");
    zip.write_all(b"3\n").expect("write");
    zip.finish().expect("finish");
}

#[test]
fn pickles_referencing_anything_but_tensors_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("evil.pth");
    let marker = dir.path().join("pwned");
    write_malicious_pth(&path, &marker);
    let error = checkpoints::load_tensors(&path).expect_err("must be refused");
    let text = error.to_string();
    assert!(
        text.contains("os.system") && text.contains("evil.pth"),
        "{text}"
    );
    assert!(!marker.exists(), "nothing from the pickle may run");
}

#[test]
fn legacy_non_zip_pickles_get_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("legacy.pth");
    std::fs::write(
        &path,
        b"\x80\x02\x8a\x0alz\xe8\x6a\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.",
    )
    .expect("write");
    let error = checkpoints::load_tensors(&path).expect_err("must be refused");
    assert!(error.to_string().contains("legacy"), "{error}");
}

#[test]
fn discovery_finds_files_in_a_hugging_face_cache_layout() {
    let cache = tempfile::tempdir().expect("tempdir");
    let snap = |repo: &str| {
        let dir = cache
            .path()
            .join(format!("models--{repo}"))
            .join("snapshots/abc123");
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    };
    let lumos = snap("Xiaomabufei--lumos");
    std::fs::write(lumos.join("Lumos_I2I.pth"), b"x").expect("write");
    std::fs::write(lumos.join("dino_vitbase16_pretrain.pth"), b"x").expect("write");
    let vae = snap("stabilityai--sd-vae-ft-mse");
    std::fs::write(vae.join("config.json"), b"{}").expect("write");
    std::fs::write(vae.join("diffusion_pytorch_model.safetensors"), b"x").expect("write");
    let found = checkpoints::discover(Some(cache.path()));
    assert_eq!(
        found.prior.as_deref(),
        Some(lumos.join("Lumos_I2I.pth").as_path())
    );
    assert_eq!(
        found.encoder.as_deref(),
        Some(lumos.join("dino_vitbase16_pretrain.pth").as_path())
    );
    assert_eq!(found.vae.as_deref(), Some(vae.as_path()));
    let spec = found.spec().expect("complete");
    assert_eq!(spec.prior.config, LumosConfig::xl_2());
}
