//! Text-to-image with the built-in prompt model, so that prompts make images offline when the
//! published Lumos T2I model (and its 19 GB T5 encoder) is not installed.
//!
//! The model is the built-in image prior taking text in place of the image embedding: a
//! bag-of-words [`PromptEncoder`] maps the prompt to a 1280-d unit vector in the image
//! encoder's embedding space, and the prior samples from it exactly as it samples a variation
//! from a reference's embedding. Its weights file (`assets/prompt/prompt.safetensors`, made by
//! `tools/gpu/train_prompt.py`) holds the encoder (`text_encoder.*`), the vocabulary (in the
//! safetensors metadata) and only the prior tensors its fine-tuning changed (`prior.*`),
//! which replace the built-in prior's; every other prior tensor is the built-in prior's own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use image::RgbImage;

use super::text_to_image::TextToImageRequest;
use super::{LoadedModel, StepHook, decode, denoise, to_images};
use crate::error::{EngineError, Result};
use crate::models::prompt_encoder::PromptEncoder;
use crate::protocol::{ModelSpec, SamplerSettings};

/// Prefix of the text encoder's tensors in the prompt model's file.
const ENCODER_PREFIX: &str = "text_encoder.";
/// Prefix of the prior tensors that replace the built-in prior's.
const PRIOR_PREFIX: &str = "prior.";

/// The built-in prompt model's name as results and the app show it.
pub const BUILTIN_PROMPT_MODEL_NAME: &str = "Lumos small, prompts (built in)";

/// Where a prompt model's parts are: its own weights file and the image model it was
/// fine-tuned from.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptModelFiles {
    /// Display name.
    pub name: String,
    /// The prompt model's file (`embedded:` paths accepted).
    pub weights: PathBuf,
    /// The image model whose prior it changes.
    pub base: ModelSpec,
}

/// The side in pixels of the built-in prompt model's images (0 if its manifest is unreadable,
/// which the engine's tests rule out).
pub fn builtin_image_size_px() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| PromptModelFiles::builtin().map_or(0, |files| files.image_size_px()))
}

impl PromptModelFiles {
    /// The one compiled into the engine, on the built-in image prior.
    pub fn builtin() -> Result<Self> {
        Ok(Self {
            name: BUILTIN_PROMPT_MODEL_NAME.into(),
            weights: PathBuf::from(format!(
                "{}prompt/prompt.safetensors",
                crate::embedded::SCHEME
            )),
            base: crate::embedded::default_spec()?,
        })
    }

    /// The side length in pixels of the images it makes (its image prior's).
    pub fn image_size_px(&self) -> usize {
        let factor = self
            .base
            .vae
            .as_ref()
            .map_or(1, |vae| vae.config.downsampling_factor());
        self.base.prior.config.input_size * factor
    }
}

/// What a prompt made.
#[derive(Clone, Debug)]
pub struct PromptImages {
    /// The images, in seed order.
    pub images: Vec<RgbImage>,
    /// What the user should be told (ignored words, the fixed size).
    pub warnings: Vec<String>,
}

/// A loaded prompt model: the image model with its prior changed, and the text encoder.
pub struct PromptModel {
    name: String,
    model: LoadedModel,
    encoder: PromptEncoder,
}

fn read_file(path: &Path) -> Result<std::borrow::Cow<'static, [u8]>> {
    if let Some(bytes) = crate::embedded::resolve(path) {
        return Ok(std::borrow::Cow::Borrowed(bytes?));
    }
    std::fs::read(path)
        .map(std::borrow::Cow::Owned)
        .map_err(|e| EngineError::Io {
            path: path.to_path_buf(),
            source: e,
        })
}

impl PromptModel {
    /// Loads `files` on `device`; a file that does not fit its image prior (a tensor it
    /// replaces missing there or shaped differently) is refused, naming the tensor.
    pub fn load(files: &PromptModelFiles, device: &Device) -> Result<Self> {
        let path = &files.weights;
        let bad = |reason: String| EngineError::Checkpoint {
            path: path.clone(),
            reason,
        };
        let bytes = read_file(path)?;
        let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
        let vocabulary: Vec<String> = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get("vocabulary"))
            .and_then(|v| serde_json::from_str(v).ok())
            .ok_or_else(|| bad("no vocabulary in its metadata: not a prompt model".into()))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| bad(format!("unreadable tensors ({e})")))?;
        let mut encoder_tensors = HashMap::new();
        let mut prior_overrides = HashMap::new();
        for (key, tensor) in tensors {
            if let Some(rest) = key.strip_prefix(ENCODER_PREFIX) {
                encoder_tensors.insert(rest.to_owned(), tensor);
            } else if let Some(rest) = key.strip_prefix(PRIOR_PREFIX) {
                prior_overrides.insert(rest.to_owned(), tensor);
            } else {
                return Err(bad(format!("unexpected tensor {key}")));
            }
        }
        let model = LoadedModel::load_with_prior_overrides(&files.base, device, prior_overrides)
            .map_err(|e| match e {
                EngineError::InvalidRequest(reason) => bad(reason),
                other => other,
            })?;
        let vb = VarBuilder::from_tensors(encoder_tensors, DType::F32, device);
        let width = files.base.prior.config.caption_channels;
        let encoder = PromptEncoder::load(&vocabulary, width, vb)
            .map_err(|e| crate::checkpoints::model_error(path, e))?;
        Ok(Self {
            name: files.name.clone(),
            model,
            encoder,
        })
    }

    /// Display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The text encoder.
    pub fn encoder(&self) -> &PromptEncoder {
        &self.encoder
    }

    /// The image model it samples with (its prior with the prompt model's tensors).
    pub fn image_model(&self) -> &LoadedModel {
        &self.model
    }

    /// Output side length in pixels.
    pub fn image_size_px(&self) -> usize {
        self.model.image_size_px()
    }

    /// The prompt's condition `(1, 1, 1, c)` and the warnings for the words it ignored; an
    /// empty prompt, or one with no word the model knows, is refused with a reason.
    pub fn condition(&self, prompt: &str) -> Result<(Tensor, Vec<String>)> {
        if prompt.trim().is_empty() {
            return Err(EngineError::InvalidRequest(
                "the prompt is empty: say what the image should show".into(),
            ));
        }
        let Some(encoded) = self.encoder.encode(prompt)? else {
            return Err(EngineError::InvalidRequest(format!(
                "the built-in prompt model knows none of the words of {prompt:?}: it learnt \
                 {} English words from emoji and clip-art names (e.g. {}); install the full \
                 Lumos text-to-image model for free text",
                self.encoder.vocabulary_size(),
                self.example_prompts().join(", ")
            )));
        };
        let mut warnings = Vec::new();
        if !encoded.unknown.is_empty() {
            warnings.push(format!(
                "the built-in prompt model does not know {} and ignored {}: {}",
                if encoded.unknown.len() == 1 {
                    "this word"
                } else {
                    "these words"
                },
                if encoded.unknown.len() == 1 {
                    "it"
                } else {
                    "them"
                },
                encoded.unknown.join(", ")
            ));
        }
        let condition = encoded
            .embedding
            .to_device(&self.model.device)?
            .reshape((1, 1, 1, ()))?;
        Ok((condition, warnings))
    }

    /// A few prompts this model knows every word of, quoted, for messages.
    pub fn example_prompts(&self) -> Vec<String> {
        [
            "cat face",
            "red apple",
            "rocket",
            "palm tree",
            "dog",
            "house",
            "car",
        ]
        .iter()
        .filter(|p| p.split(' ').all(|w| self.encoder.knows(w)))
        .take(3)
        .map(|p| format!("\"{p}\""))
        .collect()
    }

    /// Makes `request.count` images (image `i` from seed `seed + i`, alone, so that a seed
    /// gives the same image whatever the count). The size is the model's own; a different
    /// requested size is said in the warnings.
    pub fn generate(
        &self,
        request: &TextToImageRequest,
        hook: &mut StepHook<'_>,
    ) -> Result<PromptImages> {
        super::text_to_image::validate_request(request)?;
        let (condition, mut warnings) = self.condition(&request.prompt)?;
        let side = self.image_size_px() as u32;
        if (request.width_px, request.height_px) != (side, side) {
            warnings.push(format!(
                "the built-in prompt model makes {side} × {side} px images (the size picker \
                 is for the full text-to-image model)"
            ));
        }
        let settings = self.sampler_settings(request);
        let (c, h, w) = self.model.latent_shape();
        let mut images = Vec::with_capacity(request.count);
        for i in 0..request.count {
            let seed = request.seed.wrapping_add(i as u64);
            let noise = crate::noise::gaussian(seed, &[1, c, h, w], &self.model.device)?;
            let latents = denoise(&self.model, &condition, &noise, &settings, hook)?;
            images.extend(to_images(&decode(&self.model, &latents)?)?);
        }
        Ok(PromptImages { images, warnings })
    }

    /// The sampler the model runs a request with (the image prior's default solver).
    pub fn sampler_settings(&self, request: &TextToImageRequest) -> SamplerSettings {
        SamplerSettings {
            steps: request.steps,
            guidance: request.guidance,
            seed: request.seed,
            ..SamplerSettings::default()
        }
    }
}
