//! Rasterising an SVG document onto white with resvg.
//!
//! Emoji are drawn at 4× the output size and shrunk afterwards with a Lanczos filter, which
//! gives cleaner edges at 64 px than resvg's own anti-aliasing at the final size.

use anyhow::{Context, Result};
use image::RgbImage;
use resvg::{tiny_skia, usvg};

/// Draws `svg` so that its longer side is `longest_side_px`, on an opaque white background.
pub fn render_on_white(svg: &str, longest_side_px: u32) -> Result<RgbImage> {
    let tree = usvg::Tree::from_str(svg, &usvg::Options::default()).context("parsing SVG")?;
    let size = tree.size();
    let scale = longest_side_px as f32 / size.width().max(size.height());
    let width_px = (size.width() * scale).round().max(1.0) as u32;
    let height_px = (size.height() * scale).round().max(1.0) as u32;
    let mut pixmap = tiny_skia::Pixmap::new(width_px, height_px)
        .with_context(|| format!("allocating a {width_px}x{height_px} canvas"))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    // The canvas is opaque, so its premultiplied pixels are plain RGB.
    let rgb = pixmap
        .data()
        .chunks_exact(4)
        .flat_map(|rgba| [rgba[0], rgba[1], rgba[2]])
        .collect();
    RgbImage::from_raw(width_px, height_px, rgb).context("canvas size mismatch")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iconify::{ViewBox, wrap_in_svg};

    #[test]
    fn a_wrapped_icon_renders_at_the_asked_size_on_white() {
        // A red disc in the middle of a 2:1 view box shifted by left = -16.
        let svg = wrap_in_svg(
            "<circle cx=\"0\" cy=\"8\" r=\"6\" fill=\"#ff0000\"/>",
            ViewBox {
                left: -16.0,
                top: 0.0,
                width: 32.0,
                height: 16.0,
            },
        );
        let img = render_on_white(&svg, 256).expect("renders");
        assert_eq!(img.dimensions(), (256, 128));
        assert_eq!(img.get_pixel(128, 64).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(255, 127).0, [255, 255, 255]);
    }

    #[test]
    fn broken_svg_is_an_error_not_a_panic() {
        assert!(render_on_white("<svg", 64).is_err());
        assert!(render_on_white("not svg at all", 64).is_err());
    }
}
