//! Small building blocks shared by the architectures (candle's own ops where they match).

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::fast_ops::{cpu_f32_values, exp_vectorisable, fold_lanes, vectorised};

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
        if xs.track_op() {
            // Training: candle's fused layer norm has no backward.
            if let Some(normed) = super::fast_ops::trainable_layer_norm(xs, self.eps)? {
                return Ok(normed);
            }
            return candle_nn::ops::layer_norm_slow(xs, &self.ones, &self.zeros, self.eps);
        }
        super::fast_ops::layer_norm(xs, &self.ones, &self.zeros, self.eps)
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
        super::fast_ops::layer_norm(xs, &self.weight, &self.bias, self.eps)
    }
}

/// Softmax attention over `(b, heads, n, d)` queries and `(b, heads, l, d)` keys/values.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let q = (q * scale)?;
    let scores = q.contiguous()?.matmul(&k.t()?.contiguous()?)?;
    let probs = if scores.track_op() {
        candle_nn::ops::softmax(&scores, candle_core::D::Minus1)? // differentiable
    } else {
        candle_nn::ops::softmax_last_dim(&scores)?
    };
    probs.matmul(&v.contiguous()?)
}

/// Multi-head self-attention from a fused `[q | k | v]` projection `(b, n, 3c)` (timm's
/// layout, used by both the DiT and the ViT): returns the merged heads `(b, n, c)`, before the
/// output projection.
pub fn fused_qkv_attention(qkv: &Tensor, heads: usize) -> Result<Tensor> {
    if let Some(out) = super::fast_ops::fused_qkv_attention_cpu(qkv, heads)? {
        return Ok(out);
    }
    let (b, n, c3) = qkv.dims3()?;
    let head_dim = c3 / 3 / heads;
    // (b, n, 3, heads, d) → (3, b, heads, n, d)
    let qkv = qkv
        .reshape((b, n, 3, heads, head_dim))?
        .permute((2, 0, 3, 1, 4))?;
    let out = attention(
        &qkv.get(0)?,
        &qkv.get(1)?,
        &qkv.get(2)?,
        1.0 / (head_dim as f64).sqrt(),
    )?;
    merge_heads(&out)
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
/// On the CPU (f32) it runs as nine accumulating matrix products over shifted views of the
/// padded input — no im2col copy: with the input padded to `(c, h + 3, w + 2)` and flattened,
/// the tap `(dy, dx)` is the `(c, h·(w+2))` window starting at `dy·(w+2) + dx`, a strided view
/// that the GEMM reads in place, and every tap adds into one output buffer. Each product
/// yields `w + 2` columns per row, the last two of which are discarded. candle's tiled
/// convolution reaches about a third of the GEMM's speed on these shapes. Other devices and
/// dtypes use candle's `conv2d`.
#[derive(Debug, Clone)]
pub struct Conv3x3 {
    conv: candle_nn::Conv2d,
    /// `weight[:, :, dy, dx]` as row-major `(c_out, c_in)` matrices, one per tap (empty when
    /// the Winograd filters are used instead).
    taps: Vec<Vec<f32>>,
    bias: Option<Vec<f32>>,
    /// The same filters for Winograd's F(2×2, 3×3), used when there are enough channels for
    /// its transforms to pay off.
    winograd: Option<super::winograd::WinogradConv3x3>,
    c_in: usize,
    c_out: usize,
}

/// Input channels from which the Winograd path is used (below, the direct products win: the
/// transforms cost as much as the multiplies they save).
const WINOGRAD_MIN_CHANNELS: usize = 16;

impl Conv3x3 {
    /// Reads `weight` `(c_out, c_in, 3, 3)` and `bias` `(c_out,)`.
    pub fn load(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = candle_nn::Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let conv = candle_nn::conv2d(c_in, c_out, 3, cfg, vb)?;
        let cpu_f32 = |t: &Tensor| t.to_device(&Device::Cpu)?.to_dtype(DType::F32);
        let weight = cpu_f32(conv.weight())?;
        let bias = conv
            .bias()
            .map(|b| cpu_f32(b)?.to_vec1::<f32>())
            .transpose()?;
        // One CPU layout of the filters: Winograd's when there are channels enough, else the
        // nine per-tap matrices of the direct products.
        let (taps, winograd) = if c_in >= WINOGRAD_MIN_CHANNELS {
            let flat = weight.flatten_all()?.to_vec1::<f32>()?;
            let transformed =
                super::winograd::WinogradConv3x3::new(super::winograd::F4X4, &flat, c_in, c_out);
            (Vec::new(), Some(transformed))
        } else {
            let taps = (0..9)
                .map(|k| {
                    weight
                        .narrow(2, k / 3, 1)?
                        .narrow(3, k % 3, 1)?
                        .flatten_all()?
                        .to_vec1::<f32>()
                })
                .collect::<Result<Vec<_>>>()?;
            (taps, None)
        };
        Ok(Self {
            conv,
            taps,
            bias,
            winograd,
            c_in,
            c_out,
        })
    }

    fn forward_cpu(&self, xs: &[f32], b: usize, h: usize, w: usize) -> Vec<f32> {
        let (c_in, c_out) = (self.c_in, self.c_out);
        if let Some(winograd) = &self.winograd {
            let mut out = vec![0f32; b * c_out * h * w];
            for (image, dst) in xs.chunks(c_in * h * w).zip(out.chunks_mut(c_out * h * w)) {
                winograd.forward(image, h, w, self.bias.as_deref(), dst);
            }
            return out;
        }
        let row = w + 2;
        let plane = (h + 3) * row;
        let n = h * row;
        let threads = rayon::current_num_threads();
        let mut out = vec![0f32; b * c_out * h * w];
        let mut padded = vec![0f32; c_in * plane];
        let mut acc = vec![0f32; c_out * n];
        for i in 0..b {
            // Copy the image into the padded buffer (1 left/right/top, 2 bottom).
            let image = &xs[i * c_in * h * w..(i + 1) * c_in * h * w];
            for c in 0..c_in {
                for y in 0..h {
                    let src = &image[(c * h + y) * w..(c * h + y + 1) * w];
                    let dst = c * plane + (y + 1) * row + 1;
                    padded[dst..dst + w].copy_from_slice(src);
                }
            }
            for (k, tap) in self.taps.iter().enumerate() {
                let offset = (k / 3) * row + k % 3;
                // SAFETY: dst is `c_out × n` row-major; lhs is `c_out × c_in` row-major; rhs
                // reads rows of `n` values starting at `offset + c·plane`, and
                // `offset + n ≤ 2·row + 2 + h·row ≤ plane`, so every access is in bounds.
                unsafe {
                    gemm::gemm(
                        c_out,
                        n,
                        c_in,
                        acc.as_mut_ptr(),
                        1,
                        n as isize,
                        k > 0,
                        tap.as_ptr(),
                        1,
                        c_in as isize,
                        padded.as_ptr().add(offset),
                        1,
                        plane as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::Rayon(threads),
                    );
                }
            }
            let dst = &mut out[i * c_out * h * w..(i + 1) * c_out * h * w];
            for co in 0..c_out {
                let bias = self.bias.as_ref().map_or(0.0, |b| b[co]);
                for y in 0..h {
                    let src = &acc[co * n + y * row..co * n + y * row + w];
                    let d = &mut dst[(co * h + y) * w..(co * h + y + 1) * w];
                    for (d, s) in d.iter_mut().zip(src) {
                        *d = s + bias;
                    }
                }
            }
        }
        out
    }
}

impl Module for Conv3x3 {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if !xs.device().is_cpu() || xs.dtype() != DType::F32 {
            return self.conv.forward(xs);
        }
        let (b, c, h, w) = xs.dims4()?;
        if c != self.c_in {
            candle_core::bail!("conv3x3: {c} input channels, expected {}", self.c_in)
        }
        let xs = xs.contiguous()?;
        let (storage, layout) = xs.storage_and_layout();
        let data = cpu_f32_values(&storage, layout, "conv3x3")?;
        let out = self.forward_cpu(data, b, h, w);
        Tensor::from_vec(out, (b, self.c_out, h, w), xs.device())
    }
}

/// GroupNorm with an optionally fused SiLU, as the VAE uses it (`GroupNorm → SiLU` before
/// every convolution). On the CPU (f32) one parallel pass per group computes the statistics
/// (in f64) and writes the normalised, scaled and activated values; candle's `GroupNorm` takes
/// about ten single-purpose passes over activations of up to 33 MB. Other devices and dtypes
/// use candle's ops.
#[derive(Debug, Clone)]
pub struct GroupNormSilu {
    norm: candle_nn::GroupNorm,
    weight: Vec<f32>,
    bias: Vec<f32>,
    groups: usize,
    eps: f64,
    silu: bool,
}

impl GroupNormSilu {
    /// Reads `weight` and `bias` `(channels,)`; `silu` fuses the activation.
    pub fn load(
        groups: usize,
        channels: usize,
        eps: f64,
        silu: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let norm = candle_nn::group_norm(groups, channels, eps, vb.clone())?;
        let cpu = |name: &str| -> Result<Vec<f32>> {
            vb.get(channels, name)?
                .to_device(&Device::Cpu)?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()
        };
        Ok(Self {
            weight: cpu("weight")?,
            bias: cpu("bias")?,
            norm,
            groups,
            eps,
            silu,
        })
    }
}

impl Module for GroupNormSilu {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if !xs.device().is_cpu() || xs.dtype() != DType::F32 {
            let normed = self.norm.forward(xs)?;
            return if self.silu { normed.silu() } else { Ok(normed) };
        }
        let dims = xs.dims().to_vec();
        let c = dims[1];
        let spatial: usize = dims[2..].iter().product();
        if !c.is_multiple_of(self.groups) {
            candle_core::bail!("{c} channels do not split into {} groups", self.groups)
        }
        let per_group = c / self.groups;
        let group_len = per_group * spatial;
        let xs = xs.contiguous()?;
        let (storage, layout) = xs.storage_and_layout();
        let data = cpu_f32_values(&storage, layout, "group-norm")?;
        let mut out = vec![0f32; data.len()];
        use rayon::prelude::*;
        out.par_chunks_mut(group_len)
            .zip(data.par_chunks(group_len))
            .enumerate()
            .for_each(|(index, (dst, src))| {
                vectorised(|| {
                    let group = index % self.groups;
                    let n = src.len() as f64;
                    let sum = |a: f64, b: f64| a + b;
                    let mean = fold_lanes(src, 0.0, |acc, v| acc + f64::from(v), sum) / n;
                    let var =
                        fold_lanes(src, 0.0, |acc, v| acc + (f64::from(v) - mean).powi(2), sum) / n;
                    let inv_std = 1.0 / (var + self.eps).sqrt();
                    for (ci, (dst, src)) in
                        dst.chunks_mut(spatial).zip(src.chunks(spatial)).enumerate()
                    {
                        let channel = group * per_group + ci;
                        let scale = (inv_std * f64::from(self.weight[channel])) as f32;
                        let shift = (f64::from(self.bias[channel])
                            - mean * inv_std * f64::from(self.weight[channel]))
                            as f32;
                        for (d, &s) in dst.iter_mut().zip(src) {
                            let y = s * scale + shift;
                            *d = if self.silu {
                                y / (1.0 + exp_vectorisable(-y))
                            } else {
                                y
                            };
                        }
                    }
                })
            });
        Tensor::from_vec(out, dims, xs.device())
    }
}

/// The autoencoder's downsampling convolution: 3×3, stride 2, the input padded by one zero
/// row and column on the right and bottom only (diffusers' `Downsample2D` with padding 0).
///
/// On the CPU (f32) it runs as one matrix product over an explicit im2col of the strided
/// taps (candle's strided convolution reaches about a quarter of the GEMM's speed here and
/// took a third of the encoder's time). Other devices and dtypes pad and use candle's
/// `conv2d`.
#[derive(Debug, Clone)]
pub struct DownsampleConv3x3 {
    conv: candle_nn::Conv2d,
    /// `(c_out, c_in·9)` row-major.
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    c_in: usize,
    c_out: usize,
}

impl DownsampleConv3x3 {
    /// Reads `weight` `(c_out, c_in, 3, 3)` and `bias` `(c_out,)`.
    pub fn load(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = candle_nn::Conv2dConfig {
            stride: 2,
            ..Default::default()
        };
        let conv = candle_nn::conv2d(c_in, c_out, 3, cfg, vb)?;
        let cpu_f32 = |t: &Tensor| t.to_device(&Device::Cpu)?.to_dtype(DType::F32);
        let weight = cpu_f32(conv.weight())?.flatten_all()?.to_vec1::<f32>()?;
        let bias = conv
            .bias()
            .map(|b| cpu_f32(b)?.to_vec1::<f32>())
            .transpose()?;
        Ok(Self {
            conv,
            weight,
            bias,
            c_in,
            c_out,
        })
    }
}

impl Module for DownsampleConv3x3 {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if !xs.device().is_cpu() || xs.dtype() != DType::F32 {
            return self
                .conv
                .forward(&xs.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?);
        }
        let (b, c, h, w) = xs.dims4()?;
        if c != self.c_in {
            candle_core::bail!("conv3x3/2: {c} input channels, expected {}", self.c_in)
        }
        // Padded to (h + 1, w + 1), then (n − 3)/2 + 1 outputs per side.
        let (oh, ow) = ((h + 1 - 3) / 2 + 1, (w + 1 - 3) / 2 + 1);
        let (k, n) = (c * 9, oh * ow);
        let xs = xs.contiguous()?;
        let (storage, layout) = xs.storage_and_layout();
        let data = cpu_f32_values(&storage, layout, "conv3x3/2")?;
        let threads = rayon::current_num_threads();
        let mut out = vec![0f32; b * self.c_out * n];
        let mut columns = vec![0f32; k * n];
        use rayon::prelude::*;
        for (image, dst) in data.chunks(c * h * w).zip(out.chunks_mut(self.c_out * n)) {
            columns
                .par_chunks_mut(9 * n)
                .enumerate()
                .for_each(|(ci, rows)| {
                    let plane = &image[ci * h * w..(ci + 1) * h * w];
                    for (tap, row) in rows.chunks_mut(n).enumerate() {
                        let (ky, kx) = (tap / 3, tap % 3);
                        for oy in 0..oh {
                            let y = 2 * oy + ky;
                            let dst = &mut row[oy * ow..(oy + 1) * ow];
                            if y >= h {
                                dst.fill(0.0);
                                continue;
                            }
                            let src = &plane[y * w..(y + 1) * w];
                            for (ox, value) in dst.iter_mut().enumerate() {
                                *value = src.get(2 * ox + kx).copied().unwrap_or(0.0);
                            }
                        }
                    }
                });
            // SAFETY: dst is `c_out × n` row-major, lhs `c_out × k` row-major, rhs `k × n`
            // row-major; all three buffers have exactly those sizes.
            unsafe {
                gemm::gemm(
                    self.c_out,
                    n,
                    k,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    self.weight.as_ptr(),
                    1,
                    k as isize,
                    columns.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(threads),
                );
            }
            if let Some(bias) = &self.bias {
                for (row, &bias) in dst.chunks_mut(n).zip(bias) {
                    row.iter_mut().for_each(|v| *v += bias);
                }
            }
        }
        Tensor::from_vec(out, (b, self.c_out, oh, ow), xs.device())
    }
}
