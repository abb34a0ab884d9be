//! The large view of one result, with a before/after wipe against the first reference.

use crate::commands::AppCommand;
use crate::gallery::{Gallery, RunId};
use crate::preview::{PreviewRenderer, WipePair, WipeSide, wipe_ui};
use crate::references::Canvas;

/// Which result is shown large, and how.
pub struct Viewer {
    /// The run.
    pub run: RunId,
    /// Result index in the run.
    pub index: usize,
    /// Compare with the first reference.
    pub wipe: bool,
    /// Split of the wipe, as a fraction of the width.
    pub split: f32,
    /// Where the image was drawn last (points).
    pub image_rect: Option<egui::Rect>,
}

impl Viewer {
    /// Shows result `index` of `run`.
    pub fn new(run: RunId, index: usize) -> Self {
        Self {
            run,
            index,
            wipe: false,
            split: 0.5,
            image_rect: None,
        }
    }

    /// Draws the viewer window; returns commands (close, use as reference, reuse settings).
    pub fn viewer_ui(
        &mut self,
        ctx: &egui::Context,
        gallery: &mut Gallery,
        canvas: &mut Canvas,
        renderer: PreviewRenderer,
        commands: &mut Vec<AppCommand>,
    ) {
        let (run_id, index) = (self.run, self.index);
        let Some(result) = gallery.run_mut(run_id).and_then(|r| r.image_mut(index)) else {
            commands.push(AppCommand::CloseViewer);
            return;
        };
        let texture = result.texture(ctx, run_id);
        let image = result.image.clone();
        let seed = result.meta.settings.seed;
        let mut open = true;
        egui::Window::new(format!("Result {run_id}.{index}"))
            .open(&mut open)
            .default_size(egui::vec2(560.0, 620.0))
            .show(ctx, |ui| {
                ui.horizontal(|ui| {
                    ui.label(format!(
                        "Seed {seed} · {}×{}",
                        image.width(),
                        image.height()
                    ));
                    if ui.button("Use as reference").clicked() {
                        commands.push(AppCommand::UseAsReference { run: run_id, index });
                    }
                    if ui.button("Reuse settings").clicked() {
                        commands.push(AppCommand::ReuseSettings { run: run_id, index });
                    }
                    if ui.button("Start from this image").clicked() {
                        commands.push(AppCommand::StartFromResult { run: run_id, index });
                    }
                });
                let reference = canvas.references.first_mut();
                ui.add_enabled_ui(reference.is_some(), |ui| {
                    ui.horizontal(|ui| {
                        ui.checkbox(&mut self.wipe, "Compare with the first reference");
                        if self.wipe {
                            ui.add(egui::Slider::new(&mut self.split, 0.0..=1.0).text("Wipe"));
                        }
                    });
                });
                // Stay inside the visible area: a paint callback's viewport is clipped to it,
                // which would squeeze the image.
                let visible = ui.clip_rect().intersect(ui.available_rect_before_wrap());
                let side = visible.width().min(visible.height()).max(64.0);
                let (rect, response) =
                    ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::drag());
                self.image_rect = Some(rect);
                match reference {
                    Some(reference) if self.wipe => {
                        if let Some(pos) = response.interact_pointer_pos() {
                            self.split = ((pos.x - rect.left()) / rect.width()).clamp(0.0, 1.0);
                        }
                        let reference_texture = reference.texture(ctx);
                        // Ids only need to tell pairs apart: the texture ids do.
                        let pair = WipePair {
                            before: texture_key(reference_texture.id()),
                            after: texture_key(texture.id()),
                        };
                        // The reference's side shows the square the encoder sees.
                        let before = WipeSide {
                            image: &reference.image,
                            texture: &reference_texture,
                            uv: reference.crop_rect_in_image(),
                        };
                        let after = WipeSide {
                            image: &image,
                            texture: &texture,
                            uv: egui::Rect::from_min_max(
                                egui::pos2(0.0, 0.0),
                                egui::pos2(1.0, 1.0),
                            ),
                        };
                        wipe_ui(ui, renderer, rect, pair, &before, &after, self.split);
                    }
                    _ => {
                        ui.painter().image(
                            texture.id(),
                            rect,
                            egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
                            egui::Color32::WHITE,
                        );
                    }
                }
            });
        if !open {
            commands.push(AppCommand::CloseViewer);
        }
    }
}

fn texture_key(id: egui::TextureId) -> u64 {
    match id {
        egui::TextureId::Managed(n) => n,
        egui::TextureId::User(n) => n | (1 << 63),
    }
}
