//! Zero-1-to-3 (`ldm.models.diffusion.ddpm.LatentDiffusion` with `conditioning_key: hybrid`,
//! `configs/sd-objaverse-finetune-c_concat-256.yaml`), the model family of Zero123,
//! Zero123-XL and Stable Zero123: an SD-1 UNet with 8 input channels, the SD autoencoder, the
//! CLIP ViT-L/14 image tower and `cc_projection`.
//!
//! The condition of a view is one cross-attention token, `cc_projection([clip(input), T])`
//! with `T` the 4-number camera embedding (`crate::camera::zero123`); the input view's latent
//! — the posterior *mean*, unscaled — is concatenated to the noisy latent's channels. Under
//! classifier-free guidance both are replaced by zeros (after the projection), as the
//! original sampler does.
//!
//! Weights are read under the checkpoint's own prefixes: `model.diffusion_model` (the EMA
//! copy moved there on load), `cond_stage_model.model.visual`, `cc_projection`, and
//! `first_stage_model` — the one part stored with diffusers names, since the engine's
//! autoencoder reads those (`checkpoints::zero123` renames the ldm keys).

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::clip_vision::{self, ClipVision, ClipVisionConfig};
use super::ldm_unet::{LdmUnet, LdmUnetConfig};
use super::vae::{AutoencoderKl, VaeConfig};

/// The `ddconfig` of the ldm autoencoder (the `vae` section of a fixture's config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LdmVaeConfig {
    /// Channels of the first level.
    pub ch: usize,
    /// Channel multiplier per level.
    pub ch_mult: Vec<usize>,
    /// ResBlocks per encoder level.
    pub num_res_blocks: usize,
    /// Latent channels.
    pub z_channels: usize,
}

impl Default for LdmVaeConfig {
    fn default() -> Self {
        Self {
            ch: 128,
            ch_mult: vec![1, 2, 4, 4],
            num_res_blocks: 2,
            z_channels: 4,
        }
    }
}

impl LdmVaeConfig {
    /// The same autoencoder in diffusers terms.
    pub fn to_diffusers(&self, scaling_factor: f64) -> VaeConfig {
        VaeConfig {
            in_channels: 3,
            out_channels: 3,
            block_out_channels: self.ch_mult.iter().map(|m| m * self.ch).collect(),
            layers_per_block: self.num_res_blocks,
            latent_channels: self.z_channels,
            norm_num_groups: 32,
            scaling_factor,
            latent_rgb: None,
        }
    }
}

/// Hyper-parameters of a Zero123-family model. Defaults: the published checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Zero123Config {
    /// The UNet.
    pub unet: LdmUnetConfig,
    /// The autoencoder.
    pub vae: LdmVaeConfig,
    /// The CLIP image tower.
    pub clip: ClipVisionConfig,
    /// Latent scaling (`scale_factor`).
    pub scale_factor: f64,
}

impl Default for Zero123Config {
    fn default() -> Self {
        Self {
            unet: LdmUnetConfig::default(),
            vae: LdmVaeConfig::default(),
            clip: ClipVisionConfig::default(),
            scale_factor: 0.18215,
        }
    }
}

/// What `FrozenCLIPImageEmbedder` and `cc_projection` make of an input view.
#[derive(Debug, Clone)]
pub struct ViewCondition {
    /// The CLIP image embedding `(b, 1, embed_dim)`.
    pub clip_embed: Tensor,
    /// The cross-attention context `(b, 1, embed_dim)`.
    pub context: Tensor,
}

/// A Zero123-family model.
#[derive(Debug, Clone)]
pub struct Zero123 {
    /// The image tower.
    pub clip: ClipVision,
    /// `Linear(embed_dim + 4, embed_dim)` over `[clip_embed, T]`.
    pub cc_projection: Linear,
    /// The denoiser (EMA weights).
    pub unet: LdmUnet,
    /// The autoencoder.
    pub vae: AutoencoderKl,
    config: Zero123Config,
}

impl Zero123 {
    /// Builds the model from canonical keys (see the module doc).
    pub fn load(config: &Zero123Config, vb: VarBuilder) -> Result<Self> {
        let embed = config.clip.embed_dim;
        Ok(Self {
            clip: ClipVision::load(&config.clip, vb.pp("cond_stage_model.model.visual"))?,
            cc_projection: candle_nn::linear(embed + 4, embed, vb.pp("cc_projection"))?,
            unet: LdmUnet::load(&config.unet, vb.pp("model.diffusion_model"))?,
            vae: AutoencoderKl::load(
                &config.vae.to_diffusers(config.scale_factor),
                vb.pp("first_stage_model"),
            )?,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Zero123Config {
        &self.config
    }

    /// The device of the weights.
    pub fn device(&self) -> &Device {
        self.cc_projection.weight().device()
    }

    /// Pixels per latent cell.
    pub fn downsampling_factor(&self) -> usize {
        self.vae.config().downsampling_factor()
    }

    /// The conditions of input views in [−1, 1] `(b, 3, h, w)` seen from cameras `T` `(b, 4)`.
    pub fn condition(&self, input_views: &Tensor, cameras: &Tensor) -> Result<ViewCondition> {
        let embedding = clip_vision::embed_images(&self.clip, input_views)?;
        let clip_embed = embedding.unsqueeze(1)?;
        let joined = Tensor::cat(&[&embedding, &cameras.to_dtype(DType::F32)?], 1)?;
        let dtype = self.cc_projection.weight().dtype();
        let context = self
            .cc_projection
            .forward(&joined.to_dtype(dtype)?)?
            .to_dtype(DType::F32)?
            .unsqueeze(1)?;
        Ok(ViewCondition {
            clip_embed,
            context,
        })
    }

    /// The `quant_conv` moments of images in [−1, 1].
    pub fn encode_moments(&self, images: &Tensor) -> Result<Tensor> {
        let dtype = self.unet.dtype();
        self.vae
            .encode_traced(&images.to_dtype(dtype)?)?
            .moments
            .to_dtype(DType::F32)
    }

    /// The input view's latent as the UNet takes it: the posterior mean, unscaled.
    pub fn input_latent(&self, images: &Tensor) -> Result<Tensor> {
        let moments = self.encode_moments(images)?;
        moments.narrow(1, 0, moments.dim(1)? / 2)
    }

    /// Predicted noise of `x_t` at `timesteps` with the input view's latent and the context.
    pub fn predict_noise(
        &self,
        x_t: &Tensor,
        timesteps: &[f32],
        input_latent: &Tensor,
        context: &Tensor,
    ) -> Result<Tensor> {
        let dtype = self.unet.dtype();
        let x_in = Tensor::cat(&[x_t, input_latent], 1)?.to_dtype(dtype)?;
        self.unet
            .forward(&x_in, timesteps, context)?
            .to_dtype(DType::F32)
    }

    /// `decode_first_stage`: sampled latents to images in roughly [−1, 1].
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        // The original multiplies a float32 tensor by the double 1/0.18215 in float32.
        let inverse = (1.0 / self.config.scale_factor) as f32;
        let scaled = (latents.to_dtype(DType::F32)? * inverse as f64)?;
        self.vae
            .decode(&scaled.to_dtype(self.unet.dtype())?)?
            .to_dtype(DType::F32)
    }
}
