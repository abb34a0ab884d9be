//! The engine thread: the only place in the engine with a thread and channels.
//!
//! One thread owns the device and the loaded models (cached by spec and device) and runs jobs
//! (generations, multi-view sets, images from a prompt) one at a time, in order. One model
//! family is resident at a time: an image model, the text-to-image pipeline with its
//! per-prompt embedding cache, or a Zero123-family checkpoint (multi-view sets, in
//! `worker::multiview`); asking for another frees it first. Front ends talk to it
//! through [`EngineHandle`]: requests go over a bounded channel, events come back over
//! another. Progress events are dropped when the front end is slow (`try_send`); images, views
//! and terminal events never are. Cancellation is a shared set of job ids checked between
//! sampler steps, so a queued job can be cancelled too. A panic inside a job is caught and
//! reported as `Failed`; if the thread dies anyway, the handle
//! reports it (`EngineGone`) and the front end can spawn a new one.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::error::EngineError;
use crate::pipelines::prompt_model::PromptModel;
use crate::pipelines::text_to_image::TextToImagePipeline;
use crate::pipelines::{self, ModelCache, StepHook, StepReport};
use crate::protocol::{
    DeviceChoice, Event, GenerateRequest, GenerationMeta, JobId, META_VERSION, MixSettings, Mode,
    PromptModelChoice, Request, SamplerSettings, Solver, TextToImageJob,
};

mod multiview;

/// Capacity of the request channel (a queue of jobs).
const REQUEST_CAPACITY: usize = 256;
/// Capacity of the event channel; progress beyond this is dropped.
const EVENT_CAPACITY: usize = 64;

/// The engine thread is gone (it panicked outside a job or was shut down).
#[derive(Debug, thiserror::Error)]
#[error("the engine stopped unexpectedly; restart it")]
pub struct EngineGone;

type Waker = Arc<dyn Fn() + Send + Sync>;

/// Job ids the front end has cancelled and the engine has not yet acknowledged.
#[derive(Clone, Default)]
struct CancelSet(Arc<Mutex<HashSet<JobId>>>);

impl CancelSet {
    fn insert(&self, job: JobId) {
        if let Ok(mut set) = self.0.lock() {
            set.insert(job);
        }
    }

    /// Whether `job` was cancelled; leaves the mark in place.
    fn contains(&self, job: JobId) -> bool {
        self.0.lock().map(|set| set.contains(&job)).unwrap_or(false)
    }

    fn remove(&self, job: JobId) {
        if let Ok(mut set) = self.0.lock() {
            set.remove(&job);
        }
    }
}

/// Jobs a test asked to panic at a given step (see
/// [`EngineHandle::generate_panicking_for_test`]).
#[derive(Clone, Default)]
struct InjectedPanics(Arc<Mutex<std::collections::HashMap<JobId, usize>>>);

impl InjectedPanics {
    fn insert(&self, job: JobId, step: usize) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(job, step);
        }
    }

    /// Whether `job` should panic now, at `step`.
    fn due(&self, job: JobId, step: usize) -> bool {
        self.0
            .lock()
            .map(|map| map.get(&job) == Some(&step))
            .unwrap_or(false)
    }
}

/// The front end's side of the engine: send requests, receive events, cancel jobs.
///
/// Dropping it sends `Shutdown` and joins the thread (after the current step).
pub struct EngineHandle {
    requests: Sender<Request>,
    events: Receiver<Event>,
    cancelled: CancelSet,
    injected_panics: InjectedPanics,
    next_job: AtomicU64,
    thread: Option<JoinHandle<()>>,
}

impl EngineHandle {
    /// Starts the engine thread. `waker` is called after every event is queued (the app passes
    /// a closure that calls `ctx.request_repaint()`).
    pub fn spawn(waker: impl Fn() + Send + Sync + 'static) -> std::io::Result<Self> {
        Self::spawn_from(1, Arc::new(waker))
    }

    /// Starts an engine whose job ids begin at `first_job` (used when restarting a dead engine
    /// so that ids keep increasing).
    fn spawn_from(first_job: JobId, waker: Waker) -> std::io::Result<Self> {
        crate::device::tune_allocator();
        let (request_tx, request_rx) = crossbeam_channel::bounded(REQUEST_CAPACITY);
        let (event_tx, event_rx) = crossbeam_channel::bounded(EVENT_CAPACITY);
        let cancelled = CancelSet::default();
        let injected_panics = InjectedPanics::default();
        let worker = Worker {
            events: event_tx,
            waker,
            cancelled: cancelled.clone(),
            injected_panics: injected_panics.clone(),
            cache: ModelCache::default(),
            text_to_image: None,
            zero123: None,
        };
        let thread = std::thread::Builder::new()
            .name("lumos-engine".into())
            .spawn(move || worker.run(&request_rx))?;
        Ok(Self {
            requests: request_tx,
            events: event_rx,
            cancelled,
            injected_panics,
            next_job: AtomicU64::new(first_job),
            thread: Some(thread),
        })
    }

    /// Starts a fresh engine thread that continues this one's job ids (after a crash).
    pub fn respawn(&self, waker: impl Fn() + Send + Sync + 'static) -> std::io::Result<Self> {
        Self::spawn_from(self.next_job.load(Ordering::SeqCst), Arc::new(waker))
    }

    /// Queues the request `make` builds for a new job id; returns the id.
    fn queue(&self, make: impl FnOnce(JobId) -> Request) -> Result<JobId, EngineGone> {
        let job = self.next_job.fetch_add(1, Ordering::SeqCst);
        self.requests.send(make(job)).map_err(|_| EngineGone)?;
        Ok(job)
    }

    /// Queues a generation; returns its job id.
    pub fn generate(&self, request: GenerateRequest) -> Result<JobId, EngineGone> {
        self.queue(|job| Request::Generate {
            job,
            request: Box::new(request),
        })
    }

    /// Queues a multi-view set; returns its job id.
    pub fn multiview(&self, request: crate::protocol::MultiviewJob) -> Result<JobId, EngineGone> {
        self.queue(|job| Request::Multiview {
            job,
            request: Box::new(request),
        })
    }

    /// Queues images from a prompt; returns its job id.
    pub fn text_to_image(
        &self,
        request: crate::protocol::TextToImageJob,
    ) -> Result<JobId, EngineGone> {
        self.queue(|job| Request::TextToImage {
            job,
            request: Box::new(request),
        })
    }

    /// Queues loading a model (to warm the cache); returns its job id.
    pub fn load_model(
        &self,
        model: crate::protocol::ModelSpec,
        device: crate::protocol::DeviceChoice,
    ) -> Result<JobId, EngineGone> {
        self.queue(|job| Request::LoadModel {
            job,
            model: Box::new(model),
            device,
        })
    }

    /// Cancels a running or queued job. It still ends with exactly one terminal event.
    pub fn cancel(&self, job: JobId) {
        self.cancelled.insert(job);
    }

    /// The next event, if any, without blocking.
    pub fn try_recv(&self) -> Result<Option<Event>, EngineGone> {
        match self.events.try_recv() {
            Ok(event) => Ok(Some(event)),
            Err(crossbeam_channel::TryRecvError::Empty) => {
                if self.is_alive() {
                    Ok(None)
                } else {
                    Err(EngineGone)
                }
            }
            Err(crossbeam_channel::TryRecvError::Disconnected) => Err(EngineGone),
        }
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Result<Option<Event>, EngineGone> {
        match self.events.recv_timeout(timeout) {
            Ok(event) => Ok(Some(event)),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Ok(None),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(EngineGone),
        }
    }

    /// Makes the engine thread die as a bug would, so that a front end can test how it
    /// notices and recovers (see [`EngineHandle::respawn`]). Not for normal use.
    #[doc(hidden)]
    pub fn crash_for_test(&self) {
        let _ = self.requests.send(Request::CrashForTest);
    }

    /// Queues a generation that panics at sampler step `step`, as a bug in the middle of a
    /// pipeline would, so that a test can check that it ends as `Failed` and that the engine
    /// serves the next job. Not for normal use.
    #[doc(hidden)]
    pub fn generate_panicking_for_test(
        &self,
        request: GenerateRequest,
        step: usize,
    ) -> Result<JobId, EngineGone> {
        self.queue(|job| {
            self.injected_panics.insert(job, step);
            Request::Generate {
                job,
                request: Box::new(request),
            }
        })
    }

    /// Whether the engine thread is still running.
    pub fn is_alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        // A full queue must not block the UI on exit: cancel everything, then ask to stop.
        let last = self.next_job.load(Ordering::SeqCst);
        for job in 1..last {
            self.cancelled.insert(job);
        }
        let _ = self.requests.try_send(Request::Shutdown);
        drop(std::mem::replace(
            &mut self.events,
            crossbeam_channel::never(),
        ));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Lowers the engine thread's scheduling priority (Linux: `nice` is per thread, and the
/// compute threads candle starts from this thread inherit it), so that on a machine with few
/// cores the UI thread still gets the CPU when it needs it and stays responsive while a
/// generation runs. Without contention the engine runs at full speed.
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions; setpriority on our own thread id with a nice
        // value in range only changes this thread's scheduling.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 10);
        }
    }
}

/// What identifies a loaded text-to-image model: its files, precision and device.
type TextToImageKey = (
    Vec<std::path::PathBuf>,
    crate::protocol::Precision,
    DeviceChoice,
);

/// What identifies a loaded Zero123-family checkpoint: its path, precision and device.
type Zero123Key = (std::path::PathBuf, crate::protocol::Precision, DeviceChoice);

/// A loaded model that makes images from prompts.
enum PromptPipeline {
    /// The published Lumos T2I model.
    Published(Box<TextToImagePipeline>),
    /// The built-in prompt model (or another in its format).
    BuiltIn(Box<PromptModel>),
}

/// The engine thread's state.
struct Worker {
    events: Sender<Event>,
    waker: Waker,
    cancelled: CancelSet,
    injected_panics: InjectedPanics,
    cache: ModelCache,
    /// The text-to-image model, kept between prompts (with its per-prompt embedding cache).
    /// Only one model family is resident: loading one drops the other.
    text_to_image: Option<(TextToImageKey, PromptPipeline)>,
    /// The Zero123-family checkpoint of the last multi-view set made with one, kept between
    /// sets; freed like the text-to-image model when another family is needed.
    zero123: Option<(Zero123Key, crate::checkpoints::zero123::LoadedZero123)>,
}

impl Worker {
    fn run(mut self, requests: &Receiver<Request>) {
        lower_thread_priority();
        while let Ok(request) = requests.recv() {
            match request {
                Request::Shutdown => break,
                Request::CrashForTest => panic!("engine crash requested by a test"),
                Request::LoadModel { job, model, device } => {
                    let outcome = self.guarded(job, |worker| {
                        worker.text_to_image = None;
                        worker.zero123 = None;
                        worker.cache.get(&model, device)?;
                        worker.send(Event::ModelReady {
                            job,
                            name: model.name.clone(),
                            device,
                        });
                        Ok(())
                    });
                    self.finish(job, outcome);
                }
                Request::Generate { job, request } => {
                    let outcome = self.guarded(job, |worker| worker.generate(job, &request));
                    self.finish(job, outcome);
                }
                Request::Multiview { job, request } => {
                    let outcome = self.guarded(job, |worker| worker.multiview(job, &request));
                    self.finish(job, outcome);
                }
                Request::TextToImage { job, request } => {
                    let outcome = self.guarded(job, |worker| worker.text_to_image(job, &request));
                    self.finish(job, outcome);
                }
            }
        }
    }

    /// Runs `f` on the compute threads ([`crate::device::on_compute_threads`]) unless the job
    /// was cancelled while queued; turns panics into errors.
    fn guarded(
        &mut self,
        job: JobId,
        f: impl FnOnce(&mut Self) -> crate::error::Result<()> + Send,
    ) -> crate::error::Result<()> {
        if self.cancelled.contains(job) {
            return Err(EngineError::Cancelled);
        }
        let run = || crate::device::on_compute_threads(|| f(self));
        match std::panic::catch_unwind(AssertUnwindSafe(run)) {
            Ok(outcome) => outcome,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(EngineError::InvalidRequest(format!(
                    "internal error: {what} (please report this)"
                )))
            }
        }
    }

    fn generate(&mut self, job: JobId, request: &GenerateRequest) -> crate::error::Result<()> {
        pipelines::validate(request)?;
        let images = pipelines::image_count(&request.mode);
        self.send(Event::Started {
            job,
            images,
            steps: request.settings.steps,
        });
        self.text_to_image = None;
        self.zero123 = None;
        let model = self.cache.get(&request.model, request.device)?;
        let mut hook = self.step_hook(job);
        pipelines::run(&model, request, &mut hook as &mut StepHook<'_>)
    }

    fn text_to_image(
        &mut self,
        job: JobId,
        job_request: &TextToImageJob,
    ) -> crate::error::Result<()> {
        let request = &job_request.request;
        if request.prompt.trim().is_empty() {
            return Err(EngineError::InvalidRequest(
                "the prompt is empty: say what the image should show".into(),
            ));
        }
        self.send(Event::Started {
            job,
            images: request.count,
            steps: request.steps,
        });
        let key: TextToImageKey = match &job_request.model {
            PromptModelChoice::Published(spec) => (
                vec![
                    spec.prior.clone(),
                    spec.text_encoder.clone(),
                    spec.tokenizer.clone(),
                    spec.vae.clone(),
                ],
                spec.precision,
                job_request.device,
            ),
            PromptModelChoice::BuiltIn(files) => (
                vec![files.weights.clone(), files.base.prior.path.clone()],
                files.base.precision,
                job_request.device,
            ),
        };
        if self.text_to_image.as_ref().map(|(k, _)| k) != Some(&key) {
            // Free whatever is resident before loading (one model family at a time).
            self.text_to_image = None;
            self.zero123 = None;
            self.cache = ModelCache::default();
            let device = crate::device::open(job_request.device)?;
            let pipeline = match &job_request.model {
                PromptModelChoice::Published(spec) => {
                    PromptPipeline::Published(Box::new(TextToImagePipeline::load(spec, &device)?))
                }
                PromptModelChoice::BuiltIn(files) => {
                    PromptPipeline::BuiltIn(Box::new(PromptModel::load(files, &device)?))
                }
            };
            self.text_to_image = Some((key, pipeline));
        }
        let mut hook = self.step_hook(job);
        let hook = &mut hook as &mut StepHook<'_>;
        let (images, warnings, solver) = match self.text_to_image.as_mut() {
            Some((_, PromptPipeline::Published(pipeline))) => {
                let result = pipeline.generate(request, hook)?;
                // The T2I demo's sampler (`TextToImagePipeline::denoise`).
                let solver = Solver::DpmSolverPp { order: 2 };
                (result.images, result.warnings, solver)
            }
            Some((_, PromptPipeline::BuiltIn(model))) => {
                let result = model.generate(request, hook)?;
                let solver = model.sampler_settings(request).solver;
                (result.images, result.warnings, solver)
            }
            None => {
                return Err(EngineError::InvalidRequest(
                    "the text-to-image model is not loaded".into(),
                ));
            }
        };
        for message in warnings {
            self.send(Event::Notice { job, message });
        }
        for (index, image) in images.into_iter().enumerate() {
            let meta = GenerationMeta {
                version: META_VERSION,
                model: job_request.model.name().to_owned(),
                mode: Mode::Variations {
                    count: request.count,
                },
                settings: SamplerSettings {
                    steps: request.steps,
                    guidance: request.guidance,
                    solver,
                    seed: request.seed.wrapping_add(index as u64),
                },
                index,
                mix: None,
                references: Vec::new(),
                size: [image.width(), image.height()],
                parent: None,
                mix_settings: MixSettings::default(),
                strength: None,
                init_sha256: None,
                mask_sha256: None,
                prompt: Some(request.prompt.clone()),
            };
            self.send(Event::Image {
                job,
                index,
                image: Arc::new(image),
                meta: Box::new(meta),
            });
        }
        Ok(())
    }

    /// The hook a pipeline calls between steps: cancellation, progress (dropped when the
    /// front end is behind), injected test panics, and results (never dropped).
    fn step_hook(&self, job: JobId) -> impl FnMut(StepReport) -> crate::error::Result<()> + use<> {
        let events = self.events.clone();
        let waker = self.waker.clone();
        let cancelled = self.cancelled.clone();
        let injected_panics = self.injected_panics.clone();
        move |report: StepReport| -> crate::error::Result<()> {
            if cancelled.contains(job) {
                return Err(EngineError::Cancelled);
            }
            let event = match report {
                StepReport::Step {
                    step,
                    steps,
                    preview,
                } => {
                    if injected_panics.due(job, step) {
                        panic!("panic injected by a test at step {step}");
                    }
                    // Progress may be dropped when the front end is behind.
                    let event = Event::Progress {
                        job,
                        step,
                        steps,
                        preview,
                    };
                    match events.try_send(event) {
                        Ok(()) | Err(TrySendError::Full(_)) => {}
                        Err(TrySendError::Disconnected(_)) => return Err(EngineError::Cancelled),
                    }
                    waker();
                    return Ok(());
                }
                StepReport::Image { index, image, meta } => Event::Image {
                    job,
                    index,
                    image,
                    meta,
                },
            };
            // Results are never dropped.
            events.send(event).map_err(|_| EngineError::Cancelled)?;
            waker();
            Ok(())
        }
    }

    fn finish(&mut self, job: JobId, outcome: crate::error::Result<()>) {
        let event = match outcome {
            Ok(()) => Event::Finished { job },
            Err(EngineError::Cancelled) => Event::Cancelled { job },
            Err(error) => Event::Failed {
                job,
                error: format!("{error:#}"),
            },
        };
        self.cancelled.remove(job);
        self.send(event);
    }

    /// Sends an event that must not be dropped, then wakes the front end.
    fn send(&self, event: Event) {
        // If the front end is gone there is nobody to tell; the loop ends on the next recv.
        let _ = self.events.send(event);
        (self.waker)();
    }
}
