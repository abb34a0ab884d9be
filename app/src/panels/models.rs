//! The model panel: which models can be used (Zero123-family checkpoints with their
//! licence), what discovery found (and where), what is missing for the full Lumos model and
//! how to get it.

use std::path::PathBuf;

use crate::commands::AppCommand;
use crate::zero123_models::Zero123Checkpoint;

/// Transient state of the model panel.
#[derive(Default)]
pub struct ModelsPanel {
    /// A typed models folder to search.
    pub folder_text: String,
}

/// What the panel shows.
pub struct ModelsView<'a> {
    /// Names of usable models.
    pub model_names: &'a [String],
    /// The Zero123-family checkpoints among them.
    pub checkpoints: &'a [Zero123Checkpoint],
    /// Discovery's report.
    pub report: &'a str,
}

impl ModelsPanel {
    /// Draws the panel; returns folder searches.
    pub fn models_ui(
        &mut self,
        ui: &mut egui::Ui,
        view: &ModelsView<'_>,
        commands: &mut Vec<AppCommand>,
    ) {
        if view.model_names.is_empty() {
            ui.colored_label(ui.visuals().warn_fg_color, "No usable model yet.");
        }
        for name in view.model_names {
            ui.label(format!("• {name}"));
            if let Some(checkpoint) = view.checkpoints.iter().find(|c| &c.name == name) {
                let note = if checkpoint.is_present() {
                    format!("multi-view · {}", checkpoint.licence.notice())
                } else {
                    format!("missing: it was at {}", checkpoint.path.display())
                };
                ui.add(egui::Label::new(egui::RichText::new(note).small().weak()).wrap());
            }
        }
        ui.label("Full Lumos model:");
        ui.add(egui::Label::new(egui::RichText::new(view.report).monospace().small()).wrap());
        ui.horizontal(|ui| {
            let label = ui.label("Models folder");
            ui.add(
                egui::TextEdit::singleline(&mut self.folder_text)
                    .hint_text("/path/to/models")
                    .desired_width(160.0),
            )
            .labelled_by(label.id);
            if ui.button("Search").clicked() && !self.folder_text.trim().is_empty() {
                commands.push(AppCommand::SearchModels(PathBuf::from(
                    self.folder_text.trim(),
                )));
            }
            if ui.button("Choose folder…").clicked() {
                commands.push(AppCommand::ChooseModelsFolderDialog);
            }
        });
        ui.weak(
            "Zero123-family checkpoints (zero123-xl.ckpt, 105000.ckpt, stable_zero123.ckpt, a \
             diffusers folder) are found too, as multi-view models, and a folder with a \
             model.json (a Lumos multi-view model, a prior you trained).",
        );
    }
}
