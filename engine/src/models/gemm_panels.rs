//! `out += xs · Wᵀ` for a linear layer whose weight is kept in panels of 64 output columns, each
//! `[k][64]`: the layout `gemm`'s AVX-512 f32 kernels pack their left-hand side into (row blocks
//! of 4 × 16 lanes), so `gemm` reads the panels in place.
//!
//! Why: `gemm` computes `xs Wᵀ` as `(W xs ᵀ)ᵀ`, with the weight as its left-hand side, and packs
//! that side on every call once a call has more than 48 rows of `xs` — the whole weight, cold
//! from memory, every forward pass: `pack_lhs` was 15 % of the matrix products' CPU samples in
//! DINO. Kept in panels from load and multiplied 24 rows of `xs` at a time, the weight is never
//! packed. Alternating both forms in one process (2 threads, AVX-512, 12 cold copies of each
//! weight; two runs): DINO's four layer shapes 6–13 % faster (`197 × 768 → 2304`: 3.69 → 3.30
//! ms), the DiT XL's 4–16 %, the built-in default's 1–7 %. Multiplying all rows in one call
//! instead (gemm packs again) gave back most of it; 48 rows a call was as fast as 24 on DINO but
//! up to 10 % slower on the DiT's `512 × 4608 → 1152`.

use std::ops::Range;

use rayon::prelude::*;

/// Output columns of a panel: `gemm`'s AVX-512 f32 row block.
pub const PANEL: usize = 64;
/// Rows of `xs` per `gemm` call: at most 48 keeps `gemm` from packing the panel (it packs the
/// left-hand side when a call has more than 8 × its 6 columns).
const ROWS_PER_CALL: usize = 24;

/// A linear layer's weight `(out, in)` rearranged into panels of [`PANEL`] output columns: panel
/// `p` holds outputs `64p .. 64p + w` (`w` = 64 but for a narrower last one) as `[in][w]`, at
/// `64p · in`.
#[derive(Clone)]
pub struct GemmPanelWeight {
    values: Vec<f32>,
    in_dim: usize,
    out_dim: usize,
}

impl std::fmt::Debug for GemmPanelWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GemmPanelWeight({} → {})", self.in_dim, self.out_dim)
    }
}

impl GemmPanelWeight {
    /// Rearranges a row-major `(out_dim, in_dim)` weight.
    pub fn from_weight(weight: &[f32], out_dim: usize, in_dim: usize) -> Self {
        assert_eq!(
            weight.len(),
            out_dim * in_dim,
            "weight ({out_dim}, {in_dim})"
        );
        let mut values = vec![0f32; out_dim * in_dim];
        values
            .par_chunks_mut((PANEL * in_dim).max(1))
            .enumerate()
            .for_each(|(p, panel)| {
                let width = panel.len() / in_dim.max(1);
                for c in 0..width {
                    let row = &weight[(p * PANEL + c) * in_dim..][..in_dim];
                    for (i, &value) in row.iter().enumerate() {
                        panel[i * width + c] = value;
                    }
                }
            });
        Self {
            values,
            in_dim,
            out_dim,
        }
    }

    /// Panel `p`, `[in][width]`, and its width.
    fn panel(&self, p: usize) -> (&[f32], usize) {
        let width = PANEL.min(self.out_dim - p * PANEL);
        (
            &self.values[p * PANEL * self.in_dim..][..width * self.in_dim],
            width,
        )
    }

    /// The row-major `(out_dim, in_dim)` weight back.
    pub fn to_weight(&self) -> Vec<f32> {
        let mut weight = vec![0f32; self.out_dim * self.in_dim];
        for (o, row) in weight.chunks_mut(self.in_dim.max(1)).enumerate() {
            let (panel, width) = self.panel(o / PANEL);
            for (i, value) in row.iter_mut().enumerate() {
                *value = panel[i * width + o % PANEL];
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

    /// `out += xs[rows] · Wᵀ[.., columns]` on the calling thread, `xs` row-major `(m, in_dim)`
    /// and `out` pointing at the block's first element (row `rows.start`, column
    /// `columns.start`), its rows `ldc` apart.
    ///
    /// # Safety
    /// `out` must cover `rows.len()` rows of `columns.len()` writable values, used by no one
    /// else meanwhile.
    pub unsafe fn add_product(
        &self,
        xs: &[f32],
        rows: Range<usize>,
        columns: Range<usize>,
        out: *mut f32,
        ldc: usize,
    ) {
        let k = self.in_dim;
        assert!(
            columns.start.is_multiple_of(PANEL)
                && (columns.end.is_multiple_of(PANEL) || columns.end == self.out_dim)
                && columns.end <= self.out_dim,
            "columns {columns:?} are not whole panels of {}",
            self.out_dim
        );
        assert!(xs.len() >= rows.end * k, "{} rows of {k}", rows.end);
        for p in columns.start / PANEL..columns.end.div_ceil(PANEL) {
            let (panel, width) = self.panel(p);
            for first in rows.clone().step_by(ROWS_PER_CALL) {
                let count = ROWS_PER_CALL.min(rows.end - first);
                // SAFETY: the block's rows first.. first + count and this panel's `width`
                // columns lie in `out` (the caller's contract; the panel's columns lie in
                // `columns`, asserted above); `xs` holds those rows of k values (asserted) and
                // the panel `[k][width]`.
                unsafe {
                    gemm::gemm(
                        count,
                        width,
                        k,
                        out.add((first - rows.start) * ldc + p * PANEL - columns.start),
                        1,
                        ldc as isize,
                        true,
                        xs.as_ptr().add(first * k),
                        1,
                        k as isize,
                        panel.as_ptr(),
                        1,
                        width as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_round_trip_and_multiply_any_block_as_the_plain_product() {
        // 150 outputs: two whole panels and one of 22; 30 rows: a call of 24 and one of 6.
        let (m, k, n) = (30, 37, 150);
        let weight: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let xs: Vec<f32> = (0..m * k)
            .map(|i| ((i * 104_729) % 89) as f32 / 44.0 - 1.0)
            .collect();
        let panels = GemmPanelWeight::from_weight(&weight, n, k);
        assert_eq!(panels.to_weight(), weight);
        let plain =
            |r: usize, c: usize| -> f32 { (0..k).map(|i| xs[r * k + i] * weight[c * k + i]).sum() };
        for (rows, columns) in [
            (0..m, 0..n),
            (5..29, 64..150),
            (0..1, 128..150),
            (3..30, 0..64),
        ] {
            let mut out = vec![1f32; m * n];
            // SAFETY: the block (rows, columns) lies in the m × n `out`.
            unsafe {
                panels.add_product(
                    &xs,
                    rows.clone(),
                    columns.clone(),
                    out.as_mut_ptr().add(rows.start * n + columns.start),
                    n,
                )
            };
            for r in 0..m {
                for c in 0..n {
                    let inside = rows.contains(&r) && columns.contains(&c);
                    let expected = if inside { 1.0 + plain(r, c) } else { 1.0 };
                    let got = out[r * n + c];
                    assert!(
                        (got - expected).abs() < 1e-4,
                        "block {rows:?} × {columns:?}, ({r}, {c}): {got} against {expected}"
                    );
                }
            }
        }
    }
}
