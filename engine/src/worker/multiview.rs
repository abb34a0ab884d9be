//! The worker's multi-view jobs: a Lumos novel-view model (through the shared model cache) or
//! a Zero123-family checkpoint (kept loaded between sets, as the text-to-image model is
//! between prompts). Both report the same events in the same order — `Started`, the
//! `InputView` once the reference is prepared, a `Progress` per sampler step, a `View` per view
//! as it is done, then the terminal event — so that a front end shows either the same way, and
//! keeps what was made when a set is cancelled or fails part-way. A Zero123 job also sends
//! its checkpoint's licence as a `Notice` (Stable Zero123 forbids commercial use: the user
//! must be told before using the views).

use std::path::PathBuf;

use super::{Worker, Zero123Key};
use crate::checkpoints::zero123;
use crate::error::{EngineError, Result};
use crate::pipelines::multiview::SetOutput;
use crate::pipelines::zero123::{self as zero123_pipeline, Zero123Request};
use crate::pipelines::{self, ModelCache, StepHook};
use crate::protocol::{DeviceChoice, Event, JobId, MultiviewJob, MultiviewModel, Zero123Spec};
use crate::sampling::ldm_ddim::{LdmDdimSchedule, sd1_alphas_cumprod};

/// Timesteps of the schedule every published Zero123 checkpoint was trained with (the ldm
/// yaml's `timesteps: 1000`); the number of sampler updates is known from it before loading.
const ZERO123_TRAINING_STEPS: usize = 1000;

impl Worker {
    pub(super) fn multiview(&mut self, job: JobId, request: &MultiviewJob) -> Result<()> {
        let settings = &request.request.settings;
        if settings.steps == 0 || settings.steps > pipelines::MAX_STEPS {
            return Err(EngineError::InvalidRequest(
                "steps must be between 1 and 1000".into(),
            ));
        }
        if !settings.guidance.is_finite() || settings.guidance < 0.0 {
            return Err(EngineError::InvalidRequest(
                "guidance must be a finite number ≥ 0".into(),
            ));
        }
        match &request.model {
            MultiviewModel::NovelView(spec) => {
                self.send(Event::Started {
                    job,
                    images: request.request.views.len(),
                    steps: settings.steps,
                });
                self.text_to_image = None;
                self.zero123 = None;
                let model = self.cache.get(spec, request.request.device)?;
                let mut hook = self.step_hook(job);
                let mut on_output = self.output_sender(job);
                pipelines::multiview::run(
                    &model,
                    &request.request,
                    &mut hook as &mut StepHook<'_>,
                    &mut on_output,
                )
            }
            MultiviewModel::Zero123(spec) => self.zero123_multiview(job, spec, request),
        }
    }

    /// A set from a Zero123-family checkpoint, sampled as its demo samples (DDIM with the
    /// demo's η) with the job's steps, guidance and seeds.
    fn zero123_multiview(
        &mut self,
        job: JobId,
        spec: &Zero123Spec,
        job_request: &MultiviewJob,
    ) -> Result<()> {
        let multiview = &job_request.request;
        let request = Zero123Request {
            image: multiview.image.clone(),
            alpha: multiview.alpha.clone(),
            input_pose: multiview.input_pose,
            views: multiview.views.clone(),
            steps: multiview.settings.steps,
            guidance: multiview.settings.guidance,
            eta: zero123_pipeline::DEMO_ETA,
            seed: multiview.settings.seed,
            shared_seed: multiview.shared_seed,
            recenter: multiview.recenter,
            device: multiview.device,
        };
        // Refused here, before a large checkpoint is read, when the steps do not fit the
        // schedule (3 of 1000, for one: the original sampler fails there too).
        let schedule = LdmDdimSchedule::new(
            &sd1_alphas_cumprod(0.00085, 0.012, ZERO123_TRAINING_STEPS),
            request.steps,
            request.eta,
        )?;
        if schedule.updates(true).is_empty() {
            return Err(EngineError::InvalidRequest(
                "steps must be at least 2 with a Zero123 checkpoint (its sampler drops the \
                 first DDIM timestep)"
                    .into(),
            ));
        }
        self.send(Event::Started {
            job,
            images: request.views.len(),
            steps: schedule.updates(true).len(),
        });
        self.load_zero123(spec, multiview.device)?;
        let Some((_, loaded)) = self.zero123.as_ref() else {
            return Err(EngineError::InvalidRequest(
                "the Zero123 checkpoint is not loaded".into(),
            ));
        };
        self.send(Event::Notice {
            job,
            message: loaded.licence.notice().to_owned(),
        });
        let mut hook = self.step_hook(job);
        let mut on_output = self.output_sender(job);
        zero123_pipeline::run(
            loaded,
            &request,
            &mut hook as &mut StepHook<'_>,
            &mut on_output,
        )
    }

    /// Makes `spec` the resident model, freeing any other family first; a checkpoint that is
    /// no longer where it was chosen gets an error that says so.
    fn load_zero123(&mut self, spec: &Zero123Spec, device: DeviceChoice) -> Result<()> {
        if !spec.path.exists() {
            // Even when an earlier set loaded it: the user moved or deleted it, and should
            // know before relying on a choice that will not survive a restart.
            self.zero123 = None;
            return Err(EngineError::InvalidRequest(format!(
                "the Zero123 checkpoint {} is gone (moved or deleted): put it back, or search \
                 its new folder under Models and choose it again; it was at {}",
                spec.name,
                spec.path.display()
            )));
        }
        let precision = match device {
            // The CPU computes in f32 (half precision there is emulated and slow).
            DeviceChoice::Cpu => crate::protocol::Precision::F32,
            DeviceChoice::Cuda(_) | DeviceChoice::Metal(_) => spec.precision,
        };
        let key: Zero123Key = (PathBuf::from(&spec.path), precision, device);
        if self.zero123.as_ref().map(|(k, _)| k) == Some(&key) {
            return Ok(());
        }
        // One model family at a time: free whatever is resident before loading.
        self.zero123 = None;
        self.text_to_image = None;
        self.cache = ModelCache::default();
        let device = crate::device::open(device)?;
        let loaded = zero123::load(&spec.path, None, crate::device::dtype(precision), &device)?;
        self.zero123 = Some((key, loaded));
        Ok(())
    }

    /// Sends the prepared input and each finished view (never dropped) and wakes the front end.
    fn output_sender(&self, job: JobId) -> impl FnMut(SetOutput) -> Result<()> + use<> {
        let events = self.events.clone();
        let waker = self.waker.clone();
        move |output: SetOutput| -> Result<()> {
            let event = match output {
                SetOutput::Input(input) => Event::InputView {
                    job,
                    input: Box::new(input),
                },
                SetOutput::View(view) => Event::View {
                    job,
                    view: Box::new(view),
                },
            };
            events.send(event).map_err(|_| EngineError::Cancelled)?;
            waker();
            Ok(())
        }
    }
}
