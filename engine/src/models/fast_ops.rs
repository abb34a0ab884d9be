//! CPU kernels where candle is slow on this workload. GELU: candle runs it single-threaded
//! through libm's `tanhf`, and in a profile of the full-size DiT on 2 cores it took ~14% of
//! the CPU samples while the matmuls ran on both cores. Self-attention: see
//! [`fused_qkv_attention_cpu`]. On other devices and dtypes, and for tensors that track
//! gradients (training), candle's own ops are used.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `sqrt(2 / π)`.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// GELU with the tanh approximation (PyTorch `approximate="tanh"`), computed as
/// `0.5 x (1 + tanh(u))` with `tanh(u) = 1 - 2 / (exp(2u) + 1)`: within a few ulp of candle's
/// `gelu` in absolute terms.
fn gelu_tanh_scalar(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * x * (1.0 + 0.044_715 * x * x);
    let tanh = 1.0 - 2.0 / ((2.0 * u).exp() + 1.0);
    0.5 * x * (1.0 + tanh)
}

/// Exact GELU `0.5 x (1 + erf(x / √2))` with candle's own `erf` (bit identical to candle's
/// `gelu_erf`).
fn gelu_erf_scalar(x: f32) -> f32 {
    let e = candle_core::cpu::erf::erf_f32(x * std::f32::consts::FRAC_1_SQRT_2);
    (e + 1.0) * 0.5 * x
}

/// An elementwise f32 function applied in parallel chunks to a contiguous CPU tensor.
struct ParallelMap {
    name: &'static str,
    f: fn(f32) -> f32,
}

impl CustomOp1 for ParallelMap {
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
        out.par_chunks_mut(16 * 1024)
            .zip(input.par_chunks(16 * 1024))
            .for_each(|(o, i)| {
                for (o, &x) in o.iter_mut().zip(i) {
                    *o = (self.f)(x);
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Applies `map` in parallel on contiguous f32 CPU tensors, `fallback` (candle's op) elsewhere.
fn parallel_or(
    xs: &Tensor,
    map: &ParallelMap,
    fallback: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == DType::F32 && !xs.track_op() {
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

/// GELU (tanh approximation): in parallel on the CPU, candle's `gelu` elsewhere.
pub fn gelu_tanh(xs: &Tensor) -> Result<Tensor> {
    let map = ParallelMap {
        name: "gelu-tanh-par",
        f: gelu_tanh_scalar,
    };
    parallel_or(xs, &map, Tensor::gelu)
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

/// A raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: each task writes only the elements of its own (sample, head) pair.
unsafe impl Send for OutPtr {}
// SAFETY: as above; no element is written by two tasks or read while written.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so that closures capture the `Sync` wrapper, not the field).
    fn get(self) -> *mut f32 {
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
            || vec![0f32; n * n],
            |scores, pair| {
                let (sample, head) = (pair / heads, pair % heads);
                let base = sample * n * c3 + head * d;
                let (q, k, v) = (base, base + c, base + 2 * c);
                // SAFETY: q/k/v rows are read at `offset + i·3c + j` for i < n, j < d, all
                // inside this sample's `n × 3c` block; `scores` holds n × n values; the output
                // block of this pair (rows of stride c, columns head·d..head·d + d) is
                // written by this task only.
                unsafe {
                    // scores = scale · q kᵀ
                    gemm::gemm(
                        n,
                        n,
                        d,
                        scores.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        qkv.as_ptr().add(q),
                        1,
                        c3 as isize,
                        qkv.as_ptr().add(k),
                        c3 as isize,
                        1,
                        0.0,
                        scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                for row in scores.chunks_mut(n) {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0f32;
                    for s in row.iter_mut() {
                        *s = (*s - max).exp();
                        sum += *s;
                    }
                    let inv = 1.0 / sum;
                    for s in row.iter_mut() {
                        *s *= inv;
                    }
                }
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
                        scores.as_ptr(),
                        1,
                        n as isize,
                        qkv.as_ptr().add(v),
                        1,
                        c3 as isize,
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
    fn erf_gelu_is_bit_identical_to_candles() -> Result<()> {
        let xs = Tensor::arange(-2000i64, 2000, &candle_core::Device::Cpu)?
            .to_dtype(DType::F32)?
            .affine(0.005, 0.0)?;
        let err = (gelu_erf(&xs)? - xs.gelu_erf()?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert_eq!(err, 0.0);
        Ok(())
    }
}
