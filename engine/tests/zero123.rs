//! Zero123-family checkpoints end to end with the tiny random fixture (`zero123_tiny`):
//! `lumos multiview --model` on the ldm `.ckpt` and on the diffusers folder, seeds that
//! repeat, the licence shown, and clear errors for a checkpoint without its CLIP tower and a
//! reference with nothing in it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{DType, Device};
use lumos_engine::camera::{OrbitPose, Transforms};
use lumos_engine::checkpoints::fixtures_root;
use lumos_engine::checkpoints::zero123;
use lumos_engine::models::zero123::Zero123Config;
use lumos_engine::pipelines::zero123::{self as pipeline, Zero123Request};
use lumos_engine::protocol::DeviceChoice;

fn lumos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lumos"))
        .args(args)
        .output()
        .expect("run lumos")
}

fn fixture() -> PathBuf {
    fixtures_root().join("zero123_tiny")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The fixture's `.ckpt` under a user's file name, with its sizes beside it.
fn user_checkpoint(dir: &Path) -> PathBuf {
    let checkpoint = dir.join("zero123-tiny.ckpt");
    std::fs::copy(fixture().join("weights.ckpt"), &checkpoint).expect("copy checkpoint");
    std::fs::copy(fixture().join("config.json"), dir.join("config.json")).expect("copy config");
    checkpoint
}

#[test]
fn multiview_with_a_zero123_checkpoint_writes_the_set_from_both_layouts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoint = user_checkpoint(dir.path());
    let reference = fixture().join("input_0.png");
    let run = |model: &Path, out: &Path| -> Output {
        lumos(&[
            "multiview",
            path_str(&reference),
            "--model",
            path_str(model),
            "--preset",
            "turntable:3",
            "--steps",
            "4",
            "--seed",
            "11",
            "--out",
            path_str(out),
        ])
    };
    let first = dir.path().join("ldm");
    let out = run(&checkpoint, &first);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("MIT"), "the licence is shown: {stderr}");
    for name in ["view_00.png", "view_01.png", "view_02.png"] {
        let view = image::open(first.join(name)).expect("a view decodes");
        assert_eq!(
            (view.width(), view.height()),
            (pipeline::CANVAS, pipeline::CANVAS)
        );
    }
    let transforms: Transforms = serde_json::from_str(
        &std::fs::read_to_string(first.join("transforms.json")).expect("transforms.json"),
    )
    .expect("parses");
    assert_eq!(transforms.frames.len(), 3);
    assert!(first.join("turntable.gif").is_file() && first.join("grid.png").is_file());

    // Found without --model under a published name in $LUMOS_MODELS.
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).expect("models folder");
    std::fs::copy(&checkpoint, models.join("zero123-xl.ckpt")).expect("copy");
    std::fs::copy(fixture().join("config.json"), models.join("config.json")).expect("copy");
    let found = dir.path().join("found");
    let out = Command::new(env!("CARGO_BIN_EXE_lumos"))
        .env("LUMOS_MODELS", &models)
        .args([
            "multiview",
            path_str(&reference),
            "--preset",
            "turntable:2",
            "--steps",
            "4",
            "--out",
            path_str(&found),
        ])
        .output()
        .expect("run lumos");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(found.join("view_01.png").is_file());

    // The diffusers conversion of the same weights makes the same views.
    let second = dir.path().join("diffusers");
    let out = run(&fixture().join("diffusers"), &second);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["view_01.png", "view_02.png"] {
        let a = image::open(first.join(name)).expect("view").to_rgb8();
        let b = image::open(second.join(name)).expect("view").to_rgb8();
        let largest = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0);
        assert!(largest <= 2, "{name}: layouts differ by {largest} levels");
    }
}

#[test]
fn views_repeat_with_their_seed_and_differ_between_seeds() {
    let config: Zero123Config =
        lumos_engine::checkpoints::read_config(&fixture().join("config.json")).expect("config");
    let loaded = zero123::load(
        &fixture().join("weights.safetensors"),
        Some(&config),
        DType::F32,
        &Device::Cpu,
    )
    .expect("load");
    assert!(loaded.uses_ema, "the demo samples with the EMA weights");
    let image = lumos_engine::imageio::load_image(&fixture().join("input_1.png")).expect("png");
    let input = OrbitPose::new(0.0, 0.0, 1.5).expect("pose");
    let request = |seed: u64| Zero123Request {
        image: std::sync::Arc::new(image.clone()),
        alpha: None,
        input_pose: input,
        views: vec![OrbitPose::new(20.0, 90.0, 1.5).expect("pose")],
        steps: 4,
        guidance: 3.0,
        eta: 1.0,
        seed,
        shared_seed: false,
        device: DeviceChoice::Cpu,
    };
    let make = |seed: u64| {
        let mut views = Vec::new();
        pipeline::run(&loaded, &request(seed), &mut |_| Ok(()), &mut |view| {
            views.push(view.image);
            Ok(())
        })
        .expect("run");
        views.remove(0)
    };
    assert_eq!(make(5), make(5), "a seed repeats");
    assert_ne!(make(5), make(6), "another seed differs");
}

#[test]
fn a_checkpoint_without_its_clip_tower_and_an_empty_reference_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tensors =
        candle_core::safetensors::load(fixture().join("weights.safetensors"), &Device::Cpu)
            .expect("weights");
    let without_clip: HashMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .filter(|(k, _)| !k.starts_with("cond_stage_model."))
        .collect();
    let broken = dir.path().join("zero123-unet-only.safetensors");
    candle_core::safetensors::save(&without_clip, &broken).expect("save");
    let error = zero123::load(&broken, None, DType::F32, &Device::Cpu)
        .expect_err("refused")
        .to_string();
    assert!(error.contains("CLIP image tower"), "{error}");
    assert!(error.contains("zero123-unet-only.safetensors"), "{error}");

    let checkpoint = user_checkpoint(dir.path());
    let clear = dir.path().join("clear.png");
    image::RgbaImage::new(40, 30).save(&clear).expect("save");
    let out = lumos(&[
        "multiview",
        path_str(&clear),
        "--model",
        path_str(&checkpoint),
        "--out",
        path_str(&dir.path().join("out")),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no object"), "{stderr}");
}
