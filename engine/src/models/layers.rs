//! Small building blocks shared by the architectures (candle's own ops where they match).

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// A LayerNorm without learned parameters (PixArt/Lumos use `elementwise_affine=False`).
#[derive(Debug, Clone)]
pub struct PlainLayerNorm {
    ones: Tensor,
    zeros: Tensor,
    eps: f32,
}

impl PlainLayerNorm {
    /// A norm over `dim` features.
    pub fn new(dim: usize, eps: f32, dtype: DType, device: &Device) -> Result<Self> {
        Ok(Self {
            ones: Tensor::ones(dim, dtype, device)?,
            zeros: Tensor::zeros(dim, dtype, device)?,
            eps,
        })
    }
}

impl Module for PlainLayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(&xs.contiguous()?, &self.ones, &self.zeros, self.eps)
    }
}

/// A LayerNorm with `weight` and `bias` (DINO).
#[derive(Debug, Clone)]
pub struct AffineLayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl AffineLayerNorm {
    /// Reads `weight` and `bias` of shape `(dim,)`.
    pub fn load(dim: usize, eps: f32, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            bias: vb.get(dim, "bias")?,
            eps,
        })
    }
}

impl Module for AffineLayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(&xs.contiguous()?, &self.weight, &self.bias, self.eps)
    }
}

/// Softmax attention over `(b, heads, n, d)` queries and `(b, heads, l, d)` keys/values.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let q = (q * scale)?;
    let scores = q.contiguous()?.matmul(&k.t()?.contiguous()?)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    probs.matmul(&v.contiguous()?)
}

/// `(b, n, heads * d)` → `(b, heads, n, d)`.
pub fn split_heads(xs: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, n, c) = xs.dims3()?;
    xs.reshape((b, n, heads, c / heads))?.transpose(1, 2)
}

/// `(b, heads, n, d)` → `(b, n, heads * d)`.
pub fn merge_heads(xs: &Tensor) -> Result<Tensor> {
    let (b, h, n, d) = xs.dims4()?;
    xs.transpose(1, 2)?.contiguous()?.reshape((b, n, h * d))
}
