//! The job protocol between a front end (the app, the CLI) and the engine thread.
//!
//! Requests are imperative, events are statuses. Every submitted `Generate`, `Multiview`,
//! `TextToImage` or `LoadModel` ends in exactly one terminal event (`Finished`, `Cancelled` or `Failed`);
//! `Started` is sent when a job begins to run. Job ids only increase. Results carry their full
//! settings (`GenerationMeta`; a view, its camera and seed) so that any image can be
//! reproduced.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::models::{EncoderConfig, LumosConfig, VaeConfig};

/// Identifies one job; assigned by the handle, strictly increasing.
pub type JobId = u64;

/// Where the engine computes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceChoice {
    /// The CPU (always available).
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal (builds with the `cuda` feature).
    Cuda(usize),
    /// A Metal GPU by ordinal (builds with the `metal` feature, Apple only).
    Metal(usize),
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
            Self::Metal(i) => write!(f, "metal:{i}"),
        }
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, ordinal) = s.split_once(':').unwrap_or((s, "0"));
        let ordinal: usize = ordinal
            .parse()
            .map_err(|_| format!("bad device ordinal in `{s}`"))?;
        match kind {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(ordinal)),
            "metal" => Ok(Self::Metal(ordinal)),
            _ => Err(format!(
                "unknown device `{s}` (use cpu, cuda[:N] or metal[:N])"
            )),
        }
    }
}

/// Numeric precision of the model weights and activations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    /// 32-bit floats (the only sensible choice on a CPU).
    #[default]
    F32,
    /// 16-bit floats (GPUs).
    F16,
    /// bfloat16 (GPUs).
    Bf16,
}

/// One weights file plus the configuration of the network it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentSpec<C> {
    /// A `.pth` or `.safetensors` file (for the VAE: a diffusers folder or its safetensors file).
    pub path: PathBuf,
    /// The network's hyper-parameters.
    pub config: C,
}

/// Everything needed to build a Lumos image-to-image model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Short name shown to users and recorded in metadata.
    pub name: String,
    /// Precision of the prior (the encoder and the VAE always run in f32, as diffusers'
    /// `force_upcast` does for this VAE).
    #[serde(default)]
    pub precision: Precision,
    /// The Lumos DiT prior.
    pub prior: ComponentSpec<LumosConfig>,
    /// The image encoder that turns a reference into the condition token.
    pub encoder: ComponentSpec<EncoderConfig>,
    /// The autoencoder whose latent space the prior works in; `None` when the prior works
    /// directly on pixels in [-1, 1] (the small default).
    #[serde(default)]
    pub vae: Option<ComponentSpec<VaeConfig>>,
    /// The guidance scale this model was measured best at, when its makers say so (the
    /// built-in multi-view model: 1, no guidance); front ends start from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance: Option<f64>,
    /// For a novel-view model: the share of the view's side references are scaled to fill
    /// (their object's longer side) before views are made. `None`: 0.8, the Zero123 demo's
    /// framing; the built-in model beats copying the input by more there than at its
    /// training views' median, 0.5 (`lumos eval-multiview --recenter`, its model card).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_fill: Option<f32>,
}

impl ModelSpec {
    /// Whether the prior makes novel views (an input view and a camera pose per image) rather
    /// than images from references: what `LoadedModel::is_novel_view` says once loaded, known
    /// here before loading so that a front end can say so at once.
    pub fn is_novel_view(&self) -> bool {
        let config = &self.prior.config;
        config.input_view_channels > 0 || config.pose_condition
    }
}

/// Which ODE solver samples the prior.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Solver {
    /// DPM-Solver++ multistep (data prediction) of the given order (1..=3).
    DpmSolverPp { order: usize },
    /// DDIM (deterministic, eta = 0).
    Ddim,
}

impl Default for Solver {
    fn default() -> Self {
        Self::DpmSolverPp { order: 2 }
    }
}

impl std::fmt::Display for Solver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DpmSolverPp { order } => write!(f, "DPM-Solver++ {order}M"),
            Self::Ddim => write!(f, "DDIM"),
        }
    }
}

/// Sampler settings shared by every mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplerSettings {
    /// Number of solver steps (= network evaluations).
    pub steps: usize,
    /// Classifier-free guidance scale (1 = no guidance).
    pub guidance: f64,
    /// The solver.
    pub solver: Solver,
    /// Seed of the first image; image `i` of a variations batch uses `seed + i`.
    pub seed: u64,
}

impl Default for SamplerSettings {
    fn default() -> Self {
        Self {
            steps: 20,
            guidance: 4.5,
            solver: Solver::default(),
            seed: 0,
        }
    }
}

/// How an interpolation path mixes two embeddings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InterpolationPath {
    /// Exactly the original demo: weights `arange(0, 1, 1/n)`; never reaches the second image.
    #[default]
    Demo,
    /// Linear, weights `k / (n - 1)`: first and last frames are the two references.
    Endpoints,
    /// Spherical linear interpolation with endpoints reached.
    Slerp,
}

/// What to generate from the references.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Mode {
    /// `count` images from the (weighted) references, each with its own seed.
    Variations { count: usize },
    /// `frames` images along a path from the first to the last reference, sharing one noise.
    Interpolate {
        frames: usize,
        path: InterpolationPath,
    },
    /// An X/Y grid (A1111's X/Y plot): one row per `rows` value, one column per guidance
    /// scale; image `row × columns + column`.
    Sweep {
        /// What the rows vary.
        rows: SweepRows,
        /// The guidance scale of each column.
        guidance: Vec<f64>,
    },
}

/// The rows of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SweepRows {
    /// One row per seed.
    Seeds(Vec<u64>),
    /// One row per weight of the last reference (every cell shares the request's seed).
    Weights(Vec<f32>),
}

impl SweepRows {
    /// Seed rows from typed numbers, refusing fractions and negatives with a reason.
    pub fn seeds_from(values: &[f64]) -> Result<Self, String> {
        values
            .iter()
            .map(|&v| {
                if v.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&v) {
                    Ok(v as u64)
                } else {
                    Err(format!("seeds are whole numbers from 0 up; {v} is not one"))
                }
            })
            .collect::<Result<_, _>>()
            .map(Self::Seeds)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Self::Seeds(v) => v.len(),
            Self::Weights(v) => v.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The label of row `index` (`seed 3`, `w 0.5`).
    pub fn label(&self, index: usize) -> String {
        match self {
            Self::Seeds(v) => format!("seed {}", v[index]),
            Self::Weights(v) => format!("w {}", v[index]),
        }
    }
}

/// A reference image as the engine receives it.
#[derive(Clone, Debug)]
pub struct ReferenceImage {
    /// Display name (file name).
    pub name: String,
    /// The pixels.
    pub image: Arc<image::RgbImage>,
    /// Mixing weight (used by weighted blends of several references).
    pub weight: f32,
    /// Where the encoder's 224×224 crop sits after resizing, as fractions (0.5, 0.5 = centre,
    /// the original demo). `None` is exactly the demo's centre crop.
    pub crop: Option<[f32; 2]>,
}

/// How several reference embeddings are mixed into one condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MixMethod {
    /// Weighted sum of the unit embeddings, divided by the weights' sum (when it is not 0).
    #[default]
    Linear,
    /// Successive spherical interpolation (for two references: slerp by the second's share).
    Spherical,
}

/// The progression of frames along an interpolation path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ease {
    /// Evenly spaced.
    #[default]
    Linear,
    /// Slow at both ends (smoothstep).
    Smooth,
}

/// Mixer settings for blends of references and interpolation paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MixSettings {
    /// Linear or spherical mixing.
    pub method: MixMethod,
    /// Re-normalise the mixed embedding to unit length (the prior was trained on unit ones).
    pub renormalize: bool,
    /// Frame spacing of interpolation paths (not the demo path, which is reproduced as is).
    pub ease: Ease,
}

impl Default for MixSettings {
    fn default() -> Self {
        Self {
            method: MixMethod::Linear,
            renormalize: true,
            ease: Ease::Linear,
        }
    }
}

/// Start from an existing image instead of pure noise: img2img (SDEdit) and inpainting.
#[derive(Clone, Debug)]
pub struct InitImage {
    /// The starting image (any size; centre-cropped and resized to the model's size).
    pub image: Arc<image::RgbImage>,
    /// How much to change it: 0 keeps it (up to the VAE round trip), 1 ignores it.
    pub strength: f32,
    /// Repaint mask at the image's size (255 = repaint, 0 = keep exactly), already feathered.
    pub mask: Option<Arc<image::GrayImage>>,
}

/// A complete generation request.
#[derive(Clone, Debug)]
pub struct GenerateRequest {
    /// The model to use (loaded lazily, cached by the engine).
    pub model: ModelSpec,
    /// Device to run on.
    pub device: DeviceChoice,
    /// Reference images (at least one).
    pub references: Vec<ReferenceImage>,
    /// What to generate.
    pub mode: Mode,
    /// Sampler settings.
    pub settings: SamplerSettings,
    /// Start from an image (img2img / inpainting) instead of pure noise.
    pub init: Option<InitImage>,
    /// How references are mixed.
    pub mix: MixSettings,
}

/// A Zero123-family checkpoint (Zero-1-to-3, Zero123-XL, Stable Zero123) as a multi-view
/// model: an ldm `.ckpt`/safetensors file (sizes from a `config.json` with a `unet` section
/// beside it, else the published ones) or a diffusers folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Zero123Spec {
    /// Short name shown to users and recorded with the set.
    pub name: String,
    /// The checkpoint file or diffusers folder.
    pub path: PathBuf,
    /// Precision of its networks (f32 on the CPU).
    #[serde(default)]
    pub precision: Precision,
}

/// The model that makes a multi-view set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MultiviewModel {
    /// A Lumos novel-view model (the Lumos NVS design), sampled with the job's solver.
    NovelView(Box<ModelSpec>),
    /// A Zero123-family checkpoint, sampled as its demo does (ldm DDIM, the demo's η).
    Zero123(Zero123Spec),
}

impl MultiviewModel {
    /// Its name as shown to users.
    pub fn name(&self) -> &str {
        match self {
            Self::NovelView(spec) => &spec.name,
            Self::Zero123(spec) => &spec.name,
        }
    }
}

/// A multi-view job: views of the object in one reference from other cameras on an orbit.
#[derive(Clone, Debug)]
pub struct MultiviewJob {
    /// The model (loaded lazily, cached by the engine like any other; one model family is
    /// resident at a time).
    pub model: MultiviewModel,
    /// The reference, its camera, the views to make and the sampler settings.
    pub request: crate::pipelines::multiview::MultiviewRequest,
}

/// Which model makes images from a prompt.
#[derive(Clone, Debug)]
pub enum PromptModelChoice {
    /// The published Lumos T2I model: where its parts are (loaded on first use and kept until
    /// another model is needed; its T5 encoder is loaded per new prompt and dropped).
    Published(Box<crate::pipelines::text_to_image::TextToImageSpec>),
    /// The small prompt model compiled into the engine (or another in its format).
    BuiltIn(Box<crate::pipelines::prompt_model::PromptModelFiles>),
}

impl PromptModelChoice {
    /// The built-in prompt model.
    pub fn builtin() -> crate::error::Result<Self> {
        Ok(Self::BuiltIn(Box::new(
            crate::pipelines::prompt_model::PromptModelFiles::builtin()?,
        )))
    }

    /// Display name.
    pub fn name(&self) -> &str {
        match self {
            Self::Published(spec) => &spec.name,
            Self::BuiltIn(files) => &files.name,
        }
    }
}

/// A text-to-image job: images from a prompt with a text-to-image model.
#[derive(Clone, Debug)]
pub struct TextToImageJob {
    /// The model.
    pub model: PromptModelChoice,
    /// Where it runs.
    pub device: DeviceChoice,
    /// The prompt, size, steps, guidance, seed and count.
    pub request: crate::pipelines::text_to_image::TextToImageRequest,
}

/// Requests the front end sends to the engine.
#[derive(Clone, Debug)]
pub enum Request {
    /// Load (and cache) a model so that the first generation starts faster.
    LoadModel {
        job: JobId,
        model: Box<ModelSpec>,
        device: DeviceChoice,
    },
    /// Generate images.
    Generate {
        job: JobId,
        request: Box<GenerateRequest>,
    },
    /// Make a multi-view set.
    Multiview {
        job: JobId,
        request: Box<MultiviewJob>,
    },
    /// Make images from a prompt.
    TextToImage {
        job: JobId,
        request: Box<TextToImageJob>,
    },
    /// Stop the engine thread.
    Shutdown,
    /// Make the engine thread die as a bug would (a panic outside any job), so that front ends
    /// can test their recovery. Never sent in normal operation.
    #[doc(hidden)]
    CrashForTest,
}

/// A latent x0 prediction for a live preview: one image, channel-major `(c, h, w)`.
#[derive(Clone, Debug)]
pub struct LatentPreview {
    /// Latent channels (4).
    pub channels: usize,
    /// Latent height.
    pub height: usize,
    /// Latent width.
    pub width: usize,
    /// `channels * height * width` values, in the model's (scaled) latent units.
    pub data: Vec<f32>,
    /// The model's own latent → RGB map, when its autoencoder brings one (the built-in
    /// model's); `None`: RGB for 3 channels, the SD-1.x map for 4.
    pub rgb: Option<crate::models::vae::LatentRgbFactors>,
}

/// Statuses the engine reports.
#[derive(Clone, Debug)]
pub enum Event {
    /// The job began to run.
    Started {
        job: JobId,
        /// Number of images the job will produce.
        images: usize,
        /// Sampler steps per batch.
        steps: usize,
    },
    /// A sampler step finished (may be dropped when the front end is slow).
    Progress {
        job: JobId,
        /// 1-based step just finished.
        step: usize,
        /// Total steps of the current batch.
        steps: usize,
        /// x0 prediction of the first image in the batch.
        preview: Option<LatentPreview>,
    },
    /// A model finished loading.
    ModelReady {
        job: JobId,
        name: String,
        device: DeviceChoice,
    },
    /// One finished image with its settings.
    Image {
        job: JobId,
        index: usize,
        image: Arc<image::RgbImage>,
        meta: Box<GenerationMeta>,
    },
    /// One finished view of a multi-view job.
    View {
        job: JobId,
        view: Box<crate::pipelines::multiview::View>,
    },
    /// The reference of a multi-view job as the model saw it (the set's frame 0); sent once it
    /// is prepared, before any view.
    InputView {
        job: JobId,
        input: Box<crate::pipelines::multiview::PreparedInput>,
    },
    /// Something the user should be told about a job that still goes on (a prompt cut at the
    /// encoder's length, characters it cannot read).
    Notice { job: JobId, message: String },
    /// Terminal: the job completed.
    Finished { job: JobId },
    /// Terminal: the job was cancelled before completing.
    Cancelled { job: JobId },
    /// Terminal: the job failed; `error` says what happened and what to do.
    Failed { job: JobId, error: String },
}

impl Event {
    /// The job this event belongs to.
    pub fn job(&self) -> JobId {
        match self {
            Self::Started { job, .. }
            | Self::Progress { job, .. }
            | Self::ModelReady { job, .. }
            | Self::Image { job, .. }
            | Self::View { job, .. }
            | Self::InputView { job, .. }
            | Self::Notice { job, .. }
            | Self::Finished { job }
            | Self::Cancelled { job }
            | Self::Failed { job, .. } => *job,
        }
    }

    /// Whether this is the last event of its job.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Finished { .. } | Self::Cancelled { .. } | Self::Failed { .. }
        )
    }
}

/// A reference as recorded in metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceMeta {
    /// File name.
    pub name: String,
    /// SHA-256 of the RGB pixels (hex).
    pub sha256: String,
    /// Mixing weight.
    pub weight: f32,
    /// Crop position, if moved.
    #[serde(default)]
    pub crop: Option<[f32; 2]>,
}

/// Everything needed to reproduce one image; embedded in every PNG the engine writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationMeta {
    /// Schema version of this struct.
    pub version: u32,
    /// Model name.
    pub model: String,
    /// Mode of the run.
    pub mode: Mode,
    /// Sampler settings; `settings.seed` is this image's own seed.
    pub settings: SamplerSettings,
    /// Index of this image in its run.
    pub index: usize,
    /// Embedding mixing weight of the last reference along an interpolation path, if any.
    #[serde(default)]
    pub mix: Option<f64>,
    /// The references.
    pub references: Vec<ReferenceMeta>,
    /// Width and height in pixels.
    pub size: [u32; 2],
    /// File this image was derived from, if any.
    #[serde(default)]
    pub parent: Option<String>,
    /// How the references were mixed.
    #[serde(default)]
    pub mix_settings: MixSettings,
    /// img2img strength, when the run started from an image.
    #[serde(default)]
    pub strength: Option<f32>,
    /// SHA-256 of the starting image's pixels, when the run started from an image.
    #[serde(default)]
    pub init_sha256: Option<String>,
    /// SHA-256 of the repaint mask, when there was one.
    #[serde(default)]
    pub mask_sha256: Option<String>,
    /// The prompt of a text-to-image result (the first line of its A1111 `parameters`).
    #[serde(default)]
    pub prompt: Option<String>,
}

/// Current schema version of [`GenerationMeta`].
pub const META_VERSION: u32 = 1;
