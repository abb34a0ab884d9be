//! The DINO ViT (`lumos_diffusion/model/dino/vision_transformer.py`, ViT-B/16 as in
//! `dino_vitbase16_pretrain.pth`): its CLS token, L2-normalised, is Lumos' condition.
//!
//! Keys have no prefix (`cls_token`, `pos_embed`, `patch_embed.proj.weight`,
//! `blocks.0.attn.qkv.weight`, `norm.weight`); `module.`/`backbone.` prefixes are stripped by
//! the checkpoint loader. Pre-norm blocks, LayerNorm eps 1e-6, exact (erf) GELU.

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};
use serde::{Deserialize, Serialize};

use super::fast_ops::{Activation, DenseLinear};
use super::layers::{AffineLayerNorm, attention, fused_qkv_attention, merge_heads, split_heads};

/// Hyper-parameters of the DINO ViT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DinoConfig {
    /// Training image size (the positional embedding's grid is `img_size / patch_size`).
    #[serde(
        default = "default_img_size",
        deserialize_with = "img_size_from_list_or_number"
    )]
    pub img_size: usize,
    /// Patch size.
    pub patch_size: usize,
    /// Input channels.
    #[serde(default = "three")]
    pub in_chans: usize,
    /// Width.
    pub embed_dim: usize,
    /// Blocks.
    pub depth: usize,
    /// Heads.
    pub num_heads: usize,
    /// MLP width as a multiple of `embed_dim`.
    pub mlp_ratio: f64,
}

fn default_img_size() -> usize {
    224
}
fn three() -> usize {
    3
}

/// The original config writes `img_size=[224]`; accept a list or a number.
fn img_size_from_list_or_number<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> std::result::Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        One(usize),
        List(Vec<usize>),
    }
    match Size::deserialize(de)? {
        Size::One(n) => Ok(n),
        Size::List(v) => v
            .first()
            .copied()
            .ok_or_else(|| serde::de::Error::custom("empty img_size")),
    }
}

impl DinoConfig {
    /// ViT-B/16 as in `dino_vitbase16_pretrain.pth`.
    pub fn vit_base_16() -> Self {
        Self {
            img_size: 224,
            patch_size: 16,
            in_chans: 3,
            embed_dim: 768,
            depth: 12,
            num_heads: 12,
            mlp_ratio: 4.0,
        }
    }

    fn base_grid(&self) -> usize {
        self.img_size / self.patch_size
    }
}

/// One pre-norm ViT block.
#[derive(Debug, Clone)]
struct VitBlock {
    norm1: AffineLayerNorm,
    qkv: DenseLinear,
    proj: DenseLinear,
    norm2: AffineLayerNorm,
    fc1: DenseLinear,
    fc2: DenseLinear,
    num_heads: usize,
}

impl VitBlock {
    fn load(cfg: &DinoConfig, vb: VarBuilder) -> Result<Self> {
        let c = cfg.embed_dim;
        let hidden = (c as f64 * cfg.mlp_ratio) as usize;
        Ok(Self {
            norm1: AffineLayerNorm::load(c, 1e-6, vb.pp("norm1"))?,
            qkv: DenseLinear::load(c, 3 * c, vb.pp("attn").pp("qkv"))?,
            proj: DenseLinear::load(c, c, vb.pp("attn").pp("proj"))?,
            norm2: AffineLayerNorm::load(c, 1e-6, vb.pp("norm2"))?,
            fc1: DenseLinear::load(c, hidden, vb.pp("mlp").pp("fc1"))?,
            fc2: DenseLinear::load(hidden, c, vb.pp("mlp").pp("fc2"))?,
            num_heads: cfg.num_heads,
        })
    }

    fn attn(&self, xs: &Tensor) -> Result<Tensor> {
        let merged = fused_qkv_attention(&self.qkv.forward(xs)?, self.num_heads)?;
        self.proj.forward(&merged)
    }

    /// The MLP half of the block, with its residual.
    fn mlp_residual(&self, xs: &Tensor) -> Result<Tensor> {
        let hidden = self
            .fc1
            .forward_activated(&self.norm2.forward(xs)?, Activation::GeluErf)?;
        xs + self.fc2.forward(&hidden)?
    }

    /// The block's output for the CLS token alone, `(b, 1, c)`: every token's keys and values,
    /// but the CLS token's query, output projection and MLP only — what the last block needs
    /// when only the CLS token is read (a ~7 % cut of ViT-B/16's forward at 224 px).
    fn forward_cls(&self, xs: &Tensor) -> Result<Tensor> {
        let qkv = self.qkv.forward(&self.norm1.forward(xs)?)?;
        let c = qkv.dim(2)? / 3;
        let heads =
            |rows: &Tensor, offset: usize| split_heads(&rows.narrow(2, offset, c)?, self.num_heads);
        let cls_row = qkv.narrow(1, 0, 1)?;
        let head_dim = c / self.num_heads;
        let merged = merge_heads(&attention(
            &heads(&cls_row, 0)?,
            &heads(&qkv, c)?,
            &heads(&qkv, 2 * c)?,
            1.0 / (head_dim as f64).sqrt(),
        )?)?;
        let cls = (xs.narrow(1, 0, 1)? + self.proj.forward(&merged)?)?;
        self.mlp_residual(&cls)
    }
}

impl Module for VitBlock {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = (xs + self.attn(&self.norm1.forward(xs)?)?)?;
        self.mlp_residual(&xs)
    }
}

/// Intermediates for parity checks.
#[derive(Debug, Clone)]
pub struct DinoTrace {
    /// The positional embedding used (interpolated for non-224 inputs), `(1, 1+n, c)`.
    pub pos_embed_used: Tensor,
    /// Tokens after `prepare_tokens`, `(b, 1+n, c)`.
    pub tokens: Tensor,
    /// Block outputs.
    pub blocks: Vec<Tensor>,
    /// The final-norm CLS token, `(b, c)`.
    pub cls: Tensor,
}

/// The DINO vision transformer (no head).
#[derive(Debug, Clone)]
pub struct DinoVit {
    patch_embed: Conv2d,
    cls_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<VitBlock>,
    norm: AffineLayerNorm,
    config: DinoConfig,
}

impl DinoVit {
    /// Builds the model from weights with the original key names.
    pub fn load(config: &DinoConfig, vb: VarBuilder) -> Result<Self> {
        let c = config.embed_dim;
        let p = config.patch_size;
        let grid = config.base_grid();
        let conv_cfg = Conv2dConfig {
            stride: p,
            ..Default::default()
        };
        Ok(Self {
            patch_embed: candle_nn::conv2d(
                config.in_chans,
                c,
                p,
                conv_cfg,
                vb.pp("patch_embed").pp("proj"),
            )?,
            cls_token: vb.get((1, 1, c), "cls_token")?,
            pos_embed: vb.get((1, 1 + grid * grid, c), "pos_embed")?,
            blocks: (0..config.depth)
                .map(|i| VitBlock::load(config, vb.pp("blocks").pp(i)))
                .collect::<Result<_>>()?,
            norm: AffineLayerNorm::load(c, 1e-6, vb.pp("norm"))?,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DinoConfig {
        &self.config
    }

    /// The positional embedding for an `h × w` pixel input (interpolated unless it is the
    /// training grid), `(1, 1 + (h/p)(w/p), c)`.
    pub fn pos_embed_for(&self, height: usize, width: usize) -> Result<Tensor> {
        let p = self.config.patch_size;
        let grid = self.config.base_grid();
        let (gh, gw) = (height / p, width / p);
        if gh * gw == grid * grid && height == width {
            return Ok(self.pos_embed.clone());
        }
        let c = self.config.embed_dim;
        let cls_pos = self.pos_embed.narrow(1, 0, 1)?;
        let patch_pos = self
            .pos_embed
            .narrow(1, 1, grid * grid)?
            .squeeze(0)?
            .to_dtype(candle_core::DType::F32)?
            .to_device(&Device::Cpu)?
            .to_vec2::<f32>()?;
        let scale_h = (gh as f64 + 0.1) / grid as f64;
        let scale_w = (gw as f64 + 0.1) / grid as f64;
        let resized = bicubic_resize_tokens(&patch_pos, grid, c, scale_h, scale_w);
        let out_h = (grid as f64 * scale_h).floor() as usize;
        let out_w = (grid as f64 * scale_w).floor() as usize;
        let patch_pos = Tensor::from_vec(resized, (1, out_h * out_w, c), self.pos_embed.device())?
            .to_dtype(self.pos_embed.dtype())?;
        Tensor::cat(&[&cls_pos, &patch_pos], 1)
    }

    /// CLS features of normalised images `(b, 3, h, w)` → `(b, c)`. The last block runs for
    /// the CLS token only (`forward_traced` runs it for every token).
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (tokens, _) = self.tokens(xs)?;
        let Some((last, blocks)) = self.blocks.split_last() else {
            return self.norm.forward(&tokens.narrow(1, 0, 1)?)?.squeeze(1);
        };
        let mut xs = tokens;
        for block in blocks {
            xs = block.forward(&xs)?;
        }
        self.norm.forward(&last.forward_cls(&xs)?)?.squeeze(1)
    }

    /// `prepare_tokens`: patch embeddings after the CLS token, plus the positional embedding
    /// (returned too).
    fn tokens(&self, xs: &Tensor) -> Result<(Tensor, Tensor)> {
        let xs = xs.to_dtype(self.pos_embed.dtype())?;
        let (b, _, h, w) = xs.dims4()?;
        let c = self.config.embed_dim;
        let patches = self
            .patch_embed
            .forward(&xs)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let cls = self.cls_token.broadcast_as((b, 1, c))?;
        let pos_embed_used = self.pos_embed_for(h, w)?;
        let tokens = Tensor::cat(&[&cls, &patches], 1)?.broadcast_add(&pos_embed_used)?;
        Ok((tokens, pos_embed_used))
    }

    /// The forward pass with intermediates.
    pub fn forward_traced(&self, xs: &Tensor) -> Result<DinoTrace> {
        let (tokens, pos_embed_used) = self.tokens(xs)?;
        let mut xs = tokens.clone();
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            xs = block.forward(&xs)?;
            blocks.push(xs.clone());
        }
        let cls = self.norm.forward(&xs)?.narrow(1, 0, 1)?.squeeze(1)?;
        Ok(DinoTrace {
            pos_embed_used,
            tokens,
            blocks,
            cls,
        })
    }
}

/// `F.normalize(x, dim=-1)` (eps 1e-12) on `(b, c)` features, reshaped to the condition layout
/// `(b, 1, 1, c)` that LumosI2I expects.
pub fn condition_from_cls(cls: &Tensor) -> Result<Tensor> {
    let (b, c) = cls.dims2()?;
    let norm = cls.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    cls.broadcast_div(&norm)?.reshape((b, 1, 1, c))
}

/// Cubic convolution weights (PyTorch's `A = -0.75`) for fractional offset `t`.
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// `F.interpolate(mode="bicubic", align_corners=False, scale_factor=(sh, sw))` on a square grid
/// of `c`-dim tokens (row-major), the way PyTorch computes it in f32: the source coordinate
/// uses the *given* scale factor, taps are clamped to the border.
fn bicubic_resize_tokens(
    tokens: &[Vec<f32>],
    grid: usize,
    c: usize,
    scale_h: f64,
    scale_w: f64,
) -> Vec<f32> {
    let out_h = (grid as f64 * scale_h).floor() as usize;
    let out_w = (grid as f64 * scale_w).floor() as usize;
    let inv_h = (1.0 / scale_h) as f32;
    let inv_w = (1.0 / scale_w) as f32;
    let taps = |dst: usize, inv: f32| -> ([usize; 4], [f32; 4]) {
        let real = inv * (dst as f32 + 0.5) - 0.5;
        let base = real.floor();
        let weights = cubic_weights(real - base);
        let base = base as i64;
        let idx = [-1i64, 0, 1, 2].map(|o| (base + o).clamp(0, grid as i64 - 1) as usize);
        (idx, weights)
    };
    let mut out = vec![0f32; out_h * out_w * c];
    for oy in 0..out_h {
        let (ys, wy) = taps(oy, inv_h);
        for ox in 0..out_w {
            let (xs, wx) = taps(ox, inv_w);
            let dst = &mut out[(oy * out_w + ox) * c..(oy * out_w + ox + 1) * c];
            for ch in 0..c {
                // PyTorch interpolates along x first (per row), then combines the rows.
                let mut acc = 0f32;
                for (ky, &y) in ys.iter().enumerate() {
                    let row = &tokens[y * grid..(y + 1) * grid];
                    let mut along_x = 0f32;
                    for (kx, &x) in xs.iter().enumerate() {
                        along_x += row[x][ch] * wx[kx];
                    }
                    acc += along_x * wy[ky];
                }
                dst[ch] = acc;
            }
        }
    }
    out
}
