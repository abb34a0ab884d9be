//! The prompt box on the canvas: a multi-line prompt with the recent ones a click away, the
//! size from the model's aspect-ratio buckets, and what Generate will do with it. Ctrl+Enter
//! (Cmd+Enter) generates from anywhere, this box included.

use crate::prompt::{CanvasSource, TextToImageModel, buckets, size_label};
use crate::settings::Settings;

/// What the prompt box needs to know besides the settings.
pub struct PromptContext<'a> {
    /// The text-to-image model, or what is missing.
    pub model: &'a TextToImageModel,
    /// References on the canvas (with any, Generate works from them).
    pub references: usize,
}

/// Draws the prompt box; edits the prompt, its size and history in `settings`.
pub fn prompt_ui(ui: &mut egui::Ui, settings: &mut Settings, context: &PromptContext<'_>) {
    ui.heading("Prompt");
    let label = ui.label("Describe the image to make");
    ui.add(
        egui::TextEdit::multiline(&mut settings.prompt)
            .hint_text("a watercolour fox in the snow (Ctrl+Enter makes it)")
            .desired_rows(3)
            .desired_width(f32::INFINITY),
    )
    .labelled_by(label.id);
    ui.add_enabled_ui(!settings.recent_prompts.is_empty(), |ui| {
        egui::ComboBox::from_label("Recent prompts")
            .selected_text("Pick one")
            .width(150.0)
            .show_ui(ui, |ui| {
                for recent in settings.recent_prompts.clone() {
                    let short = shorten(&recent, 48);
                    if ui
                        .selectable_label(settings.prompt == recent, short)
                        .on_hover_text(&recent)
                        .clicked()
                    {
                        settings.prompt = recent;
                    }
                }
            });
    });
    if context.model.spec.is_none() {
        let side = lumos_engine::pipelines::prompt_model::builtin_image_size_px();
        ui.label(format!("Size: {side} × {side} px (built-in model)"));
    } else {
        size_picker(ui, settings);
    }
    match CanvasSource::of(context.references, &settings.prompt) {
        CanvasSource::References if !settings.prompt.trim().is_empty() => {
            ui.weak(
                "References are on the canvas, so Generate makes images from them; remove them \
                 to make images from the prompt.",
            );
        }
        CanvasSource::Prompt => match &context.model.spec {
            Some(spec) => {
                ui.weak(format!(
                    "Generate makes {} image(s) from the prompt with {} (Count is under \
                     Generation, in Variations).",
                    settings.count, spec.name
                ));
            }
            None => {
                ui.weak(format!(
                    "Generate makes {} image(s) from the prompt with the built-in prompt model.",
                    settings.count
                ));
                ui.colored_label(ui.visuals().warn_fg_color, context.model.builtin_message());
            }
        },
        CanvasSource::References | CanvasSource::Nothing => {}
    }
}

/// The full model's size picker: its aspect-ratio buckets.
fn size_picker(ui: &mut egui::Ui, settings: &mut Settings) {
    let [width, height] = settings.prompt_size_px;
    egui::ComboBox::from_label("Size")
        .selected_text(size_label(width, height))
        .width(150.0)
        .show_ui(ui, |ui| {
            for bucket in buckets() {
                let size = [bucket.width_px, bucket.height_px];
                ui.selectable_value(
                    &mut settings.prompt_size_px,
                    size,
                    size_label(size[0], size[1]),
                );
            }
        })
        .response
        .on_hover_text("The sizes the text-to-image model was trained on");
}

/// `text` on one line, cut to `max_chars` characters with an ellipsis.
fn shorten(text: &str, max_chars: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= max_chars && line.len() == text.len() {
        line.to_owned()
    } else {
        let mut short: String = line.chars().take(max_chars.saturating_sub(1)).collect();
        short.push('…');
        short
    }
}
