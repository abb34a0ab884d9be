//! `lumos eval-multiview`: a novel-view model's views measured against the true ones, on the
//! held-out objects of a `lumos render-dataset` set — PSNR and SSIM per azimuth bucket,
//! silhouette IoU, and the "copy the input view" baseline beside each figure (a model that
//! ignores the pose scores exactly that).
//!
//! Every view is compared on white (colour over white by coverage), at the model's size. SSIM
//! is the standard one (Wang et al. 2004: 11 × 11 Gaussian window, σ 1.5, K1 0.01, K2 0.03) on
//! luma; the silhouette of a generated view is what differs from its white background.

use image::{GrayImage, RgbImage};

/// Azimuth buckets (degrees of |Δazimuth| from the input view, wrapped to 0–180).
pub const BUCKETS: [(f64, f64); 3] = [(0.0, 45.0), (45.0, 90.0), (90.0, 180.0)];

/// Peak signal-to-noise ratio in dB (8-bit); 100 for identical images.
pub fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let sum: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = sum / a.as_raw().len().max(1) as f64;
    if mse == 0.0 {
        100.0
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

fn luma(img: &RgbImage) -> Vec<f64> {
    img.pixels()
        .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
        .collect()
}

/// Mean SSIM of the lumas (valid windows only).
pub fn ssim(a: &RgbImage, b: &RgbImage) -> f64 {
    const RADIUS: usize = 5;
    let (w, h) = (a.width() as usize, a.height() as usize);
    if w <= 2 * RADIUS || h <= 2 * RADIUS {
        return if a == b { 1.0 } else { 0.0 };
    }
    let (x, y) = (luma(a), luma(b));
    let weights: Vec<f64> = (0..=2 * RADIUS)
        .map(|i| (-((i as f64 - RADIUS as f64).powi(2)) / (2.0 * 1.5 * 1.5)).exp())
        .collect();
    let total: f64 = weights.iter().sum::<f64>().powi(2);
    let (c1, c2) = ((0.01 * 255.0f64).powi(2), (0.03 * 255.0f64).powi(2));
    let mut sum = 0.0;
    let mut count = 0usize;
    for cy in RADIUS..h - RADIUS {
        for cx in RADIUS..w - RADIUS {
            let (mut mx, mut my, mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (j, wj) in weights.iter().enumerate() {
                for (i, wi) in weights.iter().enumerate() {
                    let k = (cy + j - RADIUS) * w + cx + i - RADIUS;
                    let g = wi * wj / total;
                    mx += g * x[k];
                    my += g * y[k];
                    xx += g * x[k] * x[k];
                    yy += g * y[k] * y[k];
                    xy += g * x[k] * y[k];
                }
            }
            let (vx, vy, cov) = (xx - mx * mx, yy - my * my, xy - mx * my);
            sum += ((2.0 * mx * my + c1) * (2.0 * cov + c2))
                / ((mx * mx + my * my + c1) * (vx + vy + c2));
            count += 1;
        }
    }
    sum / count as f64
}

/// Intersection over union of two silhouettes (pixels ≥ 128); 1 when both are empty.
pub fn silhouette_iou(a: &GrayImage, b: &GrayImage) -> f64 {
    let (mut inter, mut union) = (0usize, 0usize);
    for (p, q) in a.pixels().zip(b.pixels()) {
        let (x, y) = (p.0[0] >= 128, q.0[0] >= 128);
        inter += usize::from(x && y);
        union += usize::from(x || y);
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// |Δazimuth| wrapped to 0–180 degrees.
pub fn azimuth_gap(a_deg: f64, b_deg: f64) -> f64 {
    let d = (a_deg - b_deg).rem_euclid(360.0);
    d.min(360.0 - d)
}

/// Which bucket a gap falls in.
pub fn bucket_of(gap_deg: f64) -> usize {
    BUCKETS
        .iter()
        .position(|&(lo, hi)| gap_deg >= lo && gap_deg < hi)
        .unwrap_or(BUCKETS.len() - 1)
}

/// Running means of the figures, per bucket and overall, for a model and the copy baseline.
#[derive(Clone, Debug, Default)]
pub struct Scores {
    /// Per bucket and the overall last: (sum of PSNR, SSIM, IoU, count).
    sums: [[f64; 4]; BUCKETS.len() + 1],
}

/// One comparison: a predicted view against the truth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewScore {
    /// PSNR in dB.
    pub psnr: f64,
    /// SSIM.
    pub ssim: f64,
    /// Silhouette IoU.
    pub iou: f64,
}

impl ViewScore {
    /// Scores `predicted` (on white) with its silhouette against the true view and silhouette.
    pub fn of(
        predicted: &RgbImage,
        predicted_mask: &GrayImage,
        truth: &RgbImage,
        truth_mask: &GrayImage,
    ) -> Self {
        Self {
            psnr: psnr(predicted, truth),
            ssim: ssim(predicted, truth),
            iou: silhouette_iou(predicted_mask, truth_mask),
        }
    }
}

impl Scores {
    /// Adds a view at azimuth gap `gap_deg`.
    pub fn add(&mut self, gap_deg: f64, score: ViewScore) {
        for slot in [bucket_of(gap_deg), BUCKETS.len()] {
            let s = &mut self.sums[slot];
            s[0] += score.psnr;
            s[1] += score.ssim;
            s[2] += score.iou;
            s[3] += 1.0;
        }
    }

    /// Mean (PSNR, SSIM, IoU, count) of a bucket (`BUCKETS.len()` for all views).
    pub fn mean(&self, slot: usize) -> Option<(f64, f64, f64, usize)> {
        let s = self.sums.get(slot)?;
        (s[3] > 0.0).then(|| (s[0] / s[3], s[1] / s[3], s[2] / s[3], s[3] as usize))
    }
}

/// The table of a model against the copy baseline.
pub fn report(model: &Scores, copy: &Scores) -> String {
    let mut out = String::from(
        "views            |   n | PSNR dB (copy) | SSIM (copy)   | silhouette IoU (copy)\n",
    );
    let labels: Vec<String> = BUCKETS
        .iter()
        .map(|(lo, hi)| format!("Δazimuth {lo}–{hi}°"))
        .chain(["all".to_string()])
        .collect();
    for (slot, label) in labels.iter().enumerate() {
        let (Some(m), Some(c)) = (model.mean(slot), copy.mean(slot)) else {
            out.push_str(&format!("{label:<16} |   0 |\n"));
            continue;
        };
        out.push_str(&format!(
            "{label:<16} | {:>3} | {:>5.2} ({:>5.2}) | {:.3} ({:.3}) | {:.3} ({:.3})\n",
            m.3, m.0, c.0, m.1, c.1, m.2, c.2
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_behave_as_their_definitions() {
        let a = RgbImage::from_fn(32, 32, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 6) as u8, 100])
        });
        assert_eq!(psnr(&a, &a), 100.0);
        assert!((ssim(&a, &a) - 1.0).abs() < 1e-12);
        // A uniform error of 16 levels: PSNR = 10 log10(255² / 256).
        let b = RgbImage::from_fn(32, 32, |x, y| {
            let p = a.get_pixel(x, y).0;
            image::Rgb(p.map(|v| v + 16))
        });
        let expected = 10.0 * (255.0f64 * 255.0 / 256.0).log10();
        assert!((psnr(&a, &b) - expected).abs() < 1e-9);
        // A brightness shift barely changes structure; noise does.
        let noisy = RgbImage::from_fn(32, 32, |x, y| {
            let p = a.get_pixel(x, y).0;
            let n = ((x * 7919 + y * 104_729) % 61) as u8;
            image::Rgb([p[0].wrapping_add(n), p[1], p[2]])
        });
        assert!(ssim(&a, &b) > ssim(&a, &noisy));
        let half = GrayImage::from_fn(10, 10, |x, _| image::Luma([if x < 5 { 255 } else { 0 }]));
        let quarter = GrayImage::from_fn(10, 10, |x, y| {
            image::Luma([if x < 5 && y < 5 { 255 } else { 0 }])
        });
        assert!((silhouette_iou(&half, &quarter) - 0.5).abs() < 1e-12);
        assert_eq!(azimuth_gap(350.0, 10.0), 20.0);
        assert_eq!(bucket_of(20.0), 0);
        assert_eq!(bucket_of(45.0), 1);
        assert_eq!(bucket_of(180.0), 2);
    }
}
