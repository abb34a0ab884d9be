//! Settings that persist across restarts (serde, versioned, every field defaulted), kept apart
//! from transient state such as jobs, textures and the selection.
//!
//! They live in their own file, `settings.json` in the OS config folder, rather than in
//! eframe's `app.ron`: eframe rewrites that file in place (truncate, then write), so a crash or a
//! kill during a save leaves it cut short, and it then silently starts from an empty store. Our
//! file is replaced atomically ([`save_file`]: temporary file, fsync, rename), so after a crash
//! it is the old or the new version; and a file that does not parse anyway (a disk error, an
//! edit by hand) is moved aside under a name that says so, never overwritten, and the app says
//! where it went ([`load_file`]).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use lumos_engine::camera::{DEFAULT_RADIUS, OrbitPose, OrbitPreset};
use lumos_engine::protocol::{
    DeviceChoice, GenerationMeta, InterpolationPath, MixSettings, Mode, Precision, SamplerSettings,
    Solver, SweepRows,
};
use serde::{Deserialize, Serialize};

/// Current schema version of [`Settings`].
pub const SETTINGS_VERSION: u32 = 1;

/// Key of the settings in eframe's storage.
pub const STORAGE_KEY: &str = "lumos-studio.settings";

/// What to make from the references.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModeKind {
    /// Variations of the (weighted blend of the) references.
    #[default]
    Variations,
    /// Frames along a path from the first to the last reference.
    Interpolate,
    /// An X/Y grid: seeds (or the last reference's weight) × guidance.
    Sweep,
    /// Views of the object in the first reference from cameras on an orbit around it (needs
    /// a multi-view model).
    Multiview,
}

impl ModeKind {
    /// Label shown in the UI.
    pub fn label(self) -> &'static str {
        match self {
            Self::Variations => "Variations / blend",
            Self::Interpolate => "Interpolate",
            Self::Sweep => "Sweep (X/Y grid)",
            Self::Multiview => "Multi-view",
        }
    }
}

/// What the rows of a sweep vary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SweepAxis {
    /// One row per seed.
    #[default]
    Seed,
    /// One row per weight of the last reference.
    Weight,
}

impl SweepAxis {
    /// Label shown in the UI.
    pub fn label(self) -> &'static str {
        match self {
            Self::Seed => "Seeds",
            Self::Weight => "Weight of the last reference",
        }
    }
}

/// What happens to the seed after each Generate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeedPolicy {
    /// Keep the seed (reproduce the same images with other settings).
    Locked,
    /// A new random seed every time.
    #[default]
    Random,
    /// Add the number of images of the run, so that consecutive runs never share a seed.
    Increment,
}

impl SeedPolicy {
    /// Label shown in the UI.
    pub fn label(self) -> &'static str {
        match self {
            Self::Locked => "Lock",
            Self::Random => "Random",
            Self::Increment => "Increment",
        }
    }
}

/// Persisted settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Schema version the settings were written with.
    pub version: u32,
    /// Mode of the next run.
    pub mode: ModeKind,
    /// Images per variations run.
    pub count: usize,
    /// Frames per interpolation run.
    pub frames: usize,
    /// Interpolation path.
    pub path: InterpolationPath,
    /// Steps, guidance, solver and seed of the next run.
    pub sampler: SamplerSettings,
    /// How several references (and interpolation frames) are mixed.
    pub mix: MixSettings,
    /// What happens to the seed after each run.
    pub seed_policy: SeedPolicy,
    /// Device to compute on.
    pub device: DeviceChoice,
    /// Precision of the prior on a GPU (the CPU always computes in f32).
    pub gpu_precision: Precision,
    /// Name of the selected model (falls back to the first available one).
    pub model: Option<String>,
    /// The file of the selected model when it is a Zero123-family checkpoint (`model` holds
    /// its name): it brings the choice back after a restart and with a project, where no
    /// search may find it again.
    pub zero123_checkpoint: Option<PathBuf>,
    /// Folder exports go to.
    pub export_dir: Option<PathBuf>,
    /// Also write a contact sheet when exporting.
    pub contact_sheet: bool,
    /// img2img strength when there is a starting image (0 keeps it, 1 ignores it).
    pub strength: f32,
    /// Feathering of the repaint mask, in pixels of the starting image.
    pub feather_px: u32,
    /// Radius of the mask brush, in pixels of the starting image.
    pub brush_px: f32,
    /// Hardness of the mask brush: 1 hard-edged, 0 fading from the centre.
    pub brush_hardness: f32,
    /// What a sweep's rows vary.
    pub sweep_axis: SweepAxis,
    /// A sweep's row values as typed (`1, 2, 3`).
    pub sweep_rows: String,
    /// A sweep's guidance scales as typed (`1.5, 3, 4.5, 7`).
    pub sweep_guidance: String,
    /// The multi-view mode's orbit and export choices.
    pub multiview: MultiviewSettings,
    /// The prompt on the canvas (used when no reference is there).
    pub prompt: String,
    /// Recent prompts, the latest first.
    pub recent_prompts: Vec<String>,
    /// Size of images from a prompt, `[width, height]`: one of the model's buckets.
    pub prompt_size_px: [u32; 2],
    /// The model `sampler.guidance` was last set for (the one the current mode runs).
    pub guidance_model: Option<String>,
    /// The guidance last used with each other model, by name: switching back brings it back.
    pub guidance_by_model: BTreeMap<String, f64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            version: SETTINGS_VERSION,
            mode: ModeKind::default(),
            count: 4,
            frames: 5,
            path: InterpolationPath::Endpoints,
            sampler: SamplerSettings::default(),
            mix: MixSettings::default(),
            seed_policy: SeedPolicy::default(),
            device: DeviceChoice::Cpu,
            gpu_precision: Precision::F16,
            model: None,
            zero123_checkpoint: None,
            export_dir: None,
            contact_sheet: true,
            strength: 0.6,
            feather_px: 8,
            brush_px: 24.0,
            brush_hardness: 1.0,
            sweep_axis: SweepAxis::Seed,
            sweep_rows: "1, 2, 3".into(),
            sweep_guidance: "1.5, 3, 4.5, 7".into(),
            multiview: MultiviewSettings::default(),
            prompt: String::new(),
            recent_prompts: Vec::new(),
            prompt_size_px: [1024, 1024],
            guidance_model: None,
            guidance_by_model: BTreeMap::new(),
        }
    }
}

/// Which orbit a multi-view set follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrbitChoice {
    /// Zero123++ v1.2's six views (azimuth 30°…330°, elevations 20° and −10° alternating).
    #[default]
    Zero123Plus,
    /// Frames evenly round the object at the reference's elevation.
    Turntable,
    /// A typed list of `elevation azimuth [radius]` lines.
    Custom,
}

impl OrbitChoice {
    /// Label shown in the UI.
    pub fn label(self) -> &'static str {
        match self {
            Self::Zero123Plus => "Zero123++ (6 views)",
            Self::Turntable => "Turntable",
            Self::Custom => "Custom list",
        }
    }
}

/// The multi-view mode's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MultiviewSettings {
    /// Which orbit.
    pub orbit: OrbitChoice,
    /// Frames of a turntable, the reference included.
    pub turntable_frames: usize,
    /// The custom orbit as typed: lines of `elevation azimuth [radius]` in degrees.
    pub custom_views: String,
    /// Elevation of the reference's camera, in degrees.
    pub input_elevation_deg: f64,
    /// Every view from the same noise (else view i uses seed + i).
    pub shared_seed: bool,
    /// Export the views with the object cut from the background as alpha.
    pub export_alpha: bool,
}

impl Default for MultiviewSettings {
    fn default() -> Self {
        Self {
            orbit: OrbitChoice::default(),
            turntable_frames: 8,
            custom_views: "20 45\n20 135\n20 225\n20 315".into(),
            input_elevation_deg: 0.0,
            shared_seed: false,
            export_alpha: false,
        }
    }
}

impl MultiviewSettings {
    /// The engine's orbit preset, or what is wrong with the typed list.
    pub fn preset(&self) -> Result<OrbitPreset, String> {
        match self.orbit {
            OrbitChoice::Zero123Plus => Ok(OrbitPreset::Zero123Plus),
            OrbitChoice::Turntable => Ok(OrbitPreset::Turntable(self.turntable_frames)),
            OrbitChoice::Custom => OrbitPreset::parse_custom(&self.custom_views, "the custom list")
                .map_err(|e| match e {
                    lumos_engine::EngineError::InvalidRequest(why) => why,
                    other => other.to_string(),
                }),
        }
    }

    /// Where the reference's camera is.
    pub fn input_pose(&self) -> OrbitPose {
        OrbitPose {
            elevation_deg: self.input_elevation_deg,
            azimuth_deg: 0.0,
            radius: DEFAULT_RADIUS,
        }
    }

    /// The views the next set makes, or what is wrong with the typed list.
    pub fn views(&self) -> Result<Vec<OrbitPose>, String> {
        Ok(self.preset()?.views(&self.input_pose()))
    }

    fn migrate(&mut self) {
        self.turntable_frames = self.turntable_frames.clamp(
            *limits::TURNTABLE_FRAMES.start(),
            *limits::TURNTABLE_FRAMES.end(),
        );
        if !self.input_elevation_deg.is_finite() {
            self.input_elevation_deg = 0.0;
        }
        self.input_elevation_deg = self
            .input_elevation_deg
            .clamp(-limits::INPUT_ELEVATION_DEG, limits::INPUT_ELEVATION_DEG);
    }
}

/// Bounds the UI offers; loaded settings are clamped into them.
pub mod limits {
    use std::ops::RangeInclusive;
    /// Images per variations run.
    pub const COUNT: RangeInclusive<usize> = 1..=16;
    /// Frames per interpolation run.
    pub const FRAMES: RangeInclusive<usize> = 2..=24;
    /// Sampler steps (the engine's maximum; the slider is logarithmic).
    pub const STEPS: RangeInclusive<usize> = 1..=1000;
    /// Classifier-free guidance scale.
    pub const GUIDANCE: RangeInclusive<f64> = 1.0..=15.0;
    /// Most images of one sweep.
    pub const SWEEP_CELLS: usize = 64;
    /// Frames of a turntable (what `lumos multiview --preset turntable:N` accepts).
    pub const TURNTABLE_FRAMES: RangeInclusive<usize> = 2..=72;
    /// Elevation of the reference's camera either side of the horizon, in degrees.
    pub const INPUT_ELEVATION_DEG: f64 = 60.0;
}

/// Numbers separated by commas or spaces (`1, 2.5 4`); at least one.
pub fn parse_values(text: &str, what: &str) -> Result<Vec<f64>, String> {
    let values = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("the sweep's {what} must be numbers; `{t}` is not one"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if values.is_empty() {
        return Err(format!("give the sweep at least one of its {what}"));
    }
    Ok(values)
}

impl Settings {
    /// Parses stored settings; unknown or newer data falls back to defaults field by field
    /// (`#[serde(default)]`), and values outside the UI's bounds are clamped.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let mut settings: Self = serde_json::from_str(text)?;
        settings.migrate();
        Ok(settings)
    }

    /// The JSON that [`Self::from_json`] reads.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Brings settings of any version to the current one.
    fn migrate(&mut self) {
        // Version 1 is the first; later versions add their steps here.
        self.version = SETTINGS_VERSION;
        self.count = self
            .count
            .clamp(*limits::COUNT.start(), *limits::COUNT.end());
        self.frames = self
            .frames
            .clamp(*limits::FRAMES.start(), *limits::FRAMES.end());
        self.sampler.steps = self
            .sampler
            .steps
            .clamp(*limits::STEPS.start(), *limits::STEPS.end());
        if !self.sampler.guidance.is_finite() {
            self.sampler.guidance = SamplerSettings::default().guidance;
        }
        self.sampler.guidance = self
            .sampler
            .guidance
            .clamp(*limits::GUIDANCE.start(), *limits::GUIDANCE.end());
        self.guidance_by_model
            .retain(|_, guidance| guidance.is_finite());
        for guidance in self.guidance_by_model.values_mut() {
            *guidance = guidance.clamp(*limits::GUIDANCE.start(), *limits::GUIDANCE.end());
        }
        if !self.strength.is_finite() {
            self.strength = Self::default().strength;
        }
        self.strength = self.strength.clamp(0.0, 1.0);
        self.feather_px = self.feather_px.min(32);
        if !self.brush_px.is_finite() {
            self.brush_px = Self::default().brush_px;
        }
        self.brush_px = self.brush_px.clamp(2.0, 128.0);
        if !self.brush_hardness.is_finite() {
            self.brush_hardness = Self::default().brush_hardness;
        }
        self.brush_hardness = self.brush_hardness.clamp(0.0, 1.0);
        if let Solver::DpmSolverPp { order } = &mut self.sampler.solver {
            *order = (*order).clamp(1, 3);
        }
        self.multiview.migrate();
        self.recent_prompts
            .truncate(crate::prompt::MAX_RECENT_PROMPTS);
        self.prompt_size_px = crate::prompt::snap_size(self.prompt_size_px);
    }

    /// The engine's mode for the next run, or what is wrong with the typed sweep values.
    pub fn engine_mode(&self) -> Result<Mode, String> {
        Ok(match self.mode {
            ModeKind::Variations => Mode::Variations { count: self.count },
            ModeKind::Interpolate => Mode::Interpolate {
                frames: self.frames,
                path: self.path,
            },
            ModeKind::Multiview => {
                return Err("a multi-view set is not made from a generation mode".into());
            }
            ModeKind::Sweep => {
                let values = parse_values(&self.sweep_rows, "row values")?;
                let rows = match self.sweep_axis {
                    SweepAxis::Seed => SweepRows::seeds_from(&values)?,
                    SweepAxis::Weight => {
                        SweepRows::Weights(values.iter().map(|&v| v as f32).collect())
                    }
                };
                let guidance = parse_values(&self.sweep_guidance, "guidance values")?;
                if rows.len() * guidance.len() > limits::SWEEP_CELLS {
                    return Err(format!(
                        "a sweep of {} × {} images is more than the {} this app makes at once",
                        rows.len(),
                        guidance.len(),
                        limits::SWEEP_CELLS
                    ));
                }
                Mode::Sweep { rows, guidance }
            }
        })
    }

    /// The precision to run the prior at on the chosen device.
    pub fn precision(&self) -> Precision {
        match self.device {
            DeviceChoice::Cpu => Precision::F32,
            DeviceChoice::Cuda(_) | DeviceChoice::Metal(_) => self.gpu_precision,
        }
    }

    /// Number of images the next run makes.
    pub fn image_count(&self) -> usize {
        match self.mode {
            ModeKind::Variations => self.count,
            ModeKind::Interpolate => self.frames,
            ModeKind::Sweep => self
                .engine_mode()
                .map_or(0, |mode| lumos_engine::pipelines::image_count(&mode)),
            ModeKind::Multiview => self.multiview.views().map_or(0, |views| views.len()),
        }
    }

    /// Moves the seed on after a run was queued, following [`Self::seed_policy`].
    pub fn advance_seed(&mut self, random: u64) {
        match self.seed_policy {
            SeedPolicy::Locked => {}
            SeedPolicy::Random => self.sampler.seed = random,
            SeedPolicy::Increment => {
                self.sampler.seed = self.sampler.seed.wrapping_add(self.image_count() as u64);
            }
        }
    }

    /// Takes over the settings a result was made with ("reuse settings", or a dropped PNG).
    /// The seed is locked so that the same image comes out again.
    pub fn reuse(&mut self, meta: &GenerationMeta) {
        match meta.mode {
            Mode::Variations { count } => {
                self.mode = ModeKind::Variations;
                self.count = count;
            }
            Mode::Interpolate { frames, path } => {
                self.mode = ModeKind::Interpolate;
                self.frames = frames;
                self.path = path;
            }
            Mode::Sweep {
                ref rows,
                ref guidance,
            } => {
                self.mode = ModeKind::Sweep;
                let join = |values: Vec<String>| values.join(", ");
                (self.sweep_axis, self.sweep_rows) = match rows {
                    SweepRows::Seeds(v) => (
                        SweepAxis::Seed,
                        join(v.iter().map(ToString::to_string).collect()),
                    ),
                    SweepRows::Weights(v) => (
                        SweepAxis::Weight,
                        join(v.iter().map(ToString::to_string).collect()),
                    ),
                };
                self.sweep_guidance = join(guidance.iter().map(ToString::to_string).collect());
            }
        }
        self.sampler = meta.settings.clone();
        self.mix = meta.mix_settings;
        if let Some(strength) = meta.strength {
            self.strength = strength;
        }
        // `settings.seed` is the image's own seed: image i of a run uses seed + i.
        if matches!(meta.mode, Mode::Variations { .. }) {
            self.sampler.seed = meta.settings.seed.wrapping_sub(meta.index as u64);
        }
        self.seed_policy = SeedPolicy::Locked;
        if let Some(prompt) = &meta.prompt {
            // A text-to-image result: its prompt and size; the model is the prompt model.
            self.prompt = prompt.clone();
            self.prompt_size_px = meta.size;
        } else {
            self.model = Some(meta.model.clone());
        }
        self.migrate();
    }
}

/// Name of the settings file in the config folder.
pub const SETTINGS_FILE_NAME: &str = "settings.json";

/// The settings file of the real app (`<config dir>/settings.json`), if the OS has a config
/// folder.
pub fn default_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "Lumos", "Lumos Studio")
        .map(|dirs| dirs.config_dir().join(SETTINGS_FILE_NAME))
}

/// What reading the settings file found.
#[derive(Debug)]
pub struct LoadedSettings {
    /// The settings to start with (defaults when there were none or they were unreadable).
    pub settings: Settings,
    /// Whether the file existed (if not, older settings in eframe's storage may be migrated).
    pub found: bool,
    /// What the user should be told: the file was damaged and where it was kept.
    pub notice: Option<String>,
}

/// Reads the settings file. A missing file gives defaults. A file that cannot be read or
/// parsed is renamed to `settings.json.damaged-<unix secs>` (never deleted, never overwritten)
/// and defaults are used, with a notice that says so and where it is.
pub fn load_file(path: &Path) -> LoadedSettings {
    remove_stale_temporaries(path);
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| e.to_string()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return LoadedSettings {
                settings: Settings::default(),
                found: false,
                notice: None,
            };
        }
        Err(error) => Err(error.to_string()),
    };
    let parsed = text.and_then(|text| Settings::from_json(&text).map_err(|e| e.to_string()));
    match parsed {
        Ok(settings) => LoadedSettings {
            settings,
            found: true,
            notice: None,
        },
        Err(reason) => {
            let kept = match set_aside(path) {
                Ok(aside) => format!("it was kept as {}", aside.display()),
                Err(error) => format!("it could not be moved aside ({error:#}) and stays as it is"),
            };
            LoadedSettings {
                settings: Settings::default(),
                found: true,
                notice: Some(format!(
                    "Your saved settings could not be read ({reason}); starting with defaults. \
                     The damaged file was not deleted: {kept}."
                )),
            }
        }
    }
}

/// Renames a damaged file to `<name>.damaged-<unix secs>` (or `… (2)`, … if that exists).
pub fn set_aside(path: &Path) -> anyhow::Result<PathBuf> {
    let secs = crate::history::now_unix_secs();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = (1u32..)
        .map(|n| {
            let suffix = if n == 1 {
                String::new()
            } else {
                format!(" ({n})")
            };
            path.with_file_name(format!("{name}.damaged-{secs}{suffix}"))
        })
        .find(|candidate| !candidate.exists())
        .context("no free name")?;
    std::fs::rename(path, &aside)
        .with_context(|| format!("could not rename {}", path.display()))?;
    Ok(aside)
}

/// Temporary files of [`save_file`] start with this (then the file name, the process id).
const TEMPORARY_PREFIX: &str = ".";
/// … and end with this.
const TEMPORARY_SUFFIX: &str = ".tmp";

fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        "{TEMPORARY_PREFIX}{name}.{}{TEMPORARY_SUFFIX}",
        std::process::id()
    ))
}

/// Removes temporary files a killed save left beside `path` (they are never read). Only those
/// older than a minute: another instance of the app may be saving right now.
fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!("{TEMPORARY_PREFIX}{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 60);
        if stale && file_name.starts_with(&prefix) && file_name.ends_with(TEMPORARY_SUFFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes the settings file atomically: a temporary file beside it, flushed to disk, renamed
/// over the old one. After a crash at any moment the file holds the old or the new settings.
pub fn save_file(path: &Path, settings: &Settings) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create the settings folder {}", dir.display()))?;
    }
    let temporary = temporary_path(path);
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(settings.to_json().as_bytes())?;
        file.sync_all()
    })()
    .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        anyhow::bail!(
            "could not save the settings ({}) to {}",
            lumos_engine::imageio::write_failure(&error),
            path.display()
        );
    }
    Ok(())
}

/// A seed from the clock and a counter: good enough to pick "a random seed" without a RNG crate.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    // Keep seeds short enough to read and type.
    hasher.finish() % 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_json() {
        let mut settings = Settings {
            count: 7,
            mode: ModeKind::Interpolate,
            export_dir: Some("/tmp/out".into()),
            ..Settings::default()
        };
        settings.sampler.guidance = 6.5;
        let back = Settings::from_json(&settings.to_json()).expect("parse");
        assert_eq!(back, settings);
    }

    #[test]
    fn missing_and_unknown_fields_fall_back_to_defaults() {
        let back = Settings::from_json(r#"{"version": 99, "count": 3, "future_field": true}"#)
            .expect("parse");
        assert_eq!(back.count, 3);
        assert_eq!(back.version, SETTINGS_VERSION);
        assert_eq!(back.sampler, SamplerSettings::default());
    }

    #[test]
    fn out_of_range_values_are_clamped() {
        let back = Settings::from_json(
            r#"{"count": 1000, "sampler": {"steps": 0}, "guidance_by_model": {"a": 99, "b": 2}}"#,
        )
        .expect("parse");
        assert_eq!(back.count, *limits::COUNT.end());
        assert_eq!(back.sampler.steps, *limits::STEPS.start());
        assert_eq!(back.guidance_by_model["a"], *limits::GUIDANCE.end());
        assert_eq!(back.guidance_by_model["b"], 2.0);
    }

    #[test]
    fn sweep_values_are_parsed_or_refused_with_a_reason() {
        let mut settings = Settings {
            mode: ModeKind::Sweep,
            sweep_rows: "3, 4 5".into(),
            sweep_guidance: "2,7.5".into(),
            ..Settings::default()
        };
        assert_eq!(
            settings.engine_mode(),
            Ok(Mode::Sweep {
                rows: SweepRows::Seeds(vec![3, 4, 5]),
                guidance: vec![2.0, 7.5],
            })
        );
        assert_eq!(settings.image_count(), 6);
        settings.sweep_rows = "1.5".into();
        assert!(
            settings
                .engine_mode()
                .expect_err("not a seed")
                .contains("1.5")
        );
        settings.sweep_axis = SweepAxis::Weight;
        assert!(settings.engine_mode().is_ok());
        settings.sweep_guidance = "high".into();
        assert!(
            settings
                .engine_mode()
                .expect_err("not a number")
                .contains("high")
        );
        settings.sweep_guidance = " ".into();
        assert!(settings.engine_mode().is_err());
        assert_eq!(settings.image_count(), 0);
    }

    #[test]
    fn seed_policies() {
        let mut settings = Settings {
            count: 4,
            ..Settings::default()
        };
        settings.sampler.seed = 10;
        settings.seed_policy = SeedPolicy::Locked;
        settings.advance_seed(99);
        assert_eq!(settings.sampler.seed, 10);
        settings.seed_policy = SeedPolicy::Increment;
        settings.advance_seed(99);
        assert_eq!(settings.sampler.seed, 14);
        settings.seed_policy = SeedPolicy::Random;
        settings.advance_seed(99);
        assert_eq!(settings.sampler.seed, 99);
    }
}
