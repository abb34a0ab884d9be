//! The canvas: reference images with their weights and encoder crops; adding references by
//! drag-and-drop, typed path, the open dialog and paste.

use std::path::PathBuf;

use crate::commands::AppCommand;
use crate::references::{Canvas, Reference, WEIGHT_RANGE};
use crate::view_transform::{ViewTransform, view_input};

/// Transient state of the canvas panel.
#[derive(Default)]
pub struct CanvasPanel {
    /// The typed path (for when dialogs and drops are unavailable, e.g. Wayland or headless).
    pub path_text: String,
    /// Thumbnail width in points (the canvas zoom).
    pub thumbnail_width: f32,
    /// Whether the current drag on a reference pans its view (it moves the crop otherwise).
    panning: bool,
}

/// Default thumbnail width in points.
const DEFAULT_THUMBNAIL_WIDTH: f32 = 220.0;

impl CanvasPanel {
    /// Draws the canvas; edits weights and crops in place, returns everything else.
    pub fn canvas_ui(
        &mut self,
        ui: &mut egui::Ui,
        canvas: &mut Canvas,
        pending_loads: usize,
        commands: &mut Vec<AppCommand>,
    ) {
        if self.thumbnail_width <= 0.0 {
            self.thumbnail_width = DEFAULT_THUMBNAIL_WIDTH;
        }
        ui.heading("References");
        ui.label("Drop images here, paste one (Ctrl+V), or add a file:");
        ui.horizontal(|ui| {
            let label = ui.label("Path");
            let edit = ui
                .add(
                    egui::TextEdit::singleline(&mut self.path_text)
                        .hint_text("/path/to/image.png")
                        .desired_width(150.0),
                )
                .labelled_by(label.id);
            let typed = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.button("Add").clicked() || typed) && !self.path_text.trim().is_empty() {
                let path = PathBuf::from(self.path_text.trim());
                commands.push(AppCommand::AddReferencePath(path));
                self.path_text.clear();
            }
            if ui.button("Open…").on_hover_text("Ctrl+O").clicked() {
                commands.push(AppCommand::OpenReferenceDialog);
            }
        });
        ui.add(
            egui::Slider::new(&mut self.thumbnail_width, 80.0..=600.0)
                .text("Zoom")
                .show_value(false),
        );
        ui.separator();
        if pending_loads > 0 {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("Reading {pending_loads} file(s)…"));
            });
        }
        if canvas.references.is_empty() {
            ui.weak("No references yet. Or start from a sample:");
            ui.horizontal_wrapped(|ui| {
                for name in lumos_engine::embedded::samples() {
                    let label = name
                        .trim_start_matches("samples/")
                        .split('.')
                        .next()
                        .unwrap_or(name);
                    if ui
                        .button(label)
                        .on_hover_text("Add this sample reference")
                        .clicked()
                        && let Some(bytes) = lumos_engine::embedded::file(name)
                    {
                        commands.push(AppCommand::AddReferenceBytes {
                            name: name.trim_start_matches("samples/").into(),
                            bytes: bytes.to_vec(),
                        });
                    }
                }
            });
            return;
        }
        let count = canvas.references.len();
        for (index, reference) in canvas.references.iter_mut().enumerate() {
            ui.push_id(index, |ui| {
                let thumbnail_width = self.thumbnail_width;
                reference_ui(
                    ui,
                    reference,
                    (index, count),
                    thumbnail_width,
                    &mut self.panning,
                    commands,
                );
            });
            ui.separator();
        }
    }
}

fn reference_ui(
    ui: &mut egui::Ui,
    reference: &mut Reference,
    (index, count): (usize, usize),
    thumbnail_width: f32,
    panning: &mut bool,
    commands: &mut Vec<AppCommand>,
) {
    ui.label(format!(
        "{} ({}×{})",
        reference.name,
        reference.image.width(),
        reference.image.height()
    ));
    let texture = reference.texture(ui.ctx());
    let aspect = reference.image.height() as f32 / reference.image.width().max(1) as f32;
    let width = thumbnail_width.min(ui.available_width()).max(40.0);
    let size = egui::vec2(width, width * aspect);
    let (rect, response) = ui.allocate_exact_size(size, egui::Sense::drag());
    view_input(ui, rect, &response, &mut reference.view, panning);
    ui.painter().image(
        texture.id(),
        rect,
        reference.view.visible_uv(),
        egui::Color32::WHITE,
    );
    // The square the image encoder sees; drag to move it (by as much as the image moves on
    // screen, whatever the zoom).
    if response.dragged() && !*panning {
        let delta = response.drag_delta() / rect.size() / reference.view.zoom();
        reference.move_crop(delta);
    }
    // The transform maps pixels; the crop is in normalised coordinates, so use a unit image.
    let crop = reference.crop_rect_in_image();
    let crop_on_screen = egui::Rect::from_min_max(
        reference
            .view
            .canvas_from_image(rect, egui::Vec2::splat(1.0), crop.min),
        reference
            .view
            .canvas_from_image(rect, egui::Vec2::splat(1.0), crop.max),
    );
    let painter = ui.painter_at(rect);
    painter.rect_stroke(
        crop_on_screen,
        0.0,
        egui::Stroke::new(2.0, egui::Color32::from_rgb(255, 200, 40)),
        egui::StrokeKind::Inside,
    );
    response.on_hover_text(
        "The square the image encoder sees (224×224). Drag to move it. \
         Ctrl+wheel zooms; drag with the middle button or Space+drag pans.",
    );
    if !reference.view.is_whole_image()
        && ui
            .button(format!("Reset view of {}", reference.name))
            .on_hover_text("Show the whole image")
            .clicked()
    {
        reference.view = ViewTransform::whole_image();
    }
    ui.add(
        egui::Slider::new(&mut reference.weight, WEIGHT_RANGE)
            .text(format!("Weight of {}", reference.name)),
    )
    .on_hover_text("How much of this reference goes into the mix; below 0 it is subtracted");
    if reference.weight < 0.0 {
        ui.weak("Negative weight: moves away from this image (subtract).");
    }
    ui.horizontal(|ui| {
        if ui
            .add_enabled(index > 0, egui::Button::new("Move up"))
            .clicked()
        {
            commands.push(AppCommand::MoveReference {
                from: index,
                to: index - 1,
            });
        }
        if ui
            .add_enabled(index + 1 < count, egui::Button::new("Move down"))
            .clicked()
        {
            commands.push(AppCommand::MoveReference {
                from: index,
                to: index + 1,
            });
        }
        if ui.button(format!("Remove {}", reference.name)).clicked() {
            commands.push(AppCommand::RemoveReference(index));
        }
        if ui
            .button("Start from this")
            .on_hover_text("Use as the starting image (img2img)")
            .clicked()
        {
            commands.push(AppCommand::StartFromReference(index));
        }
    });
}
