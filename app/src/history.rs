//! History: every result is written to the app's data folder as it arrives (a PNG with its
//! settings embedded, via the engine's atomic writer), so the gallery survives restarts and
//! crashes. One folder per run: `<history>/run_<unix secs>_<run id>/<index>.png`. Finished
//! multi-view sets are kept beside them ([`multiview_set_dir`]).
//!
//! A file that is there but cannot be read back (a disk error, a copy cut short) is renamed to
//! `<index>.png.damaged` — kept, so nothing is lost, but no longer loaded — and the user is
//! told. Temporary files of a write that was killed never end in `.png`, so they are never
//! taken for results.

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

/// Seconds since the Unix epoch now (0 on a clock set before 1970): the time in the names of
/// history folders and set-aside files.
pub fn now_unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The folder a finished multi-view set is kept in: `<history>/multiview_<unix secs>_<run id>/`,
/// written like "Export set" writes it (views, `transforms.json`, grid, turntable). The gallery
/// loads only `run_*` folders, so these stay out of it.
pub fn multiview_set_dir(history: &Path, created_unix_secs: u64, run_id: u64) -> PathBuf {
    history.join(format!("multiview_{created_unix_secs}_{run_id}"))
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

/// What loading the history found.
#[derive(Default)]
pub struct Loaded {
    /// The newest runs, oldest first.
    pub runs: Vec<Run>,
    /// Files that could not be read and were set aside, with what to tell the user.
    pub damaged: Vec<String>,
}

/// Loads the newest runs, oldest first, with run id 0 (the gallery gives them ids).
pub fn load(history: &Path) -> Vec<Run> {
    load_reporting(history).runs
}

/// Loads the newest runs like [`load`], and sets unreadable result files aside
/// (`NNN.png.damaged`), saying which: a crash may have left a folder half written, which must
/// not stop the app from starting, nor hide that something was lost.
pub fn load_reporting(history: &Path) -> Loaded {
    let Ok(entries) = std::fs::read_dir(history) else {
        return Loaded::default();
    };
    let mut dirs: Vec<(u64, u64, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| run_dir_key(&entry.path()))
        .collect();
    dirs.sort();
    let skip = dirs.len().saturating_sub(MAX_RUNS_LOADED);
    load_sorted(dirs.into_iter().skip(skip))
}

/// Loads the runs of these folders (a project's results), oldest first, like
/// [`load_reporting`]; folders that are gone or are not run folders are skipped.
pub fn load_dirs(dirs: &[PathBuf]) -> Loaded {
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

fn load_sorted(dirs: impl Iterator<Item = (u64, u64, PathBuf)>) -> Loaded {
    let mut loaded = Loaded::default();
    for (secs, _, dir) in dirs {
        match load_run(&dir, secs, &mut loaded.damaged) {
            Ok(Some(run)) => loaded.runs.push(run),
            Ok(None) => {}
            Err(error) => log::warn!("skipping history folder {}: {error:#}", dir.display()),
        }
    }
    loaded
}

/// Renames an unreadable history file to `<name>.damaged` and says so.
fn set_aside(path: &Path, error: &anyhow::Error) -> String {
    let aside = path.with_file_name(format!(
        "{}.damaged",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let kept = if aside.exists() {
        "it stays where it is".to_string()
    } else {
        match std::fs::rename(path, &aside) {
            Ok(()) => format!("it was kept as {}", aside.display()),
            Err(e) => format!("it could not be renamed ({e}) and stays where it is"),
        }
    };
    format!(
        "A result in the history could not be read ({error:#}); {kept}. The other results \
         are loaded."
    )
}

/// Temporary files older than this are left over from a write that was killed.
const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes what killed writes leave in a run folder (hidden `.*.tmp` files, never results),
/// once they are old enough that no running writer can still own them.
fn remove_stale_temporaries(entries: &[PathBuf]) {
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !(name.starts_with('.') && name.ends_with(".tmp")) {
            continue;
        }
        let age = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if age.is_some_and(|age| age > STALE_TEMPORARY) {
            match std::fs::remove_file(path) {
                Ok(()) => log::info!(
                    "removed {}, left by a write that was cut off",
                    path.display()
                ),
                Err(error) => log::warn!("could not remove {}: {error}", path.display()),
            }
        }
    }
}

fn load_run(
    dir: &Path,
    created_unix_secs: u64,
    damaged: &mut Vec<String>,
) -> anyhow::Result<Option<Run>> {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .collect();
    remove_stale_temporaries(&entries);
    let mut files: Vec<PathBuf> = entries
        .into_iter()
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
            Err(error) => {
                let notice = set_aside(&path, &anyhow::Error::new(error));
                log::warn!("{notice}");
                damaged.push(notice);
            }
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
        prompt: first.meta.prompt.clone(),
        status: RunStatus::FromHistory,
        created_unix_secs,
        history_dir: Some(dir.to_owned()),
        images,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_temporaries_of_killed_writes_are_removed_fresh_ones_and_results_kept() {
        let history = tempfile::tempdir().expect("tempdir");
        let dir = run_dir(history.path(), 1_700_000_000, 1);
        let meta = lumos_engine::protocol::GenerationMeta {
            version: lumos_engine::protocol::META_VERSION,
            model: "m".into(),
            mode: Mode::Variations { count: 1 },
            settings: lumos_engine::protocol::SamplerSettings::default(),
            index: 0,
            mix: None,
            references: Vec::new(),
            size: [4, 4],
            parent: None,
            mix_settings: lumos_engine::protocol::MixSettings::default(),
            strength: None,
            init_sha256: None,
            mask_sha256: None,
            prompt: None,
        };
        write_result(&dir, 0, &image::RgbImage::new(4, 4), &meta).expect("write");
        let old = dir.join(".001.png.4242.tmp");
        let fresh = dir.join(".002.png.4243.tmp");
        std::fs::write(&old, b"half a png").expect("write");
        std::fs::write(&fresh, b"being written").expect("write");
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .and_then(|f| f.set_modified(an_hour_ago))
            .expect("age the file");
        let loaded = load_reporting(history.path());
        assert_eq!(loaded.runs.len(), 1);
        assert_eq!(loaded.runs[0].images.len(), 1);
        assert!(loaded.damaged.is_empty());
        assert!(!old.exists(), "an hour-old temporary is removed");
        assert!(fresh.exists(), "a writer may still own a fresh one");
    }
}
