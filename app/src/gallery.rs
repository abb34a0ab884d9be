//! Results grouped by run, each run with the settings it was made with.

use std::path::PathBuf;
use std::sync::Arc;

use image::RgbImage;
use lumos_engine::protocol::{GenerationMeta, JobId, Mode, SamplerSettings};

/// Identifies a run in the gallery (app-side; engine job ids may restart after a crash).
pub type RunId = u64;

/// How a run ended, or that it has not.
#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    /// Waiting or running in the engine.
    Pending,
    /// All images arrived.
    Finished,
    /// The user cancelled it.
    Cancelled,
    /// It failed; the message says why.
    Failed(String),
    /// Loaded from the history folder.
    FromHistory,
}

impl RunStatus {
    /// Short text for the run header.
    pub fn label(&self) -> String {
        match self {
            Self::Pending => "running…".into(),
            Self::Finished => "finished".into(),
            Self::Cancelled => "cancelled".into(),
            Self::Failed(why) => format!("failed: {why}"),
            Self::FromHistory => "from history".into(),
        }
    }
}

/// One result image.
pub struct RunImage {
    /// Index in the run.
    pub index: usize,
    /// The pixels.
    pub image: Arc<RgbImage>,
    /// Everything needed to reproduce it.
    pub meta: GenerationMeta,
    /// Display texture (created on first draw).
    pub texture: Option<egui::TextureHandle>,
    /// Selected for export.
    pub selected: bool,
}

impl RunImage {
    /// The texture of this image, uploading it on first use.
    pub fn texture(&mut self, ctx: &egui::Context, run: RunId) -> egui::TextureHandle {
        self.texture
            .get_or_insert_with(|| {
                ctx.load_texture(
                    format!("run{run}_{}", self.index),
                    color_image(&self.image),
                    egui::TextureOptions::LINEAR,
                )
            })
            .clone()
    }
}

/// The pixels of `image` as an egui image.
pub fn color_image(image: &RgbImage) -> egui::ColorImage {
    egui::ColorImage::from_rgb(
        [image.width() as usize, image.height() as usize],
        image.as_raw(),
    )
}

/// One Generate press: its settings and results.
pub struct Run {
    /// Gallery id.
    pub id: RunId,
    /// Engine job (while it runs).
    pub job: Option<JobId>,
    /// Model name.
    pub model: String,
    /// Mode.
    pub mode: Mode,
    /// Sampler settings (seed of the first image).
    pub settings: SamplerSettings,
    /// Names of the references.
    pub references: Vec<String>,
    /// The prompt, for images made from one.
    pub prompt: Option<String>,
    /// Results, in arrival order.
    pub images: Vec<RunImage>,
    /// How it ended.
    pub status: RunStatus,
    /// Seconds since the Unix epoch when it was queued (names exported files).
    pub created_unix_secs: u64,
    /// Where results were written as they arrived (history), if anywhere.
    pub history_dir: Option<PathBuf>,
}

impl Run {
    /// One line with the settings.
    pub fn settings_summary(&self) -> String {
        let mode = match &self.mode {
            Mode::Variations { count } => format!("{count} variations"),
            Mode::Interpolate { frames, path } => format!("{frames} frames ({path:?})"),
            Mode::Sweep { rows, guidance } => {
                format!(
                    "sweep {} × {} (rows × guidance)",
                    rows.len(),
                    guidance.len()
                )
            }
        };
        format!(
            "{mode} · {} steps · guidance {:.1} · {} · seed {} · {}",
            self.settings.steps,
            self.settings.guidance,
            self.settings.solver,
            self.settings.seed,
            self.model
        )
    }

    /// The result with this index.
    pub fn image(&self, index: usize) -> Option<&RunImage> {
        self.images.iter().find(|i| i.index == index)
    }

    /// The result with this index, mutably.
    pub fn image_mut(&mut self, index: usize) -> Option<&mut RunImage> {
        self.images.iter_mut().find(|i| i.index == index)
    }
}

/// All runs, newest last.
#[derive(Default)]
pub struct Gallery {
    runs: Vec<Run>,
    next_id: RunId,
}

impl Gallery {
    /// Allocates the id of the next run.
    pub fn next_id(&mut self) -> RunId {
        self.next_id += 1;
        self.next_id
    }

    /// Adds a run.
    pub fn push(&mut self, run: Run) {
        self.next_id = self.next_id.max(run.id);
        self.runs.push(run);
    }

    /// Adds runs older than every run shown (loaded from the history), giving them ids.
    pub fn insert_older(&mut self, runs: Vec<Run>) {
        let mut runs = runs;
        for run in &mut runs {
            run.id = self.next_id();
        }
        self.runs.splice(0..0, runs);
    }

    /// The runs, oldest first.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// The runs, mutably.
    pub fn runs_mut(&mut self) -> &mut [Run] {
        &mut self.runs
    }

    /// The run with this id.
    pub fn run(&self, id: RunId) -> Option<&Run> {
        self.runs.iter().find(|r| r.id == id)
    }

    /// The run with this id, mutably.
    pub fn run_mut(&mut self, id: RunId) -> Option<&mut Run> {
        self.runs.iter_mut().find(|r| r.id == id)
    }

    /// Removes a run.
    pub fn remove(&mut self, id: RunId) {
        self.runs.retain(|r| r.id != id);
    }

    /// Total number of result images.
    pub fn image_count(&self) -> usize {
        self.runs.iter().map(|r| r.images.len()).sum()
    }
}
