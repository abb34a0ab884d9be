//! Zero123-family checkpoints end to end with the tiny random fixture (`zero123_tiny`):
//! `lumos multiview --model` on the ldm `.ckpt` and on the diffusers folder, seeds that
//! repeat, the licence shown, and clear errors for a checkpoint without its CLIP tower and a
//! reference with nothing in it; a multi-view job on the engine thread (events, licence,
//! cancel, a vanished checkpoint); finding checkpoints in a folder and naming them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{DType, Device};
use lumos_engine::camera::{OrbitPose, Transforms};
use lumos_engine::checkpoints::fixtures_root;
use lumos_engine::checkpoints::zero123;
use lumos_engine::models::zero123::Zero123Config;
use lumos_engine::pipelines::multiview::SetOutput;
use lumos_engine::pipelines::zero123::{self as pipeline, Zero123Request};
use lumos_engine::protocol::{
    DeviceChoice, Event, MultiviewJob, MultiviewModel, Precision, SamplerSettings, Zero123Spec,
};

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

    // --keep-framing: the whole reference resized to the canvas (the demo's "preprocess"
    // unticked) — the object keeps its place instead of being centred.
    let framed = dir.path().join("framed");
    let out = lumos(&[
        "multiview",
        path_str(&reference),
        "--model",
        path_str(&checkpoint),
        "--preset",
        "turntable:2",
        "--steps",
        "4",
        "--keep-framing",
        "--out",
        path_str(&framed),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let centred = image::open(first.join("view_00.png"))
        .expect("view")
        .to_rgb8();
    let kept = image::open(framed.join("view_00.png"))
        .expect("view")
        .to_rgb8();
    assert_eq!(kept.dimensions(), centred.dimensions());
    let expected = lumos_engine::pillow::resize_rgba(
        &image::open(&reference).expect("reference").to_rgba8(),
        pipeline::CANVAS,
        pipeline::CANVAS,
        lumos_engine::pillow::Filter::Lanczos,
    );
    let flat = pipeline::flatten_on_white(&expected);
    let largest = kept
        .as_raw()
        .iter()
        .zip(&flat)
        .map(|(&k, &f)| (f32::from(k) - f * 255.0).abs())
        .fold(0f32, f32::max);
    assert!(
        largest <= 0.5 + 1e-3,
        "frame 0 is the resized reference: off by {largest}"
    );
    assert_ne!(kept, centred, "keeping the framing changes the input view");

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
        recenter: true,
        device: DeviceChoice::Cpu,
    };
    let make = |seed: u64| {
        let mut views = Vec::new();
        pipeline::run(&loaded, &request(seed), &mut |_| Ok(()), &mut |output| {
            if let SetOutput::View(view) = output {
                views.push(view.image);
            }
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

/// Every event of `job`, up to and including its terminal one.
fn events_of(engine: &lumos_engine::worker::EngineHandle, job: u64) -> Vec<Event> {
    let mut events = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while std::time::Instant::now() < deadline {
        if let Some(event) = engine
            .recv_timeout(std::time::Duration::from_millis(100))
            .expect("engine alive")
            && event.job() == job
        {
            let terminal = event.is_terminal();
            events.push(event);
            if terminal {
                return events;
            }
        }
    }
    panic!("job {job} never ended: {events:?}");
}

/// A turntable of `views` views of `input_0.png` with the checkpoint at `path`.
fn zero123_job(path: &Path, views: usize, steps: usize, seed: u64) -> MultiviewJob {
    let image = lumos_engine::imageio::load_image(&fixture().join("input_0.png")).expect("png");
    let alpha = std::fs::read(fixture().join("input_0.png"))
        .ok()
        .and_then(|bytes| lumos_engine::imageio::decode_alpha(&bytes));
    let input_pose = OrbitPose::new(0.0, 0.0, 1.5).expect("pose");
    MultiviewJob {
        model: MultiviewModel::Zero123(Zero123Spec {
            name: zero123::checkpoint_name(path),
            path: path.to_owned(),
            precision: Precision::F32,
        }),
        request: lumos_engine::pipelines::multiview::MultiviewRequest {
            name: "input_0.png".into(),
            image: std::sync::Arc::new(image),
            alpha: alpha.map(std::sync::Arc::new),
            input_pose,
            views: lumos_engine::camera::OrbitPreset::Turntable(views + 1).views(&input_pose),
            settings: SamplerSettings {
                steps,
                guidance: 3.0,
                seed,
                ..SamplerSettings::default()
            },
            shared_seed: false,
            recenter: true,
            device: DeviceChoice::Cpu,
        },
    }
}

#[test]
fn the_engine_thread_makes_a_zero123_set_says_its_licence_and_honours_cancel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoint = user_checkpoint(dir.path());
    let engine = lumos_engine::worker::EngineHandle::spawn(|| {}).expect("engine");

    // 4 requested steps are 3 DDIM updates (the demo drops the first timestep).
    let job = zero123_job(&checkpoint, 2, 4, 21);
    let expected_views = job.request.views.clone();
    let id = engine.multiview(job.clone()).expect("queued");
    let events = events_of(&engine, id);
    assert!(
        matches!(
            events.first(),
            Some(Event::Started {
                images: 2,
                steps: 3,
                ..
            })
        ),
        "{events:?}"
    );
    let notices: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Notice { message, .. } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(notices.len(), 1, "the licence, once: {notices:?}");
    assert!(notices[0].contains("MIT"), "{}", notices[0]);
    let steps: Vec<(usize, usize)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress { step, steps, .. } => Some((*step, *steps)),
            _ => None,
        })
        .collect();
    assert!(
        !steps.is_empty()
            && steps
                .iter()
                .all(|&(step, steps)| steps == 3 && (1..=3).contains(&step)),
        "{steps:?}"
    );
    // Each step shows its predicted clean latent: 4 channels at the canvas's latent size.
    let previews: Vec<(usize, usize, usize)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress {
                preview: Some(p), ..
            } => Some((p.channels, p.height, p.width)),
            _ => None,
        })
        .collect();
    let config: Zero123Config =
        lumos_engine::checkpoints::read_config(&fixture().join("config.json")).expect("config");
    let latent_side = pipeline::CANVAS as usize >> (config.vae.ch_mult.len() - 1);
    assert!(
        !previews.is_empty() && previews.iter().all(|&p| p == (4, latent_side, latent_side)),
        "{previews:?}"
    );
    let views: Vec<&lumos_engine::pipelines::multiview::View> = events
        .iter()
        .filter_map(|e| match e {
            Event::View { view, .. } => Some(view.as_ref()),
            _ => None,
        })
        .collect();
    assert_eq!(views.len(), 2);
    let input_at = events
        .iter()
        .position(|e| matches!(e, Event::InputView { .. }))
        .expect("the input view");
    let first_view_at = events
        .iter()
        .position(|e| matches!(e, Event::View { .. }))
        .expect("views");
    assert!(input_at < first_view_at, "the input, then the views");
    assert!(matches!(events.last(), Some(Event::Finished { .. })));

    // The job's steps, guidance, seed and the demo's η reach the sampler: the same views as
    // the pipeline run directly.
    let loaded = zero123::load(&checkpoint, None, DType::F32, &Device::Cpu).expect("load");
    let request = Zero123Request {
        image: job.request.image.clone(),
        alpha: job.request.alpha.clone(),
        input_pose: job.request.input_pose,
        views: expected_views.clone(),
        steps: 4,
        guidance: 3.0,
        eta: pipeline::DEMO_ETA,
        seed: 21,
        shared_seed: false,
        recenter: true,
        device: DeviceChoice::Cpu,
    };
    let mut direct = Vec::new();
    pipeline::run(&loaded, &request, &mut |_| Ok(()), &mut |output| {
        if let SetOutput::View(view) = output {
            direct.push(view);
        }
        Ok(())
    })
    .expect("run");
    for view in &views {
        let same = &direct[view.index];
        assert_eq!(view.pose, expected_views[view.index]);
        assert_eq!(view.seed, 21 + view.index as u64);
        assert_eq!(
            (view.image.width(), view.image.height()),
            (pipeline::CANVAS, pipeline::CANVAS)
        );
        assert!(
            view.image == same.image,
            "view {} differs from the pipeline's",
            view.index
        );
    }

    // Cancel between steps: a long job ends as Cancelled, with no views.
    let id = engine
        .multiview(zero123_job(&checkpoint, 1, 500, 1))
        .expect("queued");
    let mut seen = Vec::new();
    loop {
        let event = engine
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("engine alive")
            .expect("an event");
        if event.job() != id {
            continue;
        }
        if matches!(event, Event::Progress { .. }) {
            engine.cancel(id);
        }
        let terminal = event.is_terminal();
        seen.push(event);
        if terminal {
            break;
        }
    }
    assert!(
        matches!(seen.last(), Some(Event::Cancelled { .. })),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|e| matches!(e, Event::View { .. })));

    // Steps the schedule cannot take are refused before anything starts.
    let id = engine
        .multiview(zero123_job(&checkpoint, 1, 3, 1))
        .expect("queued");
    let events = events_of(&engine, id);
    assert!(
        matches!(&events[..], [Event::Failed { error, .. }] if error.contains("3 steps")),
        "{events:?}"
    );

    // A checkpoint that vanished after it was loaded (and chosen) is named, not used.
    let moved = dir.path().join("moved.ckpt");
    std::fs::rename(&checkpoint, &moved).expect("move");
    let id = engine
        .multiview(zero123_job(&checkpoint, 1, 4, 1))
        .expect("queued");
    let events = events_of(&engine, id);
    let Some(Event::Failed { error, .. }) = events.last() else {
        panic!("not failed: {events:?}");
    };
    assert!(
        error.contains("is gone") && error.contains("zero123-tiny.ckpt"),
        "{error}"
    );
    assert!(engine.is_alive());
}

#[test]
fn checkpoints_are_found_in_a_folder_and_named_with_their_licence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    let nested = models.join("stability");
    std::fs::create_dir_all(&nested).expect("folders");
    let renamed = user_checkpoint(&models);
    let stable = nested.join("stable_zero123.ckpt");
    std::fs::copy(&renamed, &stable).expect("copy");
    std::fs::write(models.join("notes.txt"), "not a model").expect("write");
    let found = zero123::find_in(&models);
    assert_eq!(
        found,
        vec![stable.clone(), renamed.clone()],
        "published names first"
    );
    // The named folder wins over every other root.
    assert_eq!(zero123::discover(Some(&models)).0, Some(stable.clone()));
    assert_eq!(zero123::checkpoint_name(&renamed), "zero123-tiny.ckpt");
    assert_eq!(
        zero123::licence_of(&stable),
        zero123::Zero123Licence::StabilityNonCommercial
    );
    assert!(
        zero123::licence_of(&stable)
            .notice()
            .contains("non-commercial")
    );
    assert_eq!(
        zero123::licence_of(&nested.join("stable_zero123_c.safetensors")),
        zero123::Zero123Licence::StabilityCommercial
    );
    assert_eq!(zero123::licence_of(&renamed), zero123::Zero123Licence::Mit);
    // A diffusers conversion in the Hugging Face cache is named by its repository.
    let snapshot = dir
        .path()
        .join("hub/models--kxic--stable-zero123/snapshots/0123abcd");
    std::fs::create_dir_all(snapshot.join("cc_projection")).expect("folders");
    assert_eq!(zero123::checkpoint_name(&snapshot), "kxic/stable-zero123");
    assert_eq!(
        zero123::licence_of(&snapshot),
        zero123::Zero123Licence::StabilityNonCommercial
    );
    assert_eq!(zero123::find_in(&dir.path().join("hub")), vec![snapshot]);
}
