//! The built-in prompt model: its text encoder computes what the trainer's PyTorch network
//! computed (vectors recorded in the weights file's metadata), prompts make seeded images at the
//! model's size, and bad prompts and mismatched files are refused with reasons.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use lumos_engine::pipelines::prompt_model::{PromptModel, PromptModelFiles};
use lumos_engine::pipelines::text_to_image::TextToImageRequest;

fn builtin() -> (PromptModelFiles, PromptModel) {
    let files = PromptModelFiles::builtin().expect("built-in files");
    let model = PromptModel::load(&files, &Device::Cpu).expect("the built-in prompt model loads");
    (files, model)
}

fn embedded_bytes() -> &'static [u8] {
    lumos_engine::embedded::file("prompt/prompt.safetensors").expect("embedded prompt model")
}

#[test]
fn the_text_encoder_matches_the_trainers_vectors() {
    let (_, model) = builtin();
    let (_, metadata) =
        safetensors::SafeTensors::read_metadata(embedded_bytes()).expect("safetensors header");
    let check: HashMap<String, Vec<f32>> = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get("check"))
        .and_then(|c| serde_json::from_str(c).ok())
        .expect("the trainer's check vectors in the metadata");
    assert!(!check.is_empty());
    for (prompt, expected) in &check {
        let encoded = model
            .encoder()
            .encode(prompt)
            .expect("encode")
            .expect("known words");
        let got: Vec<f32> = encoded
            .embedding
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("vector");
        assert!(expected.len() <= got.len());
        for (i, (g, e)) in got.iter().zip(expected).enumerate() {
            assert!((g - e).abs() < 1e-4, "{prompt:?}[{i}]: {g} vs {e}");
        }
    }
}

fn request(prompt: &str, seed: u64, count: usize) -> TextToImageRequest {
    let side = lumos_engine::pipelines::prompt_model::builtin_image_size_px() as u32;
    TextToImageRequest {
        steps: 3,
        seed,
        count,
        width_px: side,
        height_px: side,
        ..TextToImageRequest::new(prompt)
    }
}

#[test]
fn a_prompt_makes_seeded_images_at_the_models_size() {
    let (files, model) = builtin();
    let side = files.image_size_px() as u32;
    let mut steps = 0;
    let two = model
        .generate(&request("cat face", 9, 2), &mut |_| {
            steps += 1;
            Ok(())
        })
        .expect("generate");
    assert_eq!(two.images.len(), 2);
    assert!(
        steps >= 6,
        "progress for every step of both images: {steps}"
    );
    assert!(two.warnings.is_empty(), "{:?}", two.warnings);
    for image in &two.images {
        assert_eq!(image.dimensions(), (side, side));
    }
    assert_ne!(two.images[0].as_raw(), two.images[1].as_raw());
    // Image 1 is seed + 1's image whatever the count.
    let one = model
        .generate(&request("cat face", 10, 1), &mut |_| Ok(()))
        .expect("generate");
    assert_eq!(one.images[0].as_raw(), two.images[1].as_raw());
    // Another prompt, same seed: another image.
    let other = model
        .generate(&request("red apple", 10, 1), &mut |_| Ok(()))
        .expect("generate");
    assert_ne!(other.images[0].as_raw(), one.images[0].as_raw());
}

#[test]
fn unknown_words_and_other_sizes_are_said_and_empty_prompts_refused() {
    let (files, model) = builtin();
    let side = files.image_size_px();
    let mut asked = request("the zzzq cat", 1, 1);
    asked.width_px = 1024;
    asked.height_px = 768;
    let made = model.generate(&asked, &mut |_| Ok(())).expect("generate");
    let warnings = made.warnings.join("\n");
    assert!(warnings.contains("zzzq"), "{warnings}");
    assert!(
        warnings.contains(&format!("{side} × {side} px")),
        "{warnings}"
    );
    for (prompt, reason) in [
        ("   ", "the prompt is empty"),
        ("zzzq qqqz", "knows none of the words"),
    ] {
        let error = model
            .generate(&request(prompt, 1, 1), &mut |_| Ok(()))
            .expect_err("refused")
            .to_string();
        assert!(error.contains(reason), "{prompt:?}: {error}");
    }
}

/// The embedded file's tensors, with `change` applied, written with `metadata`.
fn rewritten(
    dir: &std::path::Path,
    metadata: Option<HashMap<String, String>>,
    change: impl FnOnce(&mut HashMap<String, Tensor>),
) -> std::path::PathBuf {
    let mut tensors =
        candle_core::safetensors::load_buffer(embedded_bytes(), &Device::Cpu).expect("tensors");
    change(&mut tensors);
    let path = dir.join("prompt.safetensors");
    let bytes: Vec<(String, Vec<u8>, Vec<usize>, safetensors::Dtype)> = tensors
        .iter()
        .map(|(name, t)| {
            let t = t.to_dtype(candle_core::DType::F32).expect("f32");
            let values: Vec<f32> = t.flatten_all().and_then(|v| v.to_vec1()).expect("values");
            let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (
                name.clone(),
                raw,
                t.dims().to_vec(),
                safetensors::Dtype::F32,
            )
        })
        .collect();
    let tensor_views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(name, raw, shape, dtype)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), raw).expect("view"),
            )
        })
        .collect();
    safetensors::serialize_to_file(tensor_views, metadata, &path).expect("write");
    path
}

fn embedded_metadata() -> HashMap<String, String> {
    let (_, metadata) =
        safetensors::SafeTensors::read_metadata(embedded_bytes()).expect("safetensors header");
    metadata.metadata().clone().expect("metadata")
}

#[test]
fn a_file_that_does_not_fit_the_prior_or_is_not_a_prompt_model_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let load = |path: std::path::PathBuf| {
        let files = PromptModelFiles {
            weights: path,
            ..PromptModelFiles::builtin().expect("built-in files")
        };
        PromptModel::load(&files, &Device::Cpu).map(|_| ())
    };
    // A copy as f32 loads (what the test writes is a valid prompt model).
    load(rewritten(dir.path(), Some(embedded_metadata()), |_| {})).expect("a faithful copy loads");
    let wrong_shape = rewritten(dir.path(), Some(embedded_metadata()), |tensors| {
        let key = tensors
            .keys()
            .find(|k| k.starts_with("prior."))
            .expect("a prior tensor")
            .clone();
        tensors.insert(
            key,
            Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).expect("zeros"),
        );
    });
    let error = load(wrong_shape).expect_err("refused").to_string();
    assert!(error.contains("made for another prior"), "{error}");
    let no_vocabulary = rewritten(dir.path(), None, |_| {});
    let error = load(no_vocabulary).expect_err("refused").to_string();
    assert!(error.contains("not a prompt model"), "{error}");
    let error = load(dir.path().join("missing.safetensors"))
        .expect_err("refused")
        .to_string();
    assert!(error.contains("missing.safetensors"), "{error}");
}
