//! [`LumosApp`]: drains engine events in `logic`, lays out panels in `ui`, applies the
//! panels' commands after the frame.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

use lumos_engine::checkpoints::{self, Discovery};
use lumos_engine::protocol::{
    DeviceChoice, Event, GenerateRequest, GenerationMeta, InitImage, JobId, ModelSpec,
};

use crate::bench::{FrameBench, FramePhase};
use crate::commands::{AppCommand, ConflictChoice, ExportSelection};
use crate::engine_link::{EngineLink, Polled};
use crate::export::{self, ExportPlan, ExportReport};
use crate::gallery::{Gallery, Run, RunId, RunImage, RunStatus};
use crate::jobs::{JobQueue, JobState};
use crate::panels::canvas::CanvasPanel;
use crate::panels::controls::{ControlsContext, controls_ui};
use crate::panels::gallery::gallery_ui;
use crate::panels::models::{ModelsPanel, ModelsView};
use crate::panels::notifications::Notifications;
use crate::panels::queue::{progress_ui, queue_ui};
use crate::panels::start_image::{StartImage, StartImagePanel};
use crate::panels::viewer::Viewer;
use crate::preview::{LivePreview, PreviewRenderer};
use crate::project::{Recovery, SessionStart};
use crate::references::{Canvas, Reference, decode_reference, display_name, load_reference};
use crate::settings::{STORAGE_KEY, Settings, random_seed};
use crate::undo::{CanvasState, UndoHistory};
use crate::zero123_models::{ChosenModel, Zero123Models};

mod model_choice;
mod multiview_mode;
mod prompt_mode;

/// At most this many engine events are handled per frame, so a burst cannot stall the UI.
const MAX_EVENTS_PER_FRAME: usize = 256;

/// Automatic run for `--bench-frames`: add a reference, press Generate, measure, quit.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// When the process started.
    pub launched_at: Instant,
    /// The reference to generate from.
    pub reference: PathBuf,
    /// Close the window when the run ends.
    pub exit_when_done: bool,
}

/// How the app is set up: models, where history goes, settings to start from.
pub struct AppConfig {
    /// Usable models; the first is the default.
    pub models: Vec<ModelSpec>,
    /// What discovery found for the full model.
    pub discovery: Discovery,
    /// Devices this build can use.
    pub devices: Vec<DeviceChoice>,
    /// Settings to start from; `None` reads `settings_file` (or eframe's storage).
    pub settings: Option<Settings>,
    /// Where settings are kept (replaced atomically; a damaged one is set aside); `None` keeps
    /// them in eframe's storage.
    pub settings_file: Option<PathBuf>,
    /// Frame-time bench.
    pub bench: Option<BenchConfig>,
    /// Where results are written as they arrive (and loaded from at start-up).
    pub history_dir: Option<PathBuf>,
    /// Where the work is autosaved and crashes are noticed; `None` turns both off.
    pub recovery_dir: Option<PathBuf>,
    /// The text-to-image model for prompts, or what is missing and where to put it.
    pub text_to_image: crate::prompt::TextToImageModel,
    /// Zero123-family checkpoints found where weights are looked for (multi-view models).
    pub zero123: Vec<PathBuf>,
}

impl AppConfig {
    /// The configuration of the real app: the full model if discovery finds it, the built-in
    /// default prior and the built-in multi-view model, then the tiny test model if the
    /// fixtures are present (a development checkout).
    pub fn discover() -> Self {
        let discovery = checkpoints::discover(None);
        let mut models: Vec<ModelSpec> = discovery.spec().into_iter().collect();
        match lumos_engine::embedded::default_spec() {
            Ok(spec) => models.push(spec),
            Err(error) => log::warn!("the built-in model is unusable: {error}"),
        }
        match lumos_engine::embedded::multiview_spec() {
            Ok(spec) => models.push(spec),
            Err(error) => log::warn!("the built-in multi-view model is unusable: {error}"),
        }
        if let Ok(spec) = checkpoints::pipeline_fixture_spec(&checkpoints::fixtures_root()) {
            models.push(spec);
        }
        let (_, roots) = checkpoints::zero123::discover(None);
        let zero123 = roots
            .iter()
            .flat_map(|root| checkpoints::zero123::find_in(root))
            .collect();
        Self {
            models,
            discovery,
            devices: lumos_engine::device::available(),
            settings: None,
            settings_file: crate::settings::default_file(),
            bench: None,
            history_dir: crate::history::default_dir(),
            recovery_dir: Recovery::default_dir(),
            text_to_image: crate::prompt::TextToImageModel::discover(),
            zero123,
        }
    }

    /// A configuration with exactly one model and default settings (tests).
    pub fn with_model(model: ModelSpec) -> Self {
        Self {
            models: vec![model],
            discovery: Discovery::default(),
            devices: vec![DeviceChoice::Cpu],
            settings: Some(Settings::default()),
            settings_file: None,
            bench: None,
            history_dir: None,
            recovery_dir: None,
            // Where a prompt model would be looked for, but none is used.
            text_to_image: crate::prompt::TextToImageModel {
                spec: None,
                ..crate::prompt::TextToImageModel::discover()
            },
            zero123: Vec::new(),
        }
    }
}

/// What a native dialog thread or the reference loader sends back.
enum DialogResult {
    References(Vec<PathBuf>),
    ExportFolder(PathBuf),
    ModelsFolder(PathBuf),
    OpenProject(PathBuf),
    SaveProjectAs(PathBuf),
    /// Runs from the history folder, oldest first, and what was damaged.
    History(crate::history::Loaded),
    /// A reference file was read (or not).
    Loaded {
        path: PathBuf,
        outcome: anyhow::Result<Box<(Reference, Option<GenerationMeta>)>>,
    },
    /// An export was written (or not) into `dir`.
    Exported {
        dir: PathBuf,
        outcome: anyhow::Result<ExportReport>,
    },
    /// A multi-view set was written (or not) into `dir`: kept in the history folder when
    /// `kept_run` names its run, else exported.
    SetWritten {
        dir: PathBuf,
        kept_run: Option<u64>,
        outcome: anyhow::Result<Vec<PathBuf>>,
    },
}

/// Reads and decodes one reference file, and the settings it carries if it is our PNG.
fn read_reference(path: &Path) -> anyhow::Result<(Reference, Option<GenerationMeta>)> {
    let mut reference = load_reference(path)?;
    let is_png = std::fs::File::open(path)
        .and_then(|mut f| {
            let mut signature = [0u8; 8];
            std::io::Read::read_exact(&mut f, &mut signature).map(|()| signature)
        })
        .is_ok_and(|s| s == *b"\x89PNG\r\n\x1a\n");
    let meta = match lumos_engine::imageio::read_png_meta(path) {
        Ok(meta) => meta,
        Err(error) => {
            // The pixels decoded, so only its settings chunk is damaged: say so rather than
            // silently not restoring them.
            if is_png {
                let notice = format!(
                    "{} is added as a reference, but the settings stored in it could not be \
                     read ({error}), so they were not restored.",
                    display_name(path)
                );
                reference.notice = Some(match reference.notice.take() {
                    Some(earlier) => format!("{earlier} {notice}"),
                    None => notice,
                });
            }
            None
        }
    };
    Ok((reference, meta))
}

/// Starts the thread that decodes reference files in order, off the UI thread (a large photo
/// takes a noticeable time to decode).
fn spawn_loader(results: Sender<DialogResult>, ctx: egui::Context) -> Option<Sender<PathBuf>> {
    let (tx, rx) = std::sync::mpsc::channel::<PathBuf>();
    let spawned = std::thread::Builder::new()
        .name("reference-loader".into())
        .spawn(move || {
            for path in rx {
                let outcome = read_reference(&path).map(Box::new);
                if results
                    .send(DialogResult::Loaded { path, outcome })
                    .is_err()
                {
                    return;
                }
                ctx.request_repaint();
            }
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(error) => {
            log::warn!("no reference loader thread ({error}); loading on the UI thread");
            None
        }
    }
}

/// A question the app waits on the user for (a modal).
enum Question {
    /// Replace this existing file with the project?
    ReplaceFile(PathBuf),
    /// Discard unsaved changes and then run this command (with `discard: true`)?
    DiscardChanges(AppCommand),
    /// Restore the work autosaved before the last session ended badly?
    RestoreAutosave(PathBuf),
    /// Replace these files of an earlier multi-view set in the export folder?
    ReplaceSetFiles(Vec<PathBuf>),
}

/// What the project is, for "unsaved changes": the references, the start image and its mask,
/// and the settings.
#[derive(Clone, PartialEq)]
struct ProjectState {
    canvas: CanvasState,
    start: Option<(u64, u64)>,
    settings: String,
}

/// An export waiting for the user's answer about existing files.
struct PendingExport {
    plan: ExportPlan,
    dir: PathBuf,
}

/// The Lumos Studio app.
pub struct LumosApp {
    settings: Settings,
    models: Vec<ModelSpec>,
    model_names: Vec<String>,
    discovery: Discovery,
    devices: Vec<DeviceChoice>,
    engine: EngineLink,
    engine_failed: bool,
    canvas: Canvas,
    canvas_panel: CanvasPanel,
    start_image: Option<StartImage>,
    start_panel: StartImagePanel,
    models_panel: ModelsPanel,
    jobs: JobQueue,
    gallery: Gallery,
    live: LivePreview,
    live_job: Option<JobId>,
    notifications: Notifications,
    viewer: Option<Viewer>,
    pending_export: Option<PendingExport>,
    /// Exports being written on their threads, and those threads (joined on quit).
    exports_running: usize,
    export_threads: Vec<std::thread::JoinHandle<()>>,
    last_export: Option<ExportReport>,
    export_dir_text: String,
    dialogs_tx: Sender<DialogResult>,
    dialogs_rx: Receiver<DialogResult>,
    loader: Option<Sender<PathBuf>>,
    pending_loads: usize,
    commands: Vec<AppCommand>,
    ctx: egui::Context,
    bench: Option<(BenchConfig, FrameBench, BenchPhase)>,
    history_dir: Option<PathBuf>,
    undo: UndoHistory,
    /// The project file the canvas was opened from or last saved to.
    project_path: Option<PathBuf>,
    /// History folders of the project's results.
    project_runs: Vec<PathBuf>,
    /// The project as last saved or opened: anything else is unsaved.
    saved_state: ProjectState,
    /// Crash recovery; `None` when off (tests) or owned by another running instance.
    recovery: Option<Recovery>,
    last_autosave: Instant,
    autosaved_state: Option<ProjectState>,
    autosave_running: Arc<AtomicBool>,
    question: Option<Question>,
    window_title: String,
    /// Where settings are saved; `None`: eframe's storage.
    settings_file: Option<PathBuf>,
    /// The multi-view mode's set, turntable and last export.
    multiview: crate::multiview::MultiviewMode,
    /// The text-to-image model for prompts, or what is missing.
    text_to_image: crate::prompt::TextToImageModel,
    /// Zero123-family checkpoints: multi-view models listed after the Lumos ones.
    zero123: Zero123Models,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BenchPhase {
    Start,
    Loading,
    Idle,
    Running,
    Done,
}

/// Idle frames the bench measures before it presses Generate.
const BENCH_IDLE_FRAMES: usize = 120;

impl LumosApp {
    /// Builds the app and starts the engine thread.
    pub fn new(cc: &eframe::CreationContext<'_>, config: AppConfig) -> anyhow::Result<Self> {
        let ctx = cc.egui_ctx.clone();
        let mut notifications = Notifications::default();
        let from_storage = |notifications: &mut Notifications| match cc
            .storage
            .and_then(|s| s.get_string(STORAGE_KEY))
        {
            Some(text) => Settings::from_json(&text).unwrap_or_else(|error| {
                notifications.error(format!(
                    "Saved settings could not be read ({error}); using defaults."
                ));
                Settings::default()
            }),
            None => Settings::default(),
        };
        let settings = match (config.settings, &config.settings_file) {
            (Some(settings), _) => settings,
            (None, Some(file)) => {
                let loaded = crate::settings::load_file(file);
                if let Some(notice) = loaded.notice {
                    notifications.error(notice);
                }
                if loaded.found {
                    loaded.settings
                } else {
                    // Settings of an older version, kept in eframe's storage.
                    from_storage(&mut notifications)
                }
            }
            (None, None) => from_storage(&mut notifications),
        };
        let mut settings = settings;
        if !config.devices.contains(&settings.device) {
            // Saved on a machine (or build) with a GPU this one lacks.
            settings.device = DeviceChoice::Cpu;
        }
        let renderer = match &cc.wgpu_render_state {
            Some(render_state) => {
                crate::preview::install_wgpu(render_state);
                PreviewRenderer::Wgpu
            }
            None => PreviewRenderer::Cpu,
        };
        let waker_ctx = ctx.clone();
        let engine = EngineLink::spawn(move || waker_ctx.request_repaint())
            .map_err(|e| anyhow::anyhow!("could not start the engine thread: {e}"))?;
        let (dialogs_tx, dialogs_rx) = std::sync::mpsc::channel();
        let loader = spawn_loader(dialogs_tx.clone(), ctx.clone());
        let export_dir_text = settings
            .export_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let mut zero123 = Zero123Models::default();
        for path in &config.zero123 {
            zero123.add(path);
        }
        if let Some(dir) = config.history_dir.clone() {
            // Off the UI thread: the first frame must not wait for the history.
            let tx = dialogs_tx.clone();
            let waker = ctx.clone();
            let spawned = std::thread::Builder::new()
                .name("history-loader".into())
                .spawn(move || {
                    let loaded = crate::history::load_reporting(&dir);
                    if tx.send(DialogResult::History(loaded)).is_ok() {
                        waker.request_repaint();
                    }
                });
            if let Err(error) = spawned {
                notifications.error(format!("The history could not be loaded: {error}"));
            }
        }
        let mut question = None;
        let recovery = config.recovery_dir.map(Recovery::new).and_then(|recovery| {
            match recovery.start_session() {
                Ok(SessionStart::Clean) => Some(recovery),
                Ok(SessionStart::Crashed { autosave }) => {
                    question = Some(Question::RestoreAutosave(autosave));
                    Some(recovery)
                }
                Ok(SessionStart::OtherInstance) => {
                    log::info!("another Lumos Studio is running: this one does not autosave");
                    None
                }
                Err(error) => {
                    notifications.error(format!(
                        "Autosave is off: the recovery folder could not be written ({error})."
                    ));
                    None
                }
            }
        });
        let saved_state = ProjectState {
            canvas: CanvasState::default(),
            start: None,
            settings: settings.to_json(),
        };
        let mut app = Self {
            settings,
            models: config.models,
            model_names: Vec::new(),
            discovery: config.discovery,
            devices: config.devices,
            engine,
            engine_failed: false,
            canvas: Canvas::default(),
            canvas_panel: CanvasPanel::default(),
            start_image: None,
            start_panel: StartImagePanel::default(),
            models_panel: ModelsPanel::default(),
            jobs: JobQueue::default(),
            gallery: Gallery::default(),
            live: LivePreview::new(renderer),
            live_job: None,
            notifications,
            viewer: None,
            pending_export: None,
            exports_running: 0,
            export_threads: Vec::new(),
            last_export: None,
            export_dir_text,
            dialogs_tx,
            dialogs_rx,
            loader,
            pending_loads: 0,
            commands: Vec::new(),
            ctx,
            bench: config
                .bench
                .map(|b| (b.clone(), FrameBench::new(b.launched_at), BenchPhase::Start)),
            history_dir: config.history_dir,
            undo: UndoHistory::default(),
            project_path: None,
            project_runs: Vec::new(),
            saved_state,
            recovery,
            last_autosave: Instant::now(),
            autosaved_state: None,
            autosave_running: Arc::new(AtomicBool::new(false)),
            question,
            window_title: String::new(),
            settings_file: config.settings_file,
            multiview: crate::multiview::MultiviewMode::default(),
            text_to_image: config.text_to_image,
            zero123,
        };
        app.restore_chosen_checkpoint();
        Ok(app)
    }

    // ---- accessors (used by tests and the bench) ----

    /// The persisted settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The persisted settings, mutably.
    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    /// The references.
    pub fn canvas(&self) -> &Canvas {
        &self.canvas
    }

    /// The references on the canvas, to change.
    pub fn canvas_mut(&mut self) -> &mut Canvas {
        &mut self.canvas
    }

    /// The starting image (img2img), if any.
    pub fn start_image(&self) -> Option<&StartImage> {
        self.start_image.as_ref()
    }

    /// The starting image, to edit its mask.
    pub fn start_image_mut(&mut self) -> Option<&mut StartImage> {
        self.start_image.as_mut()
    }

    /// The results.
    pub fn gallery(&self) -> &Gallery {
        &self.gallery
    }

    /// The tracked jobs.
    pub fn jobs(&self) -> &JobQueue {
        &self.jobs
    }

    /// Errors and notices.
    pub fn notifications(&self) -> &Notifications {
        &self.notifications
    }

    /// The engine link.
    pub fn engine_mut(&mut self) -> &mut EngineLink {
        &mut self.engine
    }

    /// Which path draws previews.
    pub fn preview_renderer(&self) -> PreviewRenderer {
        self.live.renderer()
    }

    /// The live preview (latent, map and where it was drawn).
    pub fn live_preview(&self) -> &LivePreview {
        &self.live
    }

    /// The result viewer, when open.
    pub fn viewer(&self) -> Option<&Viewer> {
        self.viewer.as_ref()
    }

    /// Whether a live preview latent is being shown.
    pub fn has_live_preview(&self) -> bool {
        self.live.has_latent()
    }

    /// What the last export wrote.
    pub fn last_export(&self) -> Option<&ExportReport> {
        self.last_export.as_ref()
    }

    /// Whether an export waits for the user's answer about existing files.
    pub fn export_waits_for_answer(&self) -> bool {
        self.pending_export.is_some()
    }

    /// Reference files being read in the background.
    pub fn pending_loads(&self) -> usize {
        self.pending_loads
    }

    /// The project file the canvas was opened from or last saved to.
    pub fn project_path(&self) -> Option<&Path> {
        self.project_path.as_deref()
    }

    /// Whether the project has changes that are not saved in its file.
    pub fn has_unsaved_changes(&self) -> bool {
        self.project_state() != self.saved_state
    }

    /// Whether a question (replace a file, discard changes, restore work) waits for an answer.
    pub fn asks_question(&self) -> bool {
        self.question.is_some()
    }

    /// Writes the autosave now, on this thread (quitting; tests). Does nothing when recovery
    /// is off.
    pub fn autosave_now(&mut self) {
        let Some(recovery) = &self.recovery else {
            return;
        };
        let project = self.capture_project();
        match lumos_engine::project::save(&recovery.autosave_path(), &project) {
            Ok(()) => self.autosaved_state = Some(self.project_state()),
            Err(error) => log::error!("autosave failed: {error}"),
        }
    }

    /// What a clean quit does: unsaved work is autosaved and offered at the next start;
    /// otherwise the session is marked as ended and nothing is offered.
    pub fn quit(&mut self) {
        // Exports being written finish first: quitting must not lose them.
        for export in self.export_threads.drain(..) {
            let _ = export.join();
        }
        let Some(recovery) = &self.recovery else {
            return;
        };
        if self.bench.is_some() {
            // A bench run's canvas is the bench's, not the user's work.
            recovery.end_session();
            return;
        }
        if self.has_unsaved_changes() && !self.is_empty_project() {
            self.autosave_now();
        } else if let Some(recovery) = &self.recovery {
            // Everything is in a project file (or there is nothing): no autosave to offer.
            let _ = std::fs::remove_file(recovery.autosave_path());
            recovery.end_session();
        }
    }

    /// Queues a command as if a panel had returned it.
    pub fn push_command(&mut self, command: AppCommand) {
        self.commands.push(command);
    }

    // ---- engine events ----

    fn drain_engine(&mut self) {
        if self.engine_failed {
            return;
        }
        for _ in 0..MAX_EVENTS_PER_FRAME {
            match self.engine.poll() {
                Polled::Event(event) => self.on_event(event),
                Polled::Idle => return,
                Polled::Died => {
                    self.on_engine_died();
                    return;
                }
            }
        }
        // More events are waiting: come back next frame.
        self.ctx.request_repaint();
    }

    fn on_event(&mut self, event: Event) {
        let job = event.job();
        let Some(run_id) = self.jobs.get(job).map(|t| t.run) else {
            // Not (or no longer) tracked: ignore.
            return;
        };
        let now = Instant::now();
        match event {
            Event::Started { images, steps, .. } => self.jobs.started(job, images, steps, now),
            Event::Progress {
                step,
                steps,
                preview,
                ..
            } => {
                self.jobs.step(job, step, steps, now);
                if let Some(latent) = preview {
                    self.live.set_latent(latent);
                    self.live_job = Some(job);
                }
            }
            Event::Notice { message, .. } => {
                // A set's notices (its checkpoint's licence) stay with the set.
                match self.multiview.run_of(job) {
                    Some(run) => run.notices.push(message),
                    None => self.notifications.info(format!("Run {run_id}: {message}")),
                }
            }
            Event::ModelReady { name, device, .. } => {
                log::info!("model {name} ready on {device}");
            }
            Event::Image {
                index, image, meta, ..
            } => {
                self.jobs.image_done(job);
                if let Some(run) = self.gallery.run_mut(run_id) {
                    // Written as it arrives, so that a crash loses nothing already shown.
                    if let Some(dir) = &run.history_dir
                        && let Err(error) = crate::history::write_result(dir, index, &image, &meta)
                    {
                        run.history_dir = None;
                        self.notifications.error(format!(
                            "Run {run_id} is not saved to the history: {error:#}"
                        ));
                    }
                    run.images.push(RunImage {
                        index,
                        image,
                        meta: *meta,
                        texture: None,
                        selected: false,
                    });
                }
            }
            Event::View { view, .. } => {
                self.jobs.image_done(job);
                if let Some(run) = self.multiview.run_of(job) {
                    run.add_view(*view);
                }
            }
            Event::InputView { input, .. } => {
                if let Some(run) = self.multiview.run_of(job) {
                    run.set_input(*input);
                }
            }
            Event::Finished { .. } => self.end_job(job, run_id, RunStatus::Finished),
            Event::Cancelled { .. } => self.end_job(job, run_id, RunStatus::Cancelled),
            Event::Failed { error, .. } => {
                let what = if self.multiview.run_of(job).is_some() {
                    format!("The multi-view set (run {run_id})")
                } else {
                    format!("Run {run_id}")
                };
                self.notifications.error(format!("{what} failed: {error}"));
                self.end_job(job, run_id, RunStatus::Failed(error));
            }
        }
    }

    fn end_job(&mut self, job: JobId, run_id: RunId, status: RunStatus) {
        self.jobs.remove(job);
        self.multiview_job_ended(job, &status);
        if self.live_job == Some(job) {
            self.live.clear();
            self.live_job = None;
        }
        if let Some(run) = self.gallery.run_mut(run_id) {
            run.status = status;
            run.job = None;
        }
    }

    fn on_engine_died(&mut self) {
        for lost in self.jobs.clear() {
            self.multiview_job_ended(lost.job, &RunStatus::Failed("the engine stopped".into()));
            if let Some(run) = self.gallery.run_mut(lost.run) {
                run.status = RunStatus::Failed("the engine stopped".into());
                run.job = None;
            }
        }
        self.live.clear();
        self.live_job = None;
        match self.engine.restart() {
            Ok(()) => self.notifications.error(
                "The engine stopped unexpectedly and was restarted. Your references are still \
                 here: press Generate to try again.",
            ),
            Err(error) => {
                self.engine_failed = true;
                self.notifications.error(format!(
                    "The engine stopped and could not be restarted ({error}). Save your work \
                     and restart Lumos Studio."
                ));
            }
        }
    }

    fn drain_dialogs(&mut self) {
        while let Ok(result) = self.dialogs_rx.try_recv() {
            match result {
                DialogResult::References(paths) => {
                    self.commands
                        .extend(paths.into_iter().map(AppCommand::AddReferencePath));
                }
                DialogResult::ExportFolder(dir) => {
                    self.export_dir_text = dir.display().to_string();
                    self.settings.export_dir = Some(dir);
                }
                DialogResult::ModelsFolder(dir) => self.search_models(&dir),
                DialogResult::OpenProject(path) => self.commands.push(AppCommand::OpenProject {
                    path,
                    discard: false,
                }),
                // The native dialog has asked about replacing the file the user picked.
                DialogResult::SaveProjectAs(path) => {
                    let replace = crate::project::with_project_extension(&path) == path;
                    self.commands
                        .push(AppCommand::SaveProjectAs { path, replace });
                }
                DialogResult::History(loaded) => {
                    for notice in loaded.damaged {
                        self.notifications.error(notice);
                    }
                    self.gallery.insert_older(loaded.runs);
                }
                DialogResult::Loaded { path, outcome } => {
                    self.pending_loads = self.pending_loads.saturating_sub(1);
                    self.reference_loaded(&path, outcome.map(|loaded| *loaded));
                }
                DialogResult::Exported { dir, outcome } => {
                    self.write_ended();
                    self.export_written(&dir, outcome);
                }
                DialogResult::SetWritten {
                    dir,
                    kept_run,
                    outcome,
                } => {
                    self.write_ended();
                    self.multiview_set_written(&dir, kept_run, outcome);
                }
            }
        }
    }

    /// Runs a native dialog on its own thread (it may block for as long as the user looks).
    /// Headless, rfd returns nothing; the typed-path fields do the same job.
    fn spawn_dialog(&self, dialog: impl FnOnce() -> Option<DialogResult> + Send + 'static) {
        let tx = self.dialogs_tx.clone();
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("file-dialog".into())
            .spawn(move || {
                if let Some(result) = dialog() {
                    let _ = tx.send(result);
                    ctx.request_repaint();
                }
            });
        if let Err(error) = spawned {
            log::error!("could not open a file dialog: {error}");
        }
    }

    // ---- commands ----

    fn apply_commands(&mut self) {
        // Commands may queue more commands (a dialog result adds references).
        while !self.commands.is_empty() {
            for command in std::mem::take(&mut self.commands) {
                self.apply(command);
            }
        }
    }

    fn apply(&mut self, command: AppCommand) {
        match command {
            AppCommand::AddReferencePath(path) => self.add_reference_path(&path),
            AppCommand::AddReferenceBytes { name, bytes } => {
                match decode_reference(&name, &bytes) {
                    Ok(reference) => self.canvas.push(reference),
                    Err(error) => self.notifications.error(format!("{error:#}")),
                }
            }
            AppCommand::AddReferencePixels {
                name,
                width_px,
                height_px,
                rgba,
            } => match crate::references::from_rgba(name, width_px, height_px, rgba) {
                Ok(reference) => self.canvas.push(reference),
                Err(problem) => self
                    .notifications
                    .error(format!("The pasted image could not be used: {problem}")),
            },
            AppCommand::OpenReferenceDialog => self.spawn_dialog(|| {
                rfd::FileDialog::new()
                    .set_title("Add reference images")
                    .add_filter("Images", &["png", "jpg", "jpeg", "webp", "gif", "bmp"])
                    .pick_files()
                    .map(DialogResult::References)
            }),
            AppCommand::RemoveReference(index) => self.canvas.remove(index),
            AppCommand::MoveReference { from, to } => self.canvas.move_to(from, to),
            AppCommand::StartFromReference(index) => {
                if let Some(reference) = self.canvas.references.get(index) {
                    self.start_image = Some(
                        StartImage::new(reference.name.clone(), &reference.image)
                            .with_alpha(reference.alpha.as_deref()),
                    );
                }
            }
            AppCommand::StartFromResult { run, index } => {
                if let Some(result) = self.gallery.run(run).and_then(|r| r.image(index)) {
                    self.start_image = Some(StartImage::new(
                        format!("result {run}.{index}"),
                        &result.image,
                    ));
                }
            }
            AppCommand::ClearStartImage => self.start_image = None,
            AppCommand::EditMask(edit) => {
                if let Some(start) = &mut self.start_image {
                    start.edit_mask(edit);
                }
            }
            AppCommand::Generate => self.generate(),
            AppCommand::Cancel(job) => {
                self.engine.cancel(job);
                let waiting = self
                    .jobs
                    .get(job)
                    .is_some_and(|t| t.state == JobState::Waiting);
                if waiting {
                    // The engine ends it when it gets to it; the user need not wait for that.
                    if let Some(tracked) = self.jobs.get(job) {
                        let run = tracked.run;
                        self.end_job(job, run, RunStatus::Cancelled);
                    }
                } else {
                    self.jobs.mark_cancelling(job);
                }
            }
            AppCommand::CancelCurrent => {
                if let Some(job) = self.jobs.current() {
                    self.engine.cancel(job);
                    self.jobs.mark_cancelling(job);
                }
            }
            AppCommand::View { run, index } => self.viewer = Some(Viewer::new(run, index)),
            AppCommand::CloseViewer => self.viewer = None,
            AppCommand::UseAsReference { run, index } => {
                if let Some(result) = self.gallery.run(run).and_then(|r| r.image(index)) {
                    let name = format!("run{run}_{index:02}_seed{}", result.meta.settings.seed);
                    self.canvas
                        .push(Reference::from_shared(name, None, result.image.clone()));
                }
            }
            AppCommand::ReuseSettings { run, index } => {
                if let Some(result) = self.gallery.run(run).and_then(|r| r.image(index)) {
                    self.settings.reuse(&result.meta);
                    self.notifications.info(format!(
                        "Settings of result {run}.{index} restored (seed {}, locked).",
                        self.settings.sampler.seed
                    ));
                }
            }
            AppCommand::RemoveRun(run) => {
                if self.viewer.as_ref().is_some_and(|v| v.run == run) {
                    self.viewer = None;
                }
                if let Some(dir) = self.gallery.run(run).and_then(|r| r.history_dir.clone())
                    && let Err(error) = std::fs::remove_dir_all(&dir)
                {
                    log::warn!("could not remove {}: {error}", dir.display());
                }
                self.gallery.remove(run);
            }
            AppCommand::Export { run, selection } => self.export(run, selection),
            AppCommand::ExportMultiviewSet { replace } => self.export_multiview_set(replace),
            AppCommand::ResolveExportConflict(choice) => {
                if let Some(pending) = self.pending_export.take() {
                    self.finish_export(&pending.plan, choice, &pending.dir);
                }
            }
            AppCommand::ChooseExportFolderDialog => self.spawn_dialog(|| {
                rfd::FileDialog::new()
                    .set_title("Export folder")
                    .pick_folder()
                    .map(DialogResult::ExportFolder)
            }),
            AppCommand::SearchModels(dir) => self.search_models(&dir),
            AppCommand::ChooseModelsFolderDialog => self.spawn_dialog(|| {
                rfd::FileDialog::new()
                    .set_title("Models folder")
                    .pick_folder()
                    .map(DialogResult::ModelsFolder)
            }),
            AppCommand::DismissNotification(id) => self.notifications.dismiss(id),
            AppCommand::RestartEngine => match self.engine.restart() {
                Ok(()) => {
                    self.engine_failed = false;
                    self.notifications.info("The engine was restarted.");
                }
                Err(error) => self
                    .notifications
                    .error(format!("The engine could not be restarted: {error}")),
            },
            AppCommand::Undo => {
                self.undo.undo(&mut self.canvas, self.start_image.as_mut());
            }
            AppCommand::Redo => {
                self.undo.redo(&mut self.canvas, self.start_image.as_mut());
            }
            AppCommand::NewProject { discard } => {
                if self.ask_before_discarding(discard, AppCommand::NewProject { discard: true }) {
                    return;
                }
                // The references can still be brought back with Undo.
                self.canvas.references.clear();
                self.start_image = None;
                self.project_path = None;
                self.project_runs.clear();
                self.saved_state = self.project_state();
            }
            AppCommand::OpenProjectDialog => self.spawn_dialog(|| {
                rfd::FileDialog::new()
                    .set_title("Open a project")
                    .add_filter(
                        "Lumos Studio project",
                        &[lumos_engine::project::PROJECT_EXTENSION],
                    )
                    .pick_file()
                    .map(DialogResult::OpenProject)
            }),
            AppCommand::OpenProject { path, discard } => {
                let again = AppCommand::OpenProject {
                    path: path.clone(),
                    discard: true,
                };
                if !self.ask_before_discarding(discard, again) {
                    self.open_project(&path);
                }
            }
            AppCommand::SaveProject => match self.project_path.clone() {
                Some(path) => self.save_project(&path),
                None => self.commands.push(AppCommand::SaveProjectAsDialog),
            },
            AppCommand::SaveProjectAsDialog => {
                let name = self
                    .project_path
                    .as_deref()
                    .map(display_name)
                    .unwrap_or_else(|| "Untitled.lumos".into());
                self.spawn_dialog(move || {
                    rfd::FileDialog::new()
                        .set_title("Save the project")
                        .set_file_name(name)
                        .add_filter(
                            "Lumos Studio project",
                            &[lumos_engine::project::PROJECT_EXTENSION],
                        )
                        .save_file()
                        .map(DialogResult::SaveProjectAs)
                });
            }
            AppCommand::SaveProjectAs { path, replace } => {
                let path = crate::project::with_project_extension(&path);
                let own_file = self.project_path.as_deref() == Some(path.as_path());
                if path.exists() && !own_file && !replace {
                    self.question = Some(Question::ReplaceFile(path));
                } else {
                    self.save_project(&path);
                }
            }
            AppCommand::RestoreAutosave => {
                self.question = None;
                if let Some(recovery) = &self.recovery {
                    let path = recovery.autosave_path();
                    self.open_project(&path);
                    // Restored work belongs to no file yet: Save asks where.
                    self.project_path = None;
                    self.saved_state = ProjectState {
                        settings: String::new(),
                        ..self.project_state()
                    };
                }
            }
            AppCommand::DiscardAutosave => {
                self.question = None;
                if let Some(recovery) = &self.recovery {
                    match recovery.set_aside() {
                        Ok(aside) => self.notifications.info(format!(
                            "The unsaved work was not restored; it is kept in {} until the \
                             next time.",
                            aside.display()
                        )),
                        Err(error) => log::warn!("could not set the autosave aside: {error}"),
                    }
                }
            }
            AppCommand::CancelQuestion => self.question = None,
        }
    }

    // ---- projects ----

    /// The project's state now, for "unsaved changes".
    fn project_state(&self) -> ProjectState {
        ProjectState {
            canvas: CanvasState::of(&self.canvas),
            start: self
                .start_image
                .as_ref()
                .map(|s| (s.id(), s.mask_version())),
            settings: self.settings.to_json(),
        }
    }

    fn capture_project(&self) -> lumos_engine::project::Project {
        crate::project::capture(
            &self.canvas,
            self.start_image.as_ref(),
            &self.settings,
            self.project_runs.clone(),
        )
    }

    /// With unsaved changes and no `discard`, asks first (then `then` runs with it) and
    /// returns `true`: the caller stops.
    fn ask_before_discarding(&mut self, discard: bool, then: AppCommand) -> bool {
        if discard || !self.has_unsaved_changes() || self.is_empty_project() {
            return false;
        }
        self.question = Some(Question::DiscardChanges(then));
        true
    }

    /// Nothing on the canvas worth asking about.
    fn is_empty_project(&self) -> bool {
        self.canvas.references.is_empty() && self.start_image.is_none()
    }

    fn save_project(&mut self, path: &Path) {
        self.question = None;
        match lumos_engine::project::save(path, &self.capture_project()) {
            Ok(()) => {
                self.project_path = Some(path.to_owned());
                self.saved_state = self.project_state();
                self.notifications
                    .info(format!("Saved the project to {}", path.display()));
            }
            Err(error) => self.notifications.error(format!(
                "The project was not saved ({error}). Nothing was changed on disk."
            )),
        }
    }

    fn open_project(&mut self, path: &Path) {
        self.question = None;
        let project = match lumos_engine::project::load(path) {
            Ok(project) => project,
            Err(error) => {
                self.notifications
                    .error(format!("The project could not be opened: {error}"));
                return;
            }
        };
        let restored = crate::project::restore(project);
        self.canvas.references = restored.references;
        self.start_image = restored.start;
        if let Some(mut settings) = restored.settings {
            if !self.devices.contains(&settings.device) {
                settings.device = self.settings.device;
            }
            self.export_dir_text = settings
                .export_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            self.settings = settings;
            self.restore_chosen_checkpoint();
        }
        if let Some(problem) = restored.settings_problem {
            self.notifications.error(format!(
                "The project's settings could not be read ({problem}); the current ones are kept."
            ));
        }
        // Results of the project that are not in the gallery yet come back from the history.
        let missing: Vec<PathBuf> = restored
            .history
            .iter()
            .filter(|dir| {
                !self
                    .gallery
                    .runs()
                    .iter()
                    .any(|run| run.history_dir.as_ref() == Some(*dir))
            })
            .cloned()
            .collect();
        let linked = crate::history::load_dirs(&missing);
        for notice in linked.damaged {
            self.notifications.error(notice);
        }
        self.gallery.insert_older(linked.runs);
        self.project_runs = restored.history;
        self.project_path = Some(path.to_owned());
        self.saved_state = self.project_state();
    }

    /// Autosaves on a background thread when the work changed and a minute has passed.
    fn autosave_tick(&mut self) {
        let Some(recovery) = &self.recovery else {
            return;
        };
        if self.last_autosave.elapsed() < crate::project::AUTOSAVE_INTERVAL
            || self.autosave_running.load(Ordering::Acquire)
        {
            return;
        }
        self.last_autosave = Instant::now();
        let state = self.project_state();
        if self.autosaved_state.as_ref() == Some(&state)
            || (self.autosaved_state.is_none() && state == self.saved_state)
        {
            return;
        }
        let project = self.capture_project();
        let path = recovery.autosave_path();
        let running = self.autosave_running.clone();
        running.store(true, Ordering::Release);
        let spawned = std::thread::Builder::new()
            .name("autosave".into())
            .spawn(move || {
                if let Err(error) = lumos_engine::project::save(&path, &project) {
                    log::error!("autosave failed: {error}");
                }
                running.store(false, Ordering::Release);
            });
        match spawned {
            Ok(_) => self.autosaved_state = Some(state),
            Err(error) => {
                self.autosave_running.store(false, Ordering::Release);
                log::error!("could not start the autosave: {error}");
            }
        }
    }

    fn add_reference_path(&mut self, path: &Path) {
        if let Some(loader) = &self.loader {
            if loader.send(path.to_owned()).is_ok() {
                self.pending_loads += 1;
                return;
            }
            self.loader = None;
        }
        let outcome = read_reference(path);
        self.reference_loaded(path, outcome);
    }

    fn reference_loaded(
        &mut self,
        path: &Path,
        outcome: anyhow::Result<(Reference, Option<GenerationMeta>)>,
    ) {
        match outcome {
            Ok((_, Some(meta))) if meta.prompt.is_some() => {
                self.restore_prompt_result(path, &meta);
            }
            Ok((mut reference, meta)) => {
                if let Some(notice) = reference.notice.take() {
                    self.notifications.info(notice);
                }
                // A PNG we exported carries its settings: restore them, and the weights of
                // the references it was made from that are on the canvas.
                self.canvas.push(reference);
                if let Some(meta) = meta {
                    self.settings.reuse(&meta);
                    let found = self.canvas.restore_weights(&meta.references);
                    let missing = meta.references.len() - found;
                    let weights = if missing == 0 {
                        format!("the weights of its {found} reference(s)")
                    } else {
                        format!(
                            "{found} of its {} reference weights ({missing} reference(s) are not \
                             on the canvas: add them and drop the PNG again)",
                            meta.references.len()
                        )
                    };
                    self.notifications.info(format!(
                        "Restored the settings {} was made with (seed {}, locked) and {weights}.",
                        display_name(path),
                        self.settings.sampler.seed
                    ));
                }
            }
            Err(error) => self.notifications.error(format!("{error:#}")),
        }
    }

    fn search_models(&mut self, dir: &Path) {
        // A model described by its manifest (a multi-view model, a trained prior).
        let manifest = if dir.extension().is_some_and(|e| e == "json") {
            dir.to_owned()
        } else {
            dir.join("model.json")
        };
        if manifest.is_file() {
            match checkpoints::resolve_model(&checkpoints::ModelChoice::Path(manifest.clone())) {
                Ok(resolved) => {
                    let name = resolved.spec.name.clone();
                    if !self.model_names.contains(&name) {
                        self.models.insert(0, resolved.spec);
                        self.refresh_model_names();
                    }
                    self.notifications
                        .info(format!("Found {name} in {}", manifest.display()));
                }
                Err(error) => self.notifications.error(format!(
                    "{} does not describe a usable model: {error:#}",
                    manifest.display()
                )),
            }
            return;
        }
        let found_text_to_image = self.search_text_to_image(dir);
        let found_zero123 = self.search_zero123(dir);
        let discovery = checkpoints::discover(Some(dir));
        if let Some(spec) = discovery.spec() {
            if !self.model_names.contains(&spec.name) {
                self.models.insert(0, spec);
                self.refresh_model_names();
            }
            self.notifications
                .info(format!("Found the full Lumos model in {}", dir.display()));
        } else if !found_text_to_image && !found_zero123 {
            self.notifications.error(format!(
                "The full Lumos model is not complete in {}: see Models for what is missing.",
                dir.display()
            ));
        }
        self.discovery = discovery;
    }

    /// The model the next run uses: the one named in the settings, else the first Lumos
    /// model (else the first Zero123 checkpoint).
    fn chosen_model(&self) -> Option<ChosenModel<'_>> {
        let wanted = self.settings.model.as_deref();
        if let Some(checkpoint) = wanted.and_then(|name| self.zero123.by_name(name)) {
            return Some(ChosenModel::Zero123(checkpoint));
        }
        self.models
            .iter()
            .find(|m| Some(m.name.as_str()) == wanted)
            .or_else(|| self.models.first())
            .map(ChosenModel::Lumos)
            .or_else(|| self.zero123.all().first().map(ChosenModel::Zero123))
    }

    fn generate(&mut self) {
        if self.settings.mode == crate::settings::ModeKind::Multiview {
            self.generate_multiview();
            return;
        }
        // What is on the canvas decides: references → image-to-image, a prompt alone →
        // text-to-image.
        match crate::prompt::CanvasSource::of(self.canvas.references.len(), &self.settings.prompt) {
            crate::prompt::CanvasSource::References => {}
            crate::prompt::CanvasSource::Prompt => {
                self.generate_from_prompt();
                return;
            }
            crate::prompt::CanvasSource::Nothing => {
                self.notifications.error(
                    "Add a reference image first (drop one, paste one, or use Open…), or type \
                     a prompt.",
                );
                return;
            }
        }
        let model = match self.chosen_model() {
            Some(ChosenModel::Lumos(spec)) => Ok(spec.clone()),
            Some(ChosenModel::Zero123(checkpoint)) => Err(format!(
                "{} is a multi-view model (a Zero123 checkpoint): it makes views of the object \
                 in one reference from other cameras. Use it in the Multi-view mode, or choose \
                 another model under Model.",
                checkpoint.name
            )),
            None => Err("No model is available: see Models for what to install.".to_owned()),
        };
        let mut model = match model {
            Ok(model) => model,
            Err(problem) => {
                self.notifications.error(problem);
                return;
            }
        };
        model.precision = self.settings.precision();
        let mode = match self.settings.engine_mode() {
            Ok(mode) => mode,
            Err(problem) => {
                self.notifications
                    .error(format!("Cannot start: {problem}."));
                return;
            }
        };
        let request = GenerateRequest {
            model: model.clone(),
            device: self.settings.device,
            references: self.canvas.to_engine(),
            mode,
            settings: self.settings.sampler.clone(),
            init: self.start_image.as_ref().map(|start| InitImage {
                image: start.image.clone(),
                strength: self.settings.strength,
                mask: start.engine_mask(self.settings.feather_px),
            }),
            mix: self.settings.mix,
        };
        let run_id = self.gallery.next_id();
        let created_unix_secs = crate::history::now_unix_secs();
        let run = Run {
            id: run_id,
            job: None,
            model: model.name.clone(),
            mode: request.mode.clone(),
            settings: request.settings.clone(),
            references: self
                .canvas
                .references
                .iter()
                .map(|r| r.name.clone())
                .collect(),
            prompt: None,
            images: Vec::new(),
            status: RunStatus::Pending,
            created_unix_secs,
            history_dir: self
                .history_dir
                .as_deref()
                .map(|h| crate::history::run_dir(h, created_unix_secs, run_id)),
        };
        match self.engine.generate(request) {
            Ok(job) => {
                let summary = format!(
                    "{} image(s), {} steps, seed {}",
                    self.settings.image_count(),
                    self.settings.sampler.steps,
                    self.settings.sampler.seed
                );
                self.jobs.push(job, run_id, summary);
                if let Some(dir) = &run.history_dir {
                    self.project_runs.push(dir.clone());
                }
                self.gallery.push(Run {
                    job: Some(job),
                    ..run
                });
                self.settings.advance_seed(random_seed());
            }
            Err(_) => self.on_engine_died(),
        }
    }

    fn export(&mut self, run_id: RunId, selection: ExportSelection) {
        let Some(dir) = self.settings.export_dir.clone() else {
            self.notifications
                .error("Choose an export folder first (Export folder, under the queue).");
            return;
        };
        let Some(run) = self.gallery.run(run_id) else {
            return;
        };
        match export::plan(run, selection, &dir, self.settings.contact_sheet) {
            Ok(plan) if plan.conflicts.is_empty() => {
                self.finish_export(&plan, ConflictChoice::Skip, &dir);
            }
            Ok(plan) => self.pending_export = Some(PendingExport { plan, dir }),
            Err(error) => self.notifications.error(format!("{error:#}")),
        }
    }

    /// Writes an export on a thread of its own, reported by [`Self::export_written`].
    fn finish_export(&mut self, plan: &ExportPlan, choice: ConflictChoice, dir: &Path) {
        let (plan, dir) = (plan.clone(), dir.to_owned());
        self.write_on_thread(move || {
            let outcome = export::execute(&plan, choice, &dir);
            DialogResult::Exported { dir, outcome }
        });
    }

    /// Runs `write` (files of an export or a kept set) on a thread of its own: encoding PNGs
    /// and an animation's GIF can take a while, and the window stays responsive. Its result
    /// comes back as a [`DialogResult`]; quitting waits for it.
    fn write_on_thread(&mut self, write: impl FnOnce() -> DialogResult + Send + 'static) {
        let (sender, ctx) = (self.dialogs_tx.clone(), self.ctx.clone());
        let spawned = std::thread::Builder::new()
            .name("export".into())
            .spawn(move || {
                let _ = sender.send(write());
                ctx.request_repaint();
            });
        match spawned {
            Ok(thread) => {
                self.exports_running += 1;
                self.export_threads.push(thread);
            }
            Err(error) => self.notifications.error(format!(
                "Nothing was written: could not start writing ({error})."
            )),
        }
    }

    /// A write started by [`Self::write_on_thread`] reported back.
    fn write_ended(&mut self) {
        self.export_threads.retain(|thread| !thread.is_finished());
        self.exports_running = self.exports_running.saturating_sub(1);
    }

    fn export_written(&mut self, dir: &Path, outcome: anyhow::Result<ExportReport>) {
        match outcome {
            Ok(report) => {
                let mut text = format!(
                    "Exported {} file(s) to {}",
                    report.written.len(),
                    dir.display()
                );
                if !report.skipped.is_empty() {
                    text.push_str(&format!(
                        " ({} existing file(s) left alone)",
                        report.skipped.len()
                    ));
                }
                self.notifications.info(text);
                self.last_export = Some(report);
            }
            Err(error) => self
                .notifications
                .error(format!("Export failed: {error:#}")),
        }
    }

    /// Exports being written now.
    pub fn exports_running(&self) -> usize {
        self.exports_running
    }

    // ---- input ----

    fn handle_input(&mut self, ctx: &egui::Context) {
        let dropped = ctx.input(|i| i.raw.dropped_files.clone());
        for file in dropped {
            let path = file.path();
            if !path.as_os_str().is_empty() {
                self.commands
                    .push(AppCommand::AddReferencePath(path.to_owned()));
            } else {
                match file.bytes() {
                    Ok(bytes) => self.commands.push(AppCommand::AddReferenceBytes {
                        name: "dropped image".into(),
                        bytes,
                    }),
                    Err(error) => self
                        .notifications
                        .error(format!("The dropped file could not be read: {error}")),
                }
            }
        }
        let generate = egui::KeyboardShortcut::new(egui::Modifiers::COMMAND, egui::Key::Enter);
        let open = egui::KeyboardShortcut::new(egui::Modifiers::COMMAND, egui::Key::O);
        if ctx.input_mut(|i| i.consume_shortcut(&generate)) {
            self.commands.push(AppCommand::Generate);
        }
        if ctx.input_mut(|i| i.consume_shortcut(&open)) {
            self.commands.push(AppCommand::OpenReferenceDialog);
        }
        let command_shift = egui::Modifiers::COMMAND | egui::Modifiers::SHIFT;
        // Shift first: Ctrl+S also matches Ctrl+Shift+S (shift is ignored when not asked for).
        let save_as = egui::KeyboardShortcut::new(command_shift, egui::Key::S);
        let save = egui::KeyboardShortcut::new(egui::Modifiers::COMMAND, egui::Key::S);
        if ctx.input_mut(|i| i.consume_shortcut(&save_as)) {
            self.commands.push(AppCommand::SaveProjectAsDialog);
        } else if ctx.input_mut(|i| i.consume_shortcut(&save)) {
            self.commands.push(AppCommand::SaveProject);
        }
        // Undo/redo of canvas edits and mask strokes, unless a text field has the keys (it has
        // its own undo).
        if !ctx.text_edit_focused() {
            let redo = egui::KeyboardShortcut::new(command_shift, egui::Key::Z);
            let undo = egui::KeyboardShortcut::new(egui::Modifiers::COMMAND, egui::Key::Z);
            if ctx.input_mut(|i| i.consume_shortcut(&redo)) {
                self.commands.push(AppCommand::Redo);
            } else if ctx.input_mut(|i| i.consume_shortcut(&undo)) {
                self.commands.push(AppCommand::Undo);
            }
        }
        if ctx.input(|i| i.key_pressed(egui::Key::Escape)) && !self.jobs.is_empty() {
            self.commands.push(AppCommand::CancelCurrent);
        }
        // Paste goes to a focused text field first; otherwise it adds a reference.
        if ctx.memory(|m| m.focused().is_none()) {
            let pasted: Vec<egui::Event> = ctx.input(|i| {
                i.events
                    .iter()
                    .filter(|e| matches!(e, egui::Event::Paste(_) | egui::Event::PasteImage(_)))
                    .cloned()
                    .collect()
            });
            for event in pasted {
                match event {
                    egui::Event::PasteImage(image) => {
                        self.commands.push(pasted_pixels(&image));
                    }
                    egui::Event::Paste(text) => {
                        let path = PathBuf::from(text.trim().trim_start_matches("file://"));
                        if path.is_file() {
                            self.commands.push(AppCommand::AddReferencePath(path));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    // ---- layout ----

    /// The project's name for the title and the menu bar, with a dot when it has unsaved
    /// changes.
    fn project_title(&self) -> String {
        let name = self
            .project_path
            .as_deref()
            .map(display_name)
            .unwrap_or_else(|| "Untitled".into());
        if self.has_unsaved_changes() && !self.is_empty_project() {
            format!("{name} •")
        } else {
            name
        }
    }

    fn menu_ui(&mut self, ui: &mut egui::Ui) {
        let title = self.project_title();
        egui::Panel::top("menu").show(ui, |ui| {
            egui::MenuBar::new().ui(ui, |ui| {
                ui.menu_button("File", |ui| {
                    if ui.button("New project").clicked() {
                        self.commands
                            .push(AppCommand::NewProject { discard: false });
                    }
                    if ui.button("Open project…").clicked() {
                        self.commands.push(AppCommand::OpenProjectDialog);
                    }
                    if ui.button("Save project (Ctrl+S)").clicked() {
                        self.commands.push(AppCommand::SaveProject);
                    }
                    if ui.button("Save project as… (Ctrl+Shift+S)").clicked() {
                        self.commands.push(AppCommand::SaveProjectAsDialog);
                    }
                    ui.separator();
                    if ui.button("Add reference images… (Ctrl+O)").clicked() {
                        self.commands.push(AppCommand::OpenReferenceDialog);
                    }
                });
                ui.menu_button("Edit", |ui| {
                    let undo =
                        ui.add_enabled(self.undo.can_undo(), egui::Button::new("Undo (Ctrl+Z)"));
                    if undo.clicked() {
                        self.commands.push(AppCommand::Undo);
                    }
                    let redo = ui.add_enabled(
                        self.undo.can_redo(),
                        egui::Button::new("Redo (Ctrl+Shift+Z)"),
                    );
                    if redo.clicked() {
                        self.commands.push(AppCommand::Redo);
                    }
                });
                ui.separator();
                ui.label(&title);
            });
        });
        let window_title = format!("{title} — Lumos Studio");
        if window_title != self.window_title {
            ui.ctx()
                .send_viewport_cmd(egui::ViewportCommand::Title(window_title.clone()));
            self.window_title = window_title;
        }
    }

    fn question_ui(&mut self, ctx: &egui::Context) {
        let Some(question) = &self.question else {
            return;
        };
        if let Question::ReplaceSetFiles(existing) = question {
            let existing = existing.clone();
            egui::Modal::new(egui::Id::unique("replace_set_files"))
                .show(ctx, |ui| self.replace_set_files_ui(ui, &existing));
            return;
        }
        egui::Modal::new(egui::Id::unique("project_question")).show(ctx, |ui| match question {
            Question::ReplaceFile(path) => {
                ui.heading("Replace the file?");
                ui.label(format!(
                    "{} already exists. Replacing it loses what it holds now.",
                    path.display()
                ));
                ui.horizontal(|ui| {
                    if ui.button("Replace").clicked() {
                        self.commands.push(AppCommand::SaveProjectAs {
                            path: path.clone(),
                            replace: true,
                        });
                    }
                    if ui.button("Cancel").clicked() {
                        self.commands.push(AppCommand::CancelQuestion);
                    }
                });
            }
            Question::DiscardChanges(then) => {
                ui.heading("Discard unsaved changes?");
                ui.label(
                    "The project has changes that are not saved. Save it first (File > Save \
                     project), or discard them.",
                );
                ui.horizontal(|ui| {
                    if ui.button("Discard changes").clicked() {
                        self.commands.push(AppCommand::CancelQuestion);
                        self.commands.push(then.clone());
                    }
                    if ui.button("Cancel").clicked() {
                        self.commands.push(AppCommand::CancelQuestion);
                    }
                });
            }
            Question::RestoreAutosave(path) => {
                ui.heading("Restore unsaved work?");
                let when = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .map(|age| format!(" ({} min ago)", age.as_secs() / 60))
                    .unwrap_or_default();
                ui.label(format!(
                    "The last session of Lumos Studio ended with work that was not saved \
                     (autosaved{when})."
                ));
                ui.horizontal(|ui| {
                    if ui.button("Restore").clicked() {
                        self.commands.push(AppCommand::RestoreAutosave);
                    }
                    if ui.button("Don't restore").clicked() {
                        self.commands.push(AppCommand::DiscardAutosave);
                    }
                });
            }
            // Asked in its own modal above.
            Question::ReplaceSetFiles(_) => {}
        });
    }

    fn top_ui(&mut self, ui: &mut egui::Ui) {
        if self.notifications.items().is_empty() && !self.engine_failed {
            return;
        }
        egui::Panel::top("notifications").show(ui, |ui| {
            self.notifications.notifications_ui(ui, &mut self.commands);
            if self.engine_failed && ui.button("Restart engine").clicked() {
                self.commands.push(AppCommand::RestartEngine);
            }
        });
    }

    fn right_ui(&mut self, ui: &mut egui::Ui) {
        egui::Panel::right("controls")
            .default_size(340.0)
            .size_range(300.0..=520.0)
            .resizable(true)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("controls")
                    .show(ui, |ui| {
                        // Cloned: the controls edit the settings that name them.
                        // The model the current mode runs.
                        let multiview = self.multiview_model();
                        let runs = self.model_for_mode();
                        let checkpoint = match runs {
                            Some(ChosenModel::Zero123(checkpoint)) => Some(checkpoint.clone()),
                            _ => None,
                        };
                        let multiview_model = multiview.map(|model| model.name().to_owned());
                        let model_note = runs.and_then(|model| model.built_in_note());
                        let model_guidance = match runs {
                            Some(ChosenModel::Lumos(spec)) => spec.guidance,
                            _ => None,
                        };
                        let context = ControlsContext {
                            model_names: &self.model_names,
                            devices: &self.devices,
                            has_references: !self.canvas.references.is_empty(),
                            has_prompt: !self.settings.prompt.trim().is_empty(),
                            busy: !self.jobs.is_empty(),
                            model_is_multiview: self.selected_model_is_multiview(),
                            multiview_model: multiview_model.as_deref(),
                            checkpoint: checkpoint.as_ref(),
                            model_note,
                            model_guidance,
                        };
                        controls_ui(ui, &mut self.settings, &context, &mut self.commands);
                        ui.separator();
                        queue_ui(ui, &self.jobs, &mut self.commands);
                        ui.separator();
                        self.export_settings_ui(ui);
                        ui.separator();
                        egui::CollapsingHeader::new("Models")
                            .default_open(self.model_names.is_empty())
                            .show(ui, |ui| {
                                let report = self.discovery.report();
                                let view = ModelsView {
                                    model_names: &self.model_names,
                                    checkpoints: self.zero123.all(),
                                    report: &report,
                                };
                                self.models_panel.models_ui(ui, &view, &mut self.commands);
                            });
                    });
            });
    }

    fn export_settings_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Export");
        ui.horizontal(|ui| {
            let label = ui.label("Export folder");
            let response = ui
                .add(
                    egui::TextEdit::singleline(&mut self.export_dir_text)
                        .hint_text("/path/to/folder")
                        .desired_width(150.0),
                )
                .labelled_by(label.id);
            if response.changed() {
                let text = self.export_dir_text.trim();
                self.settings.export_dir = (!text.is_empty()).then(|| PathBuf::from(text));
            }
            if ui.button("Choose…").clicked() {
                self.commands.push(AppCommand::ChooseExportFolderDialog);
            }
        });
        ui.checkbox(
            &mut self.settings.contact_sheet,
            "Also write a contact sheet",
        );
    }

    fn central_ui(&mut self, ui: &mut egui::Ui) {
        egui::CentralPanel::default().show(ui, |ui| {
            if let Some(tracked) = self.jobs.running() {
                if let JobState::Running(progress) = &tracked.state {
                    ui.horizontal(|ui| {
                        ui.strong(format!("Run {}", tracked.run));
                        if ui.button("Cancel (Esc)").clicked() {
                            self.commands.push(AppCommand::Cancel(tracked.job));
                        }
                    });
                    progress_ui(ui, progress);
                }
                if self.live.has_latent() {
                    let side = 256.0_f32.min(ui.available_width());
                    let (rect, _) =
                        ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::hover());
                    self.live.paint_ui(ui, rect);
                }
                ui.separator();
            }
            if self.settings.mode == crate::settings::ModeKind::Multiview {
                self.multiview_results_ui(ui);
                ui.separator();
            }
            ui.heading("Gallery");
            egui::ScrollArea::vertical()
                .id_salt("gallery")
                .show(ui, |ui| {
                    gallery_ui(ui, &mut self.gallery, &mut self.commands);
                });
        });
    }

    fn export_conflict_ui(&mut self, ctx: &egui::Context) {
        let Some(pending) = &self.pending_export else {
            return;
        };
        let conflicts = pending.plan.conflicts.clone();
        egui::Modal::new(egui::Id::unique("export_conflict")).show(ctx, |ui| {
            ui.heading("Files already exist");
            ui.label(format!(
                "{} file(s) in the export folder would be replaced:",
                conflicts.len()
            ));
            for path in conflicts.iter().take(6) {
                ui.monospace(display_name(path));
            }
            ui.horizontal(|ui| {
                if ui.button("Replace them").clicked() {
                    self.commands
                        .push(AppCommand::ResolveExportConflict(ConflictChoice::Overwrite));
                }
                if ui.button("Keep both").clicked() {
                    self.commands
                        .push(AppCommand::ResolveExportConflict(ConflictChoice::KeepBoth));
                }
                if ui.button("Skip existing").clicked() {
                    self.commands
                        .push(AppCommand::ResolveExportConflict(ConflictChoice::Skip));
                }
            });
        });
    }

    fn bench_frame(&mut self, ctx: &egui::Context, frame: &eframe::Frame) {
        let busy = !self.jobs.is_empty();
        let Some((config, bench, phase)) = &mut self.bench else {
            return;
        };
        let work = frame
            .info()
            .cpu_usage
            .map(|secs| std::time::Duration::from_secs_f32(secs.max(0.0)));
        let measured = match *phase {
            BenchPhase::Idle => FramePhase::Idle,
            BenchPhase::Running if busy => FramePhase::Generating,
            _ => FramePhase::Ignored,
        };
        bench.frame(Instant::now(), work, measured);
        match *phase {
            BenchPhase::Start => {
                // Long enough to collect a few hundred frames on the tiny model.
                self.settings.sampler.steps = 50;
                self.settings.count = 8;
                self.settings.mode = crate::settings::ModeKind::Variations;
                let reference = config.reference.clone();
                self.commands.push(AppCommand::AddReferencePath(reference));
                *phase = BenchPhase::Loading;
            }
            BenchPhase::Loading if self.pending_loads == 0 => *phase = BenchPhase::Idle,
            BenchPhase::Idle if bench.idle_frames() >= BENCH_IDLE_FRAMES => {
                self.commands.push(AppCommand::Generate);
                *phase = BenchPhase::Running;
            }
            BenchPhase::Running if !busy && !self.commands.contains(&AppCommand::Generate) => {
                *phase = BenchPhase::Done;
                let outcome = self
                    .gallery
                    .runs()
                    .last()
                    .map(|run| format!("{} images, {}", run.images.len(), run.status.label()))
                    .unwrap_or_else(|| "no run".into());
                println!("bench run: {outcome}\n{}", bench.report());
                if config.exit_when_done {
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
            }
            _ => {}
        }
        // Measure the frame rate the UI can keep, not only frames the engine asks for.
        ctx.request_repaint();
    }
}

fn pasted_pixels(image: &egui::ColorImage) -> AppCommand {
    let rgba = image
        .pixels
        .iter()
        .flat_map(|p| p.to_srgba_unmultiplied())
        .collect();
    AppCommand::AddReferencePixels {
        name: "pasted image".into(),
        width_px: image.size[0],
        height_px: image.size[1],
        rgba,
    }
}

impl eframe::App for LumosApp {
    fn logic(&mut self, _ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.drain_engine();
        self.drain_dialogs();
        self.apply_commands();
        self.autosave_tick();
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.bench_frame(&ctx, frame);
        self.handle_input(&ctx);
        self.follow_model_guidance();
        self.menu_ui(ui);
        self.top_ui(ui);
        egui::Panel::left("canvas")
            .default_size(300.0)
            .size_range(240.0..=640.0)
            .resizable(true)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("canvas")
                    .show(ui, |ui| {
                        self.canvas_panel.canvas_ui(
                            ui,
                            &mut self.canvas,
                            self.pending_loads,
                            &mut self.commands,
                        );
                        ui.add_space(6.0);
                        self.start_panel.start_image_ui(
                            ui,
                            self.start_image.as_mut(),
                            self.live.renderer(),
                            &mut self.settings,
                            &mut self.commands,
                        );
                        ui.separator();
                        crate::panels::prompt::prompt_ui(
                            ui,
                            &mut self.settings,
                            &crate::panels::prompt::PromptContext {
                                model: &self.text_to_image,
                                references: self.canvas.references.len(),
                            },
                        );
                    });
            });
        self.right_ui(ui);
        self.central_ui(ui);
        if let Some(viewer) = &mut self.viewer {
            viewer.viewer_ui(
                &ctx,
                &mut self.gallery,
                &mut self.canvas,
                self.live.renderer(),
                &mut self.commands,
            );
        }
        self.export_conflict_ui(&ctx);
        self.question_ui(&ctx);
        // Commands from this frame's panels take effect now, not a frame later.
        self.apply_commands();
        self.remember_chosen_checkpoint();
        let interacting = ctx.input(|i| i.pointer.any_down());
        self.undo
            .observe(&self.canvas, self.start_image.as_ref(), interacting);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        // A bench run changes settings for its measurement; keep the user's.
        if self.bench.is_some() {
            return;
        }
        match &self.settings_file {
            Some(file) => {
                if let Err(error) = crate::settings::save_file(file, &self.settings) {
                    log::warn!("{error:#}");
                }
            }
            None => storage.set_string(STORAGE_KEY, self.settings.to_json()),
        }
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.quit();
    }
}
