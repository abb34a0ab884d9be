//! Decoding raster sources (WebP emoji, PNG clip art) without trusting their headers.
//!
//! A PNG can declare a huge canvas and make a decoder allocate gigabytes, so the dimensions are
//! read first and oversized images are skipped before any pixel is decoded; the decoder also
//! runs under `image::Limits` in case the header lied.

use std::path::Path;

use image::{ImageReader, Limits, RgbaImage};

/// Longest side accepted.
pub const MAX_SIDE_PX: u32 = 8192;

/// Largest canvas accepted (16 Mpx).
pub const MAX_PIXELS: u64 = 16 * 1024 * 1024;

/// Most bytes the decoder may allocate (16 Mpx at 16 bits × 4 channels, plus slack).
const MAX_DECODE_BYTES: u64 = 160 * 1024 * 1024;

/// Why a raster could not be used (the builder only counts these, so no details are kept).
#[derive(Debug, PartialEq, Eq)]
pub enum RasterError {
    /// Over [`MAX_SIDE_PX`] or [`MAX_PIXELS`] by its header.
    TooLarge,
    /// Missing, truncated, not an image, or over the decoder's limits.
    Unreadable,
}

impl From<image::ImageError> for RasterError {
    fn from(_: image::ImageError) -> Self {
        Self::Unreadable
    }
}

impl From<std::io::Error> for RasterError {
    fn from(_: std::io::Error) -> Self {
        Self::Unreadable
    }
}

/// Whether a canvas of this size is accepted.
pub fn fits_size_limits(width_px: u32, height_px: u32) -> bool {
    width_px <= MAX_SIDE_PX
        && height_px <= MAX_SIDE_PX
        && u64::from(width_px) * u64::from(height_px) <= MAX_PIXELS
}

/// Reads the header, refuses oversized canvases, then decodes to RGBA under limits.
pub fn read_rgba_guarded(path: &Path) -> Result<RgbaImage, RasterError> {
    let (width_px, height_px) = ImageReader::open(path)?
        .with_guessed_format()?
        .into_dimensions()?;
    if !fits_size_limits(width_px, height_px) {
        return Err(RasterError::TooLarge);
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE_PX);
    limits.max_image_height = Some(MAX_SIDE_PX);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = ImageReader::open(path)?.with_guessed_format()?;
    reader.limits(limits);
    Ok(reader.decode()?.to_rgba8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limits_bound_each_side_and_the_area() {
        assert!(fits_size_limits(4096, 4096));
        assert!(fits_size_limits(8192, 2048));
        assert!(!fits_size_limits(8193, 10));
        assert!(!fits_size_limits(10, 8193));
        assert!(!fits_size_limits(8192, 4096)); // 32 Mpx
    }

    #[test]
    fn garbage_is_unreadable_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("lumos-corpus-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("garbage.png");
        std::fs::write(&path, b"\x89PNG\r\n\x1a\nnot really").expect("write");
        assert_eq!(read_rgba_guarded(&path), Err(RasterError::Unreadable));
        assert_eq!(
            read_rgba_guarded(&dir.join("missing.png")),
            Err(RasterError::Unreadable)
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
