//! Zero123-family checkpoints in the Multi-view mode, on the real engine with the tiny random
//! fixture (`zero123_tiny`, copied under a user's file name with its sizes beside it): found
//! by Models > Search, chosen under Model, its licence shown, a turntable set made from a
//! reference and exported; refused in the image modes; and a checkpoint that vanished between
//! choosing and generating named with where it was, the choice surviving a restart and a
//! project.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{AppHarness, drop_file, harness_with, slider, step_until, wait_for_exports};
use egui_kittest::kittest::{NodeT as _, Queryable};
use lumos_engine::camera::Transforms;
use lumos_engine::checkpoints::fixtures_root;
use lumos_engine::multiview_export::CAMERA_KEYWORD;
use lumos_engine::pipelines::zero123::CANVAS;
use lumos_studio::commands::AppCommand;
use lumos_studio::multiview::SetStatus;
use lumos_studio::settings::OrbitChoice;

/// The model's name in the Model picker: the file name, then the family.
const MODEL_NAME: &str = "zero123-tiny.ckpt · Zero123";
/// The tiny fixture's licence line (its file name says neither Stable nor commercial).
const MIT_NOTICE: &str = "Zero-1-to-3 weights, MIT licence (Columbia University).";

fn fixture() -> PathBuf {
    fixtures_root().join("zero123_tiny")
}

/// The fixture's `.ckpt` as a user would have it: `zero123-tiny.ckpt` in a models folder,
/// with the `config.json` that gives its (tiny) sizes.
fn user_checkpoint(models: &Path) -> PathBuf {
    let checkpoint = models.join("zero123-tiny.ckpt");
    std::fs::copy(fixture().join("weights.ckpt"), &checkpoint).expect("copy checkpoint");
    std::fs::copy(fixture().join("config.json"), models.join("config.json")).expect("copy config");
    checkpoint
}

/// Clicks the widget labelled `label` as assistive technology does (an AccessKit action):
/// the controls are taller than the test's window, and they scroll and shift as
/// notifications come and go, so a pointer click at last frame's position can miss.
fn click_in_view(harness: &mut AppHarness, label: &str) {
    harness.get_by_label(label).scroll_to_me();
    harness.run_steps(2);
    harness.get_by_label(label).click_accesskit();
    harness.run_steps(2);
}

fn choose_mode(harness: &mut AppHarness, mode: &str) {
    click_in_view(harness, "Mode");
    harness.get_by_label(mode).click();
    harness.run_steps(2);
}

/// Models > Search in `folder`, as a user types it.
fn search_models(harness: &mut AppHarness, folder: &Path) {
    // At the foot of the controls, below the fold of the test's window.
    click_in_view(harness, "Models");
    harness.get_by_label("Models folder").scroll_to_me();
    harness.run_steps(2);
    harness.get_by_label("Models folder").focus();
    harness.run_steps(1);
    harness
        .get_by_label("Models folder")
        .type_text(folder.to_str().expect("utf-8 path"));
    harness.run_steps(1);
    harness.get_by_label("Search").click();
    harness.run_steps(2);
}

/// Chooses `name` in the Model picker.
fn choose_model(harness: &mut AppHarness, name: &str) {
    click_in_view(harness, "Model");
    harness.get_by_label(name).click();
    harness.run_steps(2);
}

fn notifications(harness: &AppHarness) -> String {
    format!("{:?}", harness.state().notifications().items())
}

/// Steps until the set has ended; returns how.
fn wait_for_set(harness: &mut AppHarness) -> SetStatus {
    step_until(harness, Duration::from_secs(300), "the set to end", |app| {
        app.multiview()
            .run
            .as_ref()
            .is_some_and(|run| run.status != SetStatus::Running)
    });
    harness
        .state()
        .multiview()
        .run
        .as_ref()
        .expect("a set")
        .status
        .clone()
}

#[test]
fn a_zero123_checkpoint_found_by_search_makes_and_exports_a_turntable_set() {
    let models = tempfile::tempdir().expect("tempdir");
    let export_dir = tempfile::tempdir().expect("tempdir");
    let checkpoint = user_checkpoint(models.path());
    // The app starts with only the tiny image-to-image model, which makes no views.
    let mut harness = harness_with(common::config());
    drop_file(&mut harness, &fixture().join("input_0.png"));
    choose_mode(&mut harness, "Multi-view");
    harness.get_by_label_contains("is not a multi-view model");

    search_models(&mut harness, models.path());
    let shown = notifications(&harness);
    assert!(
        shown.contains(&format!("Found the multi-view model {MODEL_NAME}"))
            && shown.contains("MIT"),
        "{shown}"
    );
    assert!(
        !shown.contains("not complete"),
        "a folder with a checkpoint is not reported as an incomplete Lumos model: {shown}"
    );
    choose_model(&mut harness, MODEL_NAME);
    assert_eq!(
        harness.state().settings().model.as_deref(),
        Some(MODEL_NAME)
    );
    assert_eq!(
        harness.state().settings().zero123_checkpoint.as_deref(),
        Some(checkpoint.as_path()),
        "the choice is remembered by path"
    );
    harness.get_by_label(&format!("Licence: {MIT_NOTICE}"));
    assert!(
        harness
            .query_by_label_contains("is not a multi-view model")
            .is_none(),
        "the warning is gone"
    );
    assert!(
        harness
            .get_by_label("Solver")
            .accesskit_node()
            .is_disabled(),
        "a Zero123 checkpoint is sampled as its demo does: no solver to choose"
    );

    {
        let settings = harness.state_mut().settings_mut();
        settings.multiview.orbit = OrbitChoice::Turntable;
        settings.multiview.turntable_frames = 3;
        settings.export_dir = Some(export_dir.path().to_owned());
    }
    harness.run_steps(2);
    // 4 steps (3 is refused by the ldm schedule: 1000 / 3 overruns it).
    slider(&harness, "Steps").set_value_accesskit(4.0);
    harness.run_steps(2);
    harness.get_by_label("2 views of the first reference, which is frame 0");
    click_in_view(&mut harness, "Generate");
    harness.run_steps(1);
    assert_eq!(
        harness.state().jobs().jobs().len(),
        1,
        "queued like any job"
    );
    let status = wait_for_set(&mut harness);
    assert_eq!(status, SetStatus::Finished, "{}", notifications(&harness));
    harness.run_steps(2);
    {
        let run = harness.state().multiview().run.as_ref().expect("a set");
        assert_eq!(run.views_made(), 2);
        assert_eq!(run.model, MODEL_NAME);
        assert_eq!(
            run.notices,
            vec![MIT_NOTICE.to_owned()],
            "the licence, with the set"
        );
        let azimuths: Vec<f64> = run
            .frames_by_azimuth()
            .iter()
            .map(|f| f.pose.azimuth_deg)
            .collect();
        assert_eq!(azimuths, vec![0.0, 120.0, 240.0]);
    }
    harness.get_by_label_contains(&format!(
        "Run 1 · 2 views · from input_0.png · {MODEL_NAME}"
    ));
    // The licence line under the set (the controls' one starts with "Licence:").
    harness.get_by_label(MIT_NOTICE);
    harness.get_by_label("reference · az 0° · el 0°");
    harness.get_by_label("az 120° · el 0°");

    harness.get_by_label("Export set").click();
    harness.run_steps(1);
    wait_for_exports(&mut harness);
    let written = harness.state().multiview().last_export.clone();
    assert_eq!(written.len(), 3 + 3, "{}", notifications(&harness));
    let dir = export_dir.path();
    for index in 0..3 {
        let path = dir.join(format!("view_{index:02}.png"));
        let view = image::open(&path).expect("a view decodes");
        assert_eq!((view.width(), view.height()), (CANVAS, CANVAS));
        let camera = lumos_engine::imageio::read_png_text(&path, CAMERA_KEYWORD)
            .expect("read chunk")
            .expect("the view carries its camera");
        let camera: serde_json::Value = serde_json::from_str(&camera).expect("camera JSON");
        assert!(camera["camera_to_world"].is_array(), "{camera}");
    }
    let transforms: Transforms = serde_json::from_str(
        &std::fs::read_to_string(dir.join("transforms.json")).expect("transforms.json"),
    )
    .expect("nerfstudio transforms");
    assert_eq!(transforms.frames.len(), 3);
    assert_eq!(transforms.frames[1].orbit.azimuth_deg, 120.0);
    image::open(dir.join("grid.png")).expect("the grid decodes");
    let decoder = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(
        std::fs::File::open(dir.join("turntable.gif")).expect("open gif"),
    ))
    .expect("a GIF");
    assert_eq!(image::AnimationDecoder::into_frames(decoder).count(), 3);

    // In an image mode the checkpoint is named as a multi-view model and nothing starts.
    choose_mode(&mut harness, "Variations / blend");
    harness.get_by_label_contains("The chosen model is a multi-view model");
    click_in_view(&mut harness, "Generate");
    harness.run_steps(2);
    assert!(harness.state().jobs().is_empty(), "nothing was queued");
    assert!(
        notifications(&harness).contains(&format!(
            "{MODEL_NAME} is a multi-view model (a Zero123 checkpoint)"
        )),
        "{}",
        notifications(&harness)
    );
}

#[test]
fn a_checkpoint_gone_between_choosing_and_generating_is_named_and_the_choice_survives() {
    let models = tempfile::tempdir().expect("tempdir");
    let checkpoint = user_checkpoint(models.path());
    let mut harness = harness_with(common::config());
    drop_file(&mut harness, &fixture().join("input_0.png"));
    choose_mode(&mut harness, "Multi-view");
    search_models(&mut harness, models.path());
    choose_model(&mut harness, MODEL_NAME);
    slider(&harness, "Steps").set_value_accesskit(4.0);

    // A project remembers the choice too (opened below, after the file came back).
    let project = models.path().join("orbit.lumos");
    harness.state_mut().push_command(AppCommand::SaveProjectAs {
        path: project.clone(),
        replace: false,
    });
    harness.run_steps(2);
    assert!(project.is_file(), "{}", notifications(&harness));

    // The file goes away after it was chosen.
    let moved = models.path().join("elsewhere.bin");
    std::fs::rename(&checkpoint, &moved).expect("move the checkpoint");
    harness.run_steps(2);
    harness.get_by_label_contains("The Zero123 checkpoint zero123-tiny.ckpt · Zero123 is gone");
    click_in_view(&mut harness, "Generate");
    harness.run_steps(2);
    assert!(harness.state().jobs().is_empty(), "nothing was queued");
    assert!(harness.state().multiview().run.is_none());
    let shown = notifications(&harness);
    assert!(
        shown.contains("is gone (moved or deleted)")
            && shown.contains(&checkpoint.display().to_string()),
        "says what and where: {shown}"
    );
    assert_eq!(
        harness.state().settings().model.as_deref(),
        Some(MODEL_NAME),
        "the choice is kept, not swapped for another model"
    );

    // Put back, the choice comes back with the settings after a restart (no search).
    std::fs::rename(&moved, &checkpoint).expect("move it back");
    let settings = harness.state().settings().clone();
    drop(harness);
    let mut config = common::config();
    config.settings = Some(settings);
    let mut harness = harness_with(config);
    harness.run_steps(2);
    assert_eq!(
        harness.state().settings().model.as_deref(),
        Some(MODEL_NAME)
    );
    harness.get_by_label(&format!("Licence: {MIT_NOTICE}"));
    drop_file(&mut harness, &fixture().join("input_0.png"));
    {
        let settings = harness.state_mut().settings_mut();
        settings.multiview.orbit = OrbitChoice::Turntable;
        settings.multiview.turntable_frames = 2;
    }
    click_in_view(&mut harness, "Generate");
    assert_eq!(
        wait_for_set(&mut harness),
        SetStatus::Finished,
        "{}",
        notifications(&harness)
    );

    // The project brings the checkpoint back into an app that never searched for it.
    drop(harness);
    let mut harness = harness_with(common::config());
    assert_eq!(harness.state().settings().model, None);
    harness.state_mut().push_command(AppCommand::OpenProject {
        path: project,
        discard: true,
    });
    harness.run_steps(2);
    assert_eq!(
        harness.state().settings().model.as_deref(),
        Some(MODEL_NAME),
        "{}",
        notifications(&harness)
    );
    harness.get_by_label(&format!("Licence: {MIT_NOTICE}"));
}
