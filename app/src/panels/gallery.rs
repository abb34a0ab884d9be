//! The gallery: runs (newest first) with their settings and results; select, view, export.

use crate::commands::{AppCommand, ExportSelection};
use crate::gallery::{Gallery, RunStatus};

/// Thumbnail size in points.
const THUMBNAIL_PX: f32 = 128.0;

/// Draws the gallery; toggles selection in place, returns everything else.
pub fn gallery_ui(ui: &mut egui::Ui, gallery: &mut Gallery, commands: &mut Vec<AppCommand>) {
    if gallery.runs().is_empty() {
        ui.weak("Results appear here, grouped by run.");
        return;
    }
    let ctx = ui.ctx().clone();
    for run in gallery.runs_mut().iter_mut().rev() {
        let run_id = run.id;
        ui.push_id(run_id, |ui| {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.strong(format!("Run {run_id}"));
                    let status = run.status.label();
                    match run.status {
                        RunStatus::Failed(_) => {
                            ui.colored_label(ui.visuals().error_fg_color, status);
                        }
                        _ => {
                            ui.label(status);
                        }
                    }
                });
                ui.small(run.settings_summary());
                ui.small(format!("References: {}", run.references.join(", ")));
                ui.horizontal(|ui| {
                    let has_images = !run.images.is_empty();
                    let any_selected = run.images.iter().any(|i| i.selected);
                    if ui
                        .add_enabled(any_selected, egui::Button::new("Export selected"))
                        .clicked()
                    {
                        commands.push(AppCommand::Export {
                            run: run_id,
                            selection: ExportSelection::Selected,
                        });
                    }
                    if ui
                        .add_enabled(
                            has_images,
                            egui::Button::new(format!("Export all of run {run_id}")),
                        )
                        .clicked()
                    {
                        commands.push(AppCommand::Export {
                            run: run_id,
                            selection: ExportSelection::All,
                        });
                    }
                    let pending = run.status == RunStatus::Pending;
                    if ui
                        .add_enabled(!pending, egui::Button::new("Remove run"))
                        .on_hover_text(
                            "Removes the run from the gallery and the history; exported files stay",
                        )
                        .clicked()
                    {
                        commands.push(AppCommand::RemoveRun(run_id));
                    }
                });
                ui.horizontal_wrapped(|ui| {
                    for result in &mut run.images {
                        let texture = result.texture(&ctx, run_id);
                        ui.vertical(|ui| {
                            let image = egui::Image::new((
                                texture.id(),
                                egui::vec2(THUMBNAIL_PX, THUMBNAIL_PX),
                            ))
                            .sense(egui::Sense::click());
                            let response = ui.add(image).on_hover_text(format!(
                                "Seed {} — click to view large",
                                result.meta.settings.seed
                            ));
                            if response.clicked() {
                                commands.push(AppCommand::View {
                                    run: run_id,
                                    index: result.index,
                                });
                            }
                            ui.checkbox(
                                &mut result.selected,
                                format!("Select {}.{}", run_id, result.index),
                            );
                        });
                    }
                });
            });
        });
        ui.add_space(6.0);
    }
}
