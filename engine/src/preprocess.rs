//! The I2I demo's image transform for the encoder: `Resize(224)` (Pillow bilinear, which
//! antialiases when shrinking and rounds to uint8 after each pass), `CenterCrop(224)`,
//! `ToTensor`, ImageNet `Normalize`.
//!
//! The resampler is Pillow's fixed-point algorithm (`crate::pillow`), so that the 224×224 crop
//! matches the original's bytes (the fixtures allow one level of difference).

use candle_core::{Device, Tensor};
use image::RgbImage;

/// ImageNet mean.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation.
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Pillow's `Image.resize((w, h), BILINEAR)`: horizontal pass, then vertical, each rounded
/// (`crate::pillow`).
pub fn resize_bilinear(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    crate::pillow::resize(src, width, height, crate::pillow::Filter::Bilinear, None)
}

/// torchvision's `Resize(size)` target: the short side becomes `size`, the long side
/// `int(size * long / short)`.
pub fn resized_dims(width: u32, height: u32, size: u32) -> (u32, u32) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = (u64::from(size) * u64::from(long) / u64::from(short.max(1))) as u32;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// Python's `round` (half to even) of a non-negative half-integer or integer.
fn round_half_even(x: f64) -> u32 {
    let r = x.round();
    let r = if (x - x.trunc() - 0.5).abs() < 1e-12 && r % 2.0 != 0.0 {
        r - 1.0
    } else {
        r
    };
    r.max(0.0) as u32
}

/// Offset of a `crop`-long window in `len`: the demo's centre (`int(round((len - crop) / 2))`)
/// or a chosen position `frac` in [0, 1].
pub fn crop_offset(len: u32, crop: u32, frac: Option<f32>) -> u32 {
    let slack = len.saturating_sub(crop);
    match frac {
        None => round_half_even(f64::from(slack) / 2.0),
        Some(f) => (f64::from(f.clamp(0.0, 1.0)) * f64::from(slack)).round() as u32,
    }
}

/// Resize (short side `size`) and crop `size × size` as the demo does; `crop` moves the window.
pub fn resize_and_crop(src: &RgbImage, size: u32, crop: Option<[f32; 2]>) -> RgbImage {
    let (w, h) = resized_dims(src.width(), src.height(), size);
    let resized = resize_bilinear(src, w, h);
    let left = crop_offset(w, size, crop.map(|c| c[0]));
    let top = crop_offset(h, size, crop.map(|c| c[1]));
    image::imageops::crop_imm(&resized, left, top, size.min(w), size.min(h)).to_image()
}

/// `(u8 / 255 - mean) / std` in f32, as a `(1, 3, h, w)` tensor.
pub fn normalize(img: &RgbImage, device: &Device) -> candle_core::Result<Tensor> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut data = vec![0f32; 3 * w * h];
    for (x, y, p) in img.enumerate_pixels() {
        for c in 0..3 {
            let v = f32::from(p[c]) / 255.0;
            data[c * w * h + y as usize * w + x as usize] = (v - MEAN[c]) / STD[c];
        }
    }
    Tensor::from_vec(data, (1, 3, h, w), device)
}

/// The full demo transform: image → `(1, 3, size, size)` pixel values (224 for DINO).
pub fn pixel_values(
    src: &RgbImage,
    size: u32,
    crop: Option<[f32; 2]>,
    device: &Device,
) -> candle_core::Result<Tensor> {
    normalize(&resize_and_crop(src, size, crop), device)
}
