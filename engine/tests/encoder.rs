//! The embedded default's reference encoder (EfficientNet-Lite0, shipped in `assets/encoder`)
//! recognises the sample photos: a wrong padding, normalisation or block wiring would not.
//! The app never classifies, so the ImageNet classifier (`_fc`) lives beside this test in
//! `tests/data/` instead of in the shipped weights.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use lumos_engine::checkpoints::{build_model, load_tensors};
use lumos_engine::models::{EfficientNetLite, EfficientNetLiteConfig};

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets")
}

fn top5(net: &EfficientNetLite, file: &str) -> Vec<usize> {
    let image = image::open(assets().join("samples").join(file))
        .expect("sample")
        .to_rgb8();
    let pixels =
        lumos_engine::preprocess::pixel_values(&image, 224, None, &Device::Cpu).expect("pixels");
    let logits: Vec<f32> = net
        .classify(&pixels)
        .expect("forward")
        .expect("classifier")
        .squeeze(0)
        .and_then(|t: Tensor| t.to_vec1())
        .expect("logits");
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order.truncate(5);
    order
}

#[test]
fn efficientnet_lite0_classifies_the_sample_photos() {
    let mut tensors =
        load_tensors(&assets().join("encoder/efficientnet_lite0.safetensors")).expect("encoder");
    let classifier = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/efficientnet_lite0_imagenet_classifier.safetensors");
    tensors.extend(load_tensors(&classifier).expect("classifier"));
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let net = EfficientNetLite::load(&EfficientNetLiteConfig::lite0(224), vb).expect("encoder");
    // ImageNet classes: 281–285 domestic cats; 504 coffee mug, 967 espresso, 968 cup;
    // 657 missile, 744 projectile, 812 space shuttle.
    let chelsea = top5(&net, "chelsea.jpg");
    let coffee = top5(&net, "coffee.jpg");
    let rocket = top5(&net, "rocket.jpg");
    eprintln!("chelsea {chelsea:?} coffee {coffee:?} rocket {rocket:?}");
    assert!((281..=285).contains(&chelsea[0]), "chelsea: {chelsea:?}");
    assert!([504, 967, 968].contains(&coffee[0]), "coffee: {coffee:?}");
    assert!([657, 744, 812].contains(&rocket[0]), "rocket: {rocket:?}");
}

/// Spatial condition tokens: the global embedding first (exactly `embed`'s), then one unit
/// token per cell of the grid, which differ where the picture differs.
#[test]
fn spatial_condition_tokens_follow_the_global_embedding() {
    let config = EfficientNetLiteConfig::lite0(128);
    let encoder = build_model(
        &assets().join("encoder/efficientnet_lite0.safetensors"),
        DType::F32,
        &Device::Cpu,
        |vb| {
            lumos_engine::models::ImageEncoder::load(
                &lumos_engine::models::EncoderConfig::EfficientNetLite(config.clone()),
                vb,
            )
        },
    )
    .expect("encoder");
    let image = image::open(assets().join("samples/rocket.jpg"))
        .expect("sample")
        .to_rgb8();
    let global: Vec<f32> = encoder
        .embed(&image, None, &Device::Cpu)
        .and_then(|t| t.flatten_all()?.to_vec1())
        .expect("embed");
    let tokens: Vec<f32> = encoder
        .embed_tokens(&image, None, 2, &Device::Cpu)
        .and_then(|t| t.flatten_all()?.to_vec1())
        .expect("tokens");
    let c = global.len();
    assert_eq!(tokens.len(), 5 * c);
    assert_eq!(&tokens[..c], global.as_slice());
    let cells: Vec<&[f32]> = tokens[c..].chunks(c).collect();
    for cell in &cells {
        let norm: f32 = cell.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!(
        cos(cells[0], cells[3]) < 0.99,
        "opposite corners of a photo give different tokens"
    );
    // No grid: the global embedding alone.
    let alone = encoder
        .embed_tokens(&image, None, 0, &Device::Cpu)
        .expect("tokens");
    assert_eq!(alone.dims(), &[1, c]);
}
