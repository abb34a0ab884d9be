//! Repaint masks: feathering, inversion, and masks from an image's alpha channel. Masks are
//! 8-bit, 255 = repaint, 0 = keep.

use image::{GrayImage, RgbaImage};

/// Softens the mask edge with a box blur of `radius` pixels (applied twice, which is close to
/// a Gaussian); radius 0 returns the mask unchanged.
pub fn feather(mask: &GrayImage, radius: u32) -> GrayImage {
    if radius == 0 {
        return mask.clone();
    }
    let once = box_blur(mask, radius);
    box_blur(&once, radius)
}

fn box_blur(mask: &GrayImage, radius: u32) -> GrayImage {
    let (w, h) = mask.dimensions();
    let r = radius as i64;
    let blur_line = |get: &dyn Fn(i64) -> u8, len: i64| -> Vec<u8> {
        (0..len)
            .map(|i| {
                let (lo, hi) = ((i - r).max(0), (i + r).min(len - 1));
                let sum: u32 = (lo..=hi).map(|j| u32::from(get(j))).sum();
                ((sum as f32) / ((hi - lo + 1) as f32)).round() as u8
            })
            .collect()
    };
    let mut horizontal = GrayImage::new(w, h);
    for y in 0..h {
        let line = blur_line(&|x| mask.get_pixel(x as u32, y)[0], i64::from(w));
        for (x, v) in line.into_iter().enumerate() {
            horizontal.put_pixel(x as u32, y, image::Luma([v]));
        }
    }
    let mut out = GrayImage::new(w, h);
    for x in 0..w {
        let line = blur_line(&|y| horizontal.get_pixel(x, y as u32)[0], i64::from(h));
        for (y, v) in line.into_iter().enumerate() {
            out.put_pixel(x, y as u32, image::Luma([v]));
        }
    }
    out
}

/// Swaps repaint and keep.
pub fn invert(mask: &GrayImage) -> GrayImage {
    GrayImage::from_fn(mask.width(), mask.height(), |x, y| {
        image::Luma([255 - mask.get_pixel(x, y)[0]])
    })
}

/// Repaint where the image is transparent (alpha 0 → 255).
pub fn from_alpha(image: &RgbaImage) -> GrayImage {
    GrayImage::from_fn(image.width(), image.height(), |x, y| {
        image::Luma([255 - image.get_pixel(x, y)[3]])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feathering_keeps_far_pixels_and_softens_the_edge() {
        let mask = GrayImage::from_fn(32, 8, |x, _| image::Luma([if x < 16 { 255 } else { 0 }]));
        let soft = feather(&mask, 3);
        assert_eq!(soft.get_pixel(0, 4)[0], 255);
        assert_eq!(soft.get_pixel(31, 4)[0], 0);
        let edge = soft.get_pixel(16, 4)[0];
        assert!(edge > 0 && edge < 255, "edge {edge}");
        assert_eq!(feather(&mask, 0), mask);
    }

    #[test]
    fn invert_twice_is_identity() {
        let mask = GrayImage::from_fn(5, 5, |x, y| image::Luma([(x * 50 + y) as u8]));
        assert_eq!(invert(&invert(&mask)), mask);
    }
}
