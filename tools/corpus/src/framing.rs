//! Putting any source image into the corpus frame: opaque RGB on white, square, a small margin,
//! the target size.
//!
//! The prior is trained on white-background square images; sources differ in aspect ratio,
//! transparency and how much empty border they carry, so every image goes through the same steps:
//! composite on white → (clip art only) crop to content → pad to square → resize.

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage, RgbaImage};

/// Blank border on each side of the square, as a fraction of its side.
pub const MARGIN_FRACTION: f32 = 0.06;

/// A pixel counts as content ("ink") when one of its channels is darker than this.
pub const INK_BELOW_LEVEL: u8 = 240;

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);

/// Alpha-composites `rgba` over an opaque white background.
pub fn compose_on_white(rgba: &RgbaImage) -> RgbImage {
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let alpha = u32::from(a);
        let over_white = |c: u8| ((u32::from(c) * alpha + 255 * (255 - alpha) + 127) / 255) as u8;
        Rgb([over_white(r), over_white(g), over_white(b)])
    })
}

/// Whether a pixel is content rather than (near-)white background.
pub fn is_ink(pixel: &Rgb<u8>) -> bool {
    pixel.0.iter().any(|&c| c < INK_BELOW_LEVEL)
}

/// Crops to the bounding box of the ink pixels; `None` when there is no ink at all.
pub fn crop_to_content(img: &RgbImage) -> Option<RgbImage> {
    let mut bounds: Option<(u32, u32, u32, u32)> = None; // (min_x, min_y, max_x, max_y)
    for (x, y, pixel) in img.enumerate_pixels() {
        if is_ink(pixel) {
            bounds = Some(match bounds {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            });
        }
    }
    let (x0, y0, x1, y1) = bounds?;
    Some(imageops::crop_imm(img, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image())
}

/// Centres `img` on a white square whose side leaves `margin_fraction` of blank border on each
/// side of the longer edge; the aspect ratio is kept.
pub fn pad_to_square(img: &RgbImage, margin_fraction: f32) -> RgbImage {
    let longest_px = img.width().max(img.height());
    let side_px = ((longest_px as f32) / (1.0 - 2.0 * margin_fraction)).ceil() as u32;
    let side_px = side_px.max(longest_px);
    let mut square = RgbImage::from_pixel(side_px, side_px, WHITE);
    let left_px = (side_px - img.width()) / 2;
    let top_px = (side_px - img.height()) / 2;
    imageops::replace(&mut square, img, i64::from(left_px), i64::from(top_px));
    square
}

/// Resizes a square image to `size_px`², filtering well when shrinking by large factors.
pub fn resize_square(img: &RgbImage, size_px: u32) -> RgbImage {
    if img.width() == size_px && img.height() == size_px {
        return img.clone();
    }
    imageops::resize(img, size_px, size_px, FilterType::Lanczos3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composing_on_white_blends_by_alpha() {
        let mut rgba = RgbaImage::new(3, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([0, 0, 0, 255]));
        rgba.put_pixel(2, 0, image::Rgba([255, 0, 0, 128]));
        let rgb = compose_on_white(&rgba);
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [0, 0, 0]);
        assert_eq!(rgb.get_pixel(2, 0).0, [255, 127, 127]);
    }

    #[test]
    fn padding_a_wide_image_centres_it_on_a_white_square() {
        let content = RgbImage::from_pixel(88, 44, Rgb([10, 20, 30]));
        let square = pad_to_square(&content, MARGIN_FRACTION);
        // 88 / (1 - 0.12) = 100
        assert_eq!(square.dimensions(), (100, 100));
        // Content spans x 6..94, y 28..72: corners and margins are white, the middle is content.
        assert_eq!(square.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(square.get_pixel(5, 50).0, [255, 255, 255]);
        assert_eq!(square.get_pixel(6, 50).0, [10, 20, 30]);
        assert_eq!(square.get_pixel(93, 50).0, [10, 20, 30]);
        assert_eq!(square.get_pixel(94, 50).0, [255, 255, 255]);
        assert_eq!(square.get_pixel(50, 27).0, [255, 255, 255]);
        assert_eq!(square.get_pixel(50, 28).0, [10, 20, 30]);
        assert_eq!(square.get_pixel(50, 71).0, [10, 20, 30]);
        assert_eq!(square.get_pixel(50, 72).0, [255, 255, 255]);
    }

    #[test]
    fn padding_a_tall_image_keeps_its_aspect_ratio() {
        let content = RgbImage::from_pixel(10, 50, Rgb([0, 0, 0]));
        let square = pad_to_square(&content, 0.0);
        assert_eq!(square.dimensions(), (50, 50));
        let ink_columns = (0..50).filter(|&x| is_ink(square.get_pixel(x, 25))).count();
        let ink_rows = (0..50).filter(|&y| is_ink(square.get_pixel(25, y))).count();
        assert_eq!((ink_columns, ink_rows), (10, 50));
    }

    #[test]
    fn cropping_finds_the_content_bounding_box() {
        let mut img = RgbImage::from_pixel(20, 10, WHITE);
        img.put_pixel(3, 2, Rgb([0, 0, 0]));
        img.put_pixel(15, 7, Rgb([200, 0, 0]));
        img.put_pixel(18, 9, Rgb([250, 250, 250])); // near-white: background
        let cropped = crop_to_content(&img).expect("has ink");
        assert_eq!(cropped.dimensions(), (13, 6));
        assert_eq!(cropped.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(cropped.get_pixel(12, 5).0, [200, 0, 0]);
        assert!(crop_to_content(&RgbImage::from_pixel(4, 4, WHITE)).is_none());
    }

    #[test]
    fn resizing_gives_the_asked_size_and_keeps_flat_colour() {
        let img = RgbImage::from_pixel(256, 256, Rgb([40, 120, 200]));
        let small = resize_square(&img, 64);
        assert_eq!(small.dimensions(), (64, 64));
        assert_eq!(small.get_pixel(31, 31).0, [40, 120, 200]);
    }
}
