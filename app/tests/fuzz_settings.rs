//! Fuzzing the app's settings file on the stable toolchain, with the engine's harness pieces
//! (`engine/tests/fuzz_support`, included by path): mutated copies of real settings files,
//! byte-level and value-level. The invariant: reading never panics or hangs; a file that parses
//! gives settings inside the bounds the UI offers, which survive a save and a reload unchanged;
//! a file that does not parse is set aside (never deleted) and the app starts with defaults.
//!
//! `cargo test` runs 256 cases per harness; a longer run prints its figures:
//!
//! ```sh
//! LUMOS_FUZZ_CASES=200000 cargo test -p lumos-studio --test fuzz_settings -- --nocapture
//! ```

#[path = "../../engine/tests/fuzz_support/mod.rs"]
mod fuzz_support;

use fuzz_support::{apply, apply_json, json_edits, mutations, run, within_time_limit};
use lumos_studio::settings::{self, ModeKind, SeedPolicy, Settings, limits};

/// Settings files as the app writes them: the defaults and a well-used set.
fn samples() -> Vec<String> {
    let mut used = Settings {
        mode: ModeKind::Sweep,
        count: 9,
        frames: 12,
        seed_policy: SeedPolicy::Increment,
        model: Some("Lumos small".into()),
        export_dir: Some("/home/artist/Pictures/lumos".into()),
        sweep_rows: "7, 8, 9".into(),
        ..Settings::default()
    };
    used.sampler.steps = 30;
    used.sampler.guidance = 6.0;
    vec![Settings::default().to_json(), used.to_json()]
}

/// What the app does at start-up with a settings file holding `bytes`, checked.
fn start_up_with(bytes: Vec<u8>) -> Result<(), String> {
    within_time_limit("settings file", move || {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(settings::SETTINGS_FILE_NAME);
        std::fs::write(&path, &bytes).expect("write");
        let loaded = settings::load_file(&path);
        assert!(loaded.found);
        match loaded.notice {
            None => {
                check_in_bounds(&loaded.settings);
                // What is saved reads back the same.
                settings::save_file(&path, &loaded.settings).expect("save");
                let again = settings::load_file(&path);
                assert!(again.notice.is_none(), "{:?}", again.notice);
                assert_eq!(again.settings, loaded.settings);
                Ok(())
            }
            Some(notice) => {
                // Refused: defaults, and the damaged file kept aside byte for byte.
                assert_eq!(loaded.settings, Settings::default());
                assert!(!path.exists(), "the damaged file must be moved aside");
                let kept: Vec<_> = std::fs::read_dir(dir.path())
                    .expect("dir")
                    .flatten()
                    .map(|e| e.path())
                    .collect();
                assert_eq!(kept.len(), 1, "{kept:?}");
                assert_eq!(std::fs::read(&kept[0]).expect("kept"), bytes);
                assert!(notice.contains(&kept[0].display().to_string()), "{notice}");
                Err(notice)
            }
        }
    })
}

fn check_in_bounds(s: &Settings) {
    assert!(limits::COUNT.contains(&s.count), "count {}", s.count);
    assert!(limits::FRAMES.contains(&s.frames), "frames {}", s.frames);
    assert!(
        limits::STEPS.contains(&s.sampler.steps),
        "steps {}",
        s.sampler.steps
    );
    assert!(
        limits::GUIDANCE.contains(&s.sampler.guidance),
        "guidance {}",
        s.sampler.guidance
    );
    assert!((0.0..=1.0).contains(&s.strength), "strength {}", s.strength);
    assert!(s.brush_px.is_finite() && s.brush_hardness.is_finite());
    assert_eq!(s.version, settings::SETTINGS_VERSION);
}

/// Byte-level mutations of a settings file.
#[test]
fn settings_file_mutations_never_crash() {
    let samples = samples();
    run(
        "settings text",
        (0usize..2, mutations(0)),
        |(which, edits)| start_up_with(apply(samples[which].as_bytes(), &edits, &[])),
    );
}

/// Values of a settings file replaced by hostile ones (wrong types, extremes, NaN-like floats,
/// deep nesting).
#[test]
fn settings_value_edits_never_crash() {
    let samples: Vec<serde_json::Value> = samples()
        .iter()
        .map(|text| serde_json::from_str(text).expect("json"))
        .collect();
    run(
        "settings values",
        (0usize..2, json_edits()),
        |(which, edits)| start_up_with(apply_json(&samples[which], &edits).into_bytes()),
    );
}
