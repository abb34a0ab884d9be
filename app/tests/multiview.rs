//! The multi-view mode end to end on the real engine with a tiny random novel-view model:
//! choose the mode, make a set, scrub the turntable, export it (what `lumos multiview`
//! writes, nothing replaced without asking), and bad input: a fully transparent reference, a
//! model that makes no views, an unreadable line of a custom orbit.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{AppHarness, drop_file, harness_with, slider, step_until, wait_for_exports};
use egui_kittest::kittest::Queryable;
use lumos_engine::camera::Transforms;
use lumos_engine::multiview_export::CAMERA_KEYWORD;
use lumos_studio::AppConfig;
use lumos_studio::multiview::SetStatus;
use lumos_studio::settings::OrbitChoice;
use lumos_studio::turntable::position_at;

/// A red disc on white, off-centre (the object the views are made of).
fn disc_reference(path: &Path) {
    let image = image::RgbImage::from_fn(64, 48, |x, y| {
        let (dx, dy) = (x as f32 - 40.0, y as f32 - 20.0);
        if dx * dx + dy * dy < 100.0 {
            image::Rgb([220, 30, 30])
        } else {
            image::Rgb([255, 255, 255])
        }
    });
    image.save(path).expect("save reference");
}

/// The app with only the tiny novel-view model, written into `models`.
fn multiview_harness(models: &Path) -> AppHarness {
    let spec = lumos_tests::tiny_novel_view_model(models);
    harness_with(AppConfig::with_model(spec))
}

fn choose_multiview_mode(harness: &mut AppHarness) {
    choose_mode(harness, "Multi-view");
}

fn choose_mode(harness: &mut AppHarness, mode: &str) {
    harness.get_by_label("Mode").click();
    harness.run_steps(2);
    harness.get_by_label(mode).click();
    harness.run_steps(2);
}

/// A turntable orbit of `frames` frames, the reference included.
fn choose_turntable(harness: &mut AppHarness, frames: usize) {
    let multiview = &mut harness.state_mut().settings_mut().multiview;
    multiview.orbit = OrbitChoice::Turntable;
    multiview.turntable_frames = frames;
}

/// Steps until the set has ended; returns how.
fn wait_for_set(harness: &mut AppHarness) -> SetStatus {
    step_until(harness, Duration::from_secs(120), "the set to end", |app| {
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
fn make_a_set_scrub_the_turntable_and_export_what_the_cli_writes() {
    let models = tempfile::tempdir().expect("tempdir");
    let inputs = tempfile::tempdir().expect("tempdir");
    let export_dir = tempfile::tempdir().expect("tempdir");
    let reference = inputs.path().join("disc.png");
    disc_reference(&reference);
    let mut harness = multiview_harness(models.path());
    drop_file(&mut harness, &reference);
    choose_multiview_mode(&mut harness);
    // The default orbit is Zero123++: six views, drawn in the diagram before anything runs.
    harness.get_by_label("6 views of the first reference, which is frame 0");
    harness.get_by_label("Cameras seen from above (left) and from the side (right)");
    slider(&harness, "Steps").set_value_accesskit(2.0);
    harness.run_steps(2);
    harness.state_mut().settings_mut().export_dir = Some(export_dir.path().to_owned());
    harness.get_by_label("Generate").click();
    harness.run_steps(1);
    assert_eq!(
        harness.state().jobs().jobs().len(),
        1,
        "queued like any job"
    );
    let status = wait_for_set(&mut harness);
    assert_eq!(
        status,
        SetStatus::Finished,
        "{:?}",
        harness.state().notifications().items()
    );
    harness.run_steps(2);

    // Results laid out by angle, the reference first.
    {
        let run = harness.state().multiview().run.as_ref().expect("a set");
        assert_eq!(run.views_made(), 6);
        let azimuths: Vec<f64> = run
            .frames_by_azimuth()
            .iter()
            .map(|f| f.pose.azimuth_deg)
            .collect();
        assert_eq!(azimuths, vec![0.0, 30.0, 90.0, 150.0, 210.0, 270.0, 330.0]);
    }
    harness.get_by_label("reference · az 0° · el 0°");
    harness.get_by_label("az 30° · el 20°");
    harness.get_by_label("az 90° · el -10°");

    // Scrub: a drag a quarter of the preview to the right turns the orbit back by 90°.
    let (rect, position) = harness
        .state()
        .multiview()
        .turntable
        .last_drawn()
        .expect("the turntable is drawn");
    assert_eq!((position.from, position.blend), (0, 0.0));
    drag(
        &mut harness,
        rect.center(),
        rect.center() + egui::vec2(rect.width() / 4.0, 0.0),
    );
    let angle = harness.state().multiview().turntable.angle_deg;
    assert!((angle - 270.0).abs() < 3.0, "angle after the drag: {angle}");
    let azimuths = [0.0, 30.0, 90.0, 150.0, 210.0, 270.0, 330.0];
    let (_, shown) = harness
        .state()
        .multiview()
        .turntable
        .last_drawn()
        .expect("drawn");
    assert_eq!(Some(shown), position_at(&azimuths, angle));
    // The slider turns it too: half way from 30° to 90°.
    slider(&harness, "Orbit angle").set_value_accesskit(60.0);
    harness.run_steps(2);
    let (_, shown) = harness
        .state()
        .multiview()
        .turntable
        .last_drawn()
        .expect("drawn");
    assert_eq!((shown.from, shown.to), (1, 2));
    assert!((shown.blend - 0.5).abs() < 1e-6, "{shown:?}");
    // A thumbnail turns to its view.
    harness.get_by_label("Turn to az 150° · el 20°").click();
    harness.run_steps(2);
    assert_eq!(harness.state().multiview().turntable.angle_deg, 150.0);

    // Export set: seven frames, cameras, grid and turntable, all decodable.
    harness.get_by_label("Export set").click();
    harness.run_steps(1);
    wait_for_exports(&mut harness);
    let written = harness.state().multiview().last_export.clone();
    assert_eq!(
        written.len(),
        7 + 3,
        "{:?}",
        harness.state().notifications().items()
    );
    let dir = export_dir.path();
    for index in 0..7 {
        let path = dir.join(format!("view_{index:02}.png"));
        let view = image::open(&path).expect("a view decodes");
        assert_eq!((view.width(), view.height()), (16, 16));
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
    assert_eq!(transforms.frames.len(), 7);
    assert_eq!(transforms.frames[1].orbit.azimuth_deg, 30.0);
    assert_eq!(transforms.frames[2].orbit.elevation_deg, -10.0);
    let grid = image::open(dir.join("grid.png")).expect("grid decodes");
    assert_eq!(
        (grid.width(), grid.height()),
        (2 * 16, 3 * 16),
        "Zero123++'s 3 × 2 grid"
    );
    let decoder = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(
        std::fs::File::open(dir.join("turntable.gif")).expect("open gif"),
    ))
    .expect("a GIF");
    assert_eq!(image::AnimationDecoder::into_frames(decoder).count(), 7);

    // Exporting again asks before replacing anything, and Cancel leaves the files alone.
    let before = std::fs::read(dir.join("view_01.png")).expect("read");
    harness
        .get_by_label("Views with alpha (object cut out)")
        .click();
    harness.get_by_label("Export set").click();
    // The question's modal shows from its second frame (the first one sizes it).
    harness.run_steps(4);
    assert!(harness.state().asks_question(), "asks before replacing");
    harness.get_by_label("Replace the files?");
    harness.get_by_label("Cancel").click();
    harness.run_steps(2);
    assert!(!harness.state().asks_question());
    assert_eq!(
        std::fs::read(dir.join("view_01.png")).expect("read"),
        before
    );
    // Replace writes the set again, now with alpha.
    harness.get_by_label("Export set").click();
    harness.run_steps(4);
    harness.get_by_label("Replace").click();
    harness.run_steps(1);
    wait_for_exports(&mut harness);
    assert!(!harness.state().asks_question());
    let view = image::open(dir.join("view_01.png")).expect("decodes");
    assert_eq!(
        view.color(),
        image::ColorType::Rgba8,
        "replaced, with alpha"
    );
}

#[test]
fn every_finished_set_is_kept_in_the_history_folder_and_none_replaces_another() {
    let models = tempfile::tempdir().expect("tempdir");
    let inputs = tempfile::tempdir().expect("tempdir");
    let history = tempfile::tempdir().expect("tempdir");
    let reference = inputs.path().join("disc.png");
    disc_reference(&reference);
    let spec = lumos_tests::tiny_novel_view_model(models.path());
    let mut config = AppConfig::with_model(spec);
    config.history_dir = Some(history.path().to_owned());
    let mut harness = harness_with(config);
    drop_file(&mut harness, &reference);
    choose_multiview_mode(&mut harness);
    {
        let settings = harness.state_mut().settings_mut();
        settings.sampler.steps = 2;
        settings.multiview.orbit = OrbitChoice::Turntable;
        settings.multiview.turntable_frames = 3;
    }
    let set_folders = || -> Vec<std::path::PathBuf> {
        let mut dirs: Vec<_> = std::fs::read_dir(history.path())
            .expect("history folder")
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with("multiview_"))
            })
            .collect();
        dirs.sort();
        dirs
    };
    let mut kept = Vec::new();
    for made in 1..=2 {
        harness.get_by_label("Generate").click();
        harness.run_steps(1);
        assert_eq!(wait_for_set(&mut harness), SetStatus::Finished);
        harness.run_steps(1);
        wait_for_exports(&mut harness); // the set is written on a thread
        harness.run_steps(1);
        let run = harness.state().multiview().run.as_ref().expect("a set");
        let dir = run.kept_in.clone().expect("kept in the history folder");
        assert_eq!(set_folders().len(), made, "one folder per set");
        let transforms: Transforms = serde_json::from_str(
            &std::fs::read_to_string(dir.join("transforms.json")).expect("transforms.json"),
        )
        .expect("parse transforms.json");
        assert_eq!(transforms.frames.len(), 3, "the reference and two views");
        for frame in &transforms.frames {
            assert!(dir.join(&frame.file_path).is_file(), "{}", frame.file_path);
        }
        assert!(dir.join("turntable.gif").is_file() && dir.join("grid.png").is_file());
        assert_eq!(
            harness
                .query_all_by_label_contains("The multi-view set is kept in")
                .count(),
            made,
            "the user is told where"
        );
        kept.push((
            dir.clone(),
            std::fs::read(dir.join("transforms.json")).expect("read"),
        ));
    }
    // The first set's files are untouched by the second.
    let (first_dir, first_transforms) = &kept[0];
    assert_ne!(first_dir, &kept[1].0);
    assert_eq!(
        &std::fs::read(first_dir.join("transforms.json")).expect("read"),
        first_transforms
    );
    // The gallery does not take the sets' folders for runs of results.
    assert!(lumos_studio::history::load(history.path()).is_empty());
}

#[test]
fn escape_cancels_a_set_mid_run_like_any_job() {
    let models = tempfile::tempdir().expect("tempdir");
    let inputs = tempfile::tempdir().expect("tempdir");
    let reference = inputs.path().join("disc.png");
    disc_reference(&reference);
    let mut harness = multiview_harness(models.path());
    drop_file(&mut harness, &reference);
    choose_multiview_mode(&mut harness);
    {
        let settings = harness.state_mut().settings_mut();
        settings.sampler.steps = 1000;
        settings.multiview.orbit = OrbitChoice::Turntable;
        settings.multiview.turntable_frames = 3;
    }
    harness.get_by_label("Generate").click();
    step_until(&mut harness, Duration::from_secs(60), "a step", |app| {
        app.jobs().running().is_some_and(
            |job| matches!(&job.state, lumos_studio::jobs::JobState::Running(p) if p.step > 0),
        )
    });
    // The progress bar and Cancel of every run.
    harness.get_by_label("Cancel (Esc)");
    harness.key_press(egui::Key::Escape);
    assert_eq!(wait_for_set(&mut harness), SetStatus::Cancelled);
    assert!(harness.state().jobs().is_empty());
    harness.run_steps(2);
    harness.get_by_label_contains("Run 1 · cancelled after 0 of 2 views");
    assert!(
        harness
            .state()
            .multiview()
            .run
            .as_ref()
            .is_some_and(|run| !run.is_complete())
    );
}

#[test]
fn a_set_cancelled_after_some_views_keeps_them_and_can_export_them() {
    let models = tempfile::tempdir().expect("tempdir");
    let inputs = tempfile::tempdir().expect("tempdir");
    let history = tempfile::tempdir().expect("tempdir");
    let export_dir = tempfile::tempdir().expect("tempdir");
    let reference = inputs.path().join("disc.png");
    disc_reference(&reference);
    let spec = lumos_tests::tiny_novel_view_model(models.path());
    let mut config = AppConfig::with_model(spec);
    config.history_dir = Some(history.path().to_owned());
    let mut harness = harness_with(config);
    drop_file(&mut harness, &reference);
    choose_multiview_mode(&mut harness);
    // More views than the CPU denoises in one batch: the first batch arrives, then Escape.
    let batch = lumos_engine::pipelines::max_batch(lumos_engine::protocol::DeviceChoice::Cpu);
    choose_turntable(&mut harness, batch + 2);
    {
        let settings = harness.state_mut().settings_mut();
        settings.sampler.steps = 1000;
        settings.export_dir = Some(export_dir.path().to_owned());
    }
    harness.get_by_label("Generate").click();
    step_until(
        &mut harness,
        Duration::from_secs(120),
        "the first batch",
        |app| {
            app.multiview()
                .run
                .as_ref()
                .is_some_and(|run| run.views_made() >= batch)
        },
    );
    harness.key_press(egui::Key::Escape);
    assert_eq!(wait_for_set(&mut harness), SetStatus::Cancelled);
    harness.run_steps(1);
    wait_for_exports(&mut harness); // kept on a thread
    harness.run_steps(2);
    let planned = batch + 1;
    harness.get_by_label_contains(&format!("cancelled after {batch} of {planned} views"));
    harness.get_by_label_contains(&format!(
        "The {batch} of {planned} views made before the set stopped are kept in"
    ));
    // Kept in the history folder: the reference and the views made, with their cameras.
    let run = harness.state().multiview().run.as_ref().expect("a set");
    assert!(run.is_partial());
    let kept = run.kept_in.clone().expect("kept in the history folder");
    let transforms: Transforms = serde_json::from_str(
        &std::fs::read_to_string(kept.join("transforms.json")).expect("transforms.json"),
    )
    .expect("parse transforms.json");
    assert_eq!(
        transforms.frames.len(),
        batch + 1,
        "the reference and the views made"
    );
    for frame in &transforms.frames {
        image::open(kept.join(&frame.file_path)).expect("a decodable view");
    }
    // Export set writes the same frames where the user wants them.
    harness.get_by_label(&format!(
        "Exports the reference and the {batch} views made."
    ));
    harness.get_by_label("Export set").click();
    harness.run_steps(1);
    wait_for_exports(&mut harness);
    harness.run_steps(1);
    let exported: Transforms = serde_json::from_str(
        &std::fs::read_to_string(export_dir.path().join("transforms.json"))
            .expect("exported transforms.json"),
    )
    .expect("parse");
    assert_eq!(exported.frames.len(), batch + 1);
}

#[test]
fn a_fully_transparent_reference_gives_a_clear_error_and_the_app_goes_on() {
    let models = tempfile::tempdir().expect("tempdir");
    let inputs = tempfile::tempdir().expect("tempdir");
    let clear = inputs.path().join("clear.png");
    image::RgbaImage::from_pixel(32, 32, image::Rgba([40, 80, 120, 0]))
        .save(&clear)
        .expect("save");
    let mut harness = multiview_harness(models.path());
    drop_file(&mut harness, &clear);
    choose_multiview_mode(&mut harness);
    slider(&harness, "Steps").set_value_accesskit(2.0);
    harness.get_by_label("Generate").click();
    let status = wait_for_set(&mut harness);
    let SetStatus::Failed(reason) = status else {
        panic!("the set did not fail: {status:?}");
    };
    assert!(reason.contains("fully transparent"), "{reason}");
    let shown = format!("{:?}", harness.state().notifications().items());
    assert!(
        shown.contains("The multi-view set (run 1) failed") && shown.contains("fully transparent"),
        "{shown}"
    );
    harness.get_by_label_contains("Run 1 · failed: invalid request: the reference shows no object");
    // The engine is still there and the next set runs.
    assert!(harness.state_mut().engine_mut().is_alive());
    let reference = inputs.path().join("disc.png");
    disc_reference(&reference);
    harness
        .state_mut()
        .push_command(lumos_studio::commands::AppCommand::RemoveReference(0));
    drop_file(&mut harness, &reference);
    choose_turntable(&mut harness, 3);
    harness.get_by_label("Generate").click();
    harness.run_steps(1);
    assert_eq!(wait_for_set(&mut harness), SetStatus::Finished);
}

#[test]
fn the_built_in_multi_view_model_makes_sets_while_the_image_model_stays_chosen() {
    let inputs = tempfile::tempdir().expect("tempdir");
    let reference = inputs.path().join("disc.png");
    disc_reference(&reference);
    // What a fresh install has: the two built-in models, the image one first (chosen).
    let mut config = AppConfig::with_model(
        lumos_engine::embedded::default_spec().expect("the built-in image model"),
    );
    let multiview =
        lumos_engine::embedded::multiview_spec().expect("the built-in multi-view model");
    config.models.push(multiview.clone());
    let image_best = config.models[0]
        .guidance
        .expect("the built-in image model names its guidance");
    let mut harness = harness_with(config);
    drop_file(&mut harness, &reference);
    harness.get_by_label_contains("trained by this project on emoji and clip art");
    assert_eq!(harness.state().settings().sampler.guidance, image_best);
    choose_multiview_mode(&mut harness);
    harness.get_by_label_contains(&format!("Sets are made with {}", multiview.name));
    harness.get_by_label_contains("simple textured shapes it rendered itself");
    // Each model gets its manifest's guidance the first time it runs, and keeps what the user
    // last used with it after that.
    let best = multiview
        .guidance
        .expect("the built-in model names its guidance");
    assert_eq!(harness.state().settings().sampler.guidance, best);
    assert!(
        harness
            .query_by_label_contains("This model works best at guidance")
            .is_none()
    );
    slider(&harness, "Guidance").set_value_accesskit(2.0);
    harness.run_steps(2);
    choose_mode(&mut harness, "Variations / blend");
    assert_eq!(harness.state().settings().sampler.guidance, image_best);
    choose_multiview_mode(&mut harness);
    assert_eq!(harness.state().settings().sampler.guidance, 2.0);
    harness.get_by_label_contains(&format!("This model works best at guidance {best:.1}"));
    harness.get_by_label(&format!("Use {best:.1}")).click();
    harness.run_steps(2);
    assert_eq!(harness.state().settings().sampler.guidance, best);
    assert!(
        harness
            .query_by_label_contains("is not a multi-view model")
            .is_none()
    );
    choose_turntable(&mut harness, 3);
    slider(&harness, "Steps").set_value_accesskit(2.0);
    harness.run_steps(2);
    harness.get_by_label("Generate").click();
    harness.run_steps(1);
    assert_eq!(wait_for_set(&mut harness), SetStatus::Finished);
    let run = harness.state().multiview().run.as_ref().expect("a set");
    assert_eq!(run.model, multiview.name);
    assert_eq!(
        run.views_made(),
        2,
        "three frames: the reference and two views"
    );
    // The image modes still use the image model.
    assert_eq!(harness.state().settings().model, None);
}

#[test]
fn a_model_that_makes_no_views_is_named_and_nothing_starts() {
    let inputs = tempfile::tempdir().expect("tempdir");
    let reference = inputs.path().join("disc.png");
    disc_reference(&reference);
    let mut harness = harness_with(common::config());
    drop_file(&mut harness, &reference);
    choose_multiview_mode(&mut harness);
    harness.get_by_label_contains("is not a multi-view model");
    harness.get_by_label("Generate").click();
    harness.run_steps(2);
    assert!(harness.state().jobs().is_empty(), "nothing was queued");
    assert!(harness.state().multiview().run.is_none());
    let shown = format!("{:?}", harness.state().notifications().items());
    assert!(shown.contains("is not a multi-view model"), "{shown}");
}

#[test]
fn an_unreadable_custom_orbit_line_is_named_and_nothing_starts() {
    let models = tempfile::tempdir().expect("tempdir");
    let inputs = tempfile::tempdir().expect("tempdir");
    let reference = inputs.path().join("disc.png");
    disc_reference(&reference);
    let mut harness = multiview_harness(models.path());
    drop_file(&mut harness, &reference);
    choose_multiview_mode(&mut harness);
    {
        let multiview = &mut harness.state_mut().settings_mut().multiview;
        multiview.orbit = OrbitChoice::Custom;
        multiview.custom_views = "20 30\n20 thirty\n".into();
    }
    harness.run_steps(2);
    harness.get_by_label_contains("line 2: \"thirty\" is not a number");
    harness.get_by_label("Generate").click();
    harness.run_steps(2);
    assert!(harness.state().jobs().is_empty(), "nothing was queued");
    let shown = format!("{:?}", harness.state().notifications().items());
    assert!(shown.contains("line 2"), "{shown}");
}

/// Drags with the primary button from `start` to `end` in a few moves.
fn drag(harness: &mut AppHarness, start: egui::Pos2, end: egui::Pos2) {
    harness.event(egui::Event::PointerMoved(start));
    harness.event(egui::Event::PointerButton {
        pos: start,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: egui::Modifiers::NONE,
    });
    harness.run_steps(1);
    for i in 1..=5 {
        harness.event(egui::Event::PointerMoved(
            start + (end - start) * (i as f32 / 5.0),
        ));
        harness.run_steps(1);
    }
    harness.event(egui::Event::PointerButton {
        pos: end,
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: egui::Modifiers::NONE,
    });
    harness.run_steps(2);
}
