//! History: every result is written to the app's data folder as it arrives (a PNG with its
//! settings embedded, via the engine's atomic writer), so the gallery survives restarts and
//! crashes. One folder per run: `<history>/run_<unix secs>_<run id>/<index>.png`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use lumos_engine::protocol::{GenerationMeta, Mode};

use crate::gallery::{Run, RunImage, RunStatus};

/// At most this many runs are loaded at start-up (the newest).
pub const MAX_RUNS_LOADED: usize = 50;

/// The default history folder (`<data dir>/history`), if the OS has a data directory.
pub fn default_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "Lumos", "Lumos Studio")
        .map(|dirs| dirs.data_dir().join("history"))
}

/// The folder of a run.
pub fn run_dir(history: &Path, created_unix_secs: u64, run_id: u64) -> PathBuf {
    history.join(format!("run_{created_unix_secs}_{run_id}"))
}

/// Writes one result into its run's folder.
pub fn write_result(
    run_dir: &Path,
    index: usize,
    image: &image::RgbImage,
    meta: &GenerationMeta,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("could not create the history folder {}", run_dir.display()))?;
    let path = run_dir.join(format!("{index:03}.png"));
    lumos_engine::imageio::write_png(&path, image, meta)?;
    Ok(())
}

/// Loads the newest runs, oldest first, with run id 0 (the gallery gives them ids).
/// Unreadable files are skipped (and logged): a crash may have left a folder half written,
/// which must not stop the app from starting.
pub fn load(history: &Path) -> Vec<Run> {
    let Ok(entries) = std::fs::read_dir(history) else {
        return Vec::new();
    };
    let mut dirs: Vec<(u64, u64, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| run_dir_key(&entry.path()))
        .collect();
    dirs.sort();
    let skip = dirs.len().saturating_sub(MAX_RUNS_LOADED);
    load_sorted(dirs.into_iter().skip(skip))
}

/// Loads the runs of these folders (a project's results), oldest first; folders that are gone
/// or are not run folders are skipped.
pub fn load_dirs(dirs: &[PathBuf]) -> Vec<Run> {
    let mut keyed: Vec<(u64, u64, PathBuf)> =
        dirs.iter().filter_map(|dir| run_dir_key(dir)).collect();
    keyed.sort();
    load_sorted(keyed.into_iter())
}

/// (created secs, run id, folder) of a `run_<secs>_<id>` folder.
fn run_dir_key(dir: &Path) -> Option<(u64, u64, PathBuf)> {
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let mut parts = name.strip_prefix("run_")?.split('_');
    let secs = parts.next()?.parse().ok()?;
    let id = parts.next()?.parse().ok()?;
    Some((secs, id, dir.to_owned()))
}

fn load_sorted(dirs: impl Iterator<Item = (u64, u64, PathBuf)>) -> Vec<Run> {
    let mut runs = Vec::new();
    for (secs, _, dir) in dirs {
        match load_run(&dir, secs) {
            Ok(Some(run)) => runs.push(run),
            Ok(None) => {}
            Err(error) => log::warn!("skipping history folder {}: {error:#}", dir.display()),
        }
    }
    runs
}

fn load_run(dir: &Path, created_unix_secs: u64) -> anyhow::Result<Option<Run>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    files.sort();
    let mut images = Vec::new();
    for path in files {
        let loaded = lumos_engine::imageio::load_image(&path).and_then(|image| {
            Ok(lumos_engine::imageio::read_png_meta(&path)?.map(|meta| (image, meta)))
        });
        match loaded {
            Ok(Some((image, meta))) => images.push(RunImage {
                index: meta.index,
                image: Arc::new(image),
                meta,
                texture: None,
                selected: false,
            }),
            Ok(None) => log::warn!("{} carries no settings; skipped", path.display()),
            Err(error) => log::warn!("skipping {}: {error:#}", path.display()),
        }
    }
    let Some(first) = images.first() else {
        return Ok(None);
    };
    let mut settings = first.meta.settings.clone();
    if matches!(first.meta.mode, Mode::Variations { .. }) {
        settings.seed = settings.seed.wrapping_sub(first.meta.index as u64);
    }
    Ok(Some(Run {
        id: 0,
        job: None,
        model: first.meta.model.clone(),
        mode: first.meta.mode.clone(),
        settings,
        references: first
            .meta
            .references
            .iter()
            .map(|r| r.name.clone())
            .collect(),
        status: RunStatus::FromHistory,
        created_unix_secs,
        history_dir: Some(dir.to_owned()),
        images,
    }))
}
