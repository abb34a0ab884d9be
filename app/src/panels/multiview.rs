//! The multi-view mode's panels: the orbit picker with a top and side diagram of the cameras
//! (in the controls), and the set being made: the turntable preview, the frames laid out by
//! angle, and "Export set" (in the central panel).

use lumos_engine::camera::OrbitPose;
use lumos_engine::checkpoints::zero123::Zero123Licence;

use crate::commands::AppCommand;
use crate::multiview::{MultiviewRun, SetFrameView, SetStatus};
use crate::preview::PreviewRenderer;
use crate::settings::{MultiviewSettings, OrbitChoice, limits};
use crate::turntable::TurntablePreview;
use crate::zero123_models::Zero123Checkpoint;

/// Side of the turntable preview, in points.
const TURNTABLE_SIDE: f32 = 256.0;
/// Side of a frame's thumbnail, in points.
const THUMBNAIL_SIDE: f32 = 96.0;

/// What the multi-view controls need to know about the models.
pub struct ModelFit<'a> {
    /// The name of the model chosen under Model.
    pub chosen: &'a str,
    /// The name of the model sets are made with: the chosen one when it makes views, else
    /// the first that does; `None` when none does.
    pub runs: Option<&'a str>,
    /// The Zero123-family checkpoint sets are made with, if it is one (its licence is shown,
    /// and where it was when it is gone).
    pub checkpoint: Option<&'a Zero123Checkpoint>,
}

/// Why `name` cannot make a multi-view set, and what to choose instead.
pub fn not_multiview_message(name: &str) -> String {
    format!(
        "{name} is not a multi-view model: it makes images from references, not views from \
         other cameras. Choose a multi-view model under Model, or add one under Models: a \
         Zero123-family checkpoint (zero123-xl.ckpt, 105000.ckpt, stable_zero123.ckpt, a \
         diffusers folder) or a folder with a model.json."
    )
}

/// The chosen checkpoint's licence, plainly (a non-commercial one as a warning), or that its
/// file is gone.
fn checkpoint_ui(ui: &mut egui::Ui, checkpoint: &Zero123Checkpoint) {
    if !checkpoint.is_present() {
        ui.colored_label(ui.visuals().error_fg_color, checkpoint.missing_message());
        return;
    }
    let notice = format!("Licence: {}", checkpoint.licence.notice());
    if checkpoint.licence == Zero123Licence::StabilityNonCommercial {
        ui.colored_label(ui.visuals().warn_fg_color, notice);
    } else {
        ui.label(notice);
    }
    ui.weak(format!(
        "Sampled as the Zero123 demo does (DDIM, η = {}; the Solver setting is not used), at \
         {} px.",
        lumos_engine::pipelines::zero123::DEMO_ETA,
        lumos_engine::pipelines::zero123::CANVAS
    ));
}

/// The orbit controls: preset, its parameters, the reference's elevation, the seeds, and a
/// diagram of where the cameras are; says which model makes the sets, and plainly when none can.
pub fn multiview_controls_ui(
    ui: &mut egui::Ui,
    settings: &mut MultiviewSettings,
    model: &ModelFit<'_>,
) {
    egui::ComboBox::from_label("Orbit")
        .selected_text(settings.orbit.label())
        .show_ui(ui, |ui| {
            for orbit in [
                OrbitChoice::Zero123Plus,
                OrbitChoice::Turntable,
                OrbitChoice::Custom,
            ] {
                ui.selectable_value(&mut settings.orbit, orbit, orbit.label());
            }
        });
    match settings.orbit {
        OrbitChoice::Zero123Plus => {
            ui.weak("Azimuth 30° to 330° in steps of 60°, elevation 20° and −10° in turn.");
        }
        OrbitChoice::Turntable => {
            ui.add(
                egui::Slider::new(&mut settings.turntable_frames, limits::TURNTABLE_FRAMES)
                    .text("Frames"),
            )
            .on_hover_text("Frames round the object, the reference included");
        }
        OrbitChoice::Custom => {
            let label = ui.label("Views (elevation azimuth [radius], degrees, one per line)");
            ui.add(
                egui::TextEdit::multiline(&mut settings.custom_views)
                    .desired_rows(4)
                    .desired_width(f32::INFINITY)
                    .code_editor(),
            )
            .labelled_by(label.id);
        }
    }
    ui.add(
        egui::Slider::new(
            &mut settings.input_elevation_deg,
            -limits::INPUT_ELEVATION_DEG..=limits::INPUT_ELEVATION_DEG,
        )
        .text("Reference elevation")
        .suffix("°")
        .fixed_decimals(0),
    )
    .on_hover_text("How high the reference's camera was above the object's horizon");
    ui.checkbox(&mut settings.shared_seed, "Same noise for every view");
    match settings.views() {
        Ok(views) => {
            ui.weak(format!(
                "{} views of the first reference, which is frame 0",
                views.len()
            ));
            orbit_diagram_ui(ui, &settings.input_pose(), &views, None);
        }
        Err(problem) => {
            ui.colored_label(ui.visuals().error_fg_color, problem);
        }
    }
    if let Some(checkpoint) = model.checkpoint {
        checkpoint_ui(ui, checkpoint);
    }
    match model.runs {
        None => {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                not_multiview_message(model.chosen),
            );
        }
        Some(runs) if runs != model.chosen => {
            ui.weak(format!(
                "Sets are made with {runs}: {} makes images from references.",
                model.chosen
            ));
        }
        Some(_) => {}
    }
}

/// A top view (azimuth; the reference's camera at the bottom, looking up) and a side view
/// (elevation, seen along the world's X axis) of the cameras round the object. `heading_deg`
/// marks the turntable's angle on the top view.
pub fn orbit_diagram_ui(
    ui: &mut egui::Ui,
    input: &OrbitPose,
    views: &[OrbitPose],
    heading_deg: Option<f64>,
) {
    let panel = egui::vec2(120.0, 120.0);
    let (rect, response) = ui.allocate_exact_size(
        egui::vec2(2.0 * panel.x + 12.0, panel.y),
        egui::Sense::hover(),
    );
    let what = "Cameras seen from above (left) and from the side (right)";
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, what));
    response.on_hover_text(what);
    let painter = ui.painter_at(rect);
    let visuals = ui.visuals();
    let (line, text) = (visuals.weak_text_color(), visuals.text_color());
    let (view_colour, input_colour) = (visuals.selection.bg_fill, visuals.warn_fg_color);
    let max_radius = views
        .iter()
        .chain(std::iter::once(input))
        .map(|p| p.radius)
        .fold(f64::EPSILON, f64::max);
    let top = egui::Rect::from_min_size(rect.min, panel);
    let side = egui::Rect::from_min_size(rect.min + egui::vec2(panel.x + 12.0, 0.0), panel);
    for (area, title) in [(top, "Top"), (side, "Side")] {
        painter.rect_stroke(
            area,
            4.0,
            egui::Stroke::new(1.0, line),
            egui::StrokeKind::Inside,
        );
        painter.text(
            area.left_top() + egui::vec2(4.0, 2.0),
            egui::Align2::LEFT_TOP,
            title,
            egui::FontId::proportional(10.0),
            text,
        );
    }
    let reach = panel.x * 0.5 - 14.0;
    // World (x, y) seen from above with +Y up the screen: azimuth 0 (camera on −Y) at the
    // bottom.
    let top_centre = top.center();
    let on_top = |pose: &OrbitPose| {
        let [x, y, _] = pose.position();
        let scale = reach / max_radius as f32;
        top_centre + egui::vec2(x as f32 * scale, -(y as f32) * scale)
    };
    // World (y, z) seen along +X: −Y (the reference's side) on the left, up is up.
    let side_centre = side.center();
    let on_side = |pose: &OrbitPose| {
        let [_, y, z] = pose.position();
        let scale = reach / max_radius as f32;
        side_centre + egui::vec2(y as f32 * scale, -(z as f32) * scale)
    };
    painter.circle_stroke(top_centre, reach, egui::Stroke::new(1.0, line));
    painter.line_segment(
        [
            side_centre - egui::vec2(reach, 0.0),
            side_centre + egui::vec2(reach, 0.0),
        ],
        egui::Stroke::new(1.0, line),
    );
    for centre in [top_centre, side_centre] {
        painter.rect_filled(
            egui::Rect::from_center_size(centre, egui::vec2(8.0, 8.0)),
            1.0,
            text,
        );
    }
    if let Some(heading) = heading_deg {
        let pose = OrbitPose {
            elevation_deg: 0.0,
            azimuth_deg: heading,
            radius: max_radius,
        };
        painter.line_segment(
            [top_centre, on_top(&pose)],
            egui::Stroke::new(1.5, input_colour),
        );
    }
    for (pose, colour, size) in views
        .iter()
        .map(|p| (p, view_colour, 3.5))
        .chain(std::iter::once((input, input_colour, 5.0)))
    {
        for (at, centre) in [(on_top(pose), top_centre), (on_side(pose), side_centre)] {
            // A dot with a tick towards the object: where the camera looks.
            let towards = (centre - at).normalized() * 7.0;
            painter.line_segment([at, at + towards], egui::Stroke::new(1.5, colour));
            painter.circle_filled(at, size, colour);
        }
    }
}

/// The set being made or last made: progress in words, the turntable, the frames by angle,
/// and "Export set".
pub fn multiview_results_ui(
    ui: &mut egui::Ui,
    run: &mut MultiviewRun,
    turntable: &mut TurntablePreview,
    renderer: PreviewRenderer,
    export_alpha: &mut bool,
    commands: &mut Vec<AppCommand>,
) {
    ui.heading("Multi-view set");
    let status = match &run.status {
        SetStatus::Running => format!("{} of {} views made", run.views_made(), run.planned.len()),
        SetStatus::Finished => format!("{} views", run.planned.len()),
        SetStatus::Cancelled => format!(
            "cancelled after {} of {} views",
            run.views_made(),
            run.planned.len()
        ),
        SetStatus::Failed(why) => format!("failed: {why}"),
    };
    ui.label(format!(
        "Run {} · {} · from {} · {} · seed {}",
        run.id, status, run.reference, run.model, run.settings.seed
    ));
    for notice in &run.notices {
        if notice == Zero123Licence::StabilityNonCommercial.notice() {
            ui.colored_label(ui.visuals().warn_fg_color, notice);
        } else {
            ui.label(notice);
        }
    }
    if run.frames_by_azimuth().is_empty() {
        return;
    }
    ui.horizontal(|ui| {
        turntable.turntable_ui(ui, renderer, run, TURNTABLE_SIDE);
        ui.vertical(|ui| {
            ui.add(
                egui::Slider::new(&mut turntable.angle_deg, 0.0..=359.0)
                    .text("Orbit angle")
                    .suffix("°")
                    .fixed_decimals(0),
            );
            ui.weak("Drag the preview sideways to orbit.");
            let views: Vec<OrbitPose> = run.planned.clone();
            orbit_diagram_ui(ui, &run.input_pose, &views, Some(turntable.angle_deg));
            ui.add_space(6.0);
            ui.checkbox(export_alpha, "Views with alpha (object cut out)");
            let exportable = run.is_complete() || run.is_partial();
            let export = ui
                .add_enabled(exportable, egui::Button::new("Export set"))
                .on_hover_text(
                    "A PNG per view with its camera, transforms.json, a grid and a turntable \
                     GIF, into the export folder",
                );
            if run.is_partial() {
                ui.weak(format!(
                    "Exports the reference and the {} views made.",
                    run.views_made()
                ));
            } else if !exportable {
                ui.weak("The set can be exported once its views are made.");
            }
            if export.clicked() {
                commands.push(AppCommand::ExportMultiviewSet { replace: false });
            }
        });
    });
    ui.add_space(6.0);
    ui.label("Views by angle (click one to turn to it)");
    let ctx = ui.ctx().clone();
    // Rows of as many thumbnails as fit (a wrapped layout cannot wrap labelled columns).
    let cell = THUMBNAIL_SIDE + ui.spacing().item_spacing.x;
    let per_row = ((ui.available_width() + ui.spacing().item_spacing.x) / cell).floor();
    let per_row = (per_row as usize).max(1);
    let mut frames = run.frames_by_azimuth_mut();
    for row in frames.chunks_mut(per_row) {
        ui.horizontal(|ui| {
            for frame in row {
                frame_thumbnail_ui(ui, &ctx, frame, turntable);
            }
        });
    }
}

/// One frame of the set with its angle; a click turns the turntable to it.
fn frame_thumbnail_ui(
    ui: &mut egui::Ui,
    ctx: &egui::Context,
    frame: &mut SetFrameView,
    turntable: &mut TurntablePreview,
) {
    let texture = frame.texture(ctx, "multiview_frame");
    let label = if frame.is_reference() {
        format!("reference · {}", frame.angle_label())
    } else {
        frame.angle_label()
    };
    ui.vertical(|ui| {
        ui.set_width(THUMBNAIL_SIDE);
        let image = egui::Image::new(&texture)
            .fit_to_exact_size(egui::vec2(THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            .sense(egui::Sense::click());
        let turn_to = format!("Turn to {label}");
        let response = ui.add(image).on_hover_text(&turn_to);
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &turn_to));
        if response.clicked() {
            turntable.angle_deg = frame.pose.azimuth_deg.rem_euclid(360.0);
        }
        ui.small(label);
    });
}
