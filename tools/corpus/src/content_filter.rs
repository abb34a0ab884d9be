//! Measures how much colourful content an image has, and rejects clip art that would teach the
//! prior little: near-empty images and line-only or monochrome drawings.
//!
//! The prior's job is colourful, filled, centred objects on white (like the emoji). The
//! openclipart package also holds many outline drawings, black-and-white symbols and thin
//! shapes; those are measured on a 64 px copy of the framed square (so the rule does not depend
//! on `--size`) and rejected by a simple rule, see [`judge_clipart`].

use std::collections::HashSet;

use image::RgbImage;

use crate::framing::{is_ink, resize_square};

/// Side of the copy the statistics are measured on.
pub const ANALYSIS_SIZE_PX: u32 = 64;

/// Fewer ink pixels than this share of the framed square: near-empty.
pub const MIN_INK_FRACTION: f32 = 0.03;

/// An ink pixel whose chroma (max − min channel, 0‥1) reaches this counts as colourful.
pub const COLOURFUL_CHROMA: f32 = 0.2;

/// Fewer colourful pixels than this share of the ink: black-and-white or grey art (outlines,
/// silhouettes, shaded greyscale drawings). A black penguin with a yellow beak passes.
pub const MIN_COLOURFUL_FRACTION: f32 = 0.05;

/// Fewer distinct colours (4 bits a channel) among the ink pixels than this: flat one- or
/// two-colour art such as a single-hue silhouette or outline.
pub const MIN_DISTINCT_COLOURS: u32 = 12;

/// What the filter measured on one framed image.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ContentStats {
    /// Share of pixels that are ink (not near-white).
    pub ink_fraction: f32,
    /// Mean chroma of the ink pixels, 0 for grey, 1 for pure primaries.
    pub mean_chroma: f32,
    /// Share of the ink pixels with chroma of at least [`COLOURFUL_CHROMA`].
    pub colourful_fraction: f32,
    /// Distinct colours among the ink pixels after quantising to 4 bits a channel.
    pub distinct_colours: u32,
}

/// Why a clip-art image was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    NearEmpty,
    LineArtOrMonochrome,
}

/// Measures [`ContentStats`] on `framed` (any square size; scaled to the analysis size first).
pub fn measure(framed: &RgbImage) -> ContentStats {
    let analysed = resize_square(framed, ANALYSIS_SIZE_PX);
    let mut ink_px = 0u32;
    let mut chroma_sum = 0.0f32;
    let mut colourful_px = 0u32;
    let mut colours = HashSet::new();
    for pixel in analysed.pixels().filter(|pixel| is_ink(pixel)) {
        let [r, g, b] = pixel.0;
        ink_px += 1;
        let chroma = f32::from(r.max(g).max(b) - r.min(g).min(b)) / 255.0;
        chroma_sum += chroma;
        colourful_px += u32::from(chroma >= COLOURFUL_CHROMA);
        colours.insert((r >> 4, g >> 4, b >> 4));
    }
    let total_px = analysed.width() * analysed.height();
    let share_of_ink = |value: f32| {
        if ink_px == 0 {
            0.0
        } else {
            value / ink_px as f32
        }
    };
    ContentStats {
        ink_fraction: ink_px as f32 / total_px as f32,
        mean_chroma: share_of_ink(chroma_sum),
        colourful_fraction: share_of_ink(colourful_px as f32),
        distinct_colours: colours.len() as u32,
    }
}

/// The clip-art rule: near-empty below [`MIN_INK_FRACTION`] ink; line-only or monochrome when
/// under [`MIN_COLOURFUL_FRACTION`] of the ink is colourful or it uses fewer than
/// [`MIN_DISTINCT_COLOURS`] colours.
pub fn judge_clipart(stats: &ContentStats) -> Result<(), Rejection> {
    if stats.ink_fraction < MIN_INK_FRACTION {
        Err(Rejection::NearEmpty)
    } else if stats.colourful_fraction < MIN_COLOURFUL_FRACTION
        || stats.distinct_colours < MIN_DISTINCT_COLOURS
    {
        Err(Rejection::LineArtOrMonochrome)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

    const WHITE: Rgb<u8> = Rgb([255, 255, 255]);

    /// A white square with a filled disc whose colour varies smoothly (like shaded clip art).
    fn shaded_disc(radius_px: f32) -> RgbImage {
        RgbImage::from_fn(64, 64, |x, y| {
            let (dx, dy) = (x as f32 - 32.0, y as f32 - 32.0);
            if dx * dx + dy * dy < radius_px * radius_px {
                Rgb([200, (x * 3) as u8, (y * 3 + 40) as u8])
            } else {
                WHITE
            }
        })
    }

    /// A white square with a black one-pixel outline of a rectangle.
    fn outline() -> RgbImage {
        RgbImage::from_fn(64, 64, |x, y| {
            let on_edge = ((x == 8 || x == 55) && (8..=55).contains(&y))
                || ((y == 8 || y == 55) && (8..=55).contains(&x));
            if on_edge { Rgb([0, 0, 0]) } else { WHITE }
        })
    }

    #[test]
    fn a_colourful_filled_shape_is_kept() {
        let stats = measure(&shaded_disc(28.0));
        assert!(stats.ink_fraction > 0.5, "{stats:?}");
        assert!(stats.mean_chroma > 0.3, "{stats:?}");
        assert!(stats.colourful_fraction > 0.9, "{stats:?}");
        assert!(stats.distinct_colours > 20, "{stats:?}");
        assert_eq!(judge_clipart(&stats), Ok(()));
    }

    #[test]
    fn a_tiny_dot_is_near_empty() {
        let stats = measure(&shaded_disc(3.0));
        assert!(stats.ink_fraction < MIN_INK_FRACTION, "{stats:?}");
        assert_eq!(judge_clipart(&stats), Err(Rejection::NearEmpty));
        let blank = measure(&RgbImage::from_pixel(64, 64, WHITE));
        assert_eq!(blank.ink_fraction, 0.0);
        assert_eq!(judge_clipart(&blank), Err(Rejection::NearEmpty));
    }

    #[test]
    fn a_black_outline_is_line_art() {
        let stats = measure(&outline());
        assert!(stats.ink_fraction >= MIN_INK_FRACTION, "{stats:?}");
        assert_eq!(stats.mean_chroma, 0.0);
        assert_eq!(stats.colourful_fraction, 0.0);
        assert_eq!(judge_clipart(&stats), Err(Rejection::LineArtOrMonochrome));
    }

    #[test]
    fn greyscale_shading_is_monochrome_but_a_colour_accent_passes() {
        // A grey-shaded body (many greys, no colour): rejected.
        let grey_body = |x: u32, y: u32| {
            let (dx, dy) = (x as f32 - 32.0, y as f32 - 32.0);
            (dx * dx + dy * dy < 26.0 * 26.0).then(|| {
                let level = (x * 3 + y) as u8;
                Rgb([level, level, level])
            })
        };
        let grey = RgbImage::from_fn(64, 64, |x, y| grey_body(x, y).unwrap_or(WHITE));
        let stats = measure(&grey);
        assert!(stats.distinct_colours >= MIN_DISTINCT_COLOURS, "{stats:?}");
        assert!(
            stats.colourful_fraction < MIN_COLOURFUL_FRACTION,
            "{stats:?}"
        );
        assert_eq!(judge_clipart(&stats), Err(Rejection::LineArtOrMonochrome));
        // The same body with an orange beak over ~10% of it (a penguin): kept.
        let penguin = RgbImage::from_fn(64, 64, |x, y| match grey_body(x, y) {
            Some(_) if y < 20 => Rgb([250, 150, 30]),
            Some(pixel) => pixel,
            None => WHITE,
        });
        let stats = measure(&penguin);
        assert!(stats.colourful_fraction > 0.05, "{stats:?}");
        assert_eq!(judge_clipart(&stats), Ok(()));
    }

    #[test]
    fn a_flat_single_colour_silhouette_is_monochrome() {
        let silhouette = RgbImage::from_fn(64, 64, |x, y| {
            if (16..48).contains(&x) && (10..54).contains(&y) {
                Rgb([220, 30, 30])
            } else {
                WHITE
            }
        });
        let stats = measure(&silhouette);
        assert!(stats.colourful_fraction > 0.9, "{stats:?}");
        assert!(stats.distinct_colours < MIN_DISTINCT_COLOURS, "{stats:?}");
        assert_eq!(judge_clipart(&stats), Err(Rejection::LineArtOrMonochrome));
    }
}
