//! Prompts on the canvas: the text-to-image model the app found (or what is missing and
//! where to put it), the recent-prompt history, and the size picker's aspect-ratio buckets.
//!
//! The mode follows the canvas: with references on it Generate makes images from them; with
//! none, from the prompt ([`CanvasSource`]).

use lumos_engine::checkpoints::text_to_image::discover_text_to_image;
use lumos_engine::pipelines::aspect_ratio::{ASPECT_RATIO_1024, AspectRatioBucket, closest_bucket};
use lumos_engine::pipelines::text_to_image::TextToImageSpec;
use lumos_engine::protocol::PromptModelChoice;

/// Prompts kept in the recent-prompt history.
pub const MAX_RECENT_PROMPTS: usize = 20;

/// The text-to-image model, or why there is none.
#[derive(Clone, Debug, Default)]
pub struct TextToImageModel {
    /// The model, when all its parts were found.
    pub spec: Option<TextToImageSpec>,
    /// What discovery found and missed, where it looked, and how to get each part.
    pub report: String,
}

impl TextToImageModel {
    /// What discovery finds in the usual places (`$LUMOS_MODELS`, the app's data folder, the
    /// Hugging Face cache).
    pub fn discover() -> Self {
        let found = discover_text_to_image(None);
        let spec = if found.is_complete() {
            TextToImageSpec::published(&found).ok()
        } else {
            None
        };
        Self {
            spec,
            report: found.report(),
        }
    }

    /// The model a prompt is sent to: the full one when installed, else the built-in one.
    pub fn choice(&self) -> Result<PromptModelChoice, lumos_engine::error::EngineError> {
        match &self.spec {
            Some(spec) => Ok(PromptModelChoice::Published(Box::new(spec.clone()))),
            None => PromptModelChoice::builtin(),
        }
    }

    /// What the prompt box says when the full model is not installed: prompts use the
    /// built-in model, what it can do, and where the full model's files go.
    pub fn builtin_message(&self) -> String {
        format!(
            "The full text-to-image model is not installed, so prompts use the built-in prompt \
             model: {} px images of emoji and clip-art subjects named in plain words (\"cat \
             face\", \"red apple\", \"palm tree\"; a style such as \"noto\", \"twemoji\", \
             \"flat\" or \"3d\" may follow). For free text at 1024 px, put the full model's \
             files in a models folder:\n{}",
            lumos_engine::pipelines::prompt_model::builtin_image_size_px(),
            self.report.trim_end()
        )
    }
}

/// What Generate works from, given what is on the canvas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanvasSource {
    /// References are on the canvas: image-to-image (the prompt waits).
    References,
    /// No references, a prompt: text-to-image.
    Prompt,
    /// Neither.
    Nothing,
}

impl CanvasSource {
    /// The source for a canvas with `references` and this prompt.
    pub fn of(references: usize, prompt: &str) -> Self {
        if references > 0 {
            Self::References
        } else if prompt.trim().is_empty() {
            Self::Nothing
        } else {
            Self::Prompt
        }
    }
}

/// Puts `prompt` first in `recent` (once), keeping at most [`MAX_RECENT_PROMPTS`].
pub fn remember(recent: &mut Vec<String>, prompt: &str) {
    let prompt = prompt.trim();
    if prompt.is_empty() {
        return;
    }
    recent.retain(|p| p != prompt);
    recent.insert(0, prompt.to_owned());
    recent.truncate(MAX_RECENT_PROMPTS);
}

/// The buckets the size picker offers (the model's own, in ascending aspect ratio).
pub fn buckets() -> &'static [AspectRatioBucket] {
    &ASPECT_RATIO_1024
}

/// The bucket closest to `[width, height]`, as `[width, height]` (1024 × 1024 for nonsense).
pub fn snap_size(size_px: [u32; 2]) -> [u32; 2] {
    closest_bucket(size_px[1], size_px[0])
        .map(|b| [b.width_px, b.height_px])
        .unwrap_or([1024, 1024])
}

/// `1216 × 832 (landscape)`.
pub fn size_label(width_px: u32, height_px: u32) -> String {
    let shape = match width_px.cmp(&height_px) {
        std::cmp::Ordering::Greater => "landscape",
        std::cmp::Ordering::Less => "portrait",
        std::cmp::Ordering::Equal => "square",
    };
    format!("{width_px} × {height_px} ({shape})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_prompts_put_the_latest_first_once_and_keep_twenty() {
        let mut recent = Vec::new();
        for i in 0..25 {
            remember(&mut recent, &format!("prompt {i}"));
        }
        remember(&mut recent, "  prompt 20 ");
        remember(&mut recent, "   ");
        assert_eq!(recent.len(), MAX_RECENT_PROMPTS);
        assert_eq!(recent[0], "prompt 20");
        assert_eq!(recent[1], "prompt 24");
        assert_eq!(recent.iter().filter(|p| *p == "prompt 20").count(), 1);
    }

    #[test]
    fn the_canvas_decides_the_mode_and_sizes_snap_to_buckets() {
        assert_eq!(CanvasSource::of(1, "a cat"), CanvasSource::References);
        assert_eq!(CanvasSource::of(0, "a cat"), CanvasSource::Prompt);
        assert_eq!(CanvasSource::of(0, " \n"), CanvasSource::Nothing);
        assert_eq!(snap_size([1000, 1000]), [1024, 1024]);
        let wide = snap_size([1920, 1080]);
        assert!(wide[0] > wide[1], "{wide:?}");
        assert!(buckets().iter().any(|b| [b.width_px, b.height_px] == wide));
        assert_eq!(size_label(1216, 832), "1216 × 832 (landscape)");
    }
}
