//! The Stable Diffusion autoencoder (diffusers `AutoencoderKL`, e.g. `sd-vae-ft-mse`).
//!
//! Written here rather than taken from candle-transformers because its `encode` only returns a
//! randomly sampled latent (unseeded, mean and log-variance private, log-variance not clamped),
//! while img2img and the parity fixtures need the posterior mean and its intermediates. Keys
//! follow the diffusers layout (`encoder.down_blocks.0.resnets.0.conv1.weight`, ...); both
//! attention spellings are accepted: `to_q/to_k/to_v/to_out.0` and the legacy
//! `query/key/value/proj_attn` of older SD-1.x VAE files (the one place keys are renamed).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Linear, VarBuilder};

use super::layers::{Conv3x3, DownsampleConv3x3, GroupNormSilu};
use serde::{Deserialize, Serialize};

/// Hyper-parameters (diffusers `config.json` field names; unknown fields are ignored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VaeConfig {
    /// Image channels in.
    #[serde(default = "three")]
    pub in_channels: usize,
    /// Image channels out.
    #[serde(default = "three")]
    pub out_channels: usize,
    /// Channels per resolution level.
    pub block_out_channels: Vec<usize>,
    /// Resnets per encoder level (the decoder has one more).
    pub layers_per_block: usize,
    /// Latent channels.
    #[serde(default = "four")]
    pub latent_channels: usize,
    /// GroupNorm groups.
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    /// Latent scaling factor (0.18215 for SD-1.x).
    #[serde(default = "sd_scale")]
    pub scaling_factor: f64,
    /// The live preview's linear map from the scaled latent to RGB, for autoencoders whose
    /// latent space is not SD-1.x's (the built-in model's, fitted by its trainer); `None`:
    /// the front end's SD-1.x map. Not a diffusers field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_rgb: Option<LatentRgbFactors>,
}

/// `rgb[c] = Σ_k latent[k] · matrix[k][c] + bias[c]`, RGB in [-1, 1].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentRgbFactors {
    /// One row per latent channel; columns R, G, B.
    pub matrix: Vec<[f32; 3]>,
    /// Added after the product.
    pub bias: [f32; 3],
}

fn three() -> usize {
    3
}
fn four() -> usize {
    4
}
fn thirty_two() -> usize {
    32
}
fn sd_scale() -> f64 {
    0.18215
}

impl VaeConfig {
    /// `stabilityai/sd-vae-ft-mse`.
    pub fn sd_vae_ft_mse() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: 2,
            latent_channels: 4,
            norm_num_groups: 32,
            scaling_factor: 0.18215,
            latent_rgb: None,
        }
    }

    /// Pixels per latent cell along each axis.
    pub fn downsampling_factor(&self) -> usize {
        1 << (self.block_out_channels.len().saturating_sub(1))
    }
}

/// GroupNorm eps of the autoencoder (ldm's `Normalize`).
pub const NORM_EPS: f64 = 1e-6;

fn conv1x1(cin: usize, cout: usize, vb: VarBuilder) -> Result<Conv2d> {
    candle_nn::conv2d(cin, cout, 1, Default::default(), vb)
}

/// `ResnetBlock2D` without time embedding.
#[derive(Debug, Clone)]
pub struct ResnetBlock {
    norm1: GroupNormSilu,
    conv1: Conv3x3,
    norm2: GroupNormSilu,
    conv2: Conv3x3,
    conv_shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    /// Reads a block from `cin` to `cout` channels.
    pub fn load(cin: usize, cout: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: GroupNormSilu::load(groups, cin, NORM_EPS, true, vb.pp("norm1"))?,
            conv1: Conv3x3::load(cin, cout, vb.pp("conv1"))?,
            norm2: GroupNormSilu::load(groups, cout, NORM_EPS, true, vb.pp("norm2"))?,
            conv2: Conv3x3::load(cout, cout, vb.pp("conv2"))?,
            conv_shortcut: (cin != cout)
                .then(|| conv1x1(cin, cout, vb.pp("conv_shortcut")))
                .transpose()?,
        })
    }
}

impl Module for ResnetBlock {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward(xs)?)?;
        let h = self.conv2.forward(&self.norm2.forward(&h)?)?;
        match &self.conv_shortcut {
            Some(shortcut) => shortcut.forward(xs)? + h,
            None => xs + h,
        }
    }
}

/// Single-head spatial self-attention of the mid block.
#[derive(Debug, Clone)]
struct SpatialAttention {
    group_norm: GroupNormSilu,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
}

impl SpatialAttention {
    fn load(channels: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        let linear = |name: &str| candle_nn::linear(channels, channels, vb.pp(name));
        let legacy = !vb.contains_tensor("to_q.weight") && vb.contains_tensor("query.weight");
        let (q, k, v, out) = if legacy {
            ("query", "key", "value", "proj_attn")
        } else {
            ("to_q", "to_k", "to_v", "to_out.0")
        };
        Ok(Self {
            group_norm: GroupNormSilu::load(
                groups,
                channels,
                NORM_EPS,
                false,
                vb.pp("group_norm"),
            )?,
            to_q: linear(q)?,
            to_k: linear(k)?,
            to_v: linear(v)?,
            to_out: linear(out)?,
        })
    }
}

impl Module for SpatialAttention {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        // (b, c, h, w) → (b, h*w, c): positions are tokens
        let tokens = self
            .group_norm
            .forward(xs)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = self.to_q.forward(&tokens)?;
        let k = self.to_k.forward(&tokens)?;
        let v = self.to_v.forward(&tokens)?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (c as f64).sqrt()))?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = self.to_out.forward(&probs.matmul(&v)?)?;
        let out = out.transpose(1, 2)?.reshape((b, c, h, w))?;
        xs + out
    }
}

/// `UNetMidBlock2D`: resnet, attention, resnet.
#[derive(Debug, Clone)]
struct MidBlock {
    resnet_0: ResnetBlock,
    attention: SpatialAttention,
    resnet_1: ResnetBlock,
}

impl MidBlock {
    fn load(channels: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            resnet_0: ResnetBlock::load(channels, channels, groups, vb.pp("resnets").pp(0))?,
            attention: SpatialAttention::load(channels, groups, vb.pp("attentions").pp(0))?,
            resnet_1: ResnetBlock::load(channels, channels, groups, vb.pp("resnets").pp(1))?,
        })
    }
}

impl Module for MidBlock {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = self.resnet_0.forward(xs)?;
        let xs = self.attention.forward(&xs)?;
        self.resnet_1.forward(&xs)
    }
}

/// A resolution level: resnets, then an optional downsampling (encoder) or upsampling
/// (decoder) conv.
#[derive(Debug, Clone)]
struct Level {
    resnets: Vec<ResnetBlock>,
    downsample: Option<DownsampleConv3x3>,
    upsample: Option<Conv3x3>,
}

/// Encoder intermediates (for parity checks).
#[derive(Debug, Clone)]
pub struct EncoderTrace {
    /// After `conv_in`.
    pub conv_in: Tensor,
    /// After each down block.
    pub down_blocks: Vec<Tensor>,
    /// After the mid block.
    pub mid_block: Tensor,
    /// Encoder output (before `quant_conv`).
    pub out: Tensor,
    /// After `quant_conv`: mean and log-variance stacked on channels.
    pub moments: Tensor,
}

/// Decoder intermediates (for parity checks).
#[derive(Debug, Clone)]
pub struct DecoderTrace {
    /// After `post_quant_conv`.
    pub post_quant_conv: Tensor,
    /// After `conv_in`.
    pub conv_in: Tensor,
    /// After the mid block.
    pub mid_block: Tensor,
    /// After each up block.
    pub up_blocks: Vec<Tensor>,
    /// The decoded image in [-1, 1] (unclamped).
    pub decoded: Tensor,
}

/// The encoder's Gaussian posterior.
#[derive(Debug, Clone)]
pub struct Posterior {
    /// Mean, `(b, latent, h/f, w/f)`.
    pub mean: Tensor,
    /// Log-variance clamped to [-30, 20].
    pub logvar: Tensor,
}

impl Posterior {
    /// Standard deviation `exp(logvar / 2)`.
    pub fn std(&self) -> Result<Tensor> {
        (&self.logvar * 0.5)?.exp()
    }
}

/// The autoencoder.
#[derive(Debug, Clone)]
pub struct AutoencoderKl {
    enc_conv_in: Conv3x3,
    enc_levels: Vec<Level>,
    enc_mid: MidBlock,
    enc_norm_out: GroupNormSilu,
    enc_conv_out: Conv3x3,
    quant_conv: Conv2d,
    post_quant_conv: Conv2d,
    dec_conv_in: Conv3x3,
    dec_mid: MidBlock,
    dec_levels: Vec<Level>,
    dec_norm_out: GroupNormSilu,
    dec_conv_out: Conv3x3,
    config: VaeConfig,
}

impl AutoencoderKl {
    /// Builds the model from diffusers-layout weights.
    pub fn load(config: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let channels = &config.block_out_channels;
        let groups = config.norm_num_groups;
        let latent = config.latent_channels;
        let Some(&top) = channels.last() else {
            candle_core::bail!("block_out_channels is empty")
        };

        let enc = vb.pp("encoder");
        let mut enc_levels = Vec::with_capacity(channels.len());
        let mut cin = channels[0];
        for (i, &cout) in channels.iter().enumerate() {
            let block = enc.pp("down_blocks").pp(i);
            let resnets = (0..config.layers_per_block)
                .map(|j| {
                    let from = if j == 0 { cin } else { cout };
                    ResnetBlock::load(from, cout, groups, block.pp("resnets").pp(j))
                })
                .collect::<Result<_>>()?;
            let downsample = (i + 1 < channels.len())
                .then(|| {
                    DownsampleConv3x3::load(cout, cout, block.pp("downsamplers").pp(0).pp("conv"))
                })
                .transpose()?;
            enc_levels.push(Level {
                resnets,
                downsample,
                upsample: None,
            });
            cin = cout;
        }

        let dec = vb.pp("decoder");
        let mut dec_levels = Vec::with_capacity(channels.len());
        let mut cin = top;
        for (i, &cout) in channels.iter().rev().enumerate() {
            let block = dec.pp("up_blocks").pp(i);
            let resnets = (0..=config.layers_per_block)
                .map(|j| {
                    let from = if j == 0 { cin } else { cout };
                    ResnetBlock::load(from, cout, groups, block.pp("resnets").pp(j))
                })
                .collect::<Result<_>>()?;
            let upsample = (i + 1 < channels.len())
                .then(|| Conv3x3::load(cout, cout, block.pp("upsamplers").pp(0).pp("conv")))
                .transpose()?;
            dec_levels.push(Level {
                resnets,
                downsample: None,
                upsample,
            });
            cin = cout;
        }

        Ok(Self {
            enc_conv_in: Conv3x3::load(config.in_channels, channels[0], enc.pp("conv_in"))?,
            enc_levels,
            enc_mid: MidBlock::load(top, groups, enc.pp("mid_block"))?,
            enc_norm_out: GroupNormSilu::load(
                groups,
                top,
                NORM_EPS,
                true,
                enc.pp("conv_norm_out"),
            )?,
            enc_conv_out: Conv3x3::load(top, 2 * latent, enc.pp("conv_out"))?,
            quant_conv: conv1x1(2 * latent, 2 * latent, vb.pp("quant_conv"))?,
            post_quant_conv: conv1x1(latent, latent, vb.pp("post_quant_conv"))?,
            dec_conv_in: Conv3x3::load(latent, top, dec.pp("conv_in"))?,
            dec_mid: MidBlock::load(top, groups, dec.pp("mid_block"))?,
            dec_levels,
            dec_norm_out: GroupNormSilu::load(
                groups,
                channels[0],
                NORM_EPS,
                true,
                dec.pp("conv_norm_out"),
            )?,
            dec_conv_out: Conv3x3::load(channels[0], config.out_channels, dec.pp("conv_out"))?,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// Encodes images in [-1, 1] `(b, 3, h, w)`, keeping intermediates.
    pub fn encode_traced(&self, xs: &Tensor) -> Result<EncoderTrace> {
        let conv_in = self.enc_conv_in.forward(xs)?;
        let mut xs = conv_in.clone();
        let mut down_blocks = Vec::with_capacity(self.enc_levels.len());
        for level in &self.enc_levels {
            for resnet in &level.resnets {
                xs = resnet.forward(&xs)?;
            }
            if let Some(conv) = &level.downsample {
                xs = conv.forward(&xs)?;
            }
            down_blocks.push(xs.clone());
        }
        let mid_block = self.enc_mid.forward(&xs)?;
        let out = self
            .enc_conv_out
            .forward(&self.enc_norm_out.forward(&mid_block)?)?;
        let moments = self.quant_conv.forward(&out)?;
        Ok(EncoderTrace {
            conv_in,
            down_blocks,
            mid_block,
            out,
            moments,
        })
    }

    /// The posterior of images in [-1, 1].
    pub fn encode(&self, xs: &Tensor) -> Result<Posterior> {
        let moments = self.encode_traced(xs)?.moments;
        Self::posterior(&moments)
    }

    /// Splits `quant_conv` moments into mean and clamped log-variance.
    pub fn posterior(moments: &Tensor) -> Result<Posterior> {
        let latent = moments.dim(1)? / 2;
        Ok(Posterior {
            mean: moments.narrow(1, 0, latent)?,
            logvar: moments.narrow(1, latent, latent)?.clamp(-30f32, 20f32)?,
        })
    }

    /// Decodes unscaled latents (already divided by the scaling factor), keeping intermediates.
    pub fn decode_traced(&self, latents: &Tensor) -> Result<DecoderTrace> {
        let post_quant_conv = self.post_quant_conv.forward(latents)?;
        let conv_in = self.dec_conv_in.forward(&post_quant_conv)?;
        let mid_block = self.dec_mid.forward(&conv_in)?;
        let mut xs = mid_block.clone();
        let mut up_blocks = Vec::with_capacity(self.dec_levels.len());
        for level in &self.dec_levels {
            for resnet in &level.resnets {
                xs = resnet.forward(&xs)?;
            }
            if let Some(conv) = &level.upsample {
                let (_, _, h, w) = xs.dims4()?;
                xs = conv.forward(&xs.upsample_nearest2d(2 * h, 2 * w)?)?;
            }
            up_blocks.push(xs.clone());
        }
        let decoded = self
            .dec_conv_out
            .forward(&self.dec_norm_out.forward(&xs)?)?;
        Ok(DecoderTrace {
            post_quant_conv,
            conv_in,
            mid_block,
            up_blocks,
            decoded,
        })
    }

    /// Decodes unscaled latents into images in roughly [-1, 1].
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        Ok(self.decode_traced(latents)?.decoded)
    }
}
