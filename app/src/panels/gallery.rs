//! The gallery: runs (newest first) with their settings and results; select, view, export.
//! Variations show as thumbnails, morphs as a strip with a playable preview, sweeps as a grid
//! labelled with their row values and guidance.

use lumos_engine::protocol::{Mode, SweepRows};

use crate::commands::{AppCommand, ExportSelection};
use crate::gallery::{Gallery, Run, RunId, RunImage, RunStatus};

/// Thumbnail size in points.
const THUMBNAIL_PX: f32 = 128.0;
/// Size of a morph strip's frames and of a sweep's cells, in points.
const SMALL_PX: f32 = 80.0;
/// Seconds each frame of a morph preview stays on screen while playing.
const FRAME_SECS: f64 = 0.12;

/// Draws the gallery; toggles selection in place, returns everything else.
pub fn gallery_ui(ui: &mut egui::Ui, gallery: &mut Gallery, commands: &mut Vec<AppCommand>) {
    if gallery.runs().is_empty() {
        ui.weak("Results appear here, grouped by run.");
        return;
    }
    for run in gallery.runs_mut().iter_mut().rev() {
        let run_id = run.id;
        // Runs scrolled out of view are not laid out: their space is kept at the height they
        // had when last drawn, so a gallery of a thousand runs costs what the visible ones do.
        let height_id = ui.scope_id().with(("run height", run_id));
        let known_height: Option<f32> = ui.data(|d| d.get_temp(height_id));
        if let Some(height) = known_height {
            let rect = egui::Rect::from_min_size(
                ui.cursor().min,
                egui::vec2(ui.available_width(), height),
            );
            if !ui.is_rect_visible(rect) {
                ui.allocate_space(rect.size());
                ui.add_space(6.0);
                continue;
            }
        }
        let drawn = ui.push_id(run_id, |ui| {
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
                match &run.prompt {
                    Some(prompt) => ui.small(format!("Prompt: {prompt}")),
                    None => ui.small(format!("References: {}", run.references.join(", "))),
                };
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
                match run.mode.clone() {
                    Mode::Sweep { rows, guidance } => {
                        sweep_grid_ui(ui, run, &rows, &guidance, commands);
                    }
                    Mode::Interpolate { .. } => morph_strip_ui(ui, run, commands),
                    Mode::Variations { .. } => {
                        ui.horizontal_wrapped(|ui| {
                            for result in &mut run.images {
                                thumbnail_ui(ui, run_id, result, THUMBNAIL_PX, commands);
                            }
                        });
                    }
                }
            });
        });
        let height = drawn.response.rect.height();
        ui.data_mut(|d| d.insert_temp(height_id, height));
        ui.add_space(6.0);
    }
}

/// A clickable result with its export checkbox.
fn thumbnail_ui(
    ui: &mut egui::Ui,
    run_id: RunId,
    result: &mut RunImage,
    size: f32,
    commands: &mut Vec<AppCommand>,
) {
    let texture = result.texture(ui.ctx(), run_id);
    ui.vertical(|ui| {
        let image =
            egui::Image::new((texture.id(), egui::vec2(size, size))).sense(egui::Sense::click());
        let response = ui.add(image).on_hover_text(format!(
            "Seed {}, guidance {} — click to view large",
            result.meta.settings.seed, result.meta.settings.guidance
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

/// A sweep as the X/Y plot it is: guidance across, the row values down.
fn sweep_grid_ui(
    ui: &mut egui::Ui,
    run: &mut Run,
    rows: &SweepRows,
    guidance: &[f64],
    commands: &mut Vec<AppCommand>,
) {
    let run_id = run.id;
    egui::ScrollArea::horizontal()
        .id_salt("sweep")
        .show(ui, |ui| {
            egui::Grid::new("sweep_grid").show(ui, |ui| {
                ui.label("");
                for g in guidance {
                    ui.strong(format!("guidance {g}"));
                }
                ui.end_row();
                for row in 0..rows.len() {
                    ui.strong(rows.label(row));
                    for column in 0..guidance.len() {
                        match run.image_mut(row * guidance.len() + column) {
                            Some(result) => thumbnail_ui(ui, run_id, result, SMALL_PX, commands),
                            None => {
                                ui.weak("…");
                            }
                        }
                    }
                    ui.end_row();
                }
            });
        });
}

/// Where a morph preview stands (kept in egui's memory per run).
#[derive(Clone, Copy, Debug, Default)]
struct MorphPreview {
    frame: usize,
    playing: bool,
    shown_since: f64,
}

/// A morph as a strip of its frames in order, with a larger preview that can play.
fn morph_strip_ui(ui: &mut egui::Ui, run: &mut Run, commands: &mut Vec<AppCommand>) {
    let run_id = run.id;
    // Frames in path order, whatever order they arrived in.
    let mut order: Vec<usize> = (0..run.images.len()).collect();
    order.sort_by_key(|&i| run.images[i].index);
    let frames = order.len();
    if frames == 0 {
        return;
    }
    let id = egui::Id::unique(("morph_preview", run_id));
    let now = ui.input(|i| i.time);
    let mut preview: MorphPreview = ui.data(|d| d.get_temp(id)).unwrap_or_default();
    if preview.playing && now - preview.shown_since >= FRAME_SECS {
        preview.frame = (preview.frame + 1) % frames;
        preview.shown_since = now;
    }
    preview.frame = preview.frame.min(frames - 1);
    ui.horizontal(|ui| {
        let texture = run.images[order[preview.frame]].texture(ui.ctx(), run_id);
        ui.image((texture.id(), egui::vec2(THUMBNAIL_PX, THUMBNAIL_PX)));
        ui.vertical(|ui| {
            let play = if preview.playing { "Pause" } else { "Play" };
            if ui.button(play).clicked() {
                preview.playing = !preview.playing;
                preview.shown_since = now;
            }
            let mut frame = preview.frame + 1;
            if ui
                .add(egui::Slider::new(&mut frame, 1..=frames).text("Frame"))
                .changed()
            {
                preview.frame = frame - 1;
                preview.playing = false;
            }
        });
    });
    egui::ScrollArea::horizontal()
        .id_salt("strip")
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                for &i in &order {
                    thumbnail_ui(ui, run_id, &mut run.images[i], SMALL_PX, commands);
                }
            });
        });
    if preview.playing {
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_secs_f64(FRAME_SECS));
    }
    ui.data_mut(|d| d.insert_temp(id, preview));
}
