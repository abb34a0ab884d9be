//! The multi-view mode's part of [`LumosApp`]: queuing a set from the first reference,
//! taking its views as they arrive, and "Export set" through the engine's set writer, asking
//! before any existing file is replaced. A child module of `app` so that `app.rs` does not
//! grow by another mode.

use std::path::PathBuf;

use lumos_engine::camera::DEFAULT_FOV_DEG;
use lumos_engine::multiview_export::{ExistingFiles, ViewAlpha};
use lumos_engine::pipelines::multiview::MultiviewRequest;
use lumos_engine::protocol::{JobId, MultiviewJob, MultiviewModel};

use super::{DialogResult, LumosApp, Question};
use crate::gallery::RunStatus;
use crate::multiview::{MultiviewMode, MultiviewRun, SetStatus};
use crate::panels::multiview::not_multiview_message;
use crate::settings::random_seed;
use crate::zero123_models::ChosenModel;

impl LumosApp {
    /// The multi-view mode's state (the latest set, the turntable, the last export).
    pub fn multiview(&self) -> &MultiviewMode {
        &self.multiview
    }

    /// Queues a multi-view set of the first reference with the chosen orbit.
    pub(super) fn generate_multiview(&mut self) {
        let Some(reference) = self.canvas.references.first() else {
            self.notifications
                .error("Add a reference image first (drop one, paste one, or use Open…).");
            return;
        };
        let precision = self.settings.precision();
        let model = match self.multiview_model() {
            Some(ChosenModel::Lumos(spec)) => {
                let mut spec = spec.clone();
                spec.precision = precision;
                Ok(MultiviewModel::NovelView(Box::new(spec)))
            }
            Some(ChosenModel::Zero123(checkpoint)) if !checkpoint.is_present() => {
                Err(checkpoint.missing_message())
            }
            Some(ChosenModel::Zero123(checkpoint)) => {
                Ok(MultiviewModel::Zero123(checkpoint.spec(precision)))
            }
            None => Err(match self.chosen_model() {
                Some(chosen) => not_multiview_message(chosen.name()),
                None => "No model is available: see Models for what to install.".to_owned(),
            }),
        };
        let model = match model {
            Ok(model) => model,
            Err(problem) => {
                self.notifications.error(problem);
                return;
            }
        };
        let multiview = &self.settings.multiview;
        let preset = match multiview.preset() {
            Ok(preset) => preset,
            Err(problem) => {
                self.notifications
                    .error(format!("Cannot start: {problem}."));
                return;
            }
        };
        let input_pose = multiview.input_pose();
        let request = MultiviewRequest {
            name: reference.name.clone(),
            image: reference.image.clone(),
            alpha: reference.alpha.clone(),
            input_pose,
            views: preset.views(&input_pose),
            settings: self.settings.sampler.clone(),
            shared_seed: multiview.shared_seed,
            recenter: true,
            device: self.settings.device,
        };
        let views = request.views.len();
        let reference_name = reference.name.clone();
        let model_name = model.name().to_owned();
        match self.engine.multiview(MultiviewJob { model, request }) {
            Ok(job) => {
                let run_id = self.gallery.next_id();
                let summary = format!(
                    "multi-view set, {views} views, {} steps, seed {}",
                    self.settings.sampler.steps, self.settings.sampler.seed
                );
                self.jobs.push(job, run_id, summary);
                self.multiview.run = Some(MultiviewRun::new(
                    run_id,
                    job,
                    reference_name,
                    model_name,
                    preset,
                    input_pose,
                    self.settings.sampler.clone(),
                ));
                self.multiview.turntable.angle_deg = 0.0;
                self.settings.advance_seed(random_seed());
            }
            Err(_) => self.on_engine_died(),
        }
    }

    /// A multi-view job ended as `status`.
    pub(super) fn multiview_job_ended(&mut self, job: JobId, status: &RunStatus) {
        if let Some(run) = self.multiview.run_of(job) {
            run.ended(match status {
                RunStatus::Finished | RunStatus::FromHistory => SetStatus::Finished,
                RunStatus::Cancelled => SetStatus::Cancelled,
                RunStatus::Failed(why) => SetStatus::Failed(why.clone()),
                RunStatus::Pending => SetStatus::Running,
            });
            self.keep_set();
        }
    }

    /// Writes the set, once it has ended — finished, or cut short after some views (the views
    /// made are kept then) — into the history folder as "Export set" would, so that it outlives
    /// the next set and the session (the mode holds only the latest set). Written on a thread;
    /// [`Self::multiview_set_written`] reports it.
    fn keep_set(&mut self) {
        let Some(history) = self.history_dir.clone() else {
            return; // history off (tests, or no data folder on this system)
        };
        let Some(run) = self
            .multiview
            .run
            .as_mut()
            .filter(|run| run.kept_in.is_none())
        else {
            return;
        };
        let Some(set) = run.to_set(DEFAULT_FOV_DEG) else {
            return; // ended before its first view: nothing was made
        };
        let dir =
            crate::history::multiview_set_dir(&history, crate::history::now_unix_secs(), run.id);
        run.kept_in = Some(dir.clone()); // taken back if writing fails
        let kept_run = Some(run.id);
        self.write_on_thread(move || {
            let outcome = std::fs::create_dir_all(&dir)
                .map_err(anyhow::Error::from)
                .and_then(|()| {
                    set.write(&dir, ViewAlpha::ObjectMask, ExistingFiles::Refuse)
                        .map_err(anyhow::Error::from)
                });
            DialogResult::SetWritten {
                dir,
                kept_run,
                outcome,
            }
        });
    }

    /// Writes the finished set into the export folder (on a thread). Files of an earlier set
    /// there are replaced only with `replace` (after the user was asked).
    pub(super) fn export_multiview_set(&mut self, replace: bool) {
        self.question = None;
        let Some(dir) = self.settings.export_dir.clone() else {
            self.notifications
                .error("Choose an export folder first (Export folder, under the queue).");
            return;
        };
        let Some(set) = self
            .multiview
            .run
            .as_ref()
            .and_then(|run| run.to_set(DEFAULT_FOV_DEG))
        else {
            self.notifications.error(
                "There is no multi-view set to export: make one first (a set cut short can be \
                 exported once it has a view).",
            );
            return;
        };
        let existing = set.existing_files(&dir);
        if !existing.is_empty() && !replace {
            self.question = Some(Question::ReplaceSetFiles(existing));
            return;
        }
        let alpha = if self.settings.multiview.export_alpha {
            ViewAlpha::ObjectMask
        } else {
            ViewAlpha::Opaque
        };
        let existing_files = if replace {
            ExistingFiles::Replace
        } else {
            ExistingFiles::Refuse
        };
        self.write_on_thread(move || {
            let outcome = set
                .write(&dir, alpha, existing_files)
                .map_err(anyhow::Error::from);
            DialogResult::SetWritten {
                dir,
                kept_run: None,
                outcome,
            }
        });
    }

    /// A set was written into `dir` (or not): kept in the history folder for `kept_run`, or
    /// exported.
    pub(super) fn multiview_set_written(
        &mut self,
        dir: &std::path::Path,
        kept_run: Option<u64>,
        outcome: anyhow::Result<Vec<PathBuf>>,
    ) {
        match (kept_run, outcome) {
            (Some(run_id), Ok(_)) => {
                let cut_short = self
                    .multiview
                    .run
                    .as_ref()
                    .filter(|run| run.id == run_id && run.is_partial())
                    .map(|run| (run.views_made(), run.planned.len()));
                let what = match cut_short {
                    Some((made, planned)) => {
                        format!("The {made} of {planned} views made before the set stopped are")
                    }
                    None => "The multi-view set is".to_owned(),
                };
                self.notifications.info(format!(
                    "{what} kept in {} (views, transforms.json, grid and turntable); Export set \
                     copies it where you want it.",
                    dir.display()
                ));
            }
            (Some(run_id), Err(error)) => {
                if let Some(run) = self.multiview.run.as_mut().filter(|run| run.id == run_id) {
                    run.kept_in = None;
                }
                self.notifications.error(format!(
                    "The multi-view set could not be kept in the history folder ({}): \
                     {error:#}. Use Export set before making another.",
                    dir.display()
                ));
            }
            (None, Ok(written)) => {
                self.notifications.info(format!(
                    "Exported the multi-view set ({} files: views, transforms.json, grid and \
                     turntable) to {}",
                    written.len(),
                    dir.display()
                ));
                self.multiview.last_export = written;
            }
            (None, Err(error)) => self
                .notifications
                .error(format!("The multi-view set was not exported: {error:#}")),
        }
    }

    /// The question "replace these files of an earlier set?".
    pub(super) fn replace_set_files_ui(&mut self, ui: &mut egui::Ui, existing: &[PathBuf]) {
        ui.heading("Replace the files?");
        ui.label(format!(
            "{} file(s) of the set already exist in the export folder; replacing them loses \
             what they hold now:",
            existing.len()
        ));
        for path in existing.iter().take(6) {
            ui.monospace(crate::references::display_name(path));
        }
        if existing.len() > 6 {
            ui.weak(format!("and {} more", existing.len() - 6));
        }
        ui.horizontal(|ui| {
            if ui.button("Replace").clicked() {
                self.commands
                    .push(crate::commands::AppCommand::ExportMultiviewSet { replace: true });
            }
            if ui.button("Cancel").clicked() {
                self.commands
                    .push(crate::commands::AppCommand::CancelQuestion);
            }
        });
    }

    /// The set's panel in the central area.
    pub(super) fn multiview_results_ui(&mut self, ui: &mut egui::Ui) {
        let renderer = self.live.renderer();
        let Some(run) = &mut self.multiview.run else {
            ui.weak(
                "Multi-view: press Generate to make views of the first reference from cameras \
                 round it.",
            );
            return;
        };
        crate::panels::multiview::multiview_results_ui(
            ui,
            run,
            &mut self.multiview.turntable,
            renderer,
            &mut self.settings.multiview.export_alpha,
            &mut self.commands,
        );
    }
}
