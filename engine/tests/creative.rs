//! Creative controls on the tiny fixture model: strength, inpainting, the mixer and morphs.

use std::sync::Arc;

use candle_core::Device;
use image::{GrayImage, RgbImage};
use lumos_engine::checkpoints::{fixtures_root, pipeline_fixture_spec};
use lumos_engine::pipelines::{self, LoadedModel, StepReport};
use lumos_engine::protocol::{
    DeviceChoice, GenerateRequest, InitImage, InterpolationPath, MixMethod, MixSettings, Mode,
    ReferenceImage, SamplerSettings,
};

fn model() -> LoadedModel {
    let spec = pipeline_fixture_spec(&fixtures_root()).expect("fixture model");
    LoadedModel::load(&spec, &Device::Cpu).expect("load")
}

fn reference(name: &str, weight: f32) -> ReferenceImage {
    let image =
        lumos_engine::imageio::load_image(&fixtures_root().join("pipeline_tiny").join(name))
            .expect("fixture image");
    ReferenceImage {
        name: name.into(),
        image: Arc::new(image),
        weight,
        crop: None,
    }
}

fn request(references: Vec<ReferenceImage>, mode: Mode, seed: u64) -> GenerateRequest {
    GenerateRequest {
        model: pipeline_fixture_spec(&fixtures_root()).expect("spec"),
        device: DeviceChoice::Cpu,
        references,
        mode,
        settings: SamplerSettings {
            steps: 4,
            seed,
            ..SamplerSettings::default()
        },
        init: None,
        mix: MixSettings::default(),
    }
}

/// Asserts two images are equal, reporting only a summary when they are not.
fn assert_same(a: &RgbImage, b: &RgbImage, what: &str) {
    let differing = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .filter(|(x, y)| x != y)
        .count();
    let max = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0);
    assert!(
        differing == 0,
        "{what}: {differing} values differ, by up to {max}"
    );
}

fn run(model: &LoadedModel, request: &GenerateRequest) -> Vec<RgbImage> {
    let mut images = Vec::new();
    pipelines::run(model, request, &mut |report| {
        if let StepReport::Image { index, image, .. } = report {
            assert_eq!(index, images.len());
            images.push((*image).clone());
        }
        Ok(())
    })
    .expect("run");
    images
}

/// A 64×64 starting image (the model's size, so no resampling is involved).
fn start_image() -> RgbImage {
    RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 4) as u8, ((x + y) * 2) as u8])
    })
}

#[test]
fn inpainting_leaves_unmasked_pixels_exactly_as_they_were() {
    let model = model();
    let original = start_image();
    // Repaint the left half, with a feathered edge.
    let mask = GrayImage::from_fn(64, 64, |x, _| {
        image::Luma([if x < 24 {
            255
        } else if x < 32 {
            128
        } else {
            0
        }])
    });
    let mut req = request(
        vec![reference("ref_a.png", 1.0)],
        Mode::Variations { count: 2 },
        4,
    );
    req.init = Some(InitImage {
        image: Arc::new(original.clone()),
        strength: 1.0,
        mask: Some(Arc::new(mask.clone())),
    });
    let images = run(&model, &req);
    assert_eq!(images.len(), 2);
    for image in &images {
        let mut changed = 0;
        for (x, y, p) in image.enumerate_pixels() {
            if mask.get_pixel(x, y)[0] == 0 {
                assert_eq!(
                    p,
                    original.get_pixel(x, y),
                    "unmasked pixel ({x}, {y}) changed"
                );
            } else if p != original.get_pixel(x, y) {
                changed += 1;
            }
        }
        assert!(
            changed > 100,
            "the masked region must be repainted ({changed} pixels changed)"
        );
    }
}

#[test]
fn strength_zero_is_the_vae_round_trip_and_strength_one_is_plain_generation() {
    let model = model();
    let original = start_image();
    let mut req = request(
        vec![reference("ref_b.png", 1.0)],
        Mode::Variations { count: 1 },
        9,
    );
    req.init = Some(InitImage {
        image: Arc::new(original.clone()),
        strength: 0.0,
        mask: None,
    });
    let kept = run(&model, &req);
    let init = pipelines::prepare_init(&model, req.init.as_ref().expect("init")).expect("prepare");
    let round_trip =
        pipelines::to_images(&pipelines::decode(&model, &init.latent).expect("decode"))
            .expect("images");
    assert_same(&kept[0], &round_trip[0], "strength 0");

    req.init.as_mut().expect("init").strength = 1.0;
    let full = run(&model, &req);
    req.init = None;
    let plain = run(&model, &req);
    assert_same(&full[0], &plain[0], "strength 1");

    // In between, the result depends on the starting image.
    req.init = Some(InitImage {
        image: Arc::new(original),
        strength: 0.5,
        mask: None,
    });
    let half = run(&model, &req);
    assert_ne!(half[0], plain[0]);
    assert_ne!(half[0], kept[0]);
}

#[test]
fn mixer_weights_one_and_zero_equal_the_single_reference() {
    let model = model();
    let single = run(
        &model,
        &request(
            vec![reference("ref_a.png", 1.0)],
            Mode::Variations { count: 1 },
            3,
        ),
    );
    for method in [MixMethod::Linear, MixMethod::Spherical] {
        let mut req = request(
            vec![reference("ref_a.png", 1.0), reference("ref_b.png", 0.0)],
            Mode::Variations { count: 1 },
            3,
        );
        req.mix = MixSettings {
            method,
            renormalize: false,
            ..MixSettings::default()
        };
        assert_same(&run(&model, &req)[0], &single[0], &format!("{method:?}"));
    }
    // A negative weight subtracts: the result differs from both references.
    let mut req = request(
        vec![reference("ref_a.png", 1.0), reference("ref_b.png", -0.5)],
        Mode::Variations { count: 1 },
        3,
    );
    req.mix.renormalize = true;
    assert_ne!(run(&model, &req)[0], single[0]);
}

#[test]
fn morph_endpoints_equal_single_reference_generations() {
    let model = model();
    let a = run(
        &model,
        &request(
            vec![reference("ref_a.png", 1.0)],
            Mode::Variations { count: 1 },
            12,
        ),
    );
    let b = run(
        &model,
        &request(
            vec![reference("ref_b.png", 1.0)],
            Mode::Variations { count: 1 },
            12,
        ),
    );
    for path in [InterpolationPath::Endpoints, InterpolationPath::Slerp] {
        let frames = run(
            &model,
            &request(
                vec![reference("ref_a.png", 1.0), reference("ref_b.png", 1.0)],
                Mode::Interpolate { frames: 4, path },
                12,
            ),
        );
        assert_eq!(frames.len(), 4);
        assert_same(&frames[0], &a[0], &format!("{path:?} first frame"));
        assert_same(&frames[3], &b[0], &format!("{path:?} last frame"));
        assert_ne!(frames[1], frames[0]);
    }
}

#[test]
fn the_demo_path_reproduces_its_quirks() {
    use lumos_engine::pipelines::conditions::path_weights;
    assert_eq!(
        path_weights(3, InterpolationPath::Demo),
        vec![0.0, 1.0 / 3.0, 2.0 / 3.0]
    );
    assert_eq!(path_weights(49, InterpolationPath::Demo).len(), 50);
    assert_eq!(path_weights(98, InterpolationPath::Demo).len(), 99);
    assert_eq!(
        path_weights(5, InterpolationPath::Endpoints).last(),
        Some(&1.0)
    );
}

#[test]
fn a_seed_reproduces_its_image_whatever_the_batch() {
    let model = model();
    let batch = run(
        &model,
        &request(
            vec![reference("ref_a.png", 1.0)],
            Mode::Variations { count: 3 },
            10,
        ),
    );
    let alone = run(
        &model,
        &request(
            vec![reference("ref_a.png", 1.0)],
            Mode::Variations { count: 1 },
            12,
        ),
    );
    assert_same(&batch[2], &alone[0], "seed 12");
}

#[test]
fn every_sweep_cell_equals_the_single_generation_with_its_settings() {
    use lumos_engine::protocol::SweepRows;
    let model = model();
    let with_guidance = |mut req: GenerateRequest, guidance: f64| {
        req.settings.guidance = guidance;
        req
    };
    // Rows over seeds, columns over guidance.
    let sweep = Mode::Sweep {
        rows: SweepRows::Seeds(vec![5, 9]),
        guidance: vec![1.5, 6.0],
    };
    let cells = run(
        &model,
        &request(vec![reference("ref_a.png", 1.0)], sweep, 0),
    );
    assert_eq!(cells.len(), 4);
    for (index, (seed, guidance)) in [(5, 1.5), (5, 6.0), (9, 1.5), (9, 6.0)]
        .into_iter()
        .enumerate()
    {
        let single = run(
            &model,
            &with_guidance(
                request(
                    vec![reference("ref_a.png", 1.0)],
                    Mode::Variations { count: 1 },
                    seed,
                ),
                guidance,
            ),
        );
        assert_same(&cells[index], &single[0], &format!("cell {index}"));
    }
    assert_ne!(cells[0], cells[1], "guidance changes the image");

    // Rows over the last reference's weight share one noise; weight 0 is the first reference.
    let sweep = Mode::Sweep {
        rows: SweepRows::Weights(vec![0.0, 1.0]),
        guidance: vec![3.0],
    };
    let mut req = request(
        vec![reference("ref_a.png", 1.0), reference("ref_b.png", 1.0)],
        sweep,
        7,
    );
    req.mix.renormalize = false;
    let mut metas = Vec::new();
    let mut cells = Vec::new();
    pipelines::run(&model, &req, &mut |report| {
        if let StepReport::Image { image, meta, .. } = report {
            cells.push((*image).clone());
            metas.push(meta);
        }
        Ok(())
    })
    .expect("weight sweep");
    let alone = run(
        &model,
        &with_guidance(
            request(
                vec![reference("ref_a.png", 1.0)],
                Mode::Variations { count: 1 },
                7,
            ),
            3.0,
        ),
    );
    assert_same(&cells[0], &alone[0], "weight 0");
    assert_eq!(
        metas[0].references[1].weight, 0.0,
        "the cell's weight is recorded"
    );
    assert_eq!(metas[1].references[1].weight, 1.0);
    assert_eq!(metas[1].settings.guidance, 3.0);

    let images: Vec<&RgbImage> = cells.iter().collect();
    let sheet = lumos_engine::contact_sheet::sweep_sheet(&req.mode, &images).expect("sheet");
    assert!(sheet.width() > 64 && sheet.height() > 2 * 64);
}

#[test]
fn a_weight_sweep_needs_two_references() {
    use lumos_engine::protocol::SweepRows;
    let req = request(
        vec![reference("ref_a.png", 1.0)],
        Mode::Sweep {
            rows: SweepRows::Weights(vec![0.5]),
            guidance: vec![3.0],
        },
        0,
    );
    let err = pipelines::validate(&req).expect_err("refused");
    assert!(err.to_string().contains("another reference"), "{err}");
}

#[test]
fn the_built_in_default_reproduces_a_seed_whatever_the_batch() {
    // The CPU samples in batches of four: every row of the built-in default's batch (prior and
    // autoencoder) must get the same bits as a run of one.
    let spec = lumos_engine::embedded::default_spec().expect("built-in default");
    let model = LoadedModel::load(&spec, &Device::Cpu).expect("load");
    let sample = lumos_engine::imageio::decode_image(
        lumos_engine::embedded::file("samples/coffee.jpg").expect("sample"),
        "coffee.jpg",
    )
    .expect("decode");
    let with = |count: usize, seed: u64| {
        let mut req = request(
            vec![ReferenceImage {
                name: "coffee.jpg".into(),
                image: Arc::new(sample.clone()),
                weight: 1.0,
                crop: None,
            }],
            Mode::Variations { count },
            seed,
        );
        req.model = spec.clone();
        run(&model, &req)
    };
    assert!(pipelines::max_batch(DeviceChoice::Cpu) > 1);
    let batch = with(6, 30);
    let alone = with(1, 32);
    let last = with(1, 35);
    assert_same(&batch[2], &alone[0], "seed 32 (first batch)");
    assert_same(&batch[5], &last[0], "seed 35 (second batch)");
}

#[test]
fn a_sample_gets_the_same_prior_output_bits_in_any_batch() {
    use candle_core::Tensor;
    let model = model();
    let (c, h, w) = model.latent_shape();
    let cc = model.spec.prior.config.caption_channels;
    let x = Tensor::randn(0f32, 1f32, (8, c, h, w), &Device::Cpu).expect("x");
    let y = Tensor::randn(0f32, 1f32, (8, 1, 1, cc), &Device::Cpu).expect("y");
    // Different times per sample: the per-sample products run row by row.
    let t = [10.0f32, 120.0, 250.0, 380.0, 500.0, 640.0, 770.0, 900.0];
    let batch = model.prior.forward(&x, &t, &y).expect("batch of 8");
    let pair = model
        .prior
        .forward(
            &x.narrow(0, 2, 2).expect("x"),
            &t[2..4],
            &y.narrow(0, 2, 2).expect("y"),
        )
        .expect("batch of 2");
    let rows = |t: &Tensor| {
        t.flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("values")
    };
    assert_eq!(
        rows(&batch.narrow(0, 2, 2).expect("rows")),
        rows(&pair),
        "rows 2 and 3 of a batch of 8 must equal the same rows alone"
    );
}
