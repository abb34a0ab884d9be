//! The image tower of OpenAI CLIP (`clip/model.py` `VisionTransformer`, ViT-L/14 in Zero-1-to-3
//! and Stable Zero123), with OpenAI's key names under `cond_stage_model.model.visual.`:
//! `conv1` (no bias), `class_embedding`, `positional_embedding`, `ln_pre`,
//! `transformer.resblocks.N.{ln_1, attn.in_proj_weight, attn.in_proj_bias, attn.out_proj,
//! ln_2, mlp.c_fc, mlp.c_proj}`, `ln_post`, `proj` (applied as `x @ proj`).
//!
//! Written here rather than taken from candle-transformers' CLIP, which reads only the Hugging
//! Face names: the checkpoints store OpenAI's, and `nn.MultiheadAttention`'s fused `in_proj`
//! (rows q, k, v) is exactly the layout of the engine's fused attention kernel that the DINO
//! ViT already uses. Hugging Face `CLIPVisionModelWithProjection` folders are renamed to these
//! keys on load (`checkpoints::zero123`). Pre-LN blocks, QuickGELU, LayerNorm eps 1e-5.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, LayerNorm, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::layers::fused_qkv_attention;

/// CLIP's pixel normalisation.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's pixel normalisation.
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Hyper-parameters (the `clip` section of a Zero123 fixture's config). Defaults: ViT-L/14.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipVisionConfig {
    /// Token width.
    pub width: usize,
    /// Residual blocks.
    pub layers: usize,
    /// Attention heads (OpenAI derives `width / 64`).
    pub heads: usize,
    /// Patch size.
    pub patch: usize,
    /// Input resolution.
    pub resolution: usize,
    /// Output (embedding) width after `proj`.
    pub embed_dim: usize,
}

impl Default for ClipVisionConfig {
    fn default() -> Self {
        Self {
            width: 1024,
            layers: 24,
            heads: 16,
            patch: 14,
            resolution: 224,
            embed_dim: 768,
        }
    }
}

/// One pre-LN residual block.
#[derive(Debug, Clone)]
struct ResidualBlock {
    ln_1: LayerNorm,
    in_proj: Linear,
    out_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    c_proj: Linear,
    heads: usize,
}

impl ResidualBlock {
    fn load(config: &ClipVisionConfig, vb: VarBuilder) -> Result<Self> {
        let w = config.width;
        let attn = vb.pp("attn");
        let in_proj = Linear::new(
            attn.get((3 * w, w), "in_proj_weight")?,
            Some(attn.get(3 * w, "in_proj_bias")?),
        );
        Ok(Self {
            ln_1: candle_nn::layer_norm(w, 1e-5, vb.pp("ln_1"))?,
            in_proj,
            out_proj: candle_nn::linear(w, w, attn.pp("out_proj"))?,
            ln_2: candle_nn::layer_norm(w, 1e-5, vb.pp("ln_2"))?,
            c_fc: candle_nn::linear(w, 4 * w, vb.pp("mlp.c_fc"))?,
            c_proj: candle_nn::linear(4 * w, w, vb.pp("mlp.c_proj"))?,
            heads: config.heads,
        })
    }
}

impl Module for ResidualBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let qkv = self.in_proj.forward(&self.ln_1.forward(x)?)?;
        let x = (x + self
            .out_proj
            .forward(&fused_qkv_attention(&qkv, self.heads)?)?)?;
        let hidden = self.c_fc.forward(&self.ln_2.forward(&x)?)?;
        let quick_gelu = (&hidden * candle_nn::ops::sigmoid(&(&hidden * 1.702)?)?)?;
        &x + self.c_proj.forward(&quick_gelu)?
    }
}

/// What the tower computed, for parity checks.
#[derive(Debug, Clone)]
pub struct ClipVisionTrace {
    /// Tokens after `ln_pre`.
    pub ln_pre_out: Tensor,
    /// Tokens after each residual block.
    pub blocks: Vec<Tensor>,
    /// The CLS token after `ln_post`.
    pub ln_post_out: Tensor,
    /// `ln_post_out @ proj`: the image embedding.
    pub embedding: Tensor,
}

/// The image tower.
#[derive(Debug, Clone)]
pub struct ClipVision {
    conv1: Conv2d,
    class_embedding: Tensor,
    positional_embedding: Tensor,
    ln_pre: LayerNorm,
    blocks: Vec<ResidualBlock>,
    ln_post: LayerNorm,
    proj: Tensor,
    config: ClipVisionConfig,
}

impl ClipVision {
    /// Reads the weights under `vb` (`cond_stage_model.model.visual` in a checkpoint).
    pub fn load(config: &ClipVisionConfig, vb: VarBuilder) -> Result<Self> {
        let w = config.width;
        if config.heads == 0 || !w.is_multiple_of(config.heads) || config.patch == 0 {
            candle_core::bail!(
                "CLIP width {w} does not split into {} heads of patch {}",
                config.heads,
                config.patch
            )
        }
        let grid = config.resolution / config.patch;
        let conv_config = Conv2dConfig {
            stride: config.patch,
            ..Default::default()
        };
        Ok(Self {
            conv1: candle_nn::conv2d_no_bias(3, w, config.patch, conv_config, vb.pp("conv1"))?,
            class_embedding: vb.get(w, "class_embedding")?,
            positional_embedding: vb.get((grid * grid + 1, w), "positional_embedding")?,
            ln_pre: candle_nn::layer_norm(w, 1e-5, vb.pp("ln_pre"))?,
            blocks: (0..config.layers)
                .map(|i| ResidualBlock::load(config, vb.pp("transformer.resblocks").pp(i)))
                .collect::<Result<_>>()?,
            ln_post: candle_nn::layer_norm(w, 1e-5, vb.pp("ln_post"))?,
            proj: vb.get((w, config.embed_dim), "proj")?,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClipVisionConfig {
        &self.config
    }

    /// The image embedding `(b, embed_dim)` of CLIP-normalised pixels
    /// `(b, 3, resolution, resolution)`.
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        Ok(self.forward_traced(pixels)?.embedding)
    }

    /// [`Self::forward`] with its intermediates.
    pub fn forward_traced(&self, pixels: &Tensor) -> Result<ClipVisionTrace> {
        let dtype = self.proj.dtype();
        let patches = self.conv1.forward(&pixels.to_dtype(dtype)?)?;
        let (b, w, _, _) = patches.dims4()?;
        let patches = patches.flatten_from(2)?.transpose(1, 2)?;
        let class = self.class_embedding.reshape((1, 1, w))?.repeat((b, 1, 1))?;
        let tokens = Tensor::cat(&[&class, &patches], 1)?
            .broadcast_add(&self.positional_embedding.unsqueeze(0)?)?;
        let ln_pre_out = self.ln_pre.forward(&tokens)?;
        let mut x = ln_pre_out.clone();
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            x = block.forward(&x)?;
            blocks.push(x.clone());
        }
        let ln_post_out = self.ln_post.forward(&x.narrow(1, 0, 1)?.squeeze(1)?)?;
        let embedding = ln_post_out.matmul(&self.proj)?;
        Ok(ClipVisionTrace {
            ln_pre_out,
            blocks,
            ln_post_out,
            embedding,
        })
    }
}

/// `FrozenCLIPImageEmbedder.preprocess`: images in [−1, 1] `(b, 3, h, w)` resized to
/// `size` × `size` with kornia's bicubic (A = −0.75, `align_corners=True`, no antialiasing
/// even when shrinking, border taps clamped), mapped to [0, 1] and normalised with CLIP's mean
/// and std. Computed in f32 on the CPU.
pub fn preprocess(images: &Tensor, size: usize) -> Result<Tensor> {
    let device = images.device().clone();
    let (b, c, h, w) = images.dims4()?;
    if c != 3 {
        candle_core::bail!("CLIP preprocessing wants 3 channels, got {c}")
    }
    let data = images
        .to_device(&candle_core::Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let rows = bicubic_taps(h, size);
    let cols = bicubic_taps(w, size);
    let mut out = vec![0f32; b * c * size * size];
    let mut horizontal = vec![0f32; h * size];
    for plane in 0..b * c {
        let src = &data[plane * h * w..(plane + 1) * h * w];
        for y in 0..h {
            for (x, taps) in cols.iter().enumerate() {
                horizontal[y * size + x] = taps.iter().map(|&(i, k)| k * src[y * w + i]).sum();
            }
        }
        let channel = plane % c;
        let dst = &mut out[plane * size * size..(plane + 1) * size * size];
        for (y, taps) in rows.iter().enumerate() {
            for x in 0..size {
                let v: f32 = taps
                    .iter()
                    .map(|&(i, k)| k * horizontal[i * size + x])
                    .sum();
                dst[y * size + x] = ((v + 1.0) / 2.0 - CLIP_MEAN[channel]) / CLIP_STD[channel];
            }
        }
    }
    Tensor::from_vec(out, (b, c, size, size), &device)
}

/// Source indices and weights of torch's bicubic interpolation with `align_corners=True`.
fn bicubic_taps(input: usize, output: usize) -> Vec<Vec<(usize, f32)>> {
    const A: f32 = -0.75;
    let cubic_near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let cubic_far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = if output > 1 {
        (input as f32 - 1.0) / (output as f32 - 1.0)
    } else {
        0.0
    };
    (0..output)
        .map(|o| {
            let real = scale * o as f32;
            let index = real.floor();
            let t = real - index;
            let weights = [
                cubic_far(t + 1.0),
                cubic_near(t),
                cubic_near(1.0 - t),
                cubic_far(2.0 - t),
            ];
            weights
                .iter()
                .enumerate()
                .map(|(k, &weight)| {
                    let source = (index as i64 - 1 + k as i64).clamp(0, input as i64 - 1);
                    (source as usize, weight)
                })
                .collect()
        })
        .collect()
}

/// The embedding of images in [−1, 1] as `FrozenCLIPImageEmbedder` computes it:
/// preprocessing then the tower, `(b, embed_dim)` in f32.
pub fn embed_images(tower: &ClipVision, images: &Tensor) -> Result<Tensor> {
    let pixels = preprocess(images, tower.config().resolution)?;
    tower.forward(&pixels)?.to_dtype(DType::F32)
}
