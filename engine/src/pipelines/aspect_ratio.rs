//! Aspect-ratio buckets of the text-to-image prior: a requested size → the bucket the model was
//! trained on, its `[height, width]` in pixels and its key (the micro-conditions), and the
//! latent size.
//!
//! The table is `ASPECT_RATIO_1024_TEST` of `utils/resolution.py` and the choice is its
//! `get_closest_ratio`. It lives in code rather than in a file because it is part of the
//! published model (the buckets it was fine-tuned on), not a user setting: the app must pick the
//! same bucket with no fixture folder present. The parity tests check it against the fixture's
//! `aspect_ratios_1024.json`, entry by entry and on its worked examples.

use serde::Deserialize;

/// One bucket: its key (as written in the original table) and its size in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AspectRatioBucket {
    /// The key of the original dict, e.g. `"0.68"`; the model is conditioned on its value,
    /// which is not always `height / width` (832 / 1216 = 0.684).
    pub key: &'static str,
    /// Height in pixels (a multiple of 64).
    pub height_px: u32,
    /// Width in pixels (a multiple of 64).
    pub width_px: u32,
}

impl AspectRatioBucket {
    /// The key as a number (what `aspect_ratio` carries into the model).
    pub fn ratio(&self) -> f32 {
        // The keys are literals of this file, all valid numbers (checked by a test).
        self.key.parse().unwrap_or(f32::NAN)
    }

    /// The latent size `(height / 8, width / 8)` for an autoencoder that downsamples by 8.
    pub fn latent_hw(&self, downsampling: u32) -> (usize, usize) {
        (
            (self.height_px / downsampling) as usize,
            (self.width_px / downsampling) as usize,
        )
    }

    /// The micro-conditions of this bucket for one whole batch.
    pub fn micro_conditions(&self) -> crate::models::MicroConditions {
        crate::models::MicroConditions::single(
            self.height_px as f32,
            self.width_px as f32,
            self.ratio(),
        )
    }
}

const fn bucket(key: &'static str, height_px: u32, width_px: u32) -> AspectRatioBucket {
    AspectRatioBucket {
        key,
        height_px,
        width_px,
    }
}

/// `ASPECT_RATIO_1024_TEST`, in the original dict order (ascending ratio; ties go to the first).
pub const ASPECT_RATIO_1024: [AspectRatioBucket; 33] = [
    bucket("0.25", 512, 2048),
    bucket("0.28", 512, 1856),
    bucket("0.32", 576, 1792),
    bucket("0.33", 576, 1728),
    bucket("0.35", 576, 1664),
    bucket("0.4", 640, 1600),
    bucket("0.42", 640, 1536),
    bucket("0.48", 704, 1472),
    bucket("0.5", 704, 1408),
    bucket("0.52", 704, 1344),
    bucket("0.57", 768, 1344),
    bucket("0.6", 768, 1280),
    bucket("0.68", 832, 1216),
    bucket("0.72", 832, 1152),
    bucket("0.78", 896, 1152),
    bucket("0.82", 896, 1088),
    bucket("0.88", 960, 1088),
    bucket("0.94", 960, 1024),
    bucket("1.0", 1024, 1024),
    bucket("1.07", 1024, 960),
    bucket("1.13", 1088, 960),
    bucket("1.21", 1088, 896),
    bucket("1.29", 1152, 896),
    bucket("1.38", 1152, 832),
    bucket("1.46", 1216, 832),
    bucket("1.67", 1280, 768),
    bucket("1.75", 1344, 768),
    bucket("2.0", 1408, 704),
    bucket("2.09", 1472, 704),
    bucket("2.4", 1536, 640),
    bucket("2.5", 1600, 640),
    bucket("3.0", 1728, 576),
    bucket("4.0", 2048, 512),
];

/// `get_closest_ratio(height, width, ratios)`: the bucket whose key is closest to
/// `height / width` (compared in f64 like Python; the first of equally close keys wins).
pub fn closest_bucket(height_px: u32, width_px: u32) -> Option<AspectRatioBucket> {
    if height_px == 0 || width_px == 0 {
        return None;
    }
    let ratio = f64::from(height_px) / f64::from(width_px);
    let mut best: Option<(f64, AspectRatioBucket)> = None;
    for candidate in ASPECT_RATIO_1024 {
        let key: f64 = candidate.key.parse().ok()?;
        let distance = (key - ratio).abs();
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, b)| b)
}

/// `aspect_ratios_1024.json` of the `lumos_t2ims_tiny` fixture (for parity checks).
#[derive(Clone, Debug, Deserialize)]
pub struct BucketTableFile {
    /// The table in dict order.
    pub table: Vec<BucketEntry>,
    /// Worked examples of `get_closest_ratio`.
    pub examples: Vec<BucketExample>,
}

/// A row of the fixture's table.
#[derive(Clone, Debug, Deserialize)]
pub struct BucketEntry {
    /// The dict key.
    pub key: String,
    /// Height in pixels.
    pub height: f64,
    /// Width in pixels.
    pub width: f64,
}

/// A worked example of the fixture.
#[derive(Clone, Debug, Deserialize)]
pub struct BucketExample {
    /// Requested height.
    pub height: u32,
    /// Requested width.
    pub width: u32,
    /// The chosen bucket's `[height, width]`.
    pub closest_hw: [f64; 2],
    /// The chosen key's value.
    pub closest_ratio: f64,
    /// The latent size the demo samples at.
    pub latent_hw: [usize; 2],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_sizes_are_multiples_of_64() {
        for b in ASPECT_RATIO_1024 {
            assert!(b.ratio().is_finite(), "{}", b.key);
            assert_eq!(b.height_px % 64, 0);
            assert_eq!(b.width_px % 64, 0);
        }
        assert!(closest_bucket(0, 10).is_none());
    }
}
