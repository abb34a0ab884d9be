//! 3×3 convolutions (stride 1, padding 1) by Winograd's minimal filtering on the CPU in f32.
//! F(4×4, 3×3) makes each 4×4 block of outputs from a 6×6 block of inputs with 36 multiplies
//! per (input, output) channel pair instead of 144: 4× fewer multiplies than a direct or GEMM
//! convolution (F(2×2, 3×3), 2.25× fewer, is kept for the tests and as the fallback). The SD
//! autoencoder spends nearly all its time in these convolutions, and PyTorch's CPU path
//! (oneDNN, GEMM-based) does not use the transform, so this is where the engine can beat it
//! rather than match it.
//!
//! Per chunk of tile rows: the input tiles are transformed (`V = Bᵀ d B`), then one matrix
//! product per transformed position ξ over channels (`M_ξ = U_ξ · V_ξ`, the filters `U = G g
//! Gᵀ` transformed once at load), then the outputs (`Y = Aᵀ M A`) plus the bias. The
//! transforms run a row of tiles at a time as loops over contiguous rows, which the compiler
//! vectorises; chunks bound the working memory to a few tens of MB whatever the image size.
//! Hand-written: no maintained crate offers a Winograd convolution for candle's CPU tensors.
//! Rounding: f32 throughout (Lavin & Gray's points 0, ±1, ±2); the result agrees with a direct
//! convolution to ~1e-6 relative (F(2×2)) and ~1e-5 (F(4×4)).

use rayon::prelude::*;

use super::fast_ops::{OutPtr, vectorised};

/// Working memory per chunk (transformed inputs and outputs), in f32 values.
const CHUNK_VALUES: usize = 8 << 20;

/// The transform matrices of one variant (row-major; `α = m + 2`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Variant {
    /// Outputs per tile side.
    m: usize,
    /// `Bᵀ`, α × α.
    bt: &'static [f32],
    /// `G`, α × 3.
    g: &'static [f32],
    /// `Aᵀ`, m × α.
    at: &'static [f32],
}

/// F(2×2, 3×3).
pub const F2X2: Variant = Variant {
    m: 2,
    bt: &[
        1.0, 0.0, -1.0, 0.0, //
        0.0, 1.0, 1.0, 0.0, //
        0.0, -1.0, 1.0, 0.0, //
        0.0, 1.0, 0.0, -1.0,
    ],
    g: &[
        1.0, 0.0, 0.0, //
        0.5, 0.5, 0.5, //
        0.5, -0.5, 0.5, //
        0.0, 0.0, 1.0,
    ],
    at: &[
        1.0, 1.0, 1.0, 0.0, //
        0.0, 1.0, -1.0, -1.0,
    ],
};

/// F(4×4, 3×3) (Lavin & Gray 2016).
pub const F4X4: Variant = Variant {
    m: 4,
    bt: &[
        4.0, 0.0, -5.0, 0.0, 1.0, 0.0, //
        0.0, -4.0, -4.0, 1.0, 1.0, 0.0, //
        0.0, 4.0, -4.0, -1.0, 1.0, 0.0, //
        0.0, -2.0, -1.0, 2.0, 1.0, 0.0, //
        0.0, 2.0, -1.0, -2.0, 1.0, 0.0, //
        0.0, 4.0, 0.0, -5.0, 0.0, 1.0,
    ],
    g: &[
        1.0 / 4.0,
        0.0,
        0.0, //
        -1.0 / 6.0,
        -1.0 / 6.0,
        -1.0 / 6.0, //
        -1.0 / 6.0,
        1.0 / 6.0,
        -1.0 / 6.0, //
        1.0 / 24.0,
        1.0 / 12.0,
        1.0 / 6.0, //
        1.0 / 24.0,
        -1.0 / 12.0,
        1.0 / 6.0, //
        0.0,
        0.0,
        1.0,
    ],
    at: &[
        1.0, 1.0, 1.0, 1.0, 1.0, 0.0, //
        0.0, 1.0, -1.0, 2.0, -2.0, 0.0, //
        0.0, 1.0, 1.0, 4.0, 4.0, 0.0, //
        0.0, 1.0, -1.0, 8.0, -8.0, 1.0,
    ],
};

impl Variant {
    fn alpha(&self) -> usize {
        self.m + 2
    }

    /// `out[b·n + i] = Σ_k Bᵀ[b][k] · rows[k][i]` in one pass over `i` (`rows`: α of `n`).
    #[inline]
    fn apply_bt(&self, rows: &[&[f32]], out: &mut [f32], n: usize) {
        match self.m {
            4 => {
                let (d0, d1, d2) = (&rows[0][..n], &rows[1][..n], &rows[2][..n]);
                let (d3, d4, d5) = (&rows[3][..n], &rows[4][..n], &rows[5][..n]);
                let (o0, rest) = out.split_at_mut(n);
                let (o1, rest) = rest.split_at_mut(n);
                let (o2, rest) = rest.split_at_mut(n);
                let (o3, rest) = rest.split_at_mut(n);
                let (o4, o5) = rest.split_at_mut(n);
                for i in 0..n {
                    let (a, b, c, d, e, f) = (d0[i], d1[i], d2[i], d3[i], d4[i], d5[i]);
                    o0[i] = 4.0 * a - 5.0 * c + e;
                    o1[i] = -4.0 * (b + c) + d + e;
                    o2[i] = 4.0 * (b - c) - d + e;
                    o3[i] = 2.0 * (d - b) - c + e;
                    o4[i] = 2.0 * (b - d) - c + e;
                    o5[i] = 4.0 * b - 5.0 * d + f;
                }
            }
            _ => self.apply_generic(self.bt, self.alpha(), rows, out, n),
        }
    }

    /// `out[j·n + i] = Σ_k Aᵀ[j][k] · rows[k][i]` in one pass over `i`.
    #[inline]
    fn apply_at(&self, rows: &[&[f32]], out: &mut [f32], n: usize) {
        match self.m {
            4 => {
                let (m0, m1, m2) = (&rows[0][..n], &rows[1][..n], &rows[2][..n]);
                let (m3, m4, m5) = (&rows[3][..n], &rows[4][..n], &rows[5][..n]);
                let (o0, rest) = out.split_at_mut(n);
                let (o1, rest) = rest.split_at_mut(n);
                let (o2, o3) = rest.split_at_mut(n);
                for i in 0..n {
                    let (plus, minus) = (m1[i] + m2[i], m1[i] - m2[i]);
                    let (plus2, minus2) = (m3[i] + m4[i], m3[i] - m4[i]);
                    o0[i] = m0[i] + plus + plus2;
                    o1[i] = minus + 2.0 * minus2;
                    o2[i] = plus + 4.0 * plus2;
                    o3[i] = minus + 8.0 * minus2 + m5[i];
                }
            }
            _ => self.apply_generic(self.at, self.m, rows, out, n),
        }
    }

    #[inline]
    fn apply_generic(
        &self,
        matrix: &[f32],
        outputs: usize,
        rows: &[&[f32]],
        out: &mut [f32],
        n: usize,
    ) {
        let alpha = self.alpha();
        for j in 0..outputs {
            let dst = &mut out[j * n..(j + 1) * n];
            dst.fill(0.0);
            for (&c, row) in matrix[j * alpha..(j + 1) * alpha].iter().zip(rows) {
                if c != 0.0 {
                    for (o, &x) in dst.iter_mut().zip(&row[..n]) {
                        *o += c * x;
                    }
                }
            }
        }
    }
}

/// The filters of one convolution, transformed.
#[derive(Debug, Clone)]
pub struct WinogradConv3x3 {
    variant: Variant,
    /// `U[ξ][c_out][c_in]`, ξ over the α × α positions of a transformed tile.
    u: Vec<f32>,
    c_in: usize,
    c_out: usize,
}

impl WinogradConv3x3 {
    /// Transforms `weight`, row-major `(c_out, c_in, 3, 3)`.
    pub fn new(variant: Variant, weight: &[f32], c_in: usize, c_out: usize) -> Self {
        let alpha = variant.alpha();
        let mut u = vec![0f32; alpha * alpha * c_out * c_in];
        for co in 0..c_out {
            for ci in 0..c_in {
                let g = &weight[(co * c_in + ci) * 9..(co * c_in + ci + 1) * 9];
                // G g (α × 3), then (G g) Gᵀ (α × α).
                let mut gg = vec![0f32; alpha * 3];
                for a in 0..alpha {
                    for c in 0..3 {
                        gg[a * 3 + c] = (0..3).map(|k| variant.g[a * 3 + k] * g[k * 3 + c]).sum();
                    }
                }
                for a in 0..alpha {
                    for b in 0..alpha {
                        let value: f32 = (0..3).map(|k| gg[a * 3 + k] * variant.g[b * 3 + k]).sum();
                        u[((a * alpha + b) * c_out + co) * c_in + ci] = value;
                    }
                }
            }
        }
        Self {
            variant,
            u,
            c_in,
            c_out,
        }
    }

    /// Convolves one image `input` `(c_in, h, w)` into `out` `(c_out, h, w)`, adding `bias`.
    pub fn forward(
        &self,
        input: &[f32],
        h: usize,
        w: usize,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let (c_in, c_out) = (self.c_in, self.c_out);
        let variant = self.variant;
        let (size, alpha) = (variant.m, variant.alpha());
        let positions = alpha * alpha;
        let (tile_rows, tile_cols) = (h.div_ceil(size), w.div_ceil(size));
        let rows_per_chunk =
            (CHUNK_VALUES / (positions * (c_in + c_out) * tile_cols)).clamp(1, tile_rows);
        let mut v = vec![0f32; c_in * positions * rows_per_chunk * tile_cols];
        let mut m = vec![0f32; c_out * positions * rows_per_chunk * tile_cols];
        let mut first_row = 0;
        while first_row < tile_rows {
            let rows = rows_per_chunk.min(tile_rows - first_row);
            let tiles = rows * tile_cols;
            // V[ci][ξ][t] = Bᵀ d B for every tile t of this chunk, a row of tiles at a time.
            v[..c_in * positions * tiles]
                .par_chunks_mut(positions * tiles)
                .enumerate()
                .for_each(|(ci, v)| {
                    vectorised(
                        #[inline(always)]
                        || {
                            let plane = &input[ci * h * w..(ci + 1) * h * w];
                            let mut padded = vec![0f32; size * tile_cols + 2];
                            // columns[r][b][tx]: row r of the tile, column transform b.
                            let mut columns = vec![0f32; positions * tile_cols];
                            let mut gathered = vec![vec![0f32; tile_cols]; alpha];
                            let mut staging = vec![0f32; alpha * tile_cols];
                            for row in 0..rows {
                                let ty = first_row + row;
                                for r in 0..alpha {
                                    padded.fill(0.0);
                                    let y = (size * ty + r) as isize - 1;
                                    if y >= 0 && y < h as isize {
                                        let src = &plane[y as usize * w..(y as usize + 1) * w];
                                        let end = (1 + w).min(padded.len());
                                        padded[1..end].copy_from_slice(&src[..end - 1]);
                                    }
                                    // The α input columns of every tile, then d Bᵀ's columns.
                                    for (k, column) in gathered.iter_mut().enumerate() {
                                        for (tx, value) in column.iter_mut().enumerate() {
                                            *value =
                                                padded.get(size * tx + k).copied().unwrap_or(0.0);
                                        }
                                    }
                                    let refs: Vec<&[f32]> =
                                        gathered.iter().map(Vec::as_slice).collect();
                                    variant.apply_bt(
                                        &refs,
                                        &mut columns
                                            [r * alpha * tile_cols..(r + 1) * alpha * tile_cols],
                                        tile_cols,
                                    );
                                }
                                let base = row * tile_cols;
                                for b in 0..alpha {
                                    let rows_b: Vec<&[f32]> = (0..alpha)
                                        .map(|r| {
                                            &columns[(r * alpha + b) * tile_cols
                                                ..(r * alpha + b + 1) * tile_cols]
                                        })
                                        .collect();
                                    variant.apply_bt(&rows_b, &mut staging, tile_cols);
                                    for a in 0..alpha {
                                        let xi = a * alpha + b;
                                        v[xi * tiles + base..xi * tiles + base + tile_cols]
                                            .copy_from_slice(
                                                &staging[a * tile_cols..(a + 1) * tile_cols],
                                            );
                                    }
                                }
                            }
                        },
                    )
                });
            // M[co][ξ][t] = Σ_ci U[ξ][co][ci] V[ci][ξ][t]: one matrix product per ξ, the
            // products shared out between the threads (one task each, not every product split
            // over both threads: one synchronisation per chunk instead of two per slice of c_in
            // in each of the 36).
            let products = OutPtr(m.as_mut_ptr());
            (0..positions).into_par_iter().for_each(|xi| {
                // SAFETY: dst rows are `c_out` rows of `tiles` values with stride
                // `positions·tiles` starting at `xi·tiles` inside `m` (`c_out·positions·tiles`
                // long); lhs is the row-major `c_out × c_in` block `xi` of `u`; rhs rows are
                // `c_in` rows of `tiles` values with stride `positions·tiles` starting at
                // `xi·tiles` inside `v`. All accesses stay within the buffers, and no two
                // tasks (values of ξ) write the same element of `m`.
                unsafe {
                    gemm::gemm(
                        c_out,
                        tiles,
                        c_in,
                        products.get().add(xi * tiles),
                        1,
                        (positions * tiles) as isize,
                        false,
                        self.u.as_ptr().add(xi * c_out * c_in),
                        1,
                        c_in as isize,
                        v.as_ptr().add(xi * tiles),
                        1,
                        (positions * tiles) as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            });
            // Y = Aᵀ M A (+ bias) into the chunk's output rows, a row of tiles at a time.
            out.par_chunks_mut(h * w)
                .zip(m[..c_out * positions * tiles].par_chunks(positions * tiles))
                .enumerate()
                .for_each(|(co, (plane, m))| {
                    vectorised(
                        #[inline(always)]
                        || {
                            let bias = bias.map_or(0.0, |b| b[co]);
                            let mut partial = vec![0f32; size * alpha * tile_cols];
                            let mut outputs = vec![0f32; size * tile_cols];
                            let mut line = vec![0f32; size * tile_cols];
                            for row in 0..rows {
                                let ty = first_row + row;
                                let base = row * tile_cols;
                                // partial[b][i][tx] = Σ_a Aᵀ[i][a] M[a][b][tx].
                                for b in 0..alpha {
                                    let rows_b: Vec<&[f32]> = (0..alpha)
                                        .map(|a| {
                                            let xi = a * alpha + b;
                                            &m[xi * tiles + base..xi * tiles + base + tile_cols]
                                        })
                                        .collect();
                                    variant.apply_at(
                                        &rows_b,
                                        &mut partial
                                            [b * size * tile_cols..(b + 1) * size * tile_cols],
                                        tile_cols,
                                    );
                                }
                                for i in 0..size {
                                    let y = size * ty + i;
                                    if y >= h {
                                        continue;
                                    }
                                    let rows_i: Vec<&[f32]> = (0..alpha)
                                        .map(|b| {
                                            &partial[(b * size + i) * tile_cols
                                                ..(b * size + i + 1) * tile_cols]
                                        })
                                        .collect();
                                    variant.apply_at(&rows_i, &mut outputs, tile_cols);
                                    for tx in 0..tile_cols {
                                        for j in 0..size {
                                            line[size * tx + j] =
                                                outputs[j * tile_cols + tx] + bias;
                                        }
                                    }
                                    plane[y * w..(y + 1) * w].copy_from_slice(&line[..w]);
                                }
                            }
                        },
                    )
                });
            first_row += rows;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A direct 3×3 convolution with zero padding, in f64.
    fn direct(
        input: &[f32],
        weight: &[f32],
        c_in: usize,
        c_out: usize,
        h: usize,
        w: usize,
    ) -> Vec<f64> {
        let mut out = vec![0f64; c_out * h * w];
        for co in 0..c_out {
            for y in 0..h {
                for x in 0..w {
                    let mut sum = 0f64;
                    for ci in 0..c_in {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) =
                                    (y as isize + ky as isize - 1, x as isize + kx as isize - 1);
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                sum += f64::from(input[(ci * h + iy as usize) * w + ix as usize])
                                    * f64::from(weight[((co * c_in + ci) * 3 + ky) * 3 + kx]);
                            }
                        }
                    }
                    out[(co * h + y) * w + x] = sum;
                }
            }
        }
        out
    }

    #[test]
    fn both_variants_match_a_direct_convolution_on_odd_and_even_sizes() {
        let mut seed = 12345u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for variant in [F2X2, F4X4] {
            for (c_in, c_out, h, w) in [(3, 5, 7, 9), (16, 8, 10, 6), (4, 4, 1, 1), (2, 3, 33, 2)] {
                let input: Vec<f32> = (0..c_in * h * w).map(|_| next()).collect();
                let weight: Vec<f32> = (0..c_out * c_in * 9).map(|_| next()).collect();
                let bias: Vec<f32> = (0..c_out).map(|_| next()).collect();
                let conv = WinogradConv3x3::new(variant, &weight, c_in, c_out);
                let mut out = vec![0f32; c_out * h * w];
                conv.forward(&input, h, w, Some(&bias), &mut out);
                let expected = direct(&input, &weight, c_in, c_out, h, w);
                for (i, (&ours, &want)) in out.iter().zip(&expected).enumerate() {
                    let want = want + f64::from(bias[i / (h * w)]);
                    assert!(
                        (f64::from(ours) - want).abs() < 2e-5,
                        "F({}) ({c_in},{c_out},{h},{w}) index {i}: {ours} vs {want}",
                        variant.m
                    );
                }
            }
        }
    }
}
