//! Text-to-image's part of [`LumosApp`]: Generate with a prompt and no references queues a
//! text-to-image job (the full model's when installed, else the built-in prompt model's), and
//! a dropped PNG made from a prompt gives the prompt back. A child module of `app` so that
//! `app.rs` does not grow by another mode.

use std::path::Path;

use lumos_engine::checkpoints::text_to_image::discover_text_to_image;
use lumos_engine::pipelines::text_to_image::{TextToImageRequest, TextToImageSpec};
use lumos_engine::protocol::{GenerationMeta, Mode, PromptModelChoice, TextToImageJob};

use super::LumosApp;
use crate::gallery::{Run, RunStatus};
use crate::prompt::TextToImageModel;
use crate::references::display_name;
use crate::settings::random_seed;

impl LumosApp {
    /// Queues images from the prompt on the canvas.
    pub(super) fn generate_from_prompt(&mut self) {
        let prompt = self.settings.prompt.trim().to_owned();
        if prompt.is_empty() {
            self.notifications.error(
                "The prompt is empty: say what the image should show, or add a reference image.",
            );
            return;
        }
        let mut model = match self.text_to_image.choice() {
            Ok(model) => model,
            Err(error) => {
                self.notifications
                    .error(format!("The built-in prompt model cannot be used: {error}"));
                return;
            }
        };
        let [width_px, height_px] = match &mut model {
            PromptModelChoice::Published(spec) => {
                spec.precision = self.settings.precision();
                self.settings.prompt_size_px
            }
            PromptModelChoice::BuiltIn(files) => {
                let side = files.image_size_px() as u32;
                [side, side]
            }
        };
        let count = self.settings.count;
        let request = TextToImageRequest {
            width_px,
            height_px,
            steps: self.settings.sampler.steps,
            guidance: self.settings.sampler.guidance,
            seed: self.settings.sampler.seed,
            count,
            ..TextToImageRequest::new(&prompt)
        };
        let run_id = self.gallery.next_id();
        let created_unix_secs = crate::history::now_unix_secs();
        let run = Run {
            id: run_id,
            job: None,
            model: model.name().to_owned(),
            mode: Mode::Variations { count },
            settings: lumos_engine::protocol::SamplerSettings {
                solver: lumos_engine::protocol::Solver::DpmSolverPp { order: 2 },
                ..self.settings.sampler.clone()
            },
            references: Vec::new(),
            prompt: Some(prompt.clone()),
            images: Vec::new(),
            status: RunStatus::Pending,
            created_unix_secs,
            history_dir: self
                .history_dir
                .as_deref()
                .map(|h| crate::history::run_dir(h, created_unix_secs, run_id)),
        };
        let job = TextToImageJob {
            model,
            device: self.settings.device,
            request,
        };
        match self.engine.text_to_image(job) {
            Ok(job) => {
                let summary = format!(
                    "{count} image(s) from a prompt, {} steps, seed {}",
                    self.settings.sampler.steps, self.settings.sampler.seed
                );
                self.jobs.push(job, run_id, summary);
                if let Some(dir) = &run.history_dir {
                    self.project_runs.push(dir.clone());
                }
                self.gallery.push(Run {
                    job: Some(job),
                    ..run
                });
                crate::prompt::remember(&mut self.settings.recent_prompts, &prompt);
                self.settings.advance_seed(random_seed());
            }
            Err(_) => self.on_engine_died(),
        }
    }

    /// Looks for the text-to-image model in `dir` (Models > Search) and uses it when it is
    /// complete; returns whether it was found.
    pub(super) fn search_text_to_image(&mut self, dir: &Path) -> bool {
        let found = discover_text_to_image(Some(dir));
        let spec = found
            .is_complete()
            .then(|| TextToImageSpec::published(&found))
            .transpose();
        match spec {
            Ok(Some(spec)) => {
                self.notifications.info(format!(
                    "Found the text-to-image model ({}) in {}: prompts make images now.",
                    spec.name,
                    dir.display()
                ));
                self.text_to_image = TextToImageModel {
                    spec: Some(spec),
                    report: found.report(),
                };
                true
            }
            Ok(None) => {
                // Keep a model found earlier; otherwise say what this folder lacks.
                if self.text_to_image.spec.is_none() {
                    self.text_to_image.report = found.report();
                }
                false
            }
            Err(error) => {
                self.notifications.error(format!(
                    "The text-to-image files in {} cannot be used: {error:#}",
                    dir.display()
                ));
                false
            }
        }
    }

    /// Whether prompts can make images (tests; the prompt box says it to users).
    pub fn has_text_to_image_model(&self) -> bool {
        self.text_to_image.spec.is_some()
    }

    /// A dropped PNG made from a prompt: its prompt and settings come back. It is not added
    /// as a reference, since with references on the canvas Generate would work from them.
    pub(super) fn restore_prompt_result(&mut self, path: &Path, meta: &GenerationMeta) {
        self.settings.reuse(meta);
        self.notifications.info(format!(
            "Restored the prompt and settings {} was made with (seed {}, locked). It was not \
             added as a reference: with references on the canvas Generate works from them, \
             not from the prompt.",
            display_name(path),
            self.settings.sampler.seed
        ));
    }
}
