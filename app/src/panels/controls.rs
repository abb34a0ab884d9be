//! Generation controls: mode (the multi-view mode's orbit in `panels::multiview`), count,
//! guidance, steps, seed, solver, model, device, Generate.

use lumos_engine::protocol::{DeviceChoice, Ease, InterpolationPath, MixMethod, Precision, Solver};

use crate::commands::AppCommand;
use crate::panels::multiview::{ModelFit, multiview_controls_ui};
use crate::settings::{ModeKind, SeedPolicy, Settings, SweepAxis, limits, random_seed};
use crate::zero123_models::Zero123Checkpoint;

/// What the controls need to know besides the settings.
pub struct ControlsContext<'a> {
    /// Names of the models that can be used.
    pub model_names: &'a [String],
    /// Devices this build can compute on.
    pub devices: &'a [DeviceChoice],
    /// Whether the canvas has references (Generate needs them or a prompt).
    pub has_references: bool,
    /// Whether the canvas has a prompt (used when it has no references).
    pub has_prompt: bool,
    /// Whether a job is running or waiting.
    pub busy: bool,
    /// Whether the chosen model makes views from other cameras (the other modes cannot use
    /// one).
    pub model_is_multiview: bool,
    /// The model multi-view sets use (the chosen one when it makes views), if any does.
    pub multiview_model: Option<&'a str>,
    /// The model the current mode runs when it is a Zero123-family checkpoint.
    pub checkpoint: Option<&'a Zero123Checkpoint>,
    /// What to tell the user about the model the current mode runs when it is a built-in one.
    pub model_note: Option<&'static str>,
    /// The guidance the model the current mode runs was measured best at, if its manifest
    /// names one: the slider starts there the first time the model runs, and it is offered
    /// whenever the user has moved away from it.
    pub model_guidance: Option<f64>,
}

/// Draws the controls; edits `settings` in place, returns Generate.
pub fn controls_ui(
    ui: &mut egui::Ui,
    settings: &mut Settings,
    context: &ControlsContext<'_>,
    commands: &mut Vec<AppCommand>,
) {
    ui.heading("Generation");
    egui::ComboBox::from_label("Mode")
        .selected_text(settings.mode.label())
        .show_ui(ui, |ui| {
            for mode in [
                ModeKind::Variations,
                ModeKind::Interpolate,
                ModeKind::Sweep,
                ModeKind::Multiview,
            ] {
                ui.selectable_value(&mut settings.mode, mode, mode.label());
            }
        });
    match settings.mode {
        ModeKind::Variations => {
            ui.add(egui::Slider::new(&mut settings.count, limits::COUNT).text("Count"));
        }
        ModeKind::Interpolate => {
            ui.add(egui::Slider::new(&mut settings.frames, limits::FRAMES).text("Frames"));
            egui::ComboBox::from_label("Path")
                .selected_text(path_label(settings.path))
                .show_ui(ui, |ui| {
                    for path in [
                        InterpolationPath::Endpoints,
                        InterpolationPath::Slerp,
                        InterpolationPath::Demo,
                    ] {
                        ui.selectable_value(&mut settings.path, path, path_label(path));
                    }
                });
        }
        ModeKind::Sweep => sweep_ui(ui, settings),
        ModeKind::Multiview => {
            let model = selected_model_name(settings, context);
            multiview_controls_ui(
                ui,
                &mut settings.multiview,
                &ModelFit {
                    chosen: &model,
                    runs: context.multiview_model,
                    checkpoint: context.checkpoint,
                },
            );
        }
    }
    if settings.mode != ModeKind::Multiview && context.model_is_multiview {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            "The chosen model is a multi-view model: it makes views of one object from other \
             cameras. Use it in the Multi-view mode, or choose another model for this one.",
        );
    }
    // A multi-view set has one reference: nothing to mix.
    if settings.mode != ModeKind::Multiview {
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("Mix")
                .selected_text(mix_label(settings.mix.method))
                .show_ui(ui, |ui| {
                    for method in [MixMethod::Linear, MixMethod::Spherical] {
                        ui.selectable_value(&mut settings.mix.method, method, mix_label(method));
                    }
                })
                .response
                .on_hover_text("How the references' embeddings are combined");
            ui.checkbox(&mut settings.mix.renormalize, "Renormalise")
                .on_hover_text(
                    "Scale the mixed embedding back to unit length, as the prior was trained",
                );
        });
    }
    if settings.mode == ModeKind::Interpolate {
        egui::ComboBox::from_label("Spacing")
            .selected_text(ease_label(settings.mix.ease))
            .show_ui(ui, |ui| {
                for ease in [Ease::Linear, Ease::Smooth] {
                    ui.selectable_value(&mut settings.mix.ease, ease, ease_label(ease));
                }
            });
    }
    if settings.mode != ModeKind::Sweep {
        ui.add(
            egui::Slider::new(&mut settings.sampler.guidance, limits::GUIDANCE)
                .text("Guidance")
                .fixed_decimals(1),
        )
        .on_hover_text("Classifier-free guidance: higher follows the references more closely.");
        if let Some(best) = context.model_guidance
            && (settings.sampler.guidance - best).abs() > 1e-6
        {
            ui.horizontal(|ui| {
                ui.weak(format!("This model works best at guidance {best:.1}."));
                if ui.small_button(format!("Use {best:.1}")).clicked() {
                    settings.sampler.guidance = best;
                }
            });
        }
    }
    ui.add(
        egui::Slider::new(&mut settings.sampler.steps, limits::STEPS)
            .logarithmic(true)
            .text("Steps"),
    );
    ui.horizontal(|ui| {
        let label = ui.label("Seed");
        ui.add(egui::DragValue::new(&mut settings.sampler.seed).speed(1.0))
            .labelled_by(label.id);
        if ui.button("New seed").clicked() {
            settings.sampler.seed = random_seed();
        }
    });
    ui.horizontal(|ui| {
        ui.label("After each run:");
        for policy in [
            SeedPolicy::Locked,
            SeedPolicy::Random,
            SeedPolicy::Increment,
        ] {
            ui.radio_value(&mut settings.seed_policy, policy, policy.label());
        }
    });
    // Zero123-family checkpoints are sampled as their demo samples them (DDIM with noise), so
    // the solver is not theirs to choose.
    ui.add_enabled_ui(context.checkpoint.is_none(), |ui| {
        egui::ComboBox::from_label("Solver")
            .selected_text(settings.sampler.solver.to_string())
            .show_ui(ui, |ui| {
                for solver in [
                    Solver::DpmSolverPp { order: 2 },
                    Solver::DpmSolverPp { order: 1 },
                    Solver::DpmSolverPp { order: 3 },
                    Solver::Ddim,
                ] {
                    ui.selectable_value(&mut settings.sampler.solver, solver, solver.to_string());
                }
            })
            .response
            .on_disabled_hover_text(
                "Zero123 checkpoints are sampled as their demo does (DDIM with noise)",
            );
    });
    let selected_model = selected_model_name(settings, context);
    egui::ComboBox::from_label("Model")
        .selected_text(shorten(&selected_model, 24))
        .show_ui(ui, |ui| {
            for name in context.model_names {
                ui.selectable_value(&mut settings.model, Some(name.clone()), name);
            }
        })
        .response
        .on_hover_text(&selected_model);
    if let Some(note) = context.model_note {
        ui.add(egui::Label::new(egui::RichText::new(note).small().weak()).wrap());
    }
    egui::ComboBox::from_label("Device")
        .selected_text(settings.device.to_string())
        .show_ui(ui, |ui| {
            for device in context.devices {
                ui.selectable_value(&mut settings.device, *device, device.to_string());
            }
        });
    if settings.device != DeviceChoice::Cpu {
        egui::ComboBox::from_label("Precision")
            .selected_text(format!("{:?}", settings.gpu_precision))
            .show_ui(ui, |ui| {
                for precision in [Precision::F16, Precision::Bf16, Precision::F32] {
                    ui.selectable_value(
                        &mut settings.gpu_precision,
                        precision,
                        format!("{precision:?}"),
                    );
                }
            });
    }
    ui.add_space(8.0);
    let ready = (context.has_references && !context.model_names.is_empty())
        || (context.has_prompt && !context.has_references && settings.mode != ModeKind::Multiview);
    let label = if context.busy {
        "Queue another"
    } else {
        "Generate"
    };
    let response = ui
        .add_enabled(
            ready,
            egui::Button::new(label).min_size(egui::vec2(160.0, 32.0)),
        )
        .on_hover_text("Ctrl+Enter (Cmd+Enter on macOS)");
    if !context.has_references && !context.has_prompt {
        ui.weak("Add a reference image or type a prompt first.");
    } else if !context.has_references && settings.mode == ModeKind::Multiview {
        ui.weak("Add a reference image first: a multi-view set is made from one.");
    } else if context.has_references && context.model_names.is_empty() {
        ui.weak("No model found: see Models below.");
    }
    if response.clicked() {
        commands.push(AppCommand::Generate);
    }
}

/// The name of the model the next run uses.
fn selected_model_name(settings: &Settings, context: &ControlsContext<'_>) -> String {
    settings
        .model
        .clone()
        .or_else(|| context.model_names.first().cloned())
        .unwrap_or_else(|| "none found".into())
}

/// The sweep's axes: what the rows vary, their values, the guidance of the columns.
fn sweep_ui(ui: &mut egui::Ui, settings: &mut Settings) {
    egui::ComboBox::from_label("Rows")
        .selected_text(settings.sweep_axis.label())
        .show_ui(ui, |ui| {
            for axis in [SweepAxis::Seed, SweepAxis::Weight] {
                ui.selectable_value(&mut settings.sweep_axis, axis, axis.label());
            }
        });
    ui.horizontal(|ui| {
        let label = ui.label("Row values");
        ui.add(egui::TextEdit::singleline(&mut settings.sweep_rows).desired_width(120.0))
            .labelled_by(label.id)
            .on_hover_text("Seeds, or weights of the last reference, separated by commas");
    });
    ui.horizontal(|ui| {
        let label = ui.label("Guidance values");
        ui.add(egui::TextEdit::singleline(&mut settings.sweep_guidance).desired_width(120.0))
            .labelled_by(label.id)
            .on_hover_text("One column per guidance scale, separated by commas");
    });
    match settings.engine_mode() {
        Ok(mode) => {
            ui.weak(format!(
                "{} images, shown as a labelled grid",
                lumos_engine::pipelines::image_count(&mode)
            ));
        }
        Err(problem) => {
            ui.colored_label(ui.visuals().error_fg_color, problem);
        }
    }
}

fn mix_label(method: MixMethod) -> &'static str {
    match method {
        MixMethod::Linear => "Linear",
        MixMethod::Spherical => "Spherical",
    }
}

fn ease_label(ease: Ease) -> &'static str {
    match ease {
        Ease::Linear => "Even",
        Ease::Smooth => "Slow at the ends",
    }
}

fn path_label(path: InterpolationPath) -> &'static str {
    match path {
        InterpolationPath::Endpoints => "Linear (ends on both references)",
        InterpolationPath::Slerp => "Spherical",
        InterpolationPath::Demo => "As in the original demo",
    }
}

/// `text` cut to `max_chars` characters with an ellipsis.
fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max_chars.saturating_sub(1)).collect();
        short.push('…');
        short
    }
}
