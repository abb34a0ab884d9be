//! Turning one job into one framed corpus image, or a reason to leave it out.
//!
//! - SVG emoji: rasterised at 4× the output size onto white, padded, shrunk; colour icons the
//!   same, then filtered like clip art.
//! - Raster emoji: composited on white, padded, shrunk (their own transparent border is kept, as
//!   the SVG sets keep their view-box border).
//! - Clip art: composited on white, shrunk to at most 1024 px, cropped to the content, padded,
//!   shrunk, then filtered by
//!   [`crate::content_filter::judge_clipart`].

use image::{RgbImage, imageops};

use crate::content_filter::{ContentStats, Rejection, judge_clipart, measure};
use crate::framing::{
    MARGIN_FRACTION, compose_on_white, crop_to_content, pad_to_square, resize_square,
};
use crate::raster_input::{RasterError, read_rgba_guarded};
use crate::source::{JobInput, SkipReason};
use crate::svg_raster::render_on_white;

/// SVGs are drawn this many times larger than the output, then filtered down.
const SVG_SUPERSAMPLING: u32 = 4;

/// Clip art is cropped and framed at most this large (after compositing at full size).
const WORKING_SIDE_PX: u32 = 1024;

/// A framed image and what the content filter measured on it.
pub struct Framed {
    pub image: RgbImage,
    pub stats: ContentStats,
}

/// A job left out; clip art rejected by the content filter still carries its image so it can
/// be written out for review (`--keep-rejected`).
pub struct Left {
    pub reason: SkipReason,
    pub rejected_image: Option<RgbImage>,
}

impl From<SkipReason> for Left {
    fn from(reason: SkipReason) -> Self {
        Self {
            reason,
            rejected_image: None,
        }
    }
}

impl From<RasterError> for Left {
    fn from(err: RasterError) -> Self {
        match err {
            RasterError::TooLarge => SkipReason::TooLarge.into(),
            RasterError::Unreadable => SkipReason::Unreadable.into(),
        }
    }
}

/// Frames one job at `size_px`² (see the module docs for the steps per kind).
pub fn frame(input: &JobInput, size_px: u32) -> Result<Framed, Left> {
    match input {
        JobInput::Svg { svg, judged } => {
            let drawn = render_on_white(svg, size_px * SVG_SUPERSAMPLING)
                .map_err(|_| Left::from(SkipReason::RenderFailed))?;
            let framed = finish(&drawn, size_px);
            if *judged { judge(framed) } else { Ok(framed) }
        }
        JobInput::EmojiRaster(path) => {
            let on_white = compose_on_white(&read_rgba_guarded(path)?);
            Ok(finish(&on_white, size_px))
        }
        JobInput::ClipartRaster(path) => {
            let on_white = shrink_to_working_size(compose_on_white(&read_rgba_guarded(path)?));
            let content = crop_to_content(&on_white).ok_or(SkipReason::NearEmpty)?;
            judge(finish(&content, size_px))
        }
    }
}

/// Keeps a framed image the content filter accepts; a rejected one is returned with its reason.
fn judge(framed: Framed) -> Result<Framed, Left> {
    match judge_clipart(&framed.stats) {
        Ok(()) => Ok(framed),
        Err(rejection) => Err(Left {
            reason: match rejection {
                Rejection::NearEmpty => SkipReason::NearEmpty,
                Rejection::LineArtOrMonochrome => SkipReason::LineArtOrMonochrome,
            },
            rejected_image: Some(framed.image),
        }),
    }
}

/// Shrinks (box filter) an image whose longer side exceeds [`WORKING_SIDE_PX`]: the output is
/// at most a few hundred pixels, and some clip art is 16 Mpx.
fn shrink_to_working_size(img: RgbImage) -> RgbImage {
    let longest_px = img.width().max(img.height());
    if longest_px <= WORKING_SIDE_PX {
        return img;
    }
    let scale = WORKING_SIDE_PX as f32 / longest_px as f32;
    let width_px = ((img.width() as f32 * scale).round() as u32).max(1);
    let height_px = ((img.height() as f32 * scale).round() as u32).max(1);
    imageops::thumbnail(&img, width_px, height_px)
}

/// Pads to a square with the margin, resizes, measures.
fn finish(on_white: &RgbImage, size_px: u32) -> Framed {
    let image = resize_square(&pad_to_square(on_white, MARGIN_FRACTION), size_px);
    let stats = measure(&image);
    Framed { image, stats }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLACK_OUTLINE: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16"><circle cx="8" cy="8" r="6" fill="none" stroke="black" stroke-width="0.5"/></svg>"#;
    const FILLED_COLOUR: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16"><circle cx="8" cy="8" r="6" fill="#e33"/><rect x="5" y="5" width="4" height="4" fill="#3a3"/><rect x="8" y="8" width="3" height="3" fill="#36f"/></svg>"##;

    fn svg(svg: &str, judged: bool) -> JobInput {
        JobInput::Svg {
            svg: svg.to_owned(),
            judged,
        }
    }

    #[test]
    fn judged_icons_pass_the_clip_art_filter_and_emoji_are_kept_as_drawn() {
        let Err(rejected) = frame(&svg(BLACK_OUTLINE, true), 32) else {
            panic!("an outline glyph passed the filter")
        };
        assert_eq!(rejected.reason, SkipReason::LineArtOrMonochrome);
        assert!(rejected.rejected_image.is_some(), "kept for review");
        assert!(
            frame(&svg(BLACK_OUTLINE, false), 32).is_ok(),
            "emoji are not judged"
        );
        let Ok(kept) = frame(&svg(FILLED_COLOUR, true), 32) else {
            panic!("a filled colour icon was rejected")
        };
        assert_eq!(kept.image.dimensions(), (32, 32));
    }
}
