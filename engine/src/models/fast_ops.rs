//! CPU kernels where candle is slow on this workload. GELU: candle runs it single-threaded
//! through libm's `tanhf`, and in a profile of the full-size DiT on 2 cores it took ~14% of
//! the CPU samples while the matmuls ran on both cores; its exact (erf) form called libm per
//! element. Linear layers: see [`DenseLinear`]. Self-attention: see
//! [`fused_qkv_attention_cpu`]. On other devices and dtypes, and for tensors that track
//! gradients (training), candle's own ops are used.
//!
//! The engine is compiled for baseline x86-64 (SSE2, 4 lanes) so that one binary runs on every
//! x86-64 CPU; the loops here run through [`vectorised`], which picks AVX-512 or AVX2+FMA at run
//! time where the CPU has them (gemm's microkernels do the same for the matrix products).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::gemm_panels::{self, GemmPanelWeight};
use super::panel_gemm::{self, PanelWeight};

/// `sqrt(2 / π)`.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// Values per parallel task of the elementwise and row-wise kernels: enough to amortise a
/// task, few enough that both threads get several.
const VALUES_PER_TASK: usize = 16 * 1024;

/// Runs `f` compiled for the widest instruction set this CPU has (AVX-512, or AVX2 with FMA, on
/// x86-64), chosen at run time: `f` is inlined into pulp's target-feature functions, and so is
/// every `#[inline]` helper it calls. Pass the closure as `vectorised(#[inline(always)] || ...)`:
/// a closure is otherwise inlined or not at the compiler's discretion, and one that is not runs
/// at the baseline's 4 lanes (until 2026-12-02 the LayerNorm, attention and GroupNorm closures
/// did: separate functions on SSE registers; the GroupNorm alone was 15 % of a decode of the
/// built-in default). Wrap the serial loop itself (one row, one chunk, one attention head), not a
/// parallel iterator: code behind a call that is not inlined — rayon's workers, gemm — runs as
/// compiled elsewhere.
#[inline(always)]
pub(crate) fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// `exp(x)` without a library call, so that loops using it vectorise: `x = n ln 2 + r` with
/// `|r| ≤ ln 2 / 2` (Cody–Waite, two-part ln 2), `exp(r)` by its degree-7 Taylor polynomial,
/// `2ⁿ` built in the exponent bits. Within 2 ulp of `f32::exp` on [−87, 88]; inputs are
/// clamped to that range (the GELU only needs the saturated ends to saturate).
#[inline(always)]
pub(crate) fn exp_vectorisable(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 · 2²³ rounds to the nearest integer without a call.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // `shifted` lies in [2²³, 2²⁴), where one ulp is 1, so its bits minus ROUND's are n — in
    // integer lanes: `n as i32` saturates, and its NaN and range checks are done one lane at a
    // time, which kept every loop calling this from vectorising.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    p * scale
}

/// GELU with the tanh approximation (PyTorch `approximate="tanh"`), computed as
/// `0.5 x (1 + tanh(u))` with `tanh(u) = 1 - 2 / (exp(2u) + 1)`: within a few ulp of candle's
/// `gelu` in absolute terms.
#[inline(always)]
fn gelu_tanh_scalar(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * x * (1.0 + 0.044_715 * x * x);
    let tanh = 1.0 - 2.0 / (exp_vectorisable(2.0 * u) + 1.0);
    0.5 * x * (1.0 + tanh)
}

/// d/dx of [`gelu_tanh_scalar`]: `0.5 (1 + t) + 0.5 x (1 − t²) √(2/π) (1 + 3·0.044715 x²)` with
/// `t = tanh(√(2/π) (x + 0.044715 x³))`.
#[inline(always)]
fn gelu_tanh_grad_scalar(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * x * (1.0 + 0.044_715 * x * x);
    let t = 1.0 - 2.0 / (exp_vectorisable(2.0 * u) + 1.0);
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * x * x);
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
}

/// `erf(x)` without a library call, so that loops using it vectorise: Abramowitz & Stegun
/// 7.1.26, `1 − (a₁t + … + a₅t⁵) e^{−x²}` with `t = 1 / (1 + p|x|)` (absolute error ≤ 1.5e-7,
/// 4.5e-7 evaluated in f32; the formula PyTorch's vectorised CPU `erf` uses too). candle's
/// `gelu_erf` calls libm's branching `erff` per element, which in DINO's MLPs cost more than
/// the matrix products around it.
#[inline(always)]
fn erf_vectorisable(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152,
        1.061_405_4,
    ];
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let magnitude = 1.0 - poly * exp_vectorisable(-a * a);
    magnitude.copysign(x)
}

/// Exact GELU `0.5 x (1 + erf(x / √2))`, with [`erf_vectorisable`].
#[inline(always)]
fn gelu_erf_scalar(x: f32) -> f32 {
    let e = erf_vectorisable(x * std::f32::consts::FRAC_1_SQRT_2);
    (e + 1.0) * 0.5 * x
}

/// An elementwise f32 function applied in parallel chunks to a contiguous CPU tensor (generic
/// over the function so that it is inlined into the loop, which can then vectorise).
struct ParallelMap<F> {
    name: &'static str,
    f: F,
}

impl<F: Fn(f32) -> f32 + Send + Sync> CustomOp1 for ParallelMap<F> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("{}: f32 only", self.name)
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{}: contiguous input only", self.name)
        };
        let input = &data[start..end];
        let mut out = vec![0f32; input.len()];
        out.par_chunks_mut(VALUES_PER_TASK)
            .zip(input.par_chunks(VALUES_PER_TASK))
            .for_each(|(o, i)| {
                vectorised(
                    #[inline(always)]
                    || {
                        for (o, &x) in o.iter_mut().zip(i) {
                            *o = (self.f)(x);
                        }
                    },
                )
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// GELU (tanh) for training: the same parallel forward, and a backward that computes the
/// derivative in one parallel pass (candle's backward for `gelu` makes ten full passes with
/// `powf` and `tanh`, a quarter of a small DiT's training step on 2 cores).
struct TrainableGeluTanh;

impl CustomOp1 for TrainableGeluTanh {
    fn name(&self) -> &'static str {
        "gelu-tanh-trainable"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        ParallelMap {
            name: "gelu-tanh-par",
            f: gelu_tanh_scalar,
        }
        .cpu_fwd(storage, layout)
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let derivative = arg.contiguous()?.apply_op1_no_bwd(&ParallelMap {
            name: "gelu-tanh-grad-par",
            f: gelu_tanh_grad_scalar,
        })?;
        Ok(Some(grad_res.mul(&derivative)?))
    }
}

/// LayerNorm without affine parameters over the last dimension, for training: one parallel
/// pass forward, one backward (`dx = (g − mean(g) − y·mean(g·y)) / σ`), where candle's
/// `layer_norm_slow` (the only differentiable one) makes about thirty passes between them.
struct TrainableLayerNorm {
    eps: f32,
}

/// The contiguous f32 data of a CPU storage, or an error naming `what`.
pub(crate) fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{what}: f32 only")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{what}: contiguous input only")
    };
    Ok(&data[start..end])
}

/// The contiguous f32 values of a CPU tensor's storage (from `Tensor::storage_and_layout` of a
/// contiguous tensor), read in place. `to_vec1` would copy them on one thread while the other
/// waits: 4 % of the autoencoder's CPU time went to those copies.
pub(crate) fn cpu_f32_values<'a>(
    storage: &'a candle_core::Storage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [f32]> {
    let candle_core::Storage::Cpu(storage) = storage else {
        candle_core::bail!("{what}: CPU tensors only")
    };
    contiguous_f32(storage, layout, what)
}

/// Mean and 1/σ of a row (two passes, each reduced in lanes).
#[inline(always)]
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let sum = |a: f32, b: f32| a + b;
    let mean = fold_lanes(row, 0.0, sum, sum) / n;
    let var = fold_lanes(row, 0.0, |acc, v| acc + (v - mean) * (v - mean), sum) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// LayerNorm over the last dimension with `weight` and `bias`, for inference: rows in parallel
/// blocks, each pass vectorised. candle's kernel sums a row in one scalar chain (and takes the
/// variance as E[x²] − mean², which loses digits when the mean is large). `weight` and `bias`
/// hold one row of `d` per group of consecutive rows — one group for a plain LayerNorm, one per
/// sample for adaLN's `norm(x) · (1 + scale) + shift` — so that adaLN's modulation is part of
/// the norm's pass instead of two broadcast passes after it.
struct AffineLayerNormOp {
    eps: f32,
}

impl candle_core::CustomOp3 for AffineLayerNormOp {
    fn name(&self) -> &'static str {
        "layer-norm-affine"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(xs, xs_layout, self.name())?;
        let weight = contiguous_f32(weight, weight_layout, self.name())?;
        let bias = contiguous_f32(bias, bias_layout, self.name())?;
        let d = xs_layout.shape().dims().last().copied().unwrap_or(1).max(1);
        let rows = xs.len() / d;
        let Some(rows_per_group) =
            rows_per_group(rows, d, weight.len()).filter(|_| weight.len() == bias.len())
        else {
            candle_core::bail!(
                "layer-norm: {rows} rows of {d}, weight {}, bias {}",
                weight.len(),
                bias.len()
            )
        };
        let rows_per_task = (VALUES_PER_TASK / d).max(1);
        let mut out = vec![0f32; xs.len()];
        out.par_chunks_mut(rows_per_task * d)
            .zip(xs.par_chunks(rows_per_task * d))
            .enumerate()
            .for_each(|(task, (out, xs))| {
                vectorised(
                    #[inline(always)]
                    || {
                        for (i, (out, row)) in out.chunks_mut(d).zip(xs.chunks(d)).enumerate() {
                            let group = (task * rows_per_task + i) / rows_per_group;
                            let weight = &weight[group * d..][..d];
                            let bias = &bias[group * d..][..d];
                            let (mean, inv_std) = row_stats(row, self.eps);
                            for ((o, &v), (&w, &b)) in
                                out.iter_mut().zip(row).zip(weight.iter().zip(bias))
                            {
                                *o = (v - mean) * inv_std * w + b;
                            }
                        }
                    },
                )
            });
        Ok((CpuStorage::F32(out), xs_layout.shape().clone()))
    }
}

/// Rows per group when `rows` rows of `d` values share `params` values, one row of `d` per group
/// of consecutive rows; `None` when they do not divide so.
fn rows_per_group(rows: usize, d: usize, params: usize) -> Option<usize> {
    let groups = params / d;
    (groups > 0 && params.is_multiple_of(d) && rows.is_multiple_of(groups)).then(|| rows / groups)
}

/// Whether `per_sample` is `(b, 1, d)` or `(1, 1, d)` for `xs` `(b, n, d)`.
fn one_row_per_sample(xs: &Tensor, per_sample: &Tensor) -> Result<bool> {
    let (b, _, d) = xs.dims3()?;
    let groups = per_sample.dim(0)?;
    Ok((groups == 1 || groups == b) && per_sample.dims() == [groups, 1, d])
}

/// Whether the engine's own kernels apply: f32 CPU tensors that track no gradient.
fn cpu_inference_f32(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && !t.track_op())
}

/// LayerNorm over the last dimension, `(x − mean) / √(var + eps) · weight + bias`: the
/// vectorised kernel for f32 CPU tensors that track no gradient, candle's elsewhere.
pub fn layer_norm(xs: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
    let xs = xs.contiguous()?;
    if cpu_inference_f32(&[&xs, weight, bias]) {
        xs.apply_op3_no_bwd(weight, bias, &AffineLayerNormOp { eps })
    } else {
        candle_nn::ops::layer_norm(&xs, weight, bias, eps)
    }
}

/// `normalised(xs) · weight + bias` with a weight and bias per sample — `xs` `(b, n, d)`,
/// `weight` and `bias` `(b, 1, d)` or `(1, 1, d)` — in one pass (adaLN's modulated norm, with
/// `weight = 1 + scale`), bit for bit what the norm followed by a broadcast multiply and add
/// gives. `None` where the vectorised kernel does not apply (other devices and dtypes,
/// gradients), for the caller to compose those.
pub fn layer_norm_per_sample(
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f32,
) -> Result<Option<Tensor>> {
    let fused = one_row_per_sample(xs, weight)?
        && one_row_per_sample(xs, bias)?
        && cpu_inference_f32(&[xs, weight, bias]);
    if !fused {
        return Ok(None);
    }
    xs.contiguous()?
        .apply_op3_no_bwd(
            &weight.contiguous()?,
            &bias.contiguous()?,
            &AffineLayerNormOp { eps },
        )
        .map(Some)
}

/// `xs + delta · gate` with a gate per sample (`xs` and `delta` `(b, n, d)`, `gate` `(g, 1, d)`
/// with one row per group of samples) in one pass. Bit for bit candle's broadcast multiply and
/// add, which make two passes and a temporary.
struct GatedResidualOp;

impl candle_core::CustomOp3 for GatedResidualOp {
    fn name(&self) -> &'static str {
        "gated-residual"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_layout: &Layout,
        delta: &CpuStorage,
        delta_layout: &Layout,
        gate: &CpuStorage,
        gate_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(xs, xs_layout, self.name())?;
        let delta = contiguous_f32(delta, delta_layout, self.name())?;
        let gate = contiguous_f32(gate, gate_layout, self.name())?;
        let d = xs_layout.shape().dims().last().copied().unwrap_or(1).max(1);
        let rows = xs.len() / d;
        let Some(rows_per_group) =
            rows_per_group(rows, d, gate.len()).filter(|_| delta.len() == xs.len())
        else {
            candle_core::bail!(
                "gated-residual: {rows} rows of {d}, delta {}, gate {}",
                delta.len(),
                gate.len()
            )
        };
        let rows_per_task = (VALUES_PER_TASK / d).max(1);
        let mut out = vec![0f32; xs.len()];
        out.par_chunks_mut(rows_per_task * d)
            .zip(xs.par_chunks(rows_per_task * d))
            .zip(delta.par_chunks(rows_per_task * d))
            .enumerate()
            .for_each(|(task, ((out, xs), delta))| {
                vectorised(
                    #[inline(always)]
                    || {
                        let rows = out.chunks_mut(d).zip(xs.chunks(d)).zip(delta.chunks(d));
                        for (i, ((out, xs), delta)) in rows.enumerate() {
                            let group = (task * rows_per_task + i) / rows_per_group;
                            let gate = &gate[group * d..][..d];
                            for (((o, &x), &v), &g) in out.iter_mut().zip(xs).zip(delta).zip(gate) {
                                *o = x + v * g;
                            }
                        }
                    },
                )
            });
        Ok((CpuStorage::F32(out), xs_layout.shape().clone()))
    }
}

/// `xs + delta · gate` (adaLN's gated residual): `xs` and `delta` `(b, n, d)`, `gate`
/// `(b, 1, d)` or `(1, 1, d)`. One pass on f32 CPU tensors that track no gradient, candle's
/// broadcast ops elsewhere.
pub fn gated_residual(xs: &Tensor, delta: &Tensor, gate: &Tensor) -> Result<Tensor> {
    let fused = one_row_per_sample(xs, gate)?
        && delta.dims() == xs.dims()
        && cpu_inference_f32(&[xs, delta, gate]);
    if fused {
        xs.contiguous()?.apply_op3_no_bwd(
            &delta.contiguous()?,
            &gate.contiguous()?,
            &GatedResidualOp,
        )
    } else {
        xs + delta.broadcast_mul(gate)?
    }
}

impl CustomOp1 for TrainableLayerNorm {
    fn name(&self) -> &'static str {
        "layer-norm-trainable"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let input = contiguous_f32(storage, layout, self.name())?;
        let d = layout.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; input.len()];
        out.par_chunks_mut(d)
            .zip(input.par_chunks(d))
            .for_each(|(o, x)| {
                let (mean, inv_std) = row_stats(x, self.eps);
                for (o, &v) in o.iter_mut().zip(x) {
                    *o = (v - mean) * inv_std;
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad = arg.contiguous()?.apply_op3_no_bwd(
            &res.contiguous()?,
            &grad_res.contiguous()?,
            &LayerNormGrad { eps: self.eps },
        )?;
        Ok(Some(grad))
    }
}

/// The backward of [`TrainableLayerNorm`] from (x, y, dy).
struct LayerNormGrad {
    eps: f32,
}

impl candle_core::CustomOp3 for LayerNormGrad {
    fn name(&self) -> &'static str {
        "layer-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let y = contiguous_f32(s2, l2, self.name())?;
        let g = contiguous_f32(s3, l3, self.name())?;
        let d = l1.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(d)
            .zip(x.par_chunks(d).zip(y.par_chunks(d).zip(g.par_chunks(d))))
            .for_each(|(o, (x, (y, g)))| {
                let (_, inv_std) = row_stats(x, self.eps);
                let n = d as f32;
                let mean_g = g.iter().sum::<f32>() / n;
                let mean_gy = g.iter().zip(y).map(|(a, b)| a * b).sum::<f32>() / n;
                for ((o, &gi), &yi) in o.iter_mut().zip(g).zip(y) {
                    *o = (gi - mean_g - yi * mean_gy) * inv_std;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// A differentiable LayerNorm without affine parameters over the last dimension: the fused
/// kernels on contiguous f32 CPU tensors, `None` elsewhere.
pub fn trainable_layer_norm(xs: &Tensor, eps: f32) -> Result<Option<Tensor>> {
    if !xs.device().is_cpu() || xs.dtype() != DType::F32 {
        return Ok(None);
    }
    xs.contiguous()?
        .apply_op1(TrainableLayerNorm { eps })
        .map(Some)
}

/// Applies `map` in parallel on contiguous f32 CPU tensors, `fallback` (candle's op) elsewhere.
fn parallel_or<F: Fn(f32) -> f32 + Send + Sync>(
    xs: &Tensor,
    map: &ParallelMap<F>,
    fallback: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if cpu_inference_f32(&[xs]) {
        xs.contiguous()?.apply_op1_no_bwd(map)
    } else {
        fallback(xs)
    }
}

/// Exact (erf) GELU: in parallel on the CPU, candle's `gelu_erf` elsewhere.
pub fn gelu_erf(xs: &Tensor) -> Result<Tensor> {
    let map = ParallelMap {
        name: "gelu-erf-par",
        f: gelu_erf_scalar,
    };
    parallel_or(xs, &map, Tensor::gelu_erf)
}

/// GELU (tanh approximation): in parallel on the CPU (with a fused backward when training),
/// candle's `gelu` elsewhere.
pub fn gelu_tanh(xs: &Tensor) -> Result<Tensor> {
    if xs.track_op() && xs.device().is_cpu() && xs.dtype() == DType::F32 {
        return xs.contiguous()?.apply_op1(TrainableGeluTanh);
    }
    let map = ParallelMap {
        name: "gelu-tanh-par",
        f: gelu_tanh_scalar,
    };
    parallel_or(xs, &map, Tensor::gelu)
}

/// What follows a [`DenseLinear`] layer's product in the same pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Nothing.
    Identity,
    /// Exact GELU (DINO, the LDM UNet).
    GeluErf,
    /// GELU with the tanh approximation (the DiT's MLP).
    GeluTanh,
}

impl Activation {
    fn apply(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Identity => Ok(xs.clone()),
            Activation::GeluErf => gelu_erf(xs),
            Activation::GeluTanh => gelu_tanh(xs),
        }
    }

    /// Applies the activation in place to an m × `columns` block of a row-major matrix `n`
    /// wide.
    ///
    /// # Safety
    /// As [`map_block`].
    unsafe fn apply_in_place(self, block: *mut f32, m: usize, n: usize, columns: usize) {
        // SAFETY: the caller's contract.
        unsafe {
            match self {
                Activation::Identity => {}
                Activation::GeluErf => map_block(block, m, n, columns, gelu_erf_scalar),
                Activation::GeluTanh => map_block(block, m, n, columns, gelu_tanh_scalar),
            }
        }
    }
}

/// How a fused linear pass over [`GemmPanelWeight`] shares a product between threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinearTasks {
    /// Blocks of this many output columns.
    Columns(usize),
    /// Blocks of this many rows.
    Rows(usize),
}

/// Rows for a weight of up to 2¹⁸ values (1 MiB, a core's L2), two blocks per thread; columns
/// for larger ones ([`columns_per_task`]). A column task packs every row of the activations for
/// its own product, a row task only its own rows while each reads the whole weight: on the
/// built-in default's `512 × 256 → 256 … 512 × 1024 → 256` products rows ran 3–15 % faster
/// (AVX-512, 2 threads), on DINO's and the DiT's larger weights columns 0–10 % (rows' reads of
/// the weight no longer fit in cache).
fn linear_tasks(m: usize, k: usize, n: usize, threads: usize) -> LinearTasks {
    const ROWS_MAX_WEIGHT: usize = 1 << 18;
    const TASKS_PER_THREAD: usize = 2;
    if threads > 1 && k * n <= ROWS_MAX_WEIGHT && m * k * n >= 1 << 20 {
        LinearTasks::Rows(m.div_ceil(threads * TASKS_PER_THREAD))
    } else {
        // Whole panels per task.
        let width = columns_per_task(m, k, n, threads);
        LinearTasks::Columns(width.div_ceil(gemm_panels::PANEL) * gemm_panels::PANEL)
    }
}

/// Output columns per task of [`biased_linear`] on `threads` threads: two blocks
/// per thread, so that a thread slowed down (by the host, on a shared machine) hands work to
/// the other, and at least 128 columns wide, so that each task's own packing of the
/// activations stays small beside its product. Products under ~1 M multiply-adds run as one.
fn columns_per_task(m: usize, k: usize, n: usize, threads: usize) -> usize {
    const TASKS_PER_THREAD: usize = 2;
    const MIN_COLUMNS: usize = 128;
    const LANES: usize = 16;
    if threads <= 1 || m * k * n < 1 << 20 {
        return n.max(1);
    }
    let width = n.div_ceil(threads * TASKS_PER_THREAD).max(MIN_COLUMNS);
    width.div_ceil(LANES) * LANES
}

/// `f` in place over an m × `columns` block of a row-major matrix `n` wide (generic over `f`
/// so that the loop vectorises).
///
/// # Safety
/// `block` must point at m rows of `columns` writable values, `n` apart, used by no one else.
unsafe fn map_block<F: Fn(f32) -> f32>(block: *mut f32, m: usize, n: usize, columns: usize, f: F) {
    vectorised(
        #[inline(always)]
        || {
            for row in 0..m {
                // SAFETY: the caller's contract.
                let values = unsafe { std::slice::from_raw_parts_mut(block.add(row * n), columns) };
                values.iter_mut().for_each(|v| *v = f(*v));
            }
        },
    )
}

/// `xs Wᵀ + b` then `activation` (`xs` m × k row-major) as independent blocks of output
/// columns or rows ([`biased_block_tasks`]), each a one-thread GEMM over the weight's panels.
///
/// Why not the GEMM's own threads: it splits every product statically and synchronises the
/// threads twice per slice of k (packing, then the product), and the bias rows (written by one
/// thread) and the activation were passes of their own. One parallel loop per layer measured
/// 2–38 % faster on DINO's and the DiT's eight layer shapes (median 7 %; 2 threads, alternating
/// in one process).
fn biased_linear(
    xs: &[f32],
    weight: &GemmPanelWeight,
    bias: &[f32],
    m: usize,
    tasks: LinearTasks,
    activation: Activation,
) -> Vec<f32> {
    let n = weight.out_dim();
    biased_block_tasks(bias, [m, n], tasks, activation, |rows, columns, block| {
        // SAFETY: `block` is this task's own rows and columns of the m × n output
        // (`biased_block_tasks`), whole panels for a block of columns (`linear_tasks`).
        unsafe { weight.add_product(xs, rows, columns, block, n) }
    })
}

/// The m × n output of a fused linear pass, as parallel tasks over blocks of `tasks`' rows or
/// columns: each fills its block with the bias, adds its product into it (`add_product(rows,
/// columns, block)`, `block` pointing at the block's first element, rows `n` apart) and applies
/// the activation while the block is still in cache.
fn biased_block_tasks(
    bias: &[f32],
    [m, n]: [usize; 2],
    tasks: LinearTasks,
    activation: Activation,
    add_product: impl Fn(std::ops::Range<usize>, std::ops::Range<usize>, *mut f32) + Sync,
) -> Vec<f32> {
    let (size, along) = match tasks {
        LinearTasks::Columns(width) => (width.max(1), n),
        LinearTasks::Rows(height) => (height.max(1), m),
    };
    let mut out = Vec::<f32>::with_capacity(m * n);
    let dst = OutPtr(out.as_mut_ptr());
    (0..along.div_ceil(size)).into_par_iter().for_each(|task| {
        let part = task * size..(task * size + size).min(along);
        let (rows, columns) = match tasks {
            LinearTasks::Columns(_) => (0..m, part),
            LinearTasks::Rows(_) => (part, 0..n),
        };
        // SAFETY: this task writes only its rows × columns of the m × n output, which no
        // other task touches.
        unsafe {
            let block = dst.get().add(rows.start * n + columns.start);
            for row in 0..rows.len() {
                std::ptr::copy_nonoverlapping(
                    bias.as_ptr().add(columns.start),
                    block.add(row * n),
                    columns.len(),
                );
            }
            let (row_count, column_count) = (rows.len(), columns.len());
            add_product(rows, columns, block);
            activation.apply_in_place(block, row_count, n, column_count);
        }
    });
    // SAFETY: the tasks above wrote every one of the m × n elements.
    unsafe { out.set_len(m * n) };
    out
}

/// A linear layer's weight, rearranged once at load for a fused CPU product.
#[derive(Debug)]
enum PanelWeights {
    /// 16-column panels for the AVX2 blocks of [`panel_gemm`] (CPUs with AVX2 and FMA but no
    /// AVX-512, [`panel_gemm::applies`]).
    Avx2(PanelWeight),
    /// 64-column panels that `gemm` reads in place ([`gemm_panels`]).
    Gemm(GemmPanelWeight),
}

impl PanelWeights {
    fn in_dim(&self) -> usize {
        match self {
            Self::Avx2(weight) => weight.in_dim(),
            Self::Gemm(weight) => weight.in_dim(),
        }
    }

    fn out_dim(&self) -> usize {
        match self {
            Self::Avx2(weight) => weight.out_dim(),
            Self::Gemm(weight) => weight.out_dim(),
        }
    }

    fn to_weight(&self) -> Vec<f32> {
        match self {
            Self::Avx2(weight) => weight.to_weight(),
            Self::Gemm(weight) => weight.to_weight(),
        }
    }
}

/// `xs Wᵀ + b` then `activation`, from a weight in panels, as independent tasks of whole
/// panels (or, for `gemm`'s panels and a small weight, of rows: [`linear_tasks`]): each task
/// fills its block with the bias, adds the product into it and applies the activation while
/// the block is still in cache.
struct PanelLinear<'a> {
    weight: &'a PanelWeights,
    bias: &'a [f32],
    activation: Activation,
}

impl CustomOp1 for PanelLinear<'_> {
    fn name(&self) -> &'static str {
        "panel-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(storage, layout, self.name())?;
        let (k, n) = (self.weight.in_dim(), self.weight.out_dim());
        let dims = layout.shape().dims();
        if dims.last() != Some(&k) || self.bias.len() != n {
            candle_core::bail!(
                "panel-linear: input {dims:?} into a layer ({k} → {n}, bias {})",
                self.bias.len()
            )
        }
        let m = xs.len() / k.max(1);
        let threads = rayon::current_num_threads();
        let out = match self.weight {
            PanelWeights::Gemm(weight) => biased_linear(
                xs,
                weight,
                self.bias,
                m,
                linear_tasks(m, k, n, threads),
                self.activation,
            ),
            PanelWeights::Avx2(weight) => {
                // Whole panels per task.
                let width = columns_per_task(m, k, n, threads).div_ceil(panel_gemm::COLUMNS)
                    * panel_gemm::COLUMNS;
                let rows = panel_gemm::pack_rows(xs, m, k);
                biased_block_tasks(
                    self.bias,
                    [m, n],
                    LinearTasks::Columns(width),
                    self.activation,
                    |_, columns, block| {
                        let first_panel = columns.start / panel_gemm::COLUMNS;
                        let panels = first_panel..columns.end.div_ceil(panel_gemm::COLUMNS);
                        // SAFETY: `block` is this task's own columns of the m × n output, the
                        // panels' (`biased_block_tasks`); `DenseLinear` makes these panels only
                        // on CPUs with AVX2 and FMA.
                        unsafe {
                            weight.add_product(
                                &rows,
                                panels,
                                block.sub(first_panel * panel_gemm::COLUMNS),
                                n,
                            )
                        }
                    },
                )
            }
        };
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = n;
        }
        Ok((CpuStorage::F32(out), Shape::from(out_dims)))
    }
}

/// How a [`DenseLinear`] keeps its weight.
#[derive(Debug, Clone)]
enum LinearForm {
    /// candle's `Linear`: other devices and dtypes, weights that track gradients (training),
    /// layers without bias.
    Candle(candle_nn::Linear),
    /// CPU f32 inference: the weight in panels, for [`PanelLinear`].
    Panels {
        weight: std::sync::Arc<PanelWeights>,
        bias: Vec<f32>,
    },
}

/// A linear layer (`weight` `(out, in)` and `bias` under the checkpoint's keys) that, for CPU
/// inference in f32, rearranges its weight once at load and runs as one fused pass (product,
/// bias, activation): in panels of 16 output columns for the AVX2 blocks of [`panel_gemm`]
/// where the CPU has AVX2 without AVX-512, else in panels of 64 that `gemm` reads in place
/// ([`gemm_panels`]). (`gemm` reads a row-major right-hand side in place but packs a transposed
/// one element by element: with the weights cold in cache, DINO's `197 × 768 → 2304` product
/// ran at 260 GFLOP/s from the `(out, in)` weight and 400 GFLOP/s from a transposed copy on 2
/// cores, AVX-512; the panels go further, [`gemm_panels`].) The rearranged copy replaces the
/// original; `DenseLinear::linear` rebuilds candle's `Linear` for the rare input that cannot
/// take the fused pass (one that tracks gradients). Elsewhere it is candle's `Linear`.
#[derive(Debug, Clone)]
pub struct DenseLinear {
    form: LinearForm,
}

impl DenseLinear {
    /// Reads `weight` `(out_dim, in_dim)` and `bias` `(out_dim,)`.
    pub fn load(in_dim: usize, out_dim: usize, vb: candle_nn::VarBuilder) -> Result<Self> {
        Self::new(candle_nn::linear(in_dim, out_dim, vb)?)
    }

    /// Wraps a layer, rearranging its weight once when the fused CPU pass applies.
    pub fn new(layer: candle_nn::Linear) -> Result<Self> {
        Self::rearranged(layer, panel_gemm::applies())
    }

    /// [`Self::new`], in AVX2 panels where `avx2_panels` says, else in `gemm`'s.
    fn rearranged(layer: candle_nn::Linear, avx2_panels: bool) -> Result<Self> {
        let weight = layer.weight();
        let bias = match layer.bias() {
            Some(bias)
                if weight.device().is_cpu()
                    && weight.dtype() == DType::F32
                    && bias.dtype() == DType::F32
                    && !weight.track_op()
                    && !bias.track_op() =>
            {
                bias.clone()
            }
            _ => {
                return Ok(Self {
                    form: LinearForm::Candle(layer),
                });
            }
        };
        let (out_dim, in_dim) = weight.dims2()?;
        let values = weight.flatten_all()?.to_vec1::<f32>()?;
        let weight = if avx2_panels {
            PanelWeights::Avx2(PanelWeight::from_weight(&values, out_dim, in_dim))
        } else {
            PanelWeights::Gemm(GemmPanelWeight::from_weight(&values, out_dim, in_dim))
        };
        Ok(Self {
            form: LinearForm::Panels {
                weight: std::sync::Arc::new(weight),
                bias: bias.to_vec1::<f32>()?,
            },
        })
    }

    /// The layer as candle's `Linear` (for panels, its weight `(out, in)` copied here).
    fn linear(&self) -> Result<std::borrow::Cow<'_, candle_nn::Linear>> {
        use std::borrow::Cow;
        Ok(match &self.form {
            LinearForm::Candle(layer) => Cow::Borrowed(layer),
            LinearForm::Panels { weight, bias } => {
                let device = candle_core::Device::Cpu;
                let shape = (weight.out_dim(), weight.in_dim());
                Cow::Owned(candle_nn::Linear::new(
                    Tensor::from_vec(weight.to_weight(), shape, &device)?,
                    Some(Tensor::new(bias.as_slice(), &device)?),
                ))
            }
        })
    }

    /// Whether the weight tracks gradients (training).
    pub fn tracks_gradients(&self) -> bool {
        matches!(&self.form, LinearForm::Candle(layer) if layer.weight().track_op())
    }

    /// The layer followed by `activation`.
    pub fn forward_activated(&self, xs: &Tensor, activation: Activation) -> Result<Tensor> {
        let fused = xs.device().is_cpu() && xs.dtype() == DType::F32 && !xs.track_op();
        match &self.form {
            LinearForm::Panels { weight, bias } if fused => {
                xs.contiguous()?.apply_op1_no_bwd(&PanelLinear {
                    weight,
                    bias,
                    activation,
                })
            }
            _ => activation.apply(&candle_nn::Module::forward(self.linear()?.as_ref(), xs)?),
        }
    }
}

impl candle_nn::Module for DenseLinear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_activated(xs, Activation::Identity)
    }
}

/// Self-attention straight from a fused `[q | k | v]` projection `(b, n, 3c)` into merged heads
/// `(b, n, c)`, one (sample, head) pair per task: the score matrix of a pair stays in a
/// thread-local buffer, q/k/v are read in place through strides and the output is written in
/// place, so nothing is permuted or copied. candle's path (permute, copies, a batched matmul
/// that synchronises both threads for every small product, softmax, another copy) was about
/// three times slower than its FLOP count warrants.
struct FusedQkvAttention {
    heads: usize,
}

/// One task's contiguous copies of its head's operands, and its score matrix.
struct HeadBuffers {
    q: Vec<f32>,
    k_t: Vec<f32>,
    v: Vec<f32>,
    scores: Vec<f32>,
}

/// A raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);
// SAFETY: each task writes only its own elements (an attention head's, a block of columns).
unsafe impl Send for OutPtr {}
// SAFETY: as above; no element is written by two tasks or read while written.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so that closures capture the `Sync` wrapper, not the field).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

impl CustomOp1 for FusedQkvAttention {
    fn name(&self) -> &'static str {
        "fused-qkv-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("fused-qkv-attention: f32 only")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("fused-qkv-attention: contiguous input only")
        };
        let (b, n, c3) = layout.shape().dims3()?;
        let c = c3 / 3;
        let heads = self.heads;
        let d = c / heads;
        let qkv = &data[start..end];
        let scale = 1.0 / (d as f32).sqrt();
        let mut out = vec![0f32; b * n * c];
        let out_ptr = OutPtr(out.as_mut_ptr());
        (0..b * heads).into_par_iter().for_each_init(
            || HeadBuffers {
                q: vec![0f32; n * d],
                k_t: vec![0f32; d * n],
                v: vec![0f32; n * d],
                scores: vec![0f32; n * n],
            },
            |buf, pair| {
                let (sample, head) = (pair / heads, pair % heads);
                let rows = &qkv[sample * n * c3..(sample + 1) * n * c3];
                // Gather this head's q, kᵀ and v into contiguous buffers: the GEMMs then read
                // plain row-major matrices (strided operands make the AVX-512 GEMM pack them
                // element by element, which cost more than the products).
                for (i, row) in rows.chunks_exact(c3).enumerate() {
                    let (q, k, v) = (
                        &row[head * d..(head + 1) * d],
                        &row[c + head * d..c + (head + 1) * d],
                        &row[2 * c + head * d..2 * c + (head + 1) * d],
                    );
                    buf.q[i * d..(i + 1) * d].copy_from_slice(q);
                    buf.v[i * d..(i + 1) * d].copy_from_slice(v);
                    for (j, &kj) in k.iter().enumerate() {
                        buf.k_t[j * n + i] = kj;
                    }
                }
                // SAFETY: q is n × d, kᵀ is d × n, v is n × d and scores is n × n, all
                // row-major and contiguous; the output block of this pair (rows of stride c,
                // columns head·d..head·d + d) is written by this task only.
                unsafe {
                    // scores = scale · q kᵀ
                    gemm::gemm(
                        n,
                        n,
                        d,
                        buf.scores.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        buf.q.as_ptr(),
                        1,
                        d as isize,
                        buf.k_t.as_ptr(),
                        1,
                        n as isize,
                        0.0,
                        scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                vectorised(
                    #[inline(always)]
                    || buf.scores.chunks_mut(n).for_each(softmax_in_place),
                );
                // SAFETY: see above.
                unsafe {
                    // out = scores v
                    gemm::gemm(
                        n,
                        d,
                        n,
                        out_ptr.get().add(sample * n * c + head * d),
                        1,
                        c as isize,
                        false,
                        buf.scores.as_ptr(),
                        1,
                        n as isize,
                        buf.v.as_ptr(),
                        1,
                        d as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((b, n, c))))
    }
}

/// `values` folded by `step` in 16 independent lanes, the lanes then joined by `merge`: a
/// reduction the compiler can vectorise (one running value is a chain it must keep in order).
#[inline(always)]
pub(crate) fn fold_lanes<T: Copy>(
    values: &[f32],
    init: T,
    step: impl Fn(T, f32) -> T,
    merge: impl Fn(T, T) -> T,
) -> T {
    const LANES: usize = 16;
    let mut lanes = [init; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = step(*lane, v);
        }
    }
    let tail = chunks.remainder().iter().fold(init, |acc, &v| step(acc, v));
    lanes.iter().fold(tail, |acc, &lane| merge(acc, lane))
}

/// `row ← softmax(row)`, each pass vectorisable.
#[inline(always)]
fn softmax_in_place(row: &mut [f32]) {
    let max = fold_lanes(row, f32::NEG_INFINITY, f32::max, f32::max);
    for s in row.iter_mut() {
        *s = exp_vectorisable(*s - max);
    }
    let inv = 1.0 / fold_lanes(row, 0.0, |acc, v| acc + v, |a, b| a + b);
    for s in row.iter_mut() {
        *s *= inv;
    }
}

/// Self-attention from a fused `[q | k | v]` projection: the in-place kernel on contiguous
/// f32 CPU tensors, `None` elsewhere (the caller uses candle's ops).
pub fn fused_qkv_attention_cpu(qkv: &Tensor, heads: usize) -> Result<Option<Tensor>> {
    if !qkv.device().is_cpu() || qkv.dtype() != DType::F32 || qkv.track_op() {
        return Ok(None); // other devices, and training (no backward here)
    }
    qkv.contiguous()?
        .apply_op1_no_bwd(&FusedQkvAttention { heads })
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::Module;

    #[test]
    fn the_affine_layer_norm_matches_a_double_precision_reference() -> Result<()> {
        let device = candle_core::Device::Cpu;
        // 37 columns: two full 16-lane blocks and a tail; an offset mean, where a one-pass
        // variance (candle's) is off by 4–40 units of the bound below.
        let (rows, d) = (15, 37);
        for _trial in 0..8 {
            let xs = (Tensor::randn(0f32, 1.0, (3, 5, d), &device)? + 4.0)?;
            let weight = Tensor::randn(1f32, 0.5, d, &device)?;
            let bias = Tensor::randn(0f32, 0.5, d, &device)?;
            let ours = layer_norm(&xs, &weight, &bias, 1e-6)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let (x, w, b) = (
                xs.flatten_all()?.to_vec1::<f32>()?,
                weight.to_vec1::<f32>()?,
                bias.to_vec1::<f32>()?,
            );
            for r in 0..rows {
                let row: Vec<f64> = x[r * d..(r + 1) * d]
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect();
                let mean = row.iter().sum::<f64>() / d as f64;
                let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
                let inv_std = 1.0 / (var + 1e-6).sqrt();
                for (i, v) in row.iter().enumerate() {
                    let (w, b) = (f64::from(w[i]), f64::from(b[i]));
                    let expected = (v - mean) * inv_std * w + b;
                    let got = f64::from(ours[r * d + i]);
                    // f32 rounding of the mean (∝ |mean|), of the centred value, and of the
                    // bias add, each carried through the scale: a two-pass f32 norm stays within
                    // 2.5 units over 3000 such trials.
                    let unit = f64::from(f32::EPSILON)
                        * (w.abs() * inv_std * (mean.abs() + (v - mean).abs()) + b.abs());
                    assert!(
                        (got - expected).abs() < 4.0 * unit,
                        "row {r} column {i}: {got} vs {expected} (bound {})",
                        4.0 * unit
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn adalns_fused_norm_and_gated_residual_equal_the_broadcast_ops_bit_for_bit() -> Result<()> {
        let device = candle_core::Device::Cpu;
        // Rows that straddle the tasks' blocks (VALUES_PER_TASK / 48 rows each) and a tail.
        let (b, n, d) = (3, VALUES_PER_TASK / 48 + 7, 48);
        let xs = Tensor::randn(0f32, 1.0, (b, n, d), &device)?;
        let delta = Tensor::randn(0f32, 1.0, (b, n, d), &device)?;
        let bits = |t: &Tensor| -> Result<Vec<u32>> {
            Ok(t.flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .map(|v| v.to_bits())
                .collect())
        };
        let ones = Tensor::ones(d, DType::F32, &device)?;
        let zeros = Tensor::zeros(d, DType::F32, &device)?;
        let normed = layer_norm(&xs, &ones, &zeros, 1e-6)?;
        // One row per sample, and one row for all.
        for samples in [b, 1] {
            let scale = Tensor::randn(1f32, 0.5, (samples, 1, d), &device)?;
            let shift = Tensor::randn(0f32, 0.5, (samples, 1, d), &device)?;
            let fused = layer_norm_per_sample(&xs, &scale, &shift, 1e-6)?.expect("f32 on the CPU");
            let composed = normed.broadcast_mul(&scale)?.broadcast_add(&shift)?;
            assert_eq!(bits(&fused)?, bits(&composed)?, "norm, {samples} rows");
            let gate = Tensor::randn(0f32, 1.0, (samples, 1, d), &device)?;
            let fused = gated_residual(&xs, &delta, &gate)?;
            let composed = (&xs + delta.broadcast_mul(&gate)?)?;
            assert_eq!(bits(&fused)?, bits(&composed)?, "residual, {samples} rows");
        }
        // A gate or norm weight that fits neither is left to the caller or to candle.
        let odd = Tensor::ones((2, 1, d), DType::F32, &device)?;
        assert!(layer_norm_per_sample(&xs, &odd, &odd, 1e-6)?.is_none());
        assert!(gated_residual(&xs, &delta, &odd).is_err());
        Ok(())
    }

    #[test]
    fn the_vectorisable_exp_is_within_two_ulp() {
        let mut worst = 0u32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, libm) = (exp_vectorisable(x), x.exp());
            worst = worst.max(ours.to_bits().abs_diff(libm.to_bits()));
            x += 0.0137;
        }
        assert!(worst <= 2, "{worst} ulp");
        assert_eq!(exp_vectorisable(0.0), 1.0);
        assert!(exp_vectorisable(1e6).is_finite() && exp_vectorisable(-1e6) > 0.0);
    }

    #[test]
    fn matches_candles_gelu() -> Result<()> {
        let xs = Tensor::arange(-2000i64, 2000, &candle_core::Device::Cpu)?
            .to_dtype(DType::F32)?
            .affine(0.005, 0.0)?;
        let ours = gelu_tanh(&xs)?;
        let reference = xs.gelu()?;
        let err = (ours - reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(err < 1e-6, "max error {err}");
        Ok(())
    }

    #[test]
    fn the_trainable_gelus_gradient_matches_candles() -> Result<()> {
        let values = Tensor::arange(-800i64, 800, &candle_core::Device::Cpu)?
            .to_dtype(DType::F32)?
            .affine(0.01, 0.0)?;
        let grad_of = |f: &dyn Fn(&Tensor) -> Result<Tensor>| -> Result<Tensor> {
            let x = candle_core::Var::from_tensor(&values)?;
            let y = f(x.as_tensor())?;
            let loss = (y * &values)?.sum_all()?; // a non-uniform upstream gradient
            Ok(loss
                .backward()?
                .get(x.as_tensor())
                .expect("gradient")
                .clone())
        };
        let ours = grad_of(&|x| gelu_tanh(x))?;
        let reference = grad_of(&|x| x.gelu())?;
        let err = (ours - reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(err < 1e-4, "max error {err}");
        Ok(())
    }

    #[test]
    fn the_trainable_layer_norm_matches_candles_in_value_and_gradient() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let values = Tensor::randn(0.5f32, 2.0, (3, 5, 16), &dev)?;
        let upstream = Tensor::randn(0f32, 1.0, (3, 5, 16), &dev)?;
        let (ones, zeros) = (
            Tensor::ones(16, DType::F32, &dev)?,
            Tensor::zeros(16, DType::F32, &dev)?,
        );
        let run = |f: &dyn Fn(&Tensor) -> Result<Tensor>| -> Result<(Tensor, Tensor)> {
            let x = candle_core::Var::from_tensor(&values)?;
            let y = f(x.as_tensor())?;
            let loss = (&y * &upstream)?.sum_all()?;
            let grad = loss
                .backward()?
                .get(x.as_tensor())
                .expect("gradient")
                .clone();
            Ok((y, grad))
        };
        let (ours_y, ours_g) = run(&|x| Ok(trainable_layer_norm(x, 1e-6)?.expect("cpu f32")))?;
        let (ref_y, ref_g) = run(&|x| candle_nn::ops::layer_norm_slow(x, &ones, &zeros, 1e-6))?;
        let max = |t: Tensor| -> Result<f32> { t.abs()?.max_all()?.to_scalar::<f32>() };
        assert!(max((ours_y - ref_y)?)? < 1e-5);
        assert!(max((ours_g - ref_g)?)? < 1e-4);
        Ok(())
    }

    #[test]
    fn column_and_row_blocks_of_any_size_match_candles_linear() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let (m, k, n) = (13, 29, 150);
        let weight = Tensor::randn(0f32, 0.2, (n, k), &dev)?;
        let bias = Tensor::randn(0f32, 1.0, n, &dev)?;
        let xs = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
        let plain = candle_nn::Module::forward(
            &candle_nn::Linear::new(weight.clone(), Some(bias.clone())),
            &xs,
        )?;
        let panels = GemmPanelWeight::from_weight(&weight.flatten_all()?.to_vec1::<f32>()?, n, k);
        let (xs, bias) = (xs.flatten_all()?.to_vec1::<f32>()?, bias.to_vec1::<f32>()?);
        for activation in [
            Activation::Identity,
            Activation::GeluErf,
            Activation::GeluTanh,
        ] {
            let reference = activation.apply(&plain)?.flatten_all()?.to_vec1::<f32>()?;
            // Blocks of whole panels with a ragged last one (150 = 2 × 64 + 22 columns), one
            // block, wider than the output; one row, a ragged last block (13 = 2 × 5 + 3 rows).
            let by_columns = [64, 128, 150, 192].map(|width| {
                let tasks = LinearTasks::Columns(width);
                (
                    tasks,
                    biased_linear(&xs, &panels, &bias, m, tasks, activation),
                )
            });
            let by_rows = [1, 5, 13, 20].map(|height| {
                let tasks = LinearTasks::Rows(height);
                (
                    tasks,
                    biased_linear(&xs, &panels, &bias, m, tasks, activation),
                )
            });
            for (tasks, ours) in by_columns.into_iter().chain(by_rows) {
                let err = ours
                    .iter()
                    .zip(&reference)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(err < 1e-5, "{activation:?}, {tasks:?}: max error {err}");
            }
        }
        Ok(())
    }

    #[test]
    fn column_blocks_give_each_thread_two_unless_too_narrow_or_too_small() {
        // DINO's 197 × 768 → 2304 on 2 threads: four blocks of 576 columns.
        assert_eq!(columns_per_task(197, 768, 2304, 2), 576);
        // At least 128 columns, rounded up to a whole vector.
        assert_eq!(columns_per_task(512, 1024, 256, 2), 128);
        assert_eq!(columns_per_task(512, 256, 1000, 4), 128);
        assert_eq!(columns_per_task(512, 256, 1300, 4), 176);
        // One thread, or a product too small to share: one block.
        assert_eq!(columns_per_task(197, 768, 2304, 1), 2304);
        assert_eq!(columns_per_task(8, 64, 300, 2), 300);
    }

    #[test]
    fn small_weights_share_rows_and_large_ones_columns() {
        // The built-in default's 512 × 1024 → 256 (a 1 MiB weight): two blocks of rows a thread.
        assert_eq!(linear_tasks(512, 1024, 256, 2), LinearTasks::Rows(128));
        assert_eq!(linear_tasks(197, 256, 768, 2), LinearTasks::Rows(50));
        // DINO's 197 × 768 → 2304: columns.
        assert_eq!(linear_tasks(197, 768, 2304, 2), LinearTasks::Columns(576));
        // The DiT's 512 × 1152 → 3456: whole panels of 64 (14 of 54 a task).
        assert_eq!(linear_tasks(512, 1152, 3456, 2), LinearTasks::Columns(896));
        // One thread, or a product too small to share: one block of columns.
        assert_eq!(linear_tasks(512, 256, 256, 1), LinearTasks::Columns(256));
        assert_eq!(linear_tasks(8, 64, 300, 2), LinearTasks::Columns(320));
    }

    #[test]
    fn the_dense_linear_matches_candles_linear_and_activation_in_both_forms() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let weight = Tensor::randn(0f32, 0.2, (37, 24), &dev)?;
        let bias = Tensor::randn(0f32, 1.0, 37, &dev)?;
        let reference_layer = candle_nn::Linear::new(weight, Some(bias));
        let xs = Tensor::randn(0f32, 1.0, (2, 5, 24), &dev)?;
        let max_diff =
            |a: Tensor, b: Tensor| -> Result<f32> { (a - b)?.abs()?.max_all()?.to_scalar::<f32>() };
        let mut forms = vec![false];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            forms.push(true);
        }
        for panels in forms {
            let layer = DenseLinear::rearranged(reference_layer.clone(), panels)?;
            match (&layer.form, panels) {
                (LinearForm::Panels { weight, .. }, _)
                    if matches!(**weight, PanelWeights::Avx2(_)) == panels => {}
                (form, _) => panic!("panels {panels}: {form:?}"),
            }
            for activation in [
                Activation::Identity,
                Activation::GeluErf,
                Activation::GeluTanh,
            ] {
                let ours = layer.forward_activated(&xs, activation)?;
                let plain = candle_nn::Module::forward(&reference_layer, &xs)?;
                let reference = match activation {
                    Activation::Identity => plain,
                    Activation::GeluErf => plain.gelu_erf()?,
                    Activation::GeluTanh => plain.gelu()?,
                };
                assert_eq!(ours.dims(), &[2, 5, 37]);
                let err = max_diff(ours, reference)?;
                assert!(
                    err < 1e-5,
                    "panels {panels}, {activation:?}: max error {err}"
                );
            }
            // A strided input is made contiguous first; candle's `Linear` rebuilt from the
            // rearranged weight, and an input that tracks gradients (which takes it), agree.
            let transposed = xs.transpose(0, 1)?;
            let reference = candle_nn::Module::forward(&reference_layer, &transposed)?;
            let tracked = candle_core::Var::from_tensor(&transposed)?;
            for (what, ours) in [
                ("strided", layer.forward(&transposed)?),
                ("rebuilt", layer.linear()?.forward(&transposed)?),
                ("tracked", layer.forward(tracked.as_tensor())?),
            ] {
                let err = max_diff(ours, reference.clone())?;
                assert!(err < 1e-5, "panels {panels}, {what}: max error {err}");
            }
        }
        Ok(())
    }

    #[test]
    fn a_row_through_the_panels_gets_the_same_bits_in_any_batch() -> Result<()> {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            let dev = candle_core::Device::Cpu;
            // Wide enough to be shared between tasks, deep enough for two slices of k.
            let (k, n) = (300, 200);
            let layer = DenseLinear::rearranged(
                candle_nn::Linear::new(
                    Tensor::randn(0f32, 0.1, (n, k), &dev)?,
                    Some(Tensor::randn(0f32, 1.0, n, &dev)?),
                ),
                true,
            )?;
            // 250 rows: two blocks of row panels.
            let batch = Tensor::randn(0f32, 1.0, (250, k), &dev)?;
            let together = layer.forward(&batch)?.to_vec2::<f32>()?;
            for r in [0, 5, 6, 130, 249] {
                let alone = layer.forward(&batch.narrow(0, r, 1)?)?.to_vec2::<f32>()?;
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&together[r]), bits(&alone[0]), "row {r}");
            }
            return Ok(());
        }
        println!("SKIPPED: this CPU has no AVX2 and FMA");
        Ok(())
    }

    #[test]
    fn the_vectorisable_erf_is_within_six_ten_millionths() {
        let mut worst = 0f32;
        let mut x = -6.0f32;
        while x < 6.0 {
            // libm's erff (candle's), correctly rounded to within an ulp.
            let exact = candle_core::cpu::erf::erf_f32(x);
            worst = worst.max((erf_vectorisable(x) - exact).abs());
            x += 0.00037;
        }
        // 1.5e-7 for the formula, plus the rounding of its f32 evaluation (4.5e-7 seen).
        assert!(worst < 6e-7, "max error {worst}");
        assert_eq!(erf_vectorisable(0.0), 0.0);
        assert_eq!(erf_vectorisable(-30.0), -1.0);
        assert_eq!(erf_vectorisable(30.0), 1.0);
    }

    #[test]
    fn erf_gelu_matches_candles() -> Result<()> {
        let xs = Tensor::arange(-2000i64, 2000, &candle_core::Device::Cpu)?
            .to_dtype(DType::F32)?
            .affine(0.005, 0.0)?;
        let err = (gelu_erf(&xs)? - xs.gelu_erf()?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(err < 1e-6, "max error {err}");
        Ok(())
    }
}
