//! Staged generation: check the request → embed the references → prepare the noise → denoise
//! (calling a hook between steps for progress, previews and cancellation) → decode.
//!
//! `run` drives a whole [`GenerateRequest`]; the stages are public so that the CLI and the
//! parity checks can feed given noise or conditions.

pub mod aspect_ratio;
pub mod conditions;
pub mod multiview;
pub mod prompt_model;
pub mod text_to_image;
pub mod zero123;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use image::RgbImage;

use crate::checkpoints;
use crate::error::{EngineError, Result};
use crate::models::{AutoencoderKl, ImageEncoder, LumosI2I};
use crate::protocol::{
    DeviceChoice, GenerateRequest, GenerationMeta, LatentPreview, META_VERSION, Mode, ModelSpec,
    ReferenceImage, ReferenceMeta, SamplerSettings, SweepRows,
};
use crate::sampling::{self, ClassifierFreeGuidance, NoiseSchedule};

/// Images denoised together on `device`. A seed must reproduce its image bit for bit however
/// many images it was generated with (and a morph's end frame must equal the single-reference
/// result), so batching is only allowed where rows do not change each other's rounding. On the
/// CPU they do not: the token products have many rows in any batch, so the GEMM takes the same
/// kernels, whose k-blocking depends on k and the caches, never on the rows; the per-sample
/// products (a handful of rows, where the GEMM switches kernels by shape) run row by row (see
/// `models::lumos`); everything else is row- or element-wise. Tests compare seeds generated
/// alone and in batches. Four at a time roughly halves the time of small priors, whose
/// single-image products are too small to keep two cores busy. GPU BLAS libraries choose
/// kernels by shape, so GPUs denoise one image at a time.
pub fn max_batch(device: DeviceChoice) -> usize {
    match device {
        DeviceChoice::Cpu => 4,
        DeviceChoice::Cuda(_) | DeviceChoice::Metal(_) => 1,
    }
}

/// Sampler runs (batches) needed for `images` images on `device`.
pub fn batch_count(images: usize, device: DeviceChoice) -> usize {
    images.div_ceil(max_batch(device))
}

/// Most images one request may ask for.
pub const MAX_IMAGES: usize = 256;
/// Most sampler steps one request may ask for.
pub const MAX_STEPS: usize = 1000;

/// What the pipeline reports to its caller between steps.
#[derive(Debug)]
pub enum StepReport {
    /// A sampler step finished.
    Step {
        step: usize,
        steps: usize,
        preview: Option<LatentPreview>,
    },
    /// An image is ready.
    Image {
        index: usize,
        image: Arc<RgbImage>,
        meta: Box<GenerationMeta>,
    },
}

/// The hook the pipeline calls; returning an error (e.g. `Cancelled`) stops the run.
pub type StepHook<'a> = dyn FnMut(StepReport) -> Result<()> + 'a;

/// A model ready to sample: prior, encoder and (unless it works in pixels) autoencoder on one
/// device.
pub struct LoadedModel {
    /// What it was built from.
    pub spec: ModelSpec,
    /// Where it lives.
    pub device: Device,
    /// The prior.
    pub prior: LumosI2I,
    /// The reference encoder.
    pub encoder: ImageEncoder,
    /// The autoencoder; `None` for a prior that works on pixels.
    pub vae: Option<AutoencoderKl>,
    /// The noise schedule.
    pub schedule: NoiseSchedule,
}

impl LoadedModel {
    /// Loads all three networks: the prior at the spec's precision, the encoder and the VAE
    /// in f32.
    pub fn load(spec: &ModelSpec, device: &Device) -> Result<Self> {
        Self::load_with_prior_overrides(spec, device, HashMap::new())
    }

    /// [`Self::load`] with some prior tensors replaced by `overrides` (a fine-tuned part,
    /// e.g. the built-in prompt model's condition pathway); each must exist in the prior's
    /// file with the same shape, else the request is refused naming it.
    pub fn load_with_prior_overrides(
        spec: &ModelSpec,
        device: &Device,
        overrides: HashMap<String, Tensor>,
    ) -> Result<Self> {
        let dtype = DType::F32;
        let prior_dtype = crate::device::dtype(spec.precision);
        let mut tensors = checkpoints::load_tensors(&spec.prior.path)?;
        for (key, tensor) in overrides {
            match tensors.get(&key) {
                Some(base) if base.dims() == tensor.dims() => {
                    tensors.insert(key, tensor);
                }
                Some(base) => {
                    return Err(EngineError::InvalidRequest(format!(
                        "it replaces the prior's {key} of shape {:?} with one of shape {:?}: \
                         it was made for another prior",
                        base.dims(),
                        tensor.dims()
                    )));
                }
                None => {
                    return Err(EngineError::InvalidRequest(format!(
                        "it replaces {key}, which the prior does not have: it was made for \
                         another prior"
                    )));
                }
            }
        }
        let prior = checkpoints::build_from_tensors(
            &spec.prior.path,
            tensors,
            checkpoints::CheckpointKind::LumosImageToImage,
            prior_dtype,
            device,
            |vb| LumosI2I::load(&spec.prior.config, vb),
        )?;
        let encoder = checkpoints::build_model(&spec.encoder.path, dtype, device, |vb| {
            ImageEncoder::load(&spec.encoder.config, vb)
        })?;
        let vae = match &spec.vae {
            Some(vae) => Some(checkpoints::build_model(
                &checkpoints::vae_weights_file(&vae.path),
                dtype,
                device,
                |vb| AutoencoderKl::load(&vae.config, vb),
            )?),
            None => None,
        };
        if spec.encoder.config.embed_dim() != spec.prior.config.caption_channels {
            return Err(EngineError::InvalidRequest(format!(
                "the encoder gives {}-d embeddings but the prior expects {}",
                spec.encoder.config.embed_dim(),
                spec.prior.config.caption_channels
            )));
        }
        let image_channels = match &vae {
            Some(vae) => vae.config().latent_channels,
            None => 3,
        };
        if image_channels != spec.prior.config.in_channels {
            return Err(EngineError::InvalidRequest(format!(
                "the prior works on {} channels but its {} has {image_channels}",
                spec.prior.config.in_channels,
                if vae.is_some() {
                    "autoencoder"
                } else {
                    "pixel space"
                }
            )));
        }
        Ok(Self {
            spec: spec.clone(),
            device: device.clone(),
            prior,
            encoder,
            vae,
            schedule: NoiseSchedule::default(),
        })
    }

    /// Whether the prior makes novel views (an input view and a camera pose per image) rather
    /// than images from references.
    pub fn is_novel_view(&self) -> bool {
        let config = self.prior.config();
        config.input_view_channels > 0 || config.pose_condition
    }

    /// Latent grid `(channels, height, width)` of the output.
    pub fn latent_shape(&self) -> (usize, usize, usize) {
        let cfg = self.prior.config();
        (cfg.in_channels, cfg.input_size, cfg.input_size)
    }

    /// Output image side length in pixels.
    pub fn image_size_px(&self) -> usize {
        let factor = self
            .vae
            .as_ref()
            .map_or(1, |vae| vae.config().downsampling_factor());
        self.prior.config().input_size * factor
    }

    /// Scaled latents `(b, c, h, w)` (the posterior mean) of images in [-1, 1]; the images
    /// themselves for a pixel-space prior.
    pub fn encode_images(&self, images: &Tensor) -> Result<Tensor> {
        Ok(match &self.vae {
            Some(vae) => (vae.encode(images)?.mean * vae.config().scaling_factor)?,
            None => images.clone(),
        })
    }
}

/// The engine's model cache: the most recently used model (the full model is large, so only
/// one is kept).
#[derive(Default)]
pub struct ModelCache {
    current: Option<(ModelSpec, DeviceChoice, Arc<LoadedModel>)>,
}

impl ModelCache {
    /// The model for `spec` on `device`, loading it on first use.
    pub fn get(&mut self, spec: &ModelSpec, device: DeviceChoice) -> Result<Arc<LoadedModel>> {
        if let Some((cached_spec, cached_device, model)) = &self.current
            && cached_spec == spec
            && *cached_device == device
        {
            return Ok(model.clone());
        }
        self.current = None; // free the old model before loading the new one
        let model = Arc::new(LoadedModel::load(spec, &crate::device::open(device)?)?);
        self.current = Some((spec.clone(), device, model.clone()));
        Ok(model)
    }
}

/// Checks a request before any work is done.
pub fn validate(request: &GenerateRequest) -> Result<()> {
    let invalid = |msg: &str| Err(EngineError::InvalidRequest(msg.into()));
    let s = &request.settings;
    if request.references.is_empty() {
        return invalid("add at least one reference image");
    }
    if s.steps == 0 || s.steps > MAX_STEPS {
        return invalid("steps must be between 1 and 1000");
    }
    if !s.guidance.is_finite() || s.guidance < 0.0 {
        return invalid("guidance must be a finite number ≥ 0");
    }
    if request.references.iter().any(|r| !r.weight.is_finite()) {
        return invalid("reference weights must be finite numbers");
    }
    let images = image_count(&request.mode);
    if images == 0 || images > MAX_IMAGES {
        return invalid("ask for between 1 and 256 images");
    }
    if let Some(init) = &request.init {
        if !(0.0..=1.0).contains(&init.strength) {
            return invalid("strength must be between 0 and 1");
        }
        if let Some(mask) = &init.mask
            && mask.dimensions() != init.image.dimensions()
        {
            return invalid("the mask must have the same size as the starting image");
        }
    }
    match &request.mode {
        Mode::Interpolate { frames, .. } => {
            if request.references.len() < 2 {
                return invalid("interpolation needs at least two references");
            }
            if *frames < 2 {
                return invalid("interpolation needs at least two frames");
            }
        }
        Mode::Sweep { rows, guidance } => {
            if rows.is_empty() || guidance.is_empty() {
                return invalid("a sweep needs at least one row value and one guidance value");
            }
            if guidance.iter().any(|g| !g.is_finite()) {
                return invalid("every guidance value of a sweep must be a number");
            }
            if let SweepRows::Weights(weights) = rows {
                if request.references.len() < 2 {
                    return invalid(
                        "a weight sweep varies the last of several references: add another reference",
                    );
                }
                if weights.iter().any(|w| !w.is_finite()) {
                    return invalid("every weight of a sweep must be a number");
                }
            }
        }
        Mode::Variations { .. } => {}
    }
    Ok(())
}

/// How many images a mode produces.
pub fn image_count(mode: &Mode) -> usize {
    match mode {
        Mode::Variations { count } => *count,
        Mode::Interpolate { frames, path } => conditions::path_weights(*frames, *path).len(),
        Mode::Sweep { rows, guidance } => rows.len() * guidance.len(),
    }
}

/// The references' conditions `(n, tokens · c)`: L2-normalised encoder embeddings, followed by
/// the spatial tokens when the prior has them.
pub fn embed_references(model: &LoadedModel, references: &[ReferenceImage]) -> Result<Tensor> {
    // One reference at a time: an embedding must not depend on which other references share
    // its batch (batched matmuls may round differently), so that a reference mixed with weight
    // 1 gives exactly its single-reference result.
    let grid = model.prior.config().spatial_condition_grid;
    let embeddings = references
        .iter()
        .map(|r| {
            model
                .encoder
                .embed_tokens(&r.image, r.crop, grid, &model.device)
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Tensor::cat(&embeddings, 0)?)
}

/// Denoises a batch from `noise` `(b, c, h, w)` with `condition` `(b, 1, l, cc)`; returns the
/// final latents in the prior's (scaled) space.
pub fn denoise(
    model: &LoadedModel,
    condition: &Tensor,
    noise: &Tensor,
    settings: &SamplerSettings,
    hook: &mut StepHook<'_>,
) -> Result<Tensor> {
    let grid = model.schedule.time_uniform_grid(settings.steps);
    denoise_along(model, condition, noise, &grid, settings, None, hook)
}

/// Denoises `start` along the time grid `grid`, applying `constraint` after every update.
pub fn denoise_along(
    model: &LoadedModel,
    condition: &Tensor,
    start: &Tensor,
    grid: &[f32],
    settings: &SamplerSettings,
    constraint: Option<&mut sampling::Constraint<'_>>,
    hook: &mut StepHook<'_>,
) -> Result<Tensor> {
    let b = start.dim(0)?;
    let guided = ClassifierFreeGuidance {
        model: &model.prior,
        condition: condition.clone(),
        uncondition: model.prior.null_condition(b)?,
        scale: settings.guidance,
    };
    sample_with(
        model,
        Box::new(guided),
        start,
        grid,
        settings,
        constraint,
        hook,
    )
}

/// Samples with `predictor` (the prior's raw output, guided), converted to noise as the prior
/// predicts and clipped for pixel-space priors, reporting steps with previews.
pub fn sample_with<'a>(
    model: &'a LoadedModel,
    mut predictor: Box<dyn sampling::NoisePredictor + 'a>,
    start: &Tensor,
    grid: &[f32],
    settings: &SamplerSettings,
    constraint: Option<&mut sampling::Constraint<'_>>,
    hook: &mut StepHook<'_>,
) -> Result<Tensor> {
    let prediction = model.prior.config().prediction;
    if prediction != crate::models::Prediction::Epsilon {
        predictor = Box::new(sampling::PredictionToNoise {
            inner: predictor,
            prediction,
            schedule: &model.schedule,
        });
    }
    if model.vae.is_none() {
        // Pixel-space priors: clip the implied image to [-1, 1] at every step.
        predictor = Box::new(sampling::ClipDenoised {
            inner: predictor,
            schedule: &model.schedule,
        });
    }
    let mut on_step = |step: sampling::SolverStep<'_>| -> Result<()> {
        let mut preview = latent_preview(step.x0)?;
        preview.rgb = model
            .vae
            .as_ref()
            .and_then(|vae| vae.config().latent_rgb.clone());
        hook(StepReport::Step {
            step: step.step,
            steps: step.steps,
            preview: Some(preview),
        })
    };
    sampling::sample(
        settings.solver,
        &model.schedule,
        grid,
        start,
        &mut predictor,
        constraint,
        &mut on_step,
    )
}

/// A starting image prepared for img2img / inpainting.
pub struct PreparedInit {
    /// The image at the model's size (what unmasked output pixels are copied from).
    pub pixels: RgbImage,
    /// Its latent (posterior mean, scaled), `(1, c, h, w)`.
    pub latent: Tensor,
    /// Repaint strength.
    pub strength: f32,
    /// Repaint mask at the model's size (0..=255), if any.
    pub mask_px: Option<image::GrayImage>,
    /// The mask averaged onto the latent grid, `(1, 1, h, w)` in [0, 1].
    pub mask_latent: Option<Tensor>,
}

/// Resizes and crops the starting image (and mask) like the encoder's preprocessing, but to the
/// model's output size, and encodes it.
pub fn prepare_init(
    model: &LoadedModel,
    init: &crate::protocol::InitImage,
) -> Result<PreparedInit> {
    let size = model.image_size_px() as u32;
    let pixels = crate::preprocess::resize_and_crop(&init.image, size, None);
    let (w, h) = (size as usize, size as usize);
    let latent = model.encode_images(&to_model_input(&pixels, &model.device)?)?;
    let (mask_px, mask_latent) = match &init.mask {
        None => (None, None),
        Some(mask) => {
            let as_rgb = image::DynamicImage::ImageLuma8((**mask).clone()).to_rgb8();
            let resized = crate::preprocess::resize_and_crop(&as_rgb, size, None);
            let mask_px = image::DynamicImage::ImageRgb8(resized).to_luma8();
            let (_, lh, lw) = model.latent_shape();
            let values: Vec<f32> = mask_px
                .as_raw()
                .iter()
                .map(|&v| f32::from(v) / 255.0)
                .collect();
            // Area average onto the latent grid.
            let mask_latent = Tensor::from_vec(values, (1, 1, h, w), &model.device)?
                .avg_pool2d((h / lh, w / lw))?;
            (Some(mask_px), Some(mask_latent))
        }
    };
    Ok(PreparedInit {
        pixels,
        latent,
        strength: init.strength,
        mask_px,
        mask_latent,
    })
}

/// An image as the networks take it: `(1, 3, h, w)` in [-1, 1].
pub fn to_model_input(image: &RgbImage, device: &Device) -> Result<Tensor> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut data = vec![0f32; 3 * w * h];
    for (x, y, p) in image.enumerate_pixels() {
        for c in 0..3 {
            data[c * w * h + y as usize * w + x as usize] = f32::from(p[c]) / 255.0 * 2.0 - 1.0;
        }
    }
    Ok(Tensor::from_vec(data, (1, 3, h, w), device)?)
}

/// img2img / inpainting: noise the starting latent to the strength's time, denoise from there
/// with `ceil(steps × strength)` steps, and (with a mask) keep the unmasked latent on the
/// noised original at every step (masked latent blending).
fn denoise_from_init(
    model: &LoadedModel,
    condition: &Tensor,
    noise: &Tensor,
    init: &PreparedInit,
    settings: &SamplerSettings,
    hook: &mut StepHook<'_>,
) -> Result<Tensor> {
    let original = init.latent.broadcast_as(noise.shape())?.contiguous()?;
    let strength = init.strength.clamp(0.0, 1.0);
    if strength == 0.0 && init.mask_latent.is_none() {
        return Ok(original); // nothing to change: the VAE round trip
    }
    let schedule = &model.schedule;
    let noised_original = |t: f32| -> candle_core::Result<Tensor> {
        (&original * f64::from(schedule.marginal_alpha(t)))?
            + (noise * f64::from(schedule.marginal_std(t)))?
    };
    let (t_start, steps, start) = if strength >= 1.0 {
        (1.0, settings.steps, noise.clone())
    } else {
        let steps = ((settings.steps as f32 * strength).ceil() as usize).max(1);
        let t_start = strength.max(2.0 / schedule.total_n() as f32);
        (t_start, steps, noised_original(t_start)?)
    };
    let grid = schedule.time_uniform_grid_from(t_start, steps);
    let mut blend = init.mask_latent.as_ref().map(|mask| {
        move |t: f32, x: Tensor| -> Result<Tensor> {
            let keep = noised_original(t)?;
            let inverse = mask.affine(-1.0, 1.0)?;
            // x·m + keep·(1 − m)
            Ok((x.broadcast_mul(mask)? + keep.broadcast_mul(&inverse)?)?)
        }
    });
    let constraint = blend.as_mut().map(|f| f as &mut sampling::Constraint<'_>);
    denoise_along(model, condition, &start, &grid, settings, constraint, hook)
}

/// Copies every pixel outside the mask from the original, bit for bit; blends the rest.
pub fn composite(generated: &RgbImage, original: &RgbImage, mask: &image::GrayImage) -> RgbImage {
    let mut out = generated.clone();
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        let m = f32::from(mask.get_pixel(x, y)[0]) / 255.0;
        let orig = original.get_pixel(x, y);
        if m == 0.0 {
            *pixel = *orig;
        } else if m < 1.0 {
            for c in 0..3 {
                let v = m * f32::from(pixel[c]) + (1.0 - m) * f32::from(orig[c]);
                pixel[c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// The live preview of a step: the first image's predicted clean latent.
pub(crate) fn latent_preview(x0: &Tensor) -> Result<LatentPreview> {
    let first = x0.get(0)?.to_dtype(DType::F32)?;
    let (channels, height, width) = first.dims3()?;
    Ok(LatentPreview {
        channels,
        height,
        width,
        data: first.flatten_all()?.to_vec1()?,
        rgb: None,
    })
}

/// Decodes scaled latents to images in [-1, 1] `(b, 3, H, W)` (pixel-space priors' samples
/// already are images).
pub fn decode(model: &LoadedModel, latents: &Tensor) -> Result<Tensor> {
    match &model.vae {
        Some(vae) => Ok(vae.decode(&(latents / vae.config().scaling_factor)?)?),
        None => Ok(latents.clone()),
    }
}

/// The demo's conversion: `clamp(x * 0.5 + 0.5, 0, 1) * 255`, truncated to u8.
pub fn to_images(decoded: &Tensor) -> Result<Vec<RgbImage>> {
    let (b, _, h, w) = decoded.dims4()?;
    let float = decoded
        .to_dtype(DType::F32)?
        .affine(0.5, 0.5)?
        .clamp(0f32, 1f32)?;
    let u8s = (float * 255.0)?
        .permute((0, 2, 3, 1))?
        .contiguous()?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let per_image = h * w * 3;
    (0..b)
        .map(|i| {
            let bytes = u8s[i * per_image..(i + 1) * per_image]
                .iter()
                .map(|&v| v as u8) // truncation, as numpy's astype(uint8)
                .collect();
            RgbImage::from_raw(w as u32, h as u32, bytes)
                .ok_or_else(|| EngineError::InvalidRequest("decoded image has a bad size".into()))
        })
        .collect()
}

/// Runs a whole request, reporting steps and images through `hook`.
pub fn run(model: &LoadedModel, request: &GenerateRequest, hook: &mut StepHook<'_>) -> Result<()> {
    run_with_noise(model, request, None, hook)
}

/// Like [`run`], but every image starts from `noise` `(1, c, h, w)` instead of seeded noise
/// (to reproduce a result whose noise is known, e.g. a reference output).
pub fn run_with_noise(
    model: &LoadedModel,
    request: &GenerateRequest,
    noise: Option<&Tensor>,
    hook: &mut StepHook<'_>,
) -> Result<()> {
    validate(request)?;
    if model.is_novel_view() {
        return Err(EngineError::InvalidRequest(format!(
            "{} is a novel-view prior (an input view and a camera pose per image): use the \
             multi-view mode",
            model.spec.name
        )));
    }
    let embeddings = embed_references(model, &request.references)?;
    let weights: Vec<f32> = request.references.iter().map(|r| r.weight).collect();
    // The global embedding, then grid² spatial tokens (what `embed_references` made).
    let grid = model.prior.config().spatial_condition_grid;
    let tokens = 1 + grid * grid;
    let plan = conditions::plan(&embeddings, tokens, &weights, &request.mode, request.mix)?;
    let init = request
        .init
        .as_ref()
        .map(|init| prepare_init(model, init))
        .transpose()?;
    let init_sha256 = request
        .init
        .as_ref()
        .map(|init| crate::imageio::pixel_hash(&init.image));
    let mask_sha256 = request
        .init
        .as_ref()
        .and_then(|init| init.mask.as_ref())
        .map(|mask| crate::imageio::bytes_hash(mask.as_raw()));
    let (c, h, w) = model.latent_shape();
    let references: Vec<ReferenceMeta> = request
        .references
        .iter()
        .map(|r| ReferenceMeta {
            name: r.name.clone(),
            sha256: crate::imageio::pixel_hash(&r.image),
            weight: r.weight,
            crop: r.crop,
        })
        .collect();
    let size = model.image_size_px() as u32;
    let total = plan.conditions.dim(0)?;
    let mut start = 0;
    while start < total {
        let guidance = plan.guidance_for(request.settings.guidance, start);
        // A batch shares its sampler settings: it ends where a sweep's guidance changes.
        let len = (start..total)
            .take(max_batch(request.device))
            .take_while(|&i| plan.guidance_for(request.settings.guidance, i) == guidance)
            .count();
        let settings = SamplerSettings {
            guidance,
            ..request.settings.clone()
        };
        let seeds: Vec<u64> = (start..start + len)
            .map(|i| plan.seed_for(request.settings.seed, i))
            .collect();
        let batch_noise = match noise {
            Some(given) => given
                .to_device(&model.device)?
                .to_dtype(DType::F32)?
                .broadcast_as((len, c, h, w))
                .map_err(|_| {
                    EngineError::InvalidRequest(format!(
                        "the given noise has shape {:?}; this model needs (1, {c}, {h}, {w})",
                        given.dims()
                    ))
                })?
                .contiguous()?,
            None => {
                let per_image = seeds
                    .iter()
                    .map(|&seed| crate::noise::gaussian(seed, &[1, c, h, w], &model.device))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Tensor::cat(&per_image, 0)?
            }
        };
        let condition = plan
            .conditions
            .narrow(0, start, len)?
            .reshape((len, 1, tokens, ()))?;
        let latents = match &init {
            None => denoise(model, &condition, &batch_noise, &settings, hook)?,
            Some(init) => {
                denoise_from_init(model, &condition, &batch_noise, init, &settings, hook)?
            }
        };
        let mut images = to_images(&decode(model, &latents)?)?;
        if let Some(PreparedInit {
            pixels,
            mask_px: Some(mask),
            ..
        }) = &init
        {
            for image in &mut images {
                *image = composite(image, pixels, mask);
            }
        }
        for (offset, (image, seed)) in images.into_iter().zip(seeds).enumerate() {
            let index = start + offset;
            let mut references = references.clone();
            if let Some(weights) = plan.cells.get(index).and_then(|c| c.weights.as_ref()) {
                for (reference, &weight) in references.iter_mut().zip(weights) {
                    reference.weight = weight;
                }
            }
            let meta = GenerationMeta {
                version: META_VERSION,
                model: request.model.name.clone(),
                mode: request.mode.clone(),
                settings: SamplerSettings {
                    seed,
                    ..settings.clone()
                },
                index,
                mix: plan.mix.get(index).copied(),
                references,
                size: [size, size],
                parent: None,
                mix_settings: request.mix,
                strength: request.init.as_ref().map(|i| i.strength),
                init_sha256: init_sha256.clone(),
                mask_sha256: mask_sha256.clone(),
                prompt: None,
            };
            hook(StepReport::Image {
                index,
                image: Arc::new(image),
                meta: Box::new(meta),
            })?;
        }
        start += len;
    }
    Ok(())
}
