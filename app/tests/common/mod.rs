//! Shared helpers of the UI tests: the harness on the tiny fixture model, dropping files,
//! stepping frames until the engine has done something.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use lumos_engine::checkpoints::{fixtures_root, pipeline_fixture_spec};
use lumos_studio::gallery::RunStatus;
use lumos_studio::{AppConfig, LumosApp};

/// The harness type of these tests.
pub type AppHarness = Harness<'static, LumosApp>;

/// Window size of the tests.
pub const SIZE: [f32; 2] = [1280.0, 820.0];

/// A file of the `pipeline_tiny` fixture.
pub fn fixture_ref(name: &str) -> PathBuf {
    fixtures_root().join("pipeline_tiny").join(name)
}

/// The app config: the tiny real-weights model, default settings, nothing read from disk.
pub fn config() -> AppConfig {
    let spec = pipeline_fixture_spec(&fixtures_root()).expect("the pipeline_tiny fixture");
    AppConfig::with_model(spec)
}

/// The real app on the real engine, without a GPU renderer.
pub fn harness() -> AppHarness {
    harness_with(config())
}

/// The real app with this configuration, without a GPU renderer.
pub fn harness_with(config: AppConfig) -> AppHarness {
    Harness::builder()
        .with_size(SIZE)
        .build_eframe(move |cc| LumosApp::new(cc, config).expect("app starts"))
}

/// The slider labelled `label` (its value box has the same label).
pub fn slider<'h>(harness: &'h AppHarness, label: &'h str) -> egui_kittest::Node<'h> {
    use egui_kittest::kittest::Queryable as _;
    harness.get_by_role_and_label(egui::accesskit::Role::Slider, label)
}

/// A file dropped from the file manager.
#[derive(Debug)]
pub struct FileDrop(pub PathBuf);

impl egui::DroppedFile for FileDrop {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// Drops `path` on the window and lets the app handle it.
pub fn drop_file(harness: &mut AppHarness, path: &Path) {
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(FileDrop(path.to_owned())));
    harness.run_steps(1);
    // Files are decoded off the UI thread; wait for it like a user would.
    step_until(
        harness,
        Duration::from_secs(30),
        "the file to load",
        |app| app.pending_loads() == 0,
    );
}

/// Steps frames until the newest run (first in the gallery) has left the pending state.
pub fn wait_for_first_run(harness: &mut AppHarness) {
    step_until(
        harness,
        Duration::from_secs(120),
        "the run to finish",
        |app| {
            app.gallery()
                .runs()
                .first()
                .is_some_and(|r| r.status != RunStatus::Pending)
        },
    );
}

/// Steps until every export being written has been reported (exports run on a thread).
pub fn wait_for_exports(harness: &mut AppHarness) {
    step_until(
        harness,
        Duration::from_secs(60),
        "the export to be written",
        |app| app.exports_running() == 0,
    );
}

/// Steps frames (as the engine's wake-ups would) until `done` holds; panics after `timeout`.
pub fn step_until(
    harness: &mut AppHarness,
    timeout: Duration,
    what: &str,
    done: impl Fn(&LumosApp) -> bool,
) {
    let start = Instant::now();
    while !done(harness.state()) {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}; notifications: {:?}",
            harness.state().notifications().items()
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.run_steps(1);
}
