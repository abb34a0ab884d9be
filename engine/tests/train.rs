//! `lumos train` end to end on a handful of synthetic images with a tiny prior: the loss falls,
//! a stopped run resumes to exactly the weights of an uninterrupted one, and the exported model
//! folder loads and generates.

use std::path::{Path, PathBuf};

use candle_core::Device;
use image::{Rgb, RgbImage};
use lumos_engine::checkpoints::{ModelChoice, resolve_model};
use lumos_engine::pipelines::LoadedModel;
use lumos_engine::protocol::SamplerSettings;
use lumos_engine::train::{self, RunFolder, TrainSettings};

/// Coloured discs on white, like the emoji corpus.
fn write_images(dir: &Path) {
    let colours = [
        [220u8, 40, 40],
        [40, 160, 60],
        [50, 80, 220],
        [240, 200, 30],
    ];
    for (i, colour) in colours.iter().enumerate() {
        let radius = 12.0 + 4.0 * i as f32;
        let img = RgbImage::from_fn(64, 64, |x, y| {
            let (dx, dy) = (x as f32 - 32.0, y as f32 - 32.0);
            if (dx * dx + dy * dy).sqrt() < radius {
                Rgb(*colour)
            } else {
                Rgb([255, 255, 255])
            }
        });
        img.save(dir.join(format!("disc-{i}.png")))
            .expect("write image");
    }
}

fn tiny_settings() -> TrainSettings {
    let mut s = TrainSettings::small_default(PathBuf::from(
        "embedded:encoder/efficientnet_lite0.safetensors",
    ));
    // Patch 4 (48 values per token) into width 64: a token must be wide enough to carry its
    // patch, or the network cannot even learn the identity that high-noise steps need.
    s.prior.patch_size = 4;
    s.prior.hidden_size = 64;
    s.prior.depth = 1;
    s.prior.num_heads = 2;
    s.batch = 4;
    s.lr = 3e-3;
    s.warmup = 5;
    s.views = 2;
    s.save_every = 1000;
    s
}

fn run(data: &Path, out: &Path, steps: usize) -> Vec<f32> {
    let mut losses = Vec::new();
    train::train(
        data,
        &RunFolder(out.to_path_buf()),
        tiny_settings(),
        steps,
        &Device::Cpu,
        &mut |event| {
            if let train::TrainEvent::Step { loss, .. } = event {
                losses.push(loss);
            }
        },
    )
    .expect("training runs");
    losses
}

#[test]
fn training_lowers_the_loss_resumes_exactly_and_exports_a_usable_model() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    write_images(&data);

    // Uninterrupted: 120 steps.
    let straight = tmp.path().join("straight");
    let losses = run(&data, &straight, 120);
    assert_eq!(losses.len(), 120);
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let (early, late) = (mean(&losses[..20]), mean(&losses[100..]));
    eprintln!("loss {early} → {late}");
    assert!(late < 0.6 * early, "loss did not fall: {early} → {late}");

    // Interrupted at 25, resumed to 120: the same weights, bit for bit.
    let resumed = tmp.path().join("resumed");
    run(&data, &resumed, 25);
    // A run killed between saves logged steps it did not save; resuming forgets them.
    let log = RunFolder(resumed.clone()).loss_log();
    let mut text = std::fs::read_to_string(&log).expect("loss log");
    text.push_str("26,0.5\n27,0.5\n");
    std::fs::write(&log, text).expect("append");
    let rest = run(&data, &resumed, 120);
    let logged: Vec<usize> = std::fs::read_to_string(&log)
        .expect("loss log")
        .lines()
        .map(|l| {
            l.split(',')
                .next()
                .and_then(|s| s.parse().ok())
                .expect("step")
        })
        .collect();
    assert_eq!(
        logged,
        (1..=120).collect::<Vec<_>>(),
        "each step logged once"
    );
    assert_eq!(rest.len(), 95, "resumed at the saved step");
    assert_eq!(
        &rest[..],
        &losses[25..],
        "the resumed run retraces the straight one"
    );
    let load = |dir: &Path| {
        candle_core::safetensors::load(RunFolder(dir.to_path_buf()).prior(), &Device::Cpu)
            .expect("exported prior")
    };
    let (a, b) = (load(&straight), load(&resumed));
    assert_eq!(a.len(), b.len());
    for (name, ta) in &a {
        let diff = (ta.to_dtype(candle_core::DType::F32).expect("f32")
            - b[name].to_dtype(candle_core::DType::F32).expect("f32"))
        .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
        .expect("compare");
        assert_eq!(diff, 0.0, "{name} differs after resuming");
    }

    // A resumed run's learning rate can be changed; nonsense is refused.
    let run = RunFolder(straight.clone());
    let old = train::change_learning_rate(&run, 1e-4).expect("change");
    assert!(old > 1e-4);
    let saved: train::TrainSettings =
        serde_json::from_str(&std::fs::read_to_string(run.settings()).expect("settings"))
            .expect("json");
    assert_eq!(saved.lr, 1e-4);
    assert!(train::change_learning_rate(&run, -1.0).is_err());

    // The exported folder is a model the engine loads and samples.
    let choice = ModelChoice::Path(RunFolder(straight).manifest());
    let spec = resolve_model(&choice).expect("manifest").spec;
    let model = LoadedModel::load(&spec, &Device::Cpu).expect("model loads");
    assert_eq!(model.image_size_px(), 64);
    let reference = image::open(data.join("disc-0.png"))
        .expect("image")
        .to_rgb8();
    let settings = SamplerSettings {
        steps: 4,
        ..SamplerSettings::default()
    };
    let images = lumos_engine::eval::variations(&model, &reference, 2, &settings).expect("sample");
    assert_eq!(images.len(), 2);
    assert_eq!(images[0].dimensions(), (64, 64));
    assert_ne!(
        images[0].as_raw(),
        images[1].as_raw(),
        "two seeds, two images"
    );
}

#[test]
fn a_folder_without_images_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = train::train(
        tmp.path(),
        &RunFolder(tmp.path().join("out")),
        tiny_settings(),
        1,
        &Device::Cpu,
        &mut |_| {},
    )
    .expect_err("nothing to train on");
    assert!(err.to_string().contains("no readable images"), "{err}");
}

/// A prior with 2×2 spatial condition tokens (the config the GPU trainer can export): it loads
/// with the built-in encoder, its conditions carry five tokens, and it generates variations
/// and morphs. The CPU trainer refuses it with a clear message (it trains the global token).
#[test]
fn a_prior_with_spatial_condition_tokens_loads_and_generates() {
    use candle_nn::{VarBuilder, VarMap};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = tiny_settings();
    settings.prior.spatial_condition_grid = 2;
    settings.prior.model_max_length = 5;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &Device::Cpu);
    lumos_engine::models::LumosI2I::load(&settings.prior, vb).expect("random prior");
    let weights = varmap.data().lock().expect("varmap").clone();
    let weights = weights
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect();
    let run = RunFolder(dir.path().join("spatial"));
    std::fs::create_dir_all(&run.0).expect("run folder");
    train::export(&weights, &settings, 0, &run).expect("export");

    let spec = resolve_model(&ModelChoice::Path(run.manifest()))
        .expect("manifest")
        .spec;
    // The run folder itself names the same model (its model.json), as `--model DIR` is used.
    let by_folder = resolve_model(&ModelChoice::Path(run.0.clone()))
        .expect("the folder resolves to its manifest")
        .spec;
    assert_eq!(
        (by_folder.name.as_str(), &by_folder.prior.path),
        (spec.name.as_str(), &spec.prior.path)
    );
    let model = LoadedModel::load(&spec, &Device::Cpu).expect("model loads");
    let data = dir.path().join("images");
    std::fs::create_dir_all(&data).expect("data");
    write_images(&data);
    let reference = |i: usize| {
        image::open(data.join(format!("disc-{i}.png")))
            .expect("image")
            .to_rgb8()
    };
    let sampler = SamplerSettings {
        steps: 2,
        ..SamplerSettings::default()
    };
    let first = lumos_engine::eval::variations(&model, &reference(0), 2, &sampler).expect("sample");
    let again = lumos_engine::eval::variations(&model, &reference(0), 2, &sampler).expect("sample");
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].dimensions(), (64, 64));
    assert_eq!(
        first[0].as_raw(),
        again[0].as_raw(),
        "same seed, same image"
    );
    let refs: Vec<lumos_engine::protocol::ReferenceImage> = [0, 2]
        .iter()
        .map(|&i| lumos_engine::protocol::ReferenceImage {
            name: format!("disc-{i}"),
            image: std::sync::Arc::new(reference(i)),
            weight: 1.0,
            crop: None,
        })
        .collect();
    let conditions = lumos_engine::pipelines::embed_references(&model, &refs).expect("embed");
    assert_eq!(conditions.dims(), &[2, 5 * 1280]);

    // The CPU trainer says what it cannot do instead of failing obscurely.
    let error = train::train(
        &data,
        &RunFolder(dir.path().join("cpu")),
        settings,
        1,
        &Device::Cpu,
        &mut |_| {},
    )
    .expect_err("the CPU trainer trains one token");
    assert!(error.to_string().contains("spatial"), "{error}");
}
