//! The file-system rows of the fault catalogue, with the app's real writers: the disk fills up
//! while exporting and while writing the history; the output or history folder is removed or
//! becomes read-only while the app runs; the settings file or a history file is damaged. Each
//! must end in a clear error (or a recovery that says what it did), with nothing half-written
//! and nothing lost.
//!
//! A full or read-only disk is a size-limited tmpfs (`mount -t tmpfs -o size=1m`), which needs
//! root (CI runs as root); elsewhere those tests print why they skip. Root ignores permission
//! bits, so "read-only" is a read-only remount of that tmpfs, never `chmod`.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use image::RgbImage;
use lumos_engine::protocol::{GenerationMeta, META_VERSION, MixSettings, Mode, SamplerSettings};
use lumos_studio::commands::ConflictChoice;
use lumos_studio::export::{self, ExportContent, ExportItem, ExportPlan};
use lumos_studio::{history, settings};

/// A tmpfs of `size` mounted on a fresh folder, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts it, or says why it cannot (not root, no `mount`, a container without the right).
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({status}); it needs root, as in CI"
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Makes the disk read-only while it is mounted.
    fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "remount read-only failed");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Mounts a small disk or prints why the test is skipped.
macro_rules! small_disk_or_skip {
    ($size:expr) => {
        match SmallDisk::mount($size) {
            Ok(disk) => disk,
            Err(reason) => {
                println!("SKIPPED: {reason}");
                return;
            }
        }
    };
}

/// Noise pixels: their PNG does not compress, so three of 512² fill a 1 MiB disk.
fn noise(side: u32, seed: u64) -> RgbImage {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    RgbImage::from_fn(side, side, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    })
}

fn meta(seed: u64, index: usize) -> GenerationMeta {
    GenerationMeta {
        version: META_VERSION,
        model: "faults".into(),
        mode: Mode::Variations { count: 3 },
        settings: SamplerSettings {
            seed,
            ..SamplerSettings::default()
        },
        index,
        mix: None,
        references: Vec::new(),
        size: [512, 512],
        parent: None,
        mix_settings: MixSettings::default(),
        strength: None,
        init_sha256: None,
        mask_sha256: None,
        prompt: None,
    }
}

/// An export of three large results into `dir`.
fn plan_of_three(dir: &Path) -> ExportPlan {
    let items = (0..3u64)
        .map(|i| ExportItem {
            path: dir.join(format!("result_{i}.png")),
            content: ExportContent::Result {
                image: Arc::new(noise(512, i)),
                meta: Box::new(meta(i, i as usize)),
            },
        })
        .collect();
    ExportPlan {
        items,
        conflicts: Vec::new(),
    }
}

/// Every file in `dir`: (name, whether it is a complete PNG with its settings).
fn files_in(dir: &Path) -> Vec<(String, bool)> {
    let mut files: Vec<(String, bool)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let path = e.path();
                    let complete = lumos_engine::imageio::load_image(&path).is_ok()
                        && lumos_engine::imageio::read_png_meta(&path).is_ok_and(|m| m.is_some());
                    (e.file_name().to_string_lossy().into_owned(), complete)
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn a_full_disk_while_exporting_is_a_clear_error_with_nothing_half_written() {
    let disk = small_disk_or_skip!("1m");
    let dir = disk.path().join("exports");
    let plan = plan_of_three(&dir);
    let error = export::execute(&plan, ConflictChoice::Skip, &dir)
        .expect_err("three 770 kB files cannot fit on 1 MiB");
    let text = format!("{error:#}");
    assert!(
        text.contains("disk is full") && text.contains("result_"),
        "{text}"
    );
    let files = files_in(&dir);
    assert!(
        files
            .iter()
            .all(|(name, complete)| *complete && name.ends_with(".png")),
        "only complete results may stay: {files:?}"
    );
    assert_eq!(files.len(), 1, "the first result fits: {files:?}");
}

#[test]
fn a_full_disk_while_replacing_an_export_keeps_the_old_file() {
    let disk = small_disk_or_skip!("1m");
    let dir = disk.path().to_owned();
    let path = dir.join("result_0.png");
    let old = plan_of_three(&dir);
    export::execute(
        &ExportPlan {
            items: old.items[..1].to_vec(),
            conflicts: Vec::new(),
        },
        ConflictChoice::Skip,
        &dir,
    )
    .expect("the first file fits");
    let before = std::fs::read(&path).expect("written");
    // The replacement is written beside the old file first: there is no room for both.
    let replacement = ExportPlan {
        items: vec![ExportItem {
            path: path.clone(),
            content: ExportContent::Result {
                image: Arc::new(noise(512, 99)),
                meta: Box::new(meta(99, 0)),
            },
        }],
        conflicts: vec![path.clone()],
    };
    let error = export::execute(&replacement, ConflictChoice::Overwrite, &dir)
        .expect_err("no room for the replacement");
    assert!(format!("{error:#}").contains("disk is full"), "{error:#}");
    assert_eq!(std::fs::read(&path).expect("still there"), before);
    assert_eq!(files_in(&dir).len(), 1, "{:?}", files_in(&dir));
}

#[test]
fn a_full_disk_while_writing_the_history_loses_no_earlier_result() {
    let disk = small_disk_or_skip!("1m");
    let history_dir = disk.path().join("history");
    let run_dir = history::run_dir(&history_dir, 1_700_000_000, 1);
    let mut written = 0;
    let error = loop {
        match history::write_result(
            &run_dir,
            written,
            &noise(512, written as u64),
            &meta(0, written),
        ) {
            Ok(()) => written += 1,
            Err(error) => break error,
        }
        assert!(written < 10, "a 1 MiB disk never filled up");
    };
    let text = format!("{error:#}");
    assert!(
        text.contains("disk is full") && text.contains(&format!("{written:03}.png")),
        "{text}"
    );
    let files = files_in(&run_dir);
    assert_eq!(
        files.len(),
        written,
        "no partial or temporary file: {files:?}"
    );
    assert!(files.iter().all(|(_, complete)| *complete), "{files:?}");
    let loaded = history::load_reporting(&history_dir);
    assert!(loaded.damaged.is_empty(), "{:?}", loaded.damaged);
    assert_eq!(loaded.runs.len(), 1);
    assert_eq!(loaded.runs[0].images.len(), written);
}

#[test]
fn a_read_only_export_folder_is_a_clear_error_and_nothing_is_written() {
    let disk = small_disk_or_skip!("4m");
    let dir = disk.path().to_owned();
    disk.remount_read_only();
    let error =
        export::execute(&plan_of_three(&dir), ConflictChoice::Skip, &dir).expect_err("read-only");
    let text = format!("{error:#}");
    assert!(
        text.contains("read-only") && text.contains("result_0.png"),
        "{text}"
    );
    assert!(files_in(&dir).is_empty());
}

#[test]
fn a_read_only_history_folder_is_a_clear_error_and_earlier_results_stay() {
    let disk = small_disk_or_skip!("4m");
    let history_dir = disk.path().to_owned();
    let run_dir = history::run_dir(&history_dir, 1_700_000_000, 1);
    history::write_result(&run_dir, 0, &noise(64, 0), &meta(0, 0)).expect("first result");
    disk.remount_read_only();
    let error =
        history::write_result(&run_dir, 1, &noise(64, 1), &meta(0, 1)).expect_err("read-only");
    assert!(format!("{error:#}").contains("read-only"), "{error:#}");
    let loaded = history::load_reporting(&history_dir);
    assert_eq!(loaded.runs.len(), 1);
    assert_eq!(loaded.runs[0].images.len(), 1);
}

#[test]
fn an_export_folder_removed_while_running_is_made_again() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("exports");
    std::fs::create_dir(&dir).expect("dir");
    let plan = plan_of_three(&dir);
    std::fs::remove_dir_all(&dir).expect("the user removes the folder");
    let report = export::execute(&plan, ConflictChoice::Skip, &dir).expect("written again");
    assert_eq!(report.written.len(), 3);
    assert!(files_in(&dir).iter().all(|(_, complete)| *complete));
}

#[test]
fn a_history_folder_removed_while_running_is_made_again() {
    let root = tempfile::tempdir().expect("tempdir");
    let history_dir = root.path().join("history");
    let run_dir = history::run_dir(&history_dir, 1_700_000_000, 1);
    history::write_result(&run_dir, 0, &noise(32, 0), &meta(0, 0)).expect("first");
    std::fs::remove_dir_all(&history_dir).expect("the user removes the folder");
    history::write_result(&run_dir, 1, &noise(32, 1), &meta(0, 1)).expect("second");
    let loaded = history::load_reporting(&history_dir);
    assert_eq!(loaded.runs[0].images.len(), 1, "the later result is kept");
}

#[test]
fn a_damaged_settings_file_is_kept_aside_and_the_app_starts_with_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(settings::SETTINGS_FILE_NAME);
    let good = settings::Settings {
        count: 7,
        ..settings::Settings::default()
    };
    settings::save_file(&path, &good).expect("save");
    assert_eq!(settings::load_file(&path).settings, good);
    // Cut short, as eframe's in-place rewrite leaves a file when killed mid-save.
    let text = std::fs::read(&path).expect("read");
    let damaged = &text[..text.len() / 2];
    std::fs::write(&path, damaged).expect("damage");
    let loaded = settings::load_file(&path);
    assert_eq!(loaded.settings, settings::Settings::default());
    let notice = loaded.notice.expect("the user is told");
    let kept: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let kept_name = kept[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        kept_name.starts_with("settings.json.damaged-"),
        "{kept_name}"
    );
    assert_eq!(
        std::fs::read(&kept[0]).expect("kept"),
        damaged,
        "kept byte for byte"
    );
    assert!(
        notice.contains(&kept_name) && notice.contains("defaults"),
        "{notice}"
    );
    // The next save writes a fresh file and leaves the damaged one alone.
    settings::save_file(&path, &good).expect("save");
    assert_eq!(settings::load_file(&path).settings, good);
    assert_eq!(std::fs::read(&kept[0]).expect("kept"), damaged);
}

#[test]
fn a_missing_settings_file_gives_defaults_silently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = settings::load_file(&dir.path().join(settings::SETTINGS_FILE_NAME));
    assert!(!loaded.found && loaded.notice.is_none());
    assert_eq!(loaded.settings, settings::Settings::default());
}

#[test]
fn a_damaged_history_file_is_kept_aside_and_reported_and_the_rest_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = history::run_dir(dir.path(), 1_700_000_000, 1);
    for i in 0..3 {
        history::write_result(&run_dir, i, &noise(32, i as u64), &meta(5, i)).expect("write");
    }
    let victim = run_dir.join("001.png");
    let bytes = std::fs::read(&victim).expect("read");
    std::fs::write(&victim, &bytes[..bytes.len() - 40]).expect("cut short");
    let loaded = history::load_reporting(dir.path());
    assert_eq!(loaded.runs.len(), 1);
    let indices: Vec<usize> = loaded.runs[0].images.iter().map(|i| i.index).collect();
    assert_eq!(indices, [0, 2]);
    assert_eq!(loaded.damaged.len(), 1, "{:?}", loaded.damaged);
    assert!(
        loaded.damaged[0].contains("001.png.damaged"),
        "{}",
        loaded.damaged[0]
    );
    assert!(!victim.exists());
    assert_eq!(
        std::fs::read(run_dir.join("001.png.damaged")).expect("kept"),
        bytes[..bytes.len() - 40]
    );
    // Set aside once: the next start is quiet.
    assert!(history::load_reporting(dir.path()).damaged.is_empty());
}
