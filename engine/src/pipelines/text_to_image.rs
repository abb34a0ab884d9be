//! Text-to-image: prompt → cleaned, tokenized caption → T5 embedding (cached per prompt) →
//! `LumosT2IMS` sampled with classifier-free guidance by the T2I demo's DPM-Solver++ → VAE
//! decode, as `gradio_demos/lumos_T2I.py` runs it.
//!
//! Stages, each public so that tests and front ends can run them alone: [`prepare_prompt`]
//! (refuses an empty prompt, reports truncation and unknown characters),
//! [`TextToImagePipeline::embed_prompt`] (the T5 encoder is loaded, used and dropped — T5-XXL
//! is about 19 GB in f32 — and the embedding kept per cleaned prompt),
//! [`TextToImagePipeline::latent_hw`] (the aspect-ratio bucket), [`TextToImagePipeline::denoise`]
//! and [`TextToImagePipeline::decode`]. Each image `i` of a request is sampled alone from the
//! seed `seed + i`, so a seed gives the same image whatever the count.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use image::RgbImage;

use super::aspect_ratio::{AspectRatioBucket, closest_bucket};
use super::{StepHook, StepReport, to_images};
use crate::checkpoints::text_to_image::TextToImageDiscovery;
use crate::checkpoints::{self, CheckpointKind};
use crate::error::{EngineError, Result};
use crate::models::{
    AutoencoderKl, LumosT2IConfig, LumosT2IMS, MicroConditions, T5Config, T5Encoder, VaeConfig,
};
use crate::protocol::Precision;
use crate::sampling::dpm_solver::{self, DpmSolverPp};
use crate::sampling::{LowerOrderFinal, NoiseSchedule, TextGuidance};
use crate::text::{self, PreparedPrompt, T5Tokenizer};

/// The pixel size the bucket table is written for (`ASPECT_RATIO_1024`).
const BUCKET_BASE_PX: f64 = 1024.0;

/// Where the parts of a text-to-image model are.
#[derive(Clone, Debug)]
pub struct TextToImageSpec {
    /// Display name.
    pub name: String,
    /// Precision of the prior (the demo runs it in f16 on a GPU); the T5 encoder and the VAE
    /// always run in f32, as in the demo.
    pub precision: Precision,
    /// The `LumosT2IMS` weights (`Lumos_T2I.pth`).
    pub prior: PathBuf,
    /// Its configuration.
    pub prior_config: LumosT2IConfig,
    /// The T5 encoder: a Hugging Face folder (sharded or not), an index file or a weights file.
    pub text_encoder: PathBuf,
    /// Its configuration.
    pub text_encoder_config: T5Config,
    /// The tokenizer's `spiece.model`.
    pub tokenizer: PathBuf,
    /// The VAE weights file.
    pub vae: PathBuf,
    /// Its configuration.
    pub vae_config: VaeConfig,
}

impl TextToImageSpec {
    /// The published model from what discovery found: `LumosT2IMS_XL_2`, the T5 folder (its
    /// own `config.json` and `spiece.model`) and `sd-vae-ft-mse`; an error with the discovery
    /// report when a part is missing.
    pub fn published(found: &TextToImageDiscovery) -> Result<Self> {
        let (Some(prior), Some(t5), Some(vae)) = (&found.prior, &found.text_encoder, &found.vae)
        else {
            return Err(EngineError::InvalidRequest(format!(
                "the text-to-image model is incomplete:\n{}",
                found.report()
            )));
        };
        Ok(Self {
            name: "Lumos T2I XL/2".into(),
            precision: Precision::default(),
            prior: prior.clone(),
            prior_config: LumosT2IConfig::xl_2(),
            text_encoder: t5.clone(),
            text_encoder_config: checkpoints::read_config(&t5.join("config.json"))?,
            tokenizer: t5.join("spiece.model"),
            vae: vae.clone(),
            vae_config: VaeConfig::sd_vae_ft_mse(),
        })
    }
}

/// One text-to-image request.
#[derive(Clone, Debug, PartialEq)]
pub struct TextToImageRequest {
    /// The prompt as typed.
    pub prompt: String,
    /// Requested height; the closest aspect-ratio bucket is used.
    pub height_px: u32,
    /// Requested width.
    pub width_px: u32,
    /// Sampler steps.
    pub steps: usize,
    /// Classifier-free guidance scale.
    pub guidance: f64,
    /// Seed of the first image (image `i` uses `seed + i`).
    pub seed: u64,
    /// Images to make.
    pub count: usize,
}

impl TextToImageRequest {
    /// The demo's settings (1024 × 1024, guidance 4.5, DPM-Solver++ order 2) with the engine's
    /// default of 20 steps (the demo's slider starts at 250).
    pub fn new(prompt: &str) -> Self {
        Self {
            prompt: prompt.into(),
            height_px: 1024,
            width_px: 1024,
            steps: 20,
            guidance: 4.5,
            seed: 0,
            count: 1,
        }
    }
}

/// A prompt's caption features, ready for the prior.
#[derive(Clone, Debug)]
pub struct CaptionEmbedding {
    /// The cleaned, tokenized prompt (with its warnings).
    pub prompt: PreparedPrompt,
    /// T5's `last_hidden_state` as the prior reads it, `(1, 1, l, caption_channels)` (rows at
    /// padded positions included; the mask drops them).
    pub features: Tensor,
    /// The caption mask `(1, l)`.
    pub mask: Tensor,
}

/// What a request produced.
#[derive(Clone, Debug)]
pub struct TextToImageResult {
    /// The images, in seed order.
    pub images: Vec<RgbImage>,
    /// The final latents `(count, c, h, w)` (scaled, as the sampler leaves them).
    pub latents: Tensor,
    /// The bucket used.
    pub bucket: AspectRatioBucket,
    /// The prompt the encoder read.
    pub cleaned_prompt: String,
    /// What the user should be told (truncation, unknown characters).
    pub warnings: Vec<String>,
}

/// Checks a request's steps, count and guidance before any work is done.
pub fn validate_request(request: &TextToImageRequest) -> Result<()> {
    if request.steps == 0 || request.steps > super::MAX_STEPS {
        return Err(EngineError::InvalidRequest(format!(
            "steps must be between 1 and {}",
            super::MAX_STEPS
        )));
    }
    if request.count == 0 || request.count > super::MAX_IMAGES {
        return Err(EngineError::InvalidRequest(format!(
            "ask for between 1 and {} images",
            super::MAX_IMAGES
        )));
    }
    if !request.guidance.is_finite() {
        return Err(EngineError::InvalidRequest(
            "the guidance scale must be a number".into(),
        ));
    }
    Ok(())
}

/// Cleans and tokenizes a prompt for `prior`'s caption length; refuses an empty one.
pub fn prepare_prompt(
    tokenizer: &T5Tokenizer,
    prior: &LumosT2IConfig,
    prompt: &str,
) -> Result<PreparedPrompt> {
    text::prepare(tokenizer, prompt, prior.model_max_length)
}

/// A loaded text-to-image model: prior, tokenizer and VAE resident, the T5 encoder loaded per
/// new prompt; caption embeddings cached per cleaned prompt.
pub struct TextToImagePipeline {
    spec: TextToImageSpec,
    device: Device,
    prior: LumosT2IMS,
    tokenizer: T5Tokenizer,
    vae: AutoencoderKl,
    schedule: NoiseSchedule,
    embeddings: HashMap<String, CaptionEmbedding>,
    encoder_loads: usize,
}

impl TextToImagePipeline {
    /// Loads the prior (refusing an image-to-image checkpoint), the tokenizer and the VAE, and
    /// checks that the parts fit together.
    pub fn load(spec: &TextToImageSpec, device: &Device) -> Result<Self> {
        let prior = checkpoints::build_model_of_kind(
            &spec.prior,
            CheckpointKind::LumosTextToImage,
            crate::device::dtype(spec.precision),
            device,
            |vb| LumosT2IMS::load(&spec.prior_config, vb),
        )?;
        let tokenizer = T5Tokenizer::from_file(&spec.tokenizer)?;
        let vae = checkpoints::build_model_of_kind(
            &checkpoints::vae_weights_file(&spec.vae),
            CheckpointKind::Vae,
            DType::F32,
            device,
            |vb| AutoencoderKl::load(&spec.vae_config, vb),
        )?;
        let t5 = &spec.text_encoder_config;
        let mismatch = |what: String| {
            Err(EngineError::InvalidRequest(format!(
                "{}: {what}",
                spec.name
            )))
        };
        if t5.d_model != spec.prior_config.caption_channels {
            return mismatch(format!(
                "the text encoder gives {}-d features but the prior reads {}",
                t5.d_model, spec.prior_config.caption_channels
            ));
        }
        if tokenizer.vocab_size() > t5.vocab_size {
            return mismatch(format!(
                "the tokenizer has {} tokens but the text encoder only {}: they are not a pair",
                tokenizer.vocab_size(),
                t5.vocab_size
            ));
        }
        if spec.vae_config.latent_channels != spec.prior_config.in_channels {
            return mismatch(format!(
                "the prior works on {} channels but the VAE has {}",
                spec.prior_config.in_channels, spec.vae_config.latent_channels
            ));
        }
        Ok(Self {
            spec: spec.clone(),
            device: device.clone(),
            prior,
            tokenizer,
            vae,
            schedule: NoiseSchedule::default(),
            embeddings: HashMap::new(),
            encoder_loads: 0,
        })
    }

    /// The prior.
    pub fn prior(&self) -> &LumosT2IMS {
        &self.prior
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &T5Tokenizer {
        &self.tokenizer
    }

    /// How many times the text encoder was loaded (once per prompt not yet cached).
    pub fn encoder_loads(&self) -> usize {
        self.encoder_loads
    }

    /// The caption features of `prompt`: from the cache, or by loading the T5 encoder,
    /// encoding and dropping it.
    pub fn embed_prompt(&mut self, prompt: &str) -> Result<CaptionEmbedding> {
        let prepared = prepare_prompt(&self.tokenizer, &self.spec.prior_config, prompt)?;
        if let Some(cached) = self.embeddings.get(&prepared.cleaned) {
            // Same encoder input; keep this prompt's own spelling for the report.
            return Ok(CaptionEmbedding {
                prompt: prepared,
                ..cached.clone()
            });
        }
        // Read block by block from the (memory-mapped or zip-indexed) shards: T5-XXL is 19 GB
        // in f32, one block 0.7 GB.
        let path = &self.spec.text_encoder;
        let weights = checkpoints::lazy_hf_weights(path)?;
        checkpoints::ensure_found_kind(path, weights.kind(), CheckpointKind::T5Encoder)?;
        let vb = weights.into_var_builder(DType::F32, &self.device);
        let encoder = T5Encoder::load_streaming(&self.spec.text_encoder_config, vb)
            .map_err(|e| checkpoints::model_error(path, e))?;
        self.encoder_loads += 1;
        let caption = &prepared.caption;
        let l = caption.input_ids.len();
        let ids = Tensor::from_vec(caption.input_ids.clone(), (1, l), &self.device)?;
        let mask = Tensor::from_vec(caption.attention_mask.clone(), (1, l), &self.device)?;
        let features = encoder
            .forward(&ids, Some(&mask))
            .map_err(|e| checkpoints::model_error(path, e))?
            .unsqueeze(1)?; // (1, 1, l, d)
        drop(encoder);
        let embedding = CaptionEmbedding {
            prompt: prepared,
            features,
            mask,
        };
        self.embeddings
            .insert(embedding.prompt.cleaned.clone(), embedding.clone());
        Ok(embedding)
    }

    /// The latent size of `bucket`: its pixels / 8 for a model trained at 1024 px (the demo);
    /// a model trained at another size (`input_size × 8` px, e.g. the 64 px test model) gets
    /// the bucket scaled to that size, rounded to whole patches.
    pub fn latent_hw(&self, bucket: &AspectRatioBucket) -> (usize, usize) {
        let cfg = &self.spec.prior_config;
        let downsampling = 2f64.powi(self.spec.vae_config.block_out_channels.len() as i32 - 1);
        let native_px = cfg.input_size as f64 * downsampling;
        let p = cfg.patch_size as f64;
        let side = |px: u32| -> usize {
            let latent = f64::from(px) * native_px / BUCKET_BASE_PX / downsampling;
            ((latent / p).round().max(1.0) * p) as usize
        };
        (side(bucket.height_px), side(bucket.width_px))
    }

    /// Samples one latent from `noise` `(1, c, h, w)` for a caption, calling `hook` after every
    /// step (an error from it, e.g. `Cancelled`, stops the run).
    pub fn denoise(
        &self,
        caption: &CaptionEmbedding,
        micro: &MicroConditions,
        noise: &Tensor,
        steps: usize,
        guidance: f64,
        hook: &mut StepHook<'_>,
    ) -> Result<Tensor> {
        let b = noise.dim(0)?;
        let condition = caption.features.repeat((b, 1, 1, 1))?;
        let mut predictor = TextGuidance {
            model: &self.prior,
            uncondition: self.prior.null_condition(b)?,
            condition,
            mask: Some(caption.mask.clone()),
            micro: micro.clone(),
            scale: guidance,
        };
        // The T2I demo's `DPMS`: multistep order 2, first order at the end below ten steps.
        let solver = DpmSolverPp {
            order: 2,
            lower_order_final: LowerOrderFinal::BelowTenSteps,
        };
        dpm_solver::sample(
            &solver,
            &self.schedule,
            &self.schedule.time_uniform_grid(steps),
            noise,
            &mut predictor,
            None,
            &mut |s| {
                hook(StepReport::Step {
                    step: s.step,
                    steps: s.steps,
                    preview: None,
                })
            },
        )
    }

    /// Decodes scaled latents to images (`vae.decode(z / 0.18215)`, then the demo's
    /// `clamp(x / 2 + 0.5)` to bytes).
    pub fn decode(&self, latents: &Tensor) -> Result<Vec<RgbImage>> {
        let decoded = self
            .vae
            .decode(&(latents / self.vae.config().scaling_factor)?)?;
        to_images(&decoded)
    }

    /// Runs a whole request.
    pub fn generate(
        &mut self,
        request: &TextToImageRequest,
        hook: &mut StepHook<'_>,
    ) -> Result<TextToImageResult> {
        validate_request(request)?;
        let bucket = closest_bucket(request.height_px, request.width_px)
            .ok_or_else(|| EngineError::InvalidRequest("the image size must not be zero".into()))?;
        let caption = self.embed_prompt(&request.prompt)?;
        let micro = bucket.micro_conditions();
        let (h, w) = self.latent_hw(&bucket);
        let c = self.spec.prior_config.in_channels;
        let mut latents = Vec::with_capacity(request.count);
        for i in 0..request.count {
            let seed = request.seed.wrapping_add(i as u64);
            let noise = crate::noise::gaussian(seed, &[1, c, h, w], &self.device)?;
            latents.push(self.denoise(
                &caption,
                &micro,
                &noise,
                request.steps,
                request.guidance,
                hook,
            )?);
        }
        let latents = Tensor::cat(&latents, 0)?;
        let images = self.decode(&latents)?;
        Ok(TextToImageResult {
            images,
            latents,
            bucket,
            warnings: caption.prompt.warnings(),
            cleaned_prompt: caption.prompt.cleaned,
        })
    }
}
