//! `out += xs · Wᵀ` for a linear layer whose weight is kept in panels of 16 output columns, in
//! AVX2 register blocks of 6 rows × 16 columns: twelve accumulators, and per step of k two
//! loads of the panel and six broadcasts of `xs`.
//!
//! Why by hand: on a CPU with AVX2 and FMA but no AVX-512 (an AMD EPYC, Zen 3, whose FMA units
//! peak at 91 GFLOP/s a core, measured), the `gemm` crate ran DINO's layer shapes at 90–140
//! GFLOP/s on two cores, and these blocks over a weight rearranged once at load 3–24 % faster
//! (median 12 %; three runs of `DenseLinear` alternating both forms in one process, weights
//! cold; 197 × 3072 → 768: 7.8 against 9.2 ms). On the built-in default's shapes (512 rows, k
//! 256–1024) they were 9 % faster to 21 % slower (512 × 1024 → 256 the slowest), on the DiT
//! XL's (512 rows, k 1152–4608) within −7 … +8 %. Reading the transposed weight in place instead was up to 45 % slower (a block's 16
//! columns are one cache line from each of k rows far apart). Where AVX-512 is present `gemm`'s
//! kernels ran level with MKL's, and they stay ([`applies`]).
//!
//! Layout: the weight's panel `p` is `[k][16]` — columns 16p..16p + 16 of `Wᵀ`, zero past the
//! last output — so a block streams 64 contiguous bytes a step; the panels' slices of [`DEPTH`]
//! rows of k are stored slice by slice (`[k / DEPTH][panel][DEPTH][16]`), so that a product
//! reads the weight front to back. `xs` is packed once per product into panels of 6 rows
//! (`[k][6]`, zero rows past m) so that a step's six broadcasts are adjacent. Loop order: slices
//! of [`DEPTH`] rows of k, then blocks of at most 240 rows, then weight panels, then the block's
//! row panels — a weight panel's slice (16 KB) stays in L1 while the block's row panels pass
//! over it, and the block's packed rows (240 KB at most) stay in L2. Each output is its start
//! value plus one sum per slice, each summed in k order, whatever m is and whichever rows share
//! its block: a row gets the same bits in any batch.

use std::ops::Range;

use rayon::prelude::*;

/// Rows of a register block.
const ROWS: usize = 6;
/// Output columns of a weight panel and of a register block (two AVX2 vectors).
pub const COLUMNS: usize = 16;
/// Rows of k per slice.
const DEPTH: usize = 256;
/// Row panels per block at most: a block's slice of the packed rows (240 rows × 256 × 4 bytes)
/// stays in a 512 KB L2 while every weight panel of the task passes over it.
const ROW_PANELS_PER_BLOCK: usize = 40;

/// Whether this CPU takes these blocks: AVX2 and FMA without AVX-512.
pub fn applies() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && !is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A linear layer's weight `(out, in)` rearranged into panels of [`COLUMNS`] output columns.
#[derive(Clone)]
pub struct PanelWeight {
    panels: Vec<f32>,
    in_dim: usize,
    out_dim: usize,
}

impl std::fmt::Debug for PanelWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PanelWeight({} → {})", self.in_dim, self.out_dim)
    }
}

impl PanelWeight {
    /// Rearranges a row-major `(out_dim, in_dim)` weight.
    pub fn from_weight(weight: &[f32], out_dim: usize, in_dim: usize) -> Self {
        assert_eq!(
            weight.len(),
            out_dim * in_dim,
            "weight ({out_dim}, {in_dim})"
        );
        let panel_count = out_dim.div_ceil(COLUMNS);
        let mut panels = vec![0f32; panel_count * in_dim * COLUMNS];
        panels
            .par_chunks_mut((panel_count * DEPTH * COLUMNS).max(1))
            .enumerate()
            .for_each(|(slice, values)| {
                let k0 = slice * DEPTH;
                let depth = DEPTH.min(in_dim - k0);
                for (p, panel) in values.chunks_mut(depth * COLUMNS).enumerate() {
                    for c in 0..COLUMNS.min(out_dim - p * COLUMNS) {
                        let row = &weight[(p * COLUMNS + c) * in_dim + k0..][..depth];
                        for (i, &value) in row.iter().enumerate() {
                            panel[i * COLUMNS + c] = value;
                        }
                    }
                }
            });
        Self {
            panels,
            in_dim,
            out_dim,
        }
    }

    /// Slice `k0 .. k0 + depth` of panel `p`: `[depth][16]`.
    fn panel_slice(&self, p: usize, k0: usize, depth: usize) -> &[f32] {
        &self.panels[(k0 * self.panel_count() + p * depth) * COLUMNS..][..depth * COLUMNS]
    }

    /// The row-major `(out_dim, in_dim)` weight back.
    pub fn to_weight(&self) -> Vec<f32> {
        let mut weight = vec![0f32; self.out_dim * self.in_dim];
        for (o, row) in weight.chunks_mut(self.in_dim.max(1)).enumerate() {
            for k0 in (0..self.in_dim).step_by(DEPTH) {
                let depth = DEPTH.min(self.in_dim - k0);
                let panel = self.panel_slice(o / COLUMNS, k0, depth);
                for (i, value) in row[k0..][..depth].iter_mut().enumerate() {
                    *value = panel[i * COLUMNS + o % COLUMNS];
                }
            }
        }
        weight
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Panels of [`COLUMNS`] outputs (the last one possibly narrower).
    pub fn panel_count(&self) -> usize {
        self.out_dim.div_ceil(COLUMNS)
    }

    /// `out[.., 16·first ..]` `+= xs · Wᵀ` over the outputs of `panels`, `xs` given as
    /// [`pack_rows`]`(xs, m, in_dim)`.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA, and `out` points at m rows `ldc` apart whose columns
    /// `16·panels.start .. min(16·panels.end, out_dim)` are writable and used by no one else
    /// meanwhile.
    pub unsafe fn add_product(
        &self,
        rows: &PackedRows,
        panels: Range<usize>,
        out: *mut f32,
        ldc: usize,
    ) {
        assert_eq!(
            rows.k, self.in_dim,
            "packed rows against the weight's input width"
        );
        assert!(panels.end <= self.panel_count());
        // SAFETY: the caller's contract; the packed rows and panels are whole (asserted above
        // and by construction).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            self.add_product_avx2(rows, panels, out, ldc)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("panel products need AVX2 ({out:?}, {ldc}, {panels:?})")
    }

    /// [`Self::add_product`] compiled for AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn add_product_avx2(
        &self,
        rows: &PackedRows,
        panels: Range<usize>,
        out: *mut f32,
        ldc: usize,
    ) {
        let (m, k) = (rows.m, self.in_dim);
        // The last panel's block, when it holds fewer than 16 outputs: computed here, then added
        // to the columns that exist.
        let mut tile = [0f32; ROWS * COLUMNS];
        let row_panels = m.div_ceil(ROWS);
        let row_panels_per_block = row_panels
            .div_ceil(row_panels.div_ceil(ROW_PANELS_PER_BLOCK))
            .max(1);
        for k0 in (0..k).step_by(DEPTH) {
            let depth = DEPTH.min(k - k0);
            for first in (0..row_panels).step_by(row_panels_per_block) {
                let row_block = first..(first + row_panels_per_block).min(row_panels);
                for p in panels.clone() {
                    let width = COLUMNS.min(self.out_dim - p * COLUMNS);
                    let b = self.panel_slice(p, k0, depth);
                    for row_panel in row_block.clone() {
                        let first_row = row_panel * ROWS;
                        let rows_here = ROWS.min(m - first_row);
                        let a = &rows.values[(row_panel * k + k0) * ROWS..][..depth * ROWS];
                        // SAFETY: `out` covers rows first_row.. first_row + rows_here and this
                        // panel's `width` columns (the caller's contract); `a` and `b` hold
                        // `depth` steps (sliced above); the CPU has AVX2 and FMA.
                        unsafe {
                            let c = out.add(first_row * ldc + p * COLUMNS);
                            if width == COLUMNS {
                                block(a, b, c, ldc, rows_here);
                            } else {
                                tile.fill(0.0);
                                block(a, b, tile.as_mut_ptr(), COLUMNS, rows_here);
                                for r in 0..rows_here {
                                    let values = &tile[r * COLUMNS..][..width];
                                    for (col, &value) in values.iter().enumerate() {
                                        *c.add(r * ldc + col) += value;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `xs` (m × k, row-major) in panels of 6 rows: panel `q` holds `[k][6]`, rows past m zero.
pub struct PackedRows {
    values: Vec<f32>,
    m: usize,
    k: usize,
}

/// Packs `xs` (m × k, row-major) for [`PanelWeight::add_product`].
pub fn pack_rows(xs: &[f32], m: usize, k: usize) -> PackedRows {
    assert_eq!(xs.len(), m * k, "rows ({m}, {k})");
    let mut values = vec![0f32; m.div_ceil(ROWS) * k * ROWS];
    values
        .par_chunks_mut((k * ROWS).max(1))
        .enumerate()
        .for_each(|(panel, packed)| {
            // Written front to back, a step of six values at a time, from one read stream per
            // row: writing one row at a time (stride 6) made DINO's 197 × 3072 pack 12 % of
            // its product (~1 ms), its panels being larger than L1.
            let first = panel * ROWS;
            let sources: [&[f32]; ROWS] = std::array::from_fn(|r| {
                xs.get((first + r) * k..(first + r + 1) * k).unwrap_or(&[])
            });
            for (p, step) in packed.chunks_exact_mut(ROWS).enumerate() {
                for (value, row) in step.iter_mut().zip(&sources) {
                    *value = row.get(p).copied().unwrap_or(0.0);
                }
            }
        });
    PackedRows { values, m, k }
}

/// One register block: `c[..rows][..16] += a · b`, `a` a slice of a packed row panel
/// (`[depth][6]`), `b` the same steps of a weight panel (`[depth][16]`).
///
/// # Safety
/// The CPU has AVX2 and FMA; `c` points at `rows` rows of 16 writable values `ldc` apart.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn block(a: &[f32], b: &[f32], c: *mut f32, ldc: usize, rows: usize) {
    use std::arch::x86_64::*;
    let depth = b.len() / COLUMNS;
    debug_assert!(a.len() >= depth * ROWS);
    // SAFETY: reads stay within `a` (depth × 6) and `b` (depth × 16); `c` is the caller's.
    unsafe {
        let (a, b) = (a.as_ptr(), b.as_ptr());
        let mut low = [_mm256_setzero_ps(); ROWS];
        let mut high = [_mm256_setzero_ps(); ROWS];
        for p in 0..depth {
            let b_low = _mm256_loadu_ps(b.add(p * COLUMNS));
            let b_high = _mm256_loadu_ps(b.add(p * COLUMNS + 8));
            for r in 0..ROWS {
                let a = _mm256_broadcast_ss(&*a.add(p * ROWS + r));
                low[r] = _mm256_fmadd_ps(a, b_low, low[r]);
                high[r] = _mm256_fmadd_ps(a, b_high, high[r]);
            }
        }
        for r in 0..rows {
            let c = c.add(r * ldc);
            _mm256_storeu_ps(c, _mm256_add_ps(_mm256_loadu_ps(c), low[r]));
            _mm256_storeu_ps(c.add(8), _mm256_add_ps(_mm256_loadu_ps(c.add(8)), high[r]));
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Values in [−1, 1) from a fixed sequence.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn the_panels_hold_the_weight() {
        for (out_dim, in_dim) in [(37, 5), (16, 3), (1, 1), (0, 4), (21, 600), (40, 512)] {
            let weight = values(out_dim * in_dim, 7);
            assert_eq!(
                PanelWeight::from_weight(&weight, out_dim, in_dim).to_weight(),
                weight
            );
        }
    }

    #[test]
    fn products_with_every_tail_match_a_double_precision_product() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            println!("SKIPPED: this CPU has no AVX2 and FMA");
            return;
        }
        // Row tails (1, 5, 1 past a panel), output tails (5, 21, 37), k past a slice (300,
        // 513), and the panels split between two calls, as a product's tasks do.
        for (m, k, n, split) in [
            (1, 3, 16, 1),
            (5, 300, 37, 1),
            (13, 513, 48, 2),
            (6, 256, 21, 0),
            (12, 40, 80, 4),
        ] {
            let xs = values(m * k, 1);
            let weight = values(n * k, 2);
            let start = values(m * n, 3);
            let panels = PanelWeight::from_weight(&weight, n, k);
            let rows = pack_rows(&xs, m, k);
            let mut out = start.clone();
            for part in [0..split, split..panels.panel_count()] {
                // SAFETY: the CPU has AVX2 and FMA (checked); `out` has m rows of n values.
                unsafe { panels.add_product(&rows, part, out.as_mut_ptr(), n) };
            }
            for i in 0..m {
                for j in 0..n {
                    let terms =
                        (0..k).map(|p| f64::from(xs[i * k + p]) * f64::from(weight[j * k + p]));
                    let expected = f64::from(start[i * n + j]) + terms.clone().sum::<f64>();
                    let magnitude = 1.0 + terms.map(f64::abs).sum::<f64>();
                    let got = f64::from(out[i * n + j]);
                    assert!(
                        (got - expected).abs() <= 1e-6 * magnitude,
                        "{m}×{k}×{n}, row {i} column {j}: {got} vs {expected}"
                    );
                }
            }
        }
    }
}
