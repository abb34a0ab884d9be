//! 3×3 convolutions (stride 1, padding 1) computed directly on the CPU in f32, for layers with
//! few channels. Winograd's transforms (`winograd.rs`) cost per channel what its products save
//! per channel pair, so with 16–64 channels they dominate: the built-in default's decode
//! (16–64 channels, 16–128 px) took 0.18 s with them, PyTorch's (oneDNN's direct convolution)
//! 0.07 s.
//!
//! The input is padded once into planes of `(h + 2)` rows of `w + 2` values, flattened, so that
//! tap `(ky, kx)` of every output position `j = y·(w + 2) + x` reads the input at
//! `j + ky·(w + 2) + kx`: any run of consecutive positions is one contiguous load per tap, across
//! row ends (the two extra columns a row are computed and dropped). A register block holds 32
//! positions (16 with AVX2) of 8 output channels; each tap adds one load of those inputs times 8
//! filter values.
//! Tasks are (image, block of 8 output channels, band of rows). Hand-written: candle's CPU
//! convolution copies the input out (im2col) and runs at about a third of the GEMM's speed.

use rayon::prelude::*;

use super::fast_ops::OutPtr;

/// Output channels per register block.
const CHANNELS: usize = 8;
/// Output positions per task (rounded up to whole rows).
const POSITIONS_PER_TASK: usize = 512;

/// A 3×3, stride-1, padding-1 convolution with its filters packed for the direct kernel.
#[derive(Debug, Clone)]
pub struct DirectConv3x3 {
    /// `[block][ci][tap][c]`: the filters of output channel `block·8 + c`, zero past `c_out`.
    packed: Vec<f32>,
    c_in: usize,
    c_out: usize,
}

impl DirectConv3x3 {
    /// Packs `weight`, row-major `(c_out, c_in, 3, 3)`.
    pub fn new(weight: &[f32], c_in: usize, c_out: usize) -> Self {
        let blocks = c_out.div_ceil(CHANNELS);
        let mut packed = vec![0f32; blocks * c_in * 9 * CHANNELS];
        for co in 0..c_out {
            let (block, c) = (co / CHANNELS, co % CHANNELS);
            for ci in 0..c_in {
                for tap in 0..9 {
                    packed[((block * c_in + ci) * 9 + tap) * CHANNELS + c] =
                        weight[(co * c_in + ci) * 9 + tap];
                }
            }
        }
        Self {
            packed,
            c_in,
            c_out,
        }
    }

    /// Convolves `images` images `input` `(images, c_in, h, w)` into `(images, c_out, h, w)`,
    /// adding `bias`.
    pub fn forward(
        &self,
        input: &[f32],
        images: usize,
        [h, w]: [usize; 2],
        bias: Option<&[f32]>,
    ) -> Vec<f32> {
        self.forward_with(Kernel::detect(), input, images, [h, w], bias)
    }

    /// [`Self::forward`] with the register blocks of `kernel`, which this CPU must run
    /// ([`Kernel::detect`]'s or a narrower one).
    fn forward_with(
        &self,
        kernel: Kernel,
        input: &[f32],
        images: usize,
        [h, w]: [usize; 2],
        bias: Option<&[f32]>,
    ) -> Vec<f32> {
        let (c_in, c_out) = (self.c_in, self.c_out);
        debug_assert_eq!(input.len(), images * c_in * h * w);
        if images * c_in * h * w == 0 {
            let bias = |co: usize| bias.map_or(0.0, |b| b[co]);
            let plane = |co| std::iter::repeat_n(bias(co), h * w);
            return (0..images)
                .flat_map(|_| (0..c_out).flat_map(plane))
                .collect();
        }
        let row = w + 2;
        // Reads reach up to the last task's rounded end plus the largest tap offset.
        let plane = (h + 2) * row + MAX_POSITIONS + 2;
        let mut padded = vec![0f32; images * c_in * plane];
        padded
            .par_chunks_mut(plane)
            .zip(input.par_chunks(h * w))
            .for_each(|(plane, image)| {
                for (y, src) in image.chunks(w).enumerate() {
                    plane[(y + 1) * row + 1..][..w].copy_from_slice(src);
                }
            });
        let rows_per_task = POSITIONS_PER_TASK.div_ceil(row).clamp(1, h.max(1));
        let bands = h.div_ceil(rows_per_task);
        let blocks = c_out.div_ceil(CHANNELS);
        let mut out = Vec::<f32>::with_capacity(images * c_out * h * w);
        let dst = OutPtr(out.as_mut_ptr());
        (0..images * blocks * bands)
            .into_par_iter()
            .for_each(|task| {
                let (image, block, band) =
                    (task / (blocks * bands), task / bands % blocks, task % bands);
                let first_row = band * rows_per_task;
                let rows = rows_per_task.min(h - first_row);
                let span = (rows * row).div_ceil(MAX_POSITIONS) * MAX_POSITIONS;
                let mut results = vec![0f32; CHANNELS * span];
                kernel.run(Band {
                    source: &padded[image * c_in * plane..][..c_in * plane],
                    plane,
                    row,
                    start: first_row * row,
                    filters: &self.packed[block * c_in * 9 * CHANNELS..][..c_in * 9 * CHANNELS],
                    results: &mut results,
                });
                for c in 0..CHANNELS.min(c_out - block * CHANNELS) {
                    let co = block * CHANNELS + c;
                    let bias = bias.map_or(0.0, |b| b[co]);
                    for y in 0..rows {
                        let src = &results[c * span + y * row..][..w];
                        // SAFETY: this task alone writes row `first_row + y` of channel `co` of
                        // `image`, w values inside the `images·c_out·h·w` output.
                        let out_row = unsafe {
                            std::slice::from_raw_parts_mut(
                                dst.get()
                                    .add(((image * c_out + co) * h + first_row + y) * w),
                                w,
                            )
                        };
                        for (o, &v) in out_row.iter_mut().zip(src) {
                            *o = v + bias;
                        }
                    }
                }
            });
        // SAFETY: the tasks above wrote every (image, channel, row) of the output.
        unsafe { out.set_len(images * c_out * h * w) };
        out
    }

    /// Whether this CPU runs the direct kernel at speed (fused multiply-add in vector
    /// registers); elsewhere `mul_add` would be a library call per element.
    pub fn is_fast_here() -> bool {
        Kernel::detect() != Kernel::Portable
    }
}

/// One task's work: `CHANNELS × span` sums from position `start` on, `span = results.len() /
/// CHANNELS` (a multiple of [`MAX_POSITIONS`]), channel-major into `results`.
struct Band<'a> {
    /// The padded planes of one image, `plane` values per input channel.
    source: &'a [f32],
    plane: usize,
    /// Values per padded row, `w + 2`.
    row: usize,
    start: usize,
    /// `[ci][tap][c]` for this block of output channels.
    filters: &'a [f32],
    results: &'a mut [f32],
}

/// The instruction set the register blocks are compiled for, chosen at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// 32 positions × 8 channels in 16 of AVX-512's 32 registers.
    Avx512,
    /// 16 positions × 8 channels in AVX2's 16 registers (and a few spills).
    Avx2,
    /// Whatever the baseline target gives (NEON has fused multiply-add; baseline x86-64 not).
    Portable,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
                return Kernel::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    fn run(self, band: Band<'_>) {
        match self {
            // SAFETY: the CPU has the features these functions are compiled for (`detect`
            // found them, or a wider set).
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { band_avx512(band) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Kernel::Avx2 => unsafe { band_avx2(band) },
            _ => band_in_blocks::<16>(band),
        }
    }
}

/// Register blocks of positions per task are at most this wide.
const MAX_POSITIONS: usize = 32;

/// `$name`: a band in register blocks of two vectors of positions × [`CHANNELS`], written with
/// the intrinsics of one instruction set (the compiler did not keep the portable block's
/// accumulators in vector registers).
#[cfg(target_arch = "x86_64")]
macro_rules! band_kernel {
    ($name:ident, $features:literal, $lanes:literal, $zero:ident, $load:ident, $splat:ident,
     $fma:ident, $store:ident) => {
        /// # Safety
        /// The CPU must have the features named; `band` as [`Band`] describes it, its reads
        /// within `source` (the padding of [`DirectConv3x3::forward`] sees to it).
        #[target_feature(enable = $features)]
        unsafe fn $name(band: Band<'_>) {
            use std::arch::x86_64::*;
            const POSITIONS: usize = 2 * $lanes;
            let span = band.results.len() / CHANNELS;
            let c_in = band.source.len() / band.plane;
            debug_assert!(band.start + span + 2 * band.row + 2 <= band.plane);
            let (source, filters) = (band.source.as_ptr(), band.filters.as_ptr());
            let results = band.results.as_mut_ptr();
            // SAFETY: every offset stays within `source` and `filters` by the function's
            // contract (the last read ends at `start + span + 2·row + 2 ≤ plane` in each
            // input plane), and `results` holds `CHANNELS · span` values.
            unsafe {
                for first in (0..span).step_by(POSITIONS) {
                    let mut acc = [[$zero(); 2]; CHANNELS];
                    for ci in 0..c_in {
                        let input = source.add(ci * band.plane + band.start + first);
                        let weights = filters.add(ci * 9 * CHANNELS);
                        for tap in 0..9 {
                            let at = input.add((tap / 3) * band.row + tap % 3);
                            let (low, high) = ($load(at), $load(at.add($lanes)));
                            for (c, acc) in acc.iter_mut().enumerate() {
                                let weight = $splat(*weights.add(tap * CHANNELS + c));
                                acc[0] = $fma(weight, low, acc[0]);
                                acc[1] = $fma(weight, high, acc[1]);
                            }
                        }
                    }
                    for (c, acc) in acc.iter().enumerate() {
                        let at = results.add(c * span + first);
                        $store(at, acc[0]);
                        $store(at.add($lanes), acc[1]);
                    }
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
band_kernel!(
    band_avx512,
    "avx512f",
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps
);

#[cfg(target_arch = "x86_64")]
band_kernel!(
    band_avx2,
    "avx2,fma",
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps
);

/// A band as register blocks of `P` positions, inlined into the caller's instruction set.
#[inline(always)]
fn band_in_blocks<const P: usize>(band: Band<'_>) {
    let span = band.results.len() / CHANNELS;
    for first in (0..span).step_by(P) {
        let acc = register_block::<P>(&band, band.start + first);
        for (c, values) in acc.iter().enumerate() {
            band.results[c * span + first..][..P].copy_from_slice(values);
        }
    }
}

/// The 8 channels × `P` positions from `first` on: `Σ_ci Σ_tap filter · input`, kept in
/// registers across all input channels and taps.
#[inline(always)]
fn register_block<const P: usize>(band: &Band<'_>, first: usize) -> [[f32; P]; CHANNELS] {
    let mut acc = [[0f32; P]; CHANNELS];
    for (input, filters) in band
        .source
        .chunks_exact(band.plane)
        .zip(band.filters.chunks_exact(9 * CHANNELS))
    {
        for tap in 0..9 {
            let offset = first + (tap / 3) * band.row + tap % 3;
            let values: &[f32; P] = input[offset..offset + P]
                .try_into()
                .expect("a block of positions");
            let weights: &[f32; CHANNELS] = filters[tap * CHANNELS..(tap + 1) * CHANNELS]
                .try_into()
                .expect("a block of channels");
            for (acc, &weight) in acc.iter_mut().zip(weights) {
                for (a, &v) in acc.iter_mut().zip(values) {
                    *a = weight.mul_add(v, *a);
                }
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3×3 convolution with zero padding, in f64: `(images, c_out, h, w)`.
    fn reference(
        input: &[f32],
        weight: &[f32],
        bias: &[f32],
        [images, c_in, c_out, h, w]: [usize; 5],
    ) -> Vec<f64> {
        let mut out = Vec::with_capacity(images * c_out * h * w);
        for image in 0..images {
            for co in 0..c_out {
                for y in 0..h {
                    for x in 0..w {
                        let mut sum = f64::from(bias[co]);
                        for ci in 0..c_in {
                            for (ky, kx) in (0..3).flat_map(|ky| (0..3).map(move |kx| (ky, kx))) {
                                let (iy, ix) = (y + ky, x + kx);
                                if iy < 1 || ix < 1 || iy > h || ix > w {
                                    continue;
                                }
                                let v = input[((image * c_in + ci) * h + iy - 1) * w + ix - 1];
                                let k = weight[((co * c_in + ci) * 3 + ky) * 3 + kx];
                                sum += f64::from(v) * f64::from(k);
                            }
                        }
                        out.push(sum);
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_kernel_this_cpu_runs_matches_a_double_precision_convolution() {
        let mut seed = 7u32;
        let mut random = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        let kernels: Vec<Kernel> = match Kernel::detect() {
            Kernel::Avx512 => vec![Kernel::Avx512, Kernel::Avx2, Kernel::Portable],
            Kernel::Avx2 => vec![Kernel::Avx2, Kernel::Portable],
            Kernel::Portable => vec![Kernel::Portable],
        };
        // Odd sizes, a partial block of channels, rows narrower and wider than a register block.
        for [images, c_in, c_out, h, w] in [[2, 3, 5, 7, 9], [1, 16, 8, 16, 16], [3, 4, 17, 5, 33]]
        {
            let input: Vec<f32> = (0..images * c_in * h * w).map(|_| random()).collect();
            let weight: Vec<f32> = (0..c_out * c_in * 9).map(|_| random()).collect();
            let bias: Vec<f32> = (0..c_out).map(|_| random()).collect();
            let expected = reference(&input, &weight, &bias, [images, c_in, c_out, h, w]);
            let conv = DirectConv3x3::new(&weight, c_in, c_out);
            for &kernel in &kernels {
                let out = conv.forward_with(kernel, &input, images, [h, w], Some(&bias));
                assert_eq!(out.len(), expected.len());
                for (i, (&got, &want)) in out.iter().zip(&expected).enumerate() {
                    assert!(
                        (f64::from(got) - want).abs() < 1e-5,
                        "{kernel:?} {c_in}→{c_out} {h}×{w}: value {i} {got} vs {want}"
                    );
                }
            }
        }
    }
}
