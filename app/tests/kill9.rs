//! Kill -9 trials: a writer process is killed with SIGKILL at random moments while it replaces
//! or adds files with the app's real writers, and after every kill the files must be the old or
//! the new complete version, parse, and be exactly what was written; temporary files a kill
//! leaves behind must never be taken for results.
//!
//! The writer is this test binary itself, started again on the ignored test
//! [`kill9_child_writer`] with the writer's name and folder in the environment. Writers:
//! - `export`: `export::execute` replacing one PNG with settings (the user chose Overwrite);
//! - `history`: `history::write_result` adding results to a run folder, which
//!   `history::load_reporting` must read back whole, with nothing set aside as damaged;
//! - `settings`: `settings::save_file` replacing the settings file;
//! - `project`: `lumos_engine::project::save` replacing a `.lumos` project (what File ▸ Save
//!   and the autosave call), read back with `project::load`.
//!
//! Adding a writer (e.g. the project save, `save_project(path, &Project)`): add a variant to
//! [`Writer`] and its arms in `name`, `write_version` (write version `k` of the file with the
//! real function), `written_version` (read the file back with the real reader and say which
//! version it holds, or why it is damaged) and `targets`; then list it in `ALL`. The trials,
//! the kill and the checks for leftovers are shared.
//!
//! `cargo test` runs 20 trials per writer (a few seconds); a longer run:
//!
//! ```sh
//! LUMOS_KILL9_TRIALS=200 cargo test -p lumos-studio --test kill9 -- --nocapture
//! ```

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;
use lumos_engine::protocol::{GenerationMeta, META_VERSION, MixSettings, Mode, SamplerSettings};
use lumos_studio::commands::ConflictChoice;
use lumos_studio::export::{self, ExportContent, ExportItem, ExportPlan};
use lumos_studio::{history, settings};

const WRITER_ENV: &str = "LUMOS_KILL9_WRITER";
const DIR_ENV: &str = "LUMOS_KILL9_DIR";
const READY: &str = "kill9-writer-ready";
/// Trials per writer in a plain `cargo test`.
const DEFAULT_TRIALS: usize = 20;

/// The writers under trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writer {
    Export,
    History,
    Settings,
    Project,
}

const ALL: [Writer; 4] = [
    Writer::Export,
    Writer::History,
    Writer::Settings,
    Writer::Project,
];

/// The project file the project writer replaces.
const PROJECT_FILE: &str = "scene.lumos";

/// Project version `k`: one noise reference (tens of kB) whose weight and seed are `k`.
fn project_of(version: u64) -> lumos_engine::project::Project {
    use lumos_engine::project::{Project, ProjectRecipe, ProjectReference};
    Project {
        references: vec![ProjectReference {
            name: format!("v{version}.png"),
            source: None,
            image: Arc::new(image_of(version)),
            alpha: None,
            weight: version as f32,
            crop: [0.5, 0.5],
        }],
        start_image: None,
        prompt: None,
        recipe: ProjectRecipe {
            mode: Some(Mode::Variations { count: 1 }),
            sampler: SamplerSettings {
                seed: version,
                ..SamplerSettings::default()
            },
            mix: MixSettings::default(),
            strength: 0.6,
            feather_px: 0,
            model: None,
        },
        app_settings: None,
        history: Vec::new(),
    }
}

/// The file an export replaces.
const EXPORT_FILE: &str = "result.png";

/// Pixels of version `k`: noise, so that the PNG is tens of kB and a write takes a while.
fn image_of(version: u64) -> RgbImage {
    let mut state = version.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    RgbImage::from_fn(96, 96, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    })
}

/// Settings of version `k` (its seed is `k`).
fn meta_of(version: u64) -> GenerationMeta {
    GenerationMeta {
        version: META_VERSION,
        model: "kill9".into(),
        mode: Mode::Variations { count: 1 },
        settings: SamplerSettings {
            seed: version,
            ..SamplerSettings::default()
        },
        index: version as usize,
        mix: None,
        references: Vec::new(),
        size: [96, 96],
        parent: None,
        mix_settings: MixSettings::default(),
        strength: None,
        init_sha256: None,
        mask_sha256: None,
        prompt: None,
    }
}

/// Reads a PNG with settings back as the app does; the version it holds, checked pixel for
/// pixel against what that version wrote.
fn png_version(path: &Path) -> Result<u64, String> {
    let image = lumos_engine::imageio::load_image(path).map_err(|e| format!("{e:#}"))?;
    let meta = lumos_engine::imageio::read_png_meta(path)
        .map_err(|e| format!("{e:#}"))?
        .ok_or("no settings in the PNG")?;
    let version = meta.settings.seed;
    if image != image_of(version) {
        return Err(format!("pixels are not those of version {version}"));
    }
    Ok(version)
}

fn history_run_dir(dir: &Path) -> PathBuf {
    history::run_dir(dir, 1_700_000_000, 1)
}

impl Writer {
    fn name(self) -> &'static str {
        match self {
            Self::Export => "export",
            Self::History => "history",
            Self::Settings => "settings",
            Self::Project => "project",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        ALL.into_iter().find(|w| w.name() == name)
    }

    /// Writes version `k` with the app's real writer.
    fn write_version(self, dir: &Path, k: u64) -> anyhow::Result<()> {
        match self {
            Self::Export => {
                let path = dir.join(EXPORT_FILE);
                let plan = ExportPlan {
                    conflicts: if path.exists() {
                        vec![path.clone()]
                    } else {
                        Vec::new()
                    },
                    items: vec![ExportItem {
                        path,
                        content: ExportContent::Result {
                            image: Arc::new(image_of(k)),
                            meta: Box::new(meta_of(k)),
                        },
                    }],
                };
                export::execute(&plan, ConflictChoice::Overwrite, dir)?;
                Ok(())
            }
            Self::History => {
                history::write_result(&history_run_dir(dir), k as usize, &image_of(k), &meta_of(k))
            }
            Self::Settings => {
                let mut s = settings::Settings::default();
                s.sampler.seed = k;
                s.count = 1 + (k as usize % 16);
                settings::save_file(&dir.join(settings::SETTINGS_FILE_NAME), &s)
            }
            Self::Project => {
                lumos_engine::project::save(&dir.join(PROJECT_FILE), &project_of(k))?;
                Ok(())
            }
        }
    }

    /// The version the files in `dir` hold now (for the history: how many results), or why
    /// they are damaged.
    fn written_version(self, dir: &Path) -> Result<u64, String> {
        match self {
            Self::Export => png_version(&dir.join(EXPORT_FILE)),
            Self::History => {
                let run_dir = history_run_dir(dir);
                let mut pngs = files_ending(&run_dir, ".png");
                // `{index:03}.png`: past 999 the names grow a digit; order by number.
                pngs.sort_by_key(|p| {
                    p.file_stem()
                        .and_then(|s| s.to_str())
                        .and_then(|s| s.parse::<u64>().ok())
                });
                for (i, path) in pngs.iter().enumerate() {
                    let expected = run_dir.join(format!("{i:03}.png"));
                    if *path != expected {
                        return Err(format!("{} is missing", expected.display()));
                    }
                    let version = png_version(path)?;
                    if version != i as u64 {
                        return Err(format!("{} holds version {version}", path.display()));
                    }
                }
                let loaded = history::load_reporting(dir);
                if !loaded.damaged.is_empty() {
                    return Err(format!("history reports damage: {:?}", loaded.damaged));
                }
                let results: usize = loaded.runs.iter().map(|r| r.images.len()).sum();
                if results != pngs.len() {
                    return Err(format!(
                        "the history loads {results} results from {} files",
                        pngs.len()
                    ));
                }
                Ok(pngs.len() as u64)
            }
            Self::Settings => {
                let path = dir.join(settings::SETTINGS_FILE_NAME);
                let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                let parsed = settings::Settings::from_json(&text).map_err(|e| e.to_string())?;
                if parsed.count != 1 + (parsed.sampler.seed as usize % 16) {
                    return Err(format!("a mix of versions: {text}"));
                }
                Ok(parsed.sampler.seed)
            }
            Self::Project => {
                let project = lumos_engine::project::load(&dir.join(PROJECT_FILE))
                    .map_err(|e| e.to_string())?;
                let k = project.recipe.sampler.seed;
                if project != project_of(k) {
                    return Err(format!("a mix of versions around version {k}"));
                }
                Ok(k)
            }
        }
    }

    /// The next version to write, after what is there.
    fn next_version(self, dir: &Path) -> u64 {
        match self {
            Self::History => self.written_version(dir).unwrap_or(0),
            Self::Export | Self::Settings | Self::Project => {
                self.written_version(dir).map_or(0, |v| v + 1)
            }
        }
    }

    /// Folders whose files are results or settings (temporary files must not look like them).
    fn targets(self, dir: &Path) -> Vec<PathBuf> {
        match self {
            Self::Export | Self::Settings | Self::Project => vec![dir.to_owned()],
            Self::History => vec![history_run_dir(dir)],
        }
    }

    /// Whether a file in a target folder is one this writer reads as a result.
    fn is_result_name(self, name: &str) -> bool {
        match self {
            Self::Export => name == EXPORT_FILE,
            Self::History => name
                .strip_suffix(".png")
                .is_some_and(|stem| stem.len() >= 3 && stem.bytes().all(|b| b.is_ascii_digit())),
            Self::Settings => name == settings::SETTINGS_FILE_NAME,
            Self::Project => name == PROJECT_FILE,
        }
    }
}

/// Files in `dir` whose names end with `suffix`, sorted.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The writer process: writes versions as fast as it can until it is killed.
#[test]
#[ignore = "the writer process of the kill -9 trials; they start it, it never ends by itself"]
fn kill9_child_writer() {
    let (Ok(name), Ok(dir)) = (std::env::var(WRITER_ENV), std::env::var(DIR_ENV)) else {
        return;
    };
    let writer = Writer::from_name(&name).expect("a known writer");
    let dir = PathBuf::from(dir);
    let mut k = writer.next_version(&dir);
    let parent = std::os::unix::process::parent_id();
    println!("{READY}");
    // Until killed; or until the trials themselves die (a panic, a timeout), so that no
    // writer is left running on its own.
    while std::os::unix::process::parent_id() == parent {
        writer.write_version(&dir, k).expect("write");
        k += 1;
    }
}

/// A small random number generator for the kill delays (seeded from the clock; printed).
struct Delays(u64);

impl Delays {
    fn next_micros(&mut self, max_micros: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % max_micros
    }
}

/// Figures of one writer's trials.
#[derive(Debug, Default)]
struct Figures {
    trials: usize,
    damaged: Vec<String>,
    killed_mid_write: usize,
    versions_written: u64,
}

fn run_trials(writer: Writer, trials: usize, delays: &mut Delays) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    // The old version every trial starts from.
    writer.write_version(dir.path(), 0).expect("first version");
    let mut figures = Figures::default();
    let first = writer
        .written_version(dir.path())
        .expect("the first version reads back");
    let mut last = first;
    let exe = std::env::current_exe().expect("this test binary");
    let mut leftovers_before = 0;
    for trial in 0..trials {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "kill9_child_writer",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_ENV, writer.name())
            .env(DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the writer");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        // libtest prints `test kill9_child_writer ... ` on the same line first.
        let ready = lines.any(|line| line.is_ok_and(|l| l.ends_with(READY)));
        assert!(
            ready,
            "the writer did not start: {:?}",
            child.wait_with_output()
        );
        // Writes take a few milliseconds each; kill anywhere in the first few of them.
        std::thread::sleep(Duration::from_micros(delays.next_micros(40_000)));
        if let Ok(Some(status)) = child.try_wait() {
            let output = child.wait_with_output().expect("output");
            panic!(
                "the {} writer stopped by itself ({status}): {}",
                writer.name(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        figures.trials += 1;

        let leftovers: Vec<String> = writer
            .targets(dir.path())
            .iter()
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !writer.is_result_name(name))
            .collect();
        // A new temporary file: this kill landed in the middle of a write.
        if leftovers.len() > leftovers_before {
            figures.killed_mid_write += 1;
        }
        leftovers_before = leftovers.len();
        for name in &leftovers {
            // A temporary file may stay after a kill, but must never look like a result.
            if name.ends_with(".png") || name.ends_with(".json") || !name.starts_with('.') {
                figures.damaged.push(format!(
                    "trial {trial}: leftover {name} looks like a result"
                ));
            }
        }
        match writer.written_version(dir.path()) {
            Ok(version) if version >= last => last = version,
            Ok(version) => figures.damaged.push(format!(
                "trial {trial}: went back from version {last} to {version}"
            )),
            Err(reason) => figures.damaged.push(format!("trial {trial}: {reason}")),
        }
    }
    figures.versions_written = last - first;
    figures
}

#[test]
fn files_survive_kill_9_at_random_moments() {
    let trials = std::env::var("LUMOS_KILL9_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_TRIALS);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut delays = Delays(seed);
    let started = Instant::now();
    let mut damaged = Vec::new();
    for writer in ALL {
        let figures = run_trials(writer, trials, &mut delays);
        println!(
            "kill -9 {}: {} trials, {} damaged files, {} kills left a new temporary file (killed \
             mid-write), {} versions completed",
            writer.name(),
            figures.trials,
            figures.damaged.len(),
            figures.killed_mid_write,
            figures.versions_written,
        );
        damaged.extend(figures.damaged);
    }
    println!(
        "kill -9 trials took {:.1} s (delay seed {seed})",
        started.elapsed().as_secs_f64()
    );
    assert!(damaged.is_empty(), "damaged files: {damaged:#?}");
}
