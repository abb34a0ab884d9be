//! The app's side of project files (the format is `lumos_engine::project`): what is captured
//! from the canvas, start image and settings, how it is put back, and crash recovery.
//!
//! Recovery: while the app runs, a session marker (`session.pid`, holding the process id) sits
//! in the recovery folder, and the work is autosaved there (`autosave.lumos`) every minute when
//! it changed, and on quit. A clean quit removes the marker; finding it at start-up means the
//! last session ended without one (a crash, a kill, a power cut), and the app offers the
//! autosave back. A marker whose process is still alive is another running instance: that one
//! owns the folder, and this one neither offers nor autosaves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lumos_engine::project::{Project, ProjectRecipe, ProjectReference, ProjectStartImage};

use crate::panels::start_image::StartImage;
use crate::references::{Canvas, Reference};
use crate::settings::Settings;

/// How often the work is autosaved when it changed.
pub const AUTOSAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// The project of the current canvas, start image and settings.
pub fn capture(
    canvas: &Canvas,
    start: Option<&StartImage>,
    settings: &Settings,
    history: Vec<PathBuf>,
) -> Project {
    Project {
        references: canvas
            .references
            .iter()
            .map(|r| ProjectReference {
                name: r.name.clone(),
                source: r.path.clone(),
                image: r.image.clone(),
                alpha: r.alpha.clone(),
                weight: r.weight,
                crop: r.crop,
            })
            .collect(),
        start_image: start.map(|s| ProjectStartImage {
            name: s.name.clone(),
            image: s.image.clone(),
            mask: s.mask().cloned().map(Arc::new),
            alpha: s.alpha.clone().map(Arc::new),
        }),
        prompt: (!settings.prompt.trim().is_empty()).then(|| settings.prompt.clone()),
        recipe: ProjectRecipe {
            mode: settings.engine_mode().ok(),
            sampler: settings.sampler.clone(),
            mix: settings.mix,
            strength: settings.strength,
            feather_px: settings.feather_px,
            model: settings.model.clone(),
        },
        app_settings: serde_json::to_value(settings).ok(),
        history,
    }
}

/// What a project puts back.
pub struct Restored {
    /// The references, in order.
    pub references: Vec<Reference>,
    /// The starting image with its mask.
    pub start: Option<StartImage>,
    /// The settings, when the project carried readable ones.
    pub settings: Option<Settings>,
    /// Why the settings were not used, if they were not.
    pub settings_problem: Option<String>,
    /// History folders of its results.
    pub history: Vec<PathBuf>,
}

/// Turns a project back into app state.
pub fn restore(project: Project) -> Restored {
    let references = project
        .references
        .into_iter()
        .map(|r| {
            let mut reference = Reference::from_shared(r.name, r.source, r.image);
            reference.alpha = r.alpha;
            reference.weight = r.weight;
            reference.crop = r.crop;
            reference
        })
        .collect();
    let start = project.start_image.map(|s| {
        StartImage::new(s.name, &s.image)
            .with_alpha(s.alpha.as_deref())
            .with_mask(s.mask.as_deref())
    });
    let (settings, settings_problem) = match project.app_settings {
        Some(value) => match Settings::from_json(&value.to_string()) {
            Ok(settings) => (Some(settings), None),
            Err(error) => (None, Some(error.to_string())),
        },
        None => (None, None),
    };
    Restored {
        references,
        start,
        settings,
        settings_problem,
        history: project.history,
    }
}

/// The path a "Save as" writes: the name given, with `.lumos` added when it has another
/// extension or none.
pub fn with_project_extension(path: &Path) -> PathBuf {
    let ext = lumos_engine::project::PROJECT_EXTENSION;
    if path.extension().is_some_and(|e| e == ext) {
        path.to_owned()
    } else {
        let mut name = path.as_os_str().to_owned();
        name.push(".");
        name.push(ext);
        PathBuf::from(name)
    }
}

/// The recovery folder: session marker and autosave.
pub struct Recovery {
    dir: PathBuf,
}

/// What start-up found in the recovery folder.
#[derive(Debug, PartialEq)]
pub enum SessionStart {
    /// The last session ended cleanly (or there was none).
    Clean,
    /// The last session did not end cleanly and left this autosave.
    Crashed {
        /// The autosave to offer.
        autosave: PathBuf,
    },
    /// Another instance is running and owns the folder.
    OtherInstance,
}

impl Recovery {
    /// The recovery folder (created when first written).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The default folder (`<data dir>/recovery`), if the OS has a data directory.
    pub fn default_dir() -> Option<PathBuf> {
        directories::ProjectDirs::from("org", "Lumos", "Lumos Studio")
            .map(|dirs| dirs.data_dir().join("recovery"))
    }

    /// Where the work is autosaved.
    pub fn autosave_path(&self) -> PathBuf {
        self.dir.join("autosave.lumos")
    }

    fn marker_path(&self) -> PathBuf {
        self.dir.join("session.pid")
    }

    /// Looks at what the last session left, then marks this session as running.
    pub fn start_session(&self) -> anyhow::Result<SessionStart> {
        let previous = std::fs::read_to_string(self.marker_path()).ok();
        if let Some(pid) = previous
            .as_deref()
            .and_then(|p| p.trim().parse::<u32>().ok())
            && pid != std::process::id()
            && process_alive(pid)
        {
            return Ok(SessionStart::OtherInstance);
        }
        std::fs::create_dir_all(&self.dir)?;
        lumos_engine::imageio::replace_file(
            &self.marker_path(),
            std::process::id().to_string().as_bytes(),
        )?;
        let autosave = self.autosave_path();
        Ok(if previous.is_some() && autosave.is_file() {
            SessionStart::Crashed { autosave }
        } else {
            SessionStart::Clean
        })
    }

    /// Marks the session as ended cleanly.
    pub fn end_session(&self) {
        let _ = std::fs::remove_file(self.marker_path());
    }

    /// Keeps an autosave the user chose not to restore under another name (the next discard
    /// replaces it), so that a wrong click loses nothing.
    pub fn set_aside(&self) -> std::io::Result<PathBuf> {
        let aside = self.dir.join("autosave-discarded.lumos");
        std::fs::rename(self.autosave_path(), &aside)?;
        Ok(aside)
    }
}

/// Whether a process with this id runs (Linux: `/proc`; elsewhere unknown, taken as not).
fn process_alive(pid: u32) -> bool {
    cfg!(target_os = "linux") && Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_session_that_did_not_end_offers_its_autosave() {
        let dir = tempfile::tempdir().expect("tempdir");
        let recovery = Recovery::new(dir.path().join("recovery"));
        assert_eq!(
            recovery.start_session().expect("start"),
            SessionStart::Clean
        );
        std::fs::write(recovery.autosave_path(), b"work").expect("autosave");
        recovery.end_session();
        assert_eq!(
            recovery.start_session().expect("start"),
            SessionStart::Clean,
            "a clean quit offers nothing"
        );
        // This session now "crashes": its marker stays. A marker of a dead process (ids beyond
        // the kernel's pid_max) means a crash, one of our own process too.
        std::fs::write(dir.path().join("recovery/session.pid"), b"4999999").expect("marker");
        assert_eq!(
            recovery.start_session().expect("start"),
            SessionStart::Crashed {
                autosave: recovery.autosave_path()
            }
        );
        let aside = recovery.set_aside().expect("set aside");
        assert_eq!(std::fs::read(aside).expect("kept"), b"work");
        // A live process (the parent of this test) owns the folder.
        let parent = std::os::unix::process::parent_id();
        std::fs::write(dir.path().join("recovery/session.pid"), parent.to_string())
            .expect("marker");
        if cfg!(target_os = "linux") {
            assert_eq!(
                recovery.start_session().expect("start"),
                SessionStart::OtherInstance
            );
        }
    }

    #[test]
    fn save_as_adds_the_extension_once() {
        assert_eq!(
            with_project_extension(Path::new("/a/scene")),
            Path::new("/a/scene.lumos")
        );
        assert_eq!(
            with_project_extension(Path::new("/a/scene.lumos")),
            Path::new("/a/scene.lumos")
        );
        assert_eq!(
            with_project_extension(Path::new("/a/scene.png")),
            Path::new("/a/scene.png.lumos")
        );
    }
}
