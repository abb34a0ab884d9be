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

/// A 3×3, stride-1, padding-1 convolution (the VAE's workhorse).
///
/// On the CPU it runs as nine matrix products over shifted views of the padded input — no
/// im2col copy: with the input padded to `(c, h + 3, w + 2)` and flattened, the tap `(dy, dx)`
/// is the `(c, h·(w+2))` window starting at `dy·(w+2) + dx`, a strided view that the GEMM
/// reads in place. Each product yields `w + 2` columns per row, the last two of which are
/// discarded. candle's tiled convolution reaches about a third of the GEMM's speed on this
/// shape. Other devices use candle's `conv2d`.
#[derive(Debug, Clone)]
pub struct Conv3x3 {
    conv: candle_nn::Conv2d,
    /// `weight[:, :, dy, dx]` as `(c_out, c_in)` matrices, row-major by tap.
    taps: Vec<Tensor>,
    bias: Option<Tensor>,
}

impl Conv3x3 {
    /// Reads `weight` `(c_out, c_in, 3, 3)` and `bias` `(c_out,)`.
    pub fn load(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = candle_nn::Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let conv = candle_nn::conv2d(c_in, c_out, 3, cfg, vb)?;
        let weight = conv.weight();
        let taps = (0..9)
            .map(|k| {
                weight
                    .narrow(2, k / 3, 1)?
                    .narrow(3, k % 3, 1)?
                    .squeeze(3)?
                    .squeeze(2)?
                    .contiguous()
            })
            .collect::<Result<Vec<_>>>()?;
        let bias = conv.bias().cloned();
        Ok(Self { conv, taps, bias })
    }
}

impl Module for Conv3x3 {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if !xs.device().is_cpu() {
            return self.conv.forward(xs);
        }
        let (b, c, h, w) = xs.dims4()?;
        let row = w + 2;
        // Pad left/right by 1, top by 1 and bottom by 2 so every shifted window fits.
        let padded = xs
            .pad_with_zeros(3, 1, 1)?
            .pad_with_zeros(2, 1, 2)?
            .reshape((b, c, (h + 3) * row))?;
        let mut outs = Vec::with_capacity(b);
        for i in 0..b {
            let flat = padded.get(i)?;
            let mut acc: Option<Tensor> = None;
            for (k, tap) in self.taps.iter().enumerate() {
                let offset = (k / 3) * row + k % 3;
                let window = flat.narrow(1, offset, h * row)?;
                let product = tap.matmul(&window)?;
                acc = Some(match acc {
                    None => product,
                    Some(sum) => (sum + product)?,
                });
            }
            let Some(acc) = acc else {
                candle_core::bail!("no taps")
            };
            let c_out = acc.dim(0)?;
            outs.push(acc.reshape((c_out, h, row))?.narrow(2, 0, w)?);
        }
        let out = Tensor::stack(&outs, 0)?;
        match &self.bias {
            Some(bias) => out.broadcast_add(&bias.reshape((1, (), 1, 1))?),
            None => out.contiguous(),
        }
    }
}
