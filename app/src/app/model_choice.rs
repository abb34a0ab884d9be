//! Which models [`LumosApp`] lists and which one is chosen: the Lumos models, then the
//! Zero123-family checkpoints (`crate::zero123_models`), one list of names for the Model
//! picker. The settings name the chosen model; when it is a checkpoint they also hold its
//! path, which brings the entry back after a restart or with a project even where no search
//! would find it (and lets the app say where the file was if it is gone).

use std::path::Path;

use super::LumosApp;
use crate::zero123_models::ChosenModel;

impl LumosApp {
    /// The Model picker's names: the Lumos models, then the Zero123 checkpoints.
    pub(super) fn refresh_model_names(&mut self) {
        self.model_names = self
            .models
            .iter()
            .map(|m| m.name.clone())
            .chain(self.zero123.all().iter().map(|c| c.name.clone()))
            .collect();
    }

    /// Brings back the checkpoint the settings remember (at start-up, from a project), even
    /// when its file is gone: the choice is the user's, and Generate then says where it was.
    pub(super) fn restore_chosen_checkpoint(&mut self) {
        if let Some(path) = self.settings.zero123_checkpoint.clone() {
            let name = self.zero123.add(&path).name.clone();
            self.settings.model = Some(name);
        }
        self.refresh_model_names();
    }

    /// Keeps the settings' checkpoint path in step with the chosen model.
    pub(super) fn remember_chosen_checkpoint(&mut self) {
        let path = match self.chosen_model() {
            Some(ChosenModel::Zero123(checkpoint)) => Some(checkpoint.path.clone()),
            _ => None,
        };
        if self.settings.zero123_checkpoint != path {
            self.settings.zero123_checkpoint = path;
        }
    }

    /// Adds the Zero123-family checkpoints in `dir` to the models; says what was found and
    /// under which licence. Returns whether there was any.
    pub(super) fn search_zero123(&mut self, dir: &Path) -> bool {
        let found = self.zero123.search(dir);
        if found.is_empty() {
            return false;
        }
        self.refresh_model_names();
        for checkpoint in &found {
            self.notifications.info(format!(
                "Found the multi-view model {} in {}: choose it under Model for the \
                 Multi-view mode. {}",
                checkpoint.name,
                dir.display(),
                checkpoint.licence.notice()
            ));
        }
        true
    }

    /// The model the current mode runs: the multi-view one in the Multi-view mode, else the
    /// chosen one.
    pub(super) fn model_for_mode(&self) -> Option<ChosenModel<'_>> {
        if self.settings.mode == crate::settings::ModeKind::Multiview {
            self.multiview_model()
        } else {
            self.chosen_model()
        }
    }

    /// Gives each model its own guidance: when the model the current mode runs changes, the
    /// guidance used with the previous one is remembered under its name, and the new one gets
    /// what it was last used with — the first time, the guidance its manifest recommends (the
    /// built-in image model 3, the multi-view one 1), where it names one. A restart with the
    /// same model keeps the user's value.
    pub(super) fn follow_model_guidance(&mut self) {
        let Some((name, recommended)) = self.model_for_mode().map(|model| {
            let recommended = match model {
                ChosenModel::Lumos(spec) => spec.guidance,
                ChosenModel::Zero123(_) => None,
            };
            (model.name().to_owned(), recommended)
        }) else {
            return;
        };
        let settings = &mut self.settings;
        if settings.guidance_model.as_deref() == Some(name.as_str()) {
            return;
        }
        if let Some(previous) = settings.guidance_model.take() {
            settings
                .guidance_by_model
                .insert(previous, settings.sampler.guidance);
        }
        if let Some(guidance) = settings
            .guidance_by_model
            .get(&name)
            .copied()
            .or(recommended)
        {
            settings.sampler.guidance = guidance.clamp(
                *crate::settings::limits::GUIDANCE.start(),
                *crate::settings::limits::GUIDANCE.end(),
            );
        }
        settings.guidance_model = Some(name);
    }

    /// Whether the chosen model makes views from other cameras.
    pub(super) fn selected_model_is_multiview(&self) -> bool {
        self.chosen_model().is_some_and(|m| m.is_multiview())
    }

    /// The model multi-view sets use: the chosen one when it makes views, else the first that
    /// does — a Zero123-family checkpoint found on this machine, else a Lumos novel-view model
    /// (the built-in one) — so that the Multi-view mode works without changing the Model the
    /// image modes use. `None` when no model makes views.
    pub(super) fn multiview_model(&self) -> Option<ChosenModel<'_>> {
        let chosen = self.chosen_model();
        if chosen.is_some_and(|m| m.is_multiview()) {
            return chosen;
        }
        self.zero123
            .all()
            .iter()
            .find(|checkpoint| checkpoint.is_present())
            .map(ChosenModel::Zero123)
            .or_else(|| {
                self.models
                    .iter()
                    .find(|spec| spec.is_novel_view())
                    .map(ChosenModel::Lumos)
            })
    }
}
