//! Small building blocks shared by the architectures (candle's own ops where they match).

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::direct_conv::DirectConv3x3;
use super::fast_ops::{cpu_f32_values, exp_vectorisable, fold_lanes, vectorised};
use super::winograd::{F4X4, WinogradConv3x3};

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

impl PlainLayerNorm {
    /// adaLN's `norm(xs) · (1 + scale) + shift`, `xs` `(b, n, c)`, `shift` and `scale` `(b, 1, c)`
    /// or `(1, 1, c)`: in the norm's own pass where its kernel applies, else as the norm followed
    /// by a broadcast multiply and add (the same values).
    pub fn forward_modulated(&self, xs: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
        let scale_plus_one = (scale + 1.0)?;
        if let Some(modulated) =
            super::fast_ops::layer_norm_per_sample(xs, &scale_plus_one, shift, self.eps)?
        {
            return Ok(modulated);
        }
        self.forward(xs)?
            .broadcast_mul(&scale_plus_one)?
            .broadcast_add(shift)
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
/// On the CPU (f32): layers with up to 64 input and output channels run the direct kernel
/// ([`DirectConv3x3`], 2–4× Winograd's speed there: its transforms cost per channel what its
/// products save per channel pair), wider ones Winograd's F(4×4, 3×3) ([`WinogradConv3x3`]:
/// level with the direct kernel at 128 channels on 32–64 px, 1.8–3× faster at 256–512 channels
/// or at 256 px). On CPUs without AVX2 and FMA, or not x86-64, the direct kernel's portable
/// form is used only where Winograd cannot be (under 16 input channels). Other devices and
/// dtypes use candle's `conv2d`.
#[derive(Debug, Clone)]
pub struct Conv3x3 {
    conv: candle_nn::Conv2d,
    kernel: Conv3x3Kernel,
    bias: Option<Vec<f32>>,
    c_in: usize,
    c_out: usize,
}

/// The CPU form of a [`Conv3x3`]'s filters.
#[derive(Debug, Clone)]
enum Conv3x3Kernel {
    Direct(DirectConv3x3),
    Winograd(WinogradConv3x3),
}

/// Channels (input and output) up to which the direct kernel beats Winograd's (measured on
/// 16–128 channels, 16–256 px, AVX-512; level at 128).
const DIRECT_MAX_CHANNELS: usize = 64;

/// Input channels from which Winograd's transforms are worth it at all.
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
        let weight = cpu_f32(conv.weight())?.flatten_all()?.to_vec1::<f32>()?;
        let bias = conv
            .bias()
            .map(|b| cpu_f32(b)?.to_vec1::<f32>())
            .transpose()?;
        let direct = c_in.max(c_out) <= DIRECT_MAX_CHANNELS && DirectConv3x3::is_fast_here();
        let kernel = if direct || c_in < WINOGRAD_MIN_CHANNELS {
            Conv3x3Kernel::Direct(DirectConv3x3::new(&weight, c_in, c_out))
        } else {
            Conv3x3Kernel::Winograd(WinogradConv3x3::new(F4X4, &weight, c_in, c_out))
        };
        Ok(Self {
            conv,
            kernel,
            bias,
            c_in,
            c_out,
        })
    }

    fn forward_cpu(&self, xs: &[f32], b: usize, h: usize, w: usize) -> Vec<f32> {
        let bias = self.bias.as_deref();
        match &self.kernel {
            Conv3x3Kernel::Direct(direct) => direct.forward(xs, b, [h, w], bias),
            Conv3x3Kernel::Winograd(winograd) => {
                let (c_in, c_out) = (self.c_in, self.c_out);
                let mut out = vec![0f32; b * c_out * h * w];
                for (image, dst) in xs.chunks(c_in * h * w).zip(out.chunks_mut(c_out * h * w)) {
                    winograd.forward(image, h, w, bias, dst);
                }
                out
            }
        }
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
                vectorised(
                    #[inline(always)]
                    || {
                        let group = index % self.groups;
                        let n = src.len() as f64;
                        let sum = |a: f64, b: f64| a + b;
                        let mean = fold_lanes(src, 0.0, |acc, v| acc + f64::from(v), sum) / n;
                        let var =
                            fold_lanes(src, 0.0, |acc, v| acc + (f64::from(v) - mean).powi(2), sum)
                                / n;
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
                    },
                )
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
