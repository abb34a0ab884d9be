//! `lumos train` on a posed multi-view dataset: the novel-view config of a tiny image prior,
//! started from its weights (step 0 computes exactly what the image prior computes) or from
//! scratch; the loss falls, a stopped run resumes to exactly the weights of an uninterrupted
//! one, the exported model makes views, and the wrong kind of data is refused clearly.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use image::{Rgb, RgbImage};
use lumos_engine::camera::OrbitPose;
use lumos_engine::checkpoints::read_manifest;
use lumos_engine::pipelines::LoadedModel;
use lumos_engine::pipelines::multiview::{self, MultiviewRequest, SetOutput};
use lumos_engine::protocol::{DeviceChoice, ModelSpec, SamplerSettings};
use lumos_engine::synthetic::{DatasetOptions, ShapeSet, write_dataset};
use lumos_engine::train::{self, RunFolder, TrainEvent, TrainSettings};

/// Side of the rendered views and of the tiny prior.
const SIDE: u32 = 32;

/// A posed dataset of `objects` objects × 4 views, textured with striped images.
fn posed_dataset(dir: &Path, objects: usize) -> PathBuf {
    let textures = dir.join("textures");
    std::fs::create_dir_all(&textures).expect("mkdir");
    for i in 0..10u8 {
        let colour = [40 + 20 * i, 200 - 15 * i, 60 + 17 * (i % 5)];
        RgbImage::from_fn(32, 32, |x, _| {
            if (x / (2 + u32::from(i % 3))) % 2 == 0 {
                Rgb(colour)
            } else {
                Rgb([250, 220, 60])
            }
        })
        .save(textures.join(format!("stripes-{i}.png")))
        .expect("texture");
    }
    let out = dir.join("posed");
    write_dataset(
        &DatasetOptions {
            textures,
            out: out.clone(),
            objects,
            views: 4,
            size_px: SIDE,
            seed: 0,
            shapes: ShapeSet::Basic,
        },
        &mut |_, _| {},
    )
    .expect("render");
    out
}

/// A tiny pixel-space image prior with random weights, exported as a model folder.
fn image_prior(dir: &Path) -> ModelSpec {
    let mut settings = TrainSettings::small_default(PathBuf::from(
        "embedded:encoder/efficientnet_lite0.safetensors",
    ));
    settings.prior.input_size = SIDE as usize;
    settings.prior.patch_size = 4;
    settings.prior.hidden_size = 64;
    settings.prior.depth = 1;
    settings.prior.num_heads = 2;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    lumos_engine::models::LumosI2I::load(&settings.prior, vb).expect("random prior");
    let weights = varmap
        .data()
        .lock()
        .expect("varmap")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let run = RunFolder(dir.join("image-prior"));
    std::fs::create_dir_all(&run.0).expect("mkdir");
    train::export(&weights, &settings, 0, &run).expect("export");
    read_manifest(&run.manifest()).expect("manifest")
}

fn tiny_novel_view(base: &ModelSpec, from_base_weights: bool) -> TrainSettings {
    let mut settings = TrainSettings::novel_view(base, from_base_weights);
    settings.batch = 4;
    settings.lr = 2e-3;
    settings.warmup = 5;
    settings.save_every = 1000;
    settings
}

fn run(data: &Path, out: &Path, settings: TrainSettings, steps: usize) -> Vec<f32> {
    let mut losses = Vec::new();
    train::train(
        data,
        &RunFolder(out.to_path_buf()),
        settings,
        steps,
        &Device::Cpu,
        &mut |event| {
            if let TrainEvent::Step { loss, .. } = event {
                losses.push(loss);
            }
        },
    )
    .expect("training runs");
    losses
}

fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
        .expect("compare")
}

#[test]
fn a_novel_view_prior_starts_as_its_image_prior_learns_resumes_and_makes_views() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = posed_dataset(tmp.path(), 6);
    let base = image_prior(tmp.path());

    // Step 0 (one update at learning rate 0) is the image prior: with any input view and
    // pose, the novel-view network computes what the image prior computes.
    let still = tmp.path().join("still");
    let mut frozen = tiny_novel_view(&base, true);
    frozen.lr = 0.0;
    run(&data, &still, frozen, 1);
    let device = Device::Cpu;
    let image_model = LoadedModel::load(&base, &device).expect("image prior");
    let nvs_spec = read_manifest(&RunFolder(still.clone()).manifest()).expect("manifest");
    let nvs_model = LoadedModel::load(&nvs_spec, &device).expect("novel-view prior");
    assert!(nvs_model.is_novel_view() && !image_model.is_novel_view());
    let side = SIDE as usize;
    let x = Tensor::randn(0f32, 1.0, (2, 3, side, side), &device).expect("x");
    let view = Tensor::randn(0f32, 1.0, (2, 3, side, side), &device).expect("view");
    let y = Tensor::randn(0f32, 0.05, (2, 1, 1, 1280), &device).expect("y");
    let pose =
        Tensor::new(&[[0.2f32, 0.5, 0.8, 0.1], [-0.1, -1.0, 0.0, 0.0]], &device).expect("pose");
    let t = [300.0, 800.0];
    let expected = image_model.prior.forward(&x, &t, &y).expect("image prior");
    let posed = nvs_model.prior.with_pose(&y, &pose).expect("pose");
    let got = nvs_model
        .prior
        .forward(&Tensor::cat(&[&x, &view], 1).expect("cat"), &t, &posed)
        .expect("novel-view prior");
    let gap = max_difference(&expected, &got);
    assert!(gap < 1e-4, "step 0 differs from the image prior by {gap}");

    // From scratch is another network at step 0.
    let scratch = tmp.path().join("scratch");
    let mut fresh = tiny_novel_view(&base, false);
    fresh.lr = 0.0;
    run(&data, &scratch, fresh, 1);
    let scratch_spec = read_manifest(&RunFolder(scratch).manifest()).expect("manifest");
    let scratch_model = LoadedModel::load(&scratch_spec, &device).expect("scratch prior");
    let scratch_out = scratch_model
        .prior
        .forward(&Tensor::cat(&[&x, &view], 1).expect("cat"), &t, &posed)
        .expect("scratch");
    assert!(max_difference(&expected, &scratch_out) > 1e-2);

    // Training lowers the loss; a run stopped half-way and resumed ends with the same weights.
    let straight = tmp.path().join("straight");
    let losses = run(&data, &straight, tiny_novel_view(&base, true), 60);
    let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
    let (first, last) = (mean(&losses[..15]), mean(&losses[45..]));
    assert!(last < first, "loss {first} → {last}");
    let halves = tmp.path().join("halves");
    run(&data, &halves, tiny_novel_view(&base, true), 30);
    // Resumed with other arguments: the run's saved settings apply.
    run(&data, &halves, tiny_novel_view(&base, false), 60);
    let weights = |dir: &Path| {
        candle_core::safetensors::load(RunFolder(dir.to_path_buf()).prior(), &device)
            .expect("prior")
    };
    let (a, b) = (weights(&straight), weights(&halves));
    for (name, tensor) in &a {
        let gap = max_difference(
            &tensor.to_dtype(DType::F32).expect("f32"),
            &b[name].to_dtype(DType::F32).expect("f32"),
        );
        assert_eq!(gap, 0.0, "{name} differs after resuming");
    }

    // The exported model makes views.
    let spec = read_manifest(&RunFolder(straight).manifest()).expect("manifest");
    assert!(spec.is_novel_view() && spec.name.contains("multi-view"));
    let model = LoadedModel::load(&spec, &device).expect("trained model");
    let reference = image::open(first_view(&data)).expect("a view").to_rgb8();
    let request = MultiviewRequest {
        name: "object".into(),
        image: std::sync::Arc::new(reference),
        alpha: None,
        input_pose: OrbitPose::new(10.0, 0.0, 1.5).expect("pose"),
        views: vec![
            OrbitPose::new(10.0, 90.0, 1.5).expect("pose"),
            OrbitPose::new(10.0, 180.0, 1.5).expect("pose"),
        ],
        settings: SamplerSettings {
            steps: 3,
            guidance: 1.0,
            ..SamplerSettings::default()
        },
        shared_seed: false,
        recenter: true,
        device: DeviceChoice::Cpu,
    };
    let mut views = Vec::new();
    multiview::run(&model, &request, &mut |_| Ok(()), &mut |output| {
        if let SetOutput::View(view) = output {
            views.push(view.image);
        }
        Ok(())
    })
    .expect("views");
    assert_eq!(views.len(), 2);
    assert_eq!(views[0].dimensions(), (SIDE, SIDE));
}

/// The first view image of the first object folder.
fn first_view(data: &Path) -> PathBuf {
    let mut objects: Vec<PathBuf> = std::fs::read_dir(data)
        .expect("data")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("object.json").is_file())
        .collect();
    objects.sort();
    let object: lumos_engine::synthetic::DatasetObject = serde_json::from_str(
        &std::fs::read_to_string(objects[0].join("object.json")).expect("object.json"),
    )
    .expect("object");
    objects[0].join(&object.views[0].image)
}

#[test]
fn the_wrong_kind_of_data_is_refused_clearly_and_the_cli_trains_a_novel_view_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = posed_dataset(tmp.path(), 3);
    let base = image_prior(tmp.path());
    let images = tmp.path().join("textures");

    let image_settings = TrainSettings::small_default(PathBuf::from(
        "embedded:encoder/efficientnet_lite0.safetensors",
    ));
    let refuse = |data: &Path, settings: TrainSettings, out: &str| {
        train::train(
            data,
            &RunFolder(tmp.path().join(out)),
            settings,
            1,
            &Device::Cpu,
            &mut |_| {},
        )
        .expect_err("refused")
        .to_string()
    };
    let error = refuse(&data, image_settings, "wrong-1");
    assert!(error.contains("posed multi-view data"), "{error}");
    let error = refuse(&images, tiny_novel_view(&base, true), "wrong-2");
    assert!(error.contains("render-dataset"), "{error}");

    // `lumos train` on posed data, from the model folder named by --init.
    let base_dir = tmp.path().join("image-prior");
    let out = tmp.path().join("cli-run");
    let output = Command::new(env!("CARGO_BIN_EXE_lumos"))
        .args(["train", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--init")
        .arg(&base_dir)
        .args(["--steps", "2", "--batch", "2"])
        .output()
        .expect("lumos runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("novel-view run"), "{stdout}");
    assert!(
        stdout.contains("step 2: saved"),
        "saves are reported when the output is not a terminal: {stdout}"
    );
    let spec = read_manifest(&RunFolder(out).manifest()).expect("exported");
    assert!(spec.is_novel_view());
    assert_eq!(spec.prior.config.input_view_channels, 3);

    // Sizing a network for posed data is refused: it comes from --init.
    let output = Command::new(env!("CARGO_BIN_EXE_lumos"))
        .args(["train", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(tmp.path().join("cli-sized"))
        .args(["--width", "128", "--steps", "1"])
        .output()
        .expect("lumos runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--init"));
}
