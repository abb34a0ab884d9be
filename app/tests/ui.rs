//! The app as a user drives it, with egui_kittest, on the real engine thread running the tiny
//! real-weights fixture model (`pipeline_tiny`: 64×64 images, well under a second each).
//!
//! These tests use kittest's lazy renderer (no GPU needed): previews take the CPU path.
//! Snapshots rendered with wgpu live in `snapshots.rs`.

mod common;

use std::time::Duration;

use common::{
    config, drop_file, fixture_ref, harness, harness_with, slider, step_until, wait_for_exports,
    wait_for_first_run,
};
use egui::{Key, Modifiers};
use egui_kittest::kittest::{NodeT as _, Queryable};
use lumos_engine::protocol::{Mode, Solver};
use lumos_studio::gallery::RunStatus;
use lumos_studio::panels::notifications::Level;
use lumos_studio::settings::SeedPolicy;

#[test]
fn drop_reference_move_sliders_generate_and_export_with_metadata() {
    let export_dir = tempfile::tempdir().expect("tempdir");
    let mut harness = harness();

    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    assert_eq!(harness.state().canvas().references.len(), 1);
    harness.get_by_label_contains("ref_a.png (");

    slider(&harness, "Steps").set_value_accesskit(4.0);
    slider(&harness, "Count").set_value_accesskit(2.0);
    slider(&harness, "Guidance").set_value_accesskit(6.0);
    harness.run_steps(2);
    harness.get_by_label("Lock").click();
    harness.run_steps(2);
    let settings = harness.state().settings().clone();
    assert_eq!(settings.sampler.steps, 4);
    assert_eq!(settings.count, 2);
    assert!((settings.sampler.guidance - 6.0).abs() < 1e-9);
    assert_eq!(settings.seed_policy, SeedPolicy::Locked);
    let seed = settings.sampler.seed;

    let folder = harness.get_by_label("Export folder");
    folder.click();
    harness.run_steps(1);
    harness
        .get_by_label("Export folder")
        .type_text(&export_dir.path().display().to_string());
    harness.run_steps(2);

    harness.get_by_label("Generate").click();
    harness.run_steps(1);
    assert_eq!(harness.state().gallery().runs().len(), 1);
    step_until(
        &mut harness,
        Duration::from_secs(120),
        "the run to finish",
        |app| app.gallery().runs()[0].status != RunStatus::Pending,
    );
    let run = &harness.state().gallery().runs()[0];
    assert_eq!(
        run.status,
        RunStatus::Finished,
        "{:?}",
        harness.state().notifications().items()
    );
    assert_eq!(run.images.len(), 2);
    assert!(harness.state().jobs().is_empty());
    harness.get_by_label_contains("finished");
    harness.get_by_label("Select 1.0");

    harness.get_by_label("Export all of run 1").click();
    harness.run_steps(2);
    wait_for_exports(&mut harness);
    let report = harness.state().last_export().expect("exported").clone();
    assert_eq!(
        report.written.len(),
        3,
        "two results and a contact sheet: {report:?}"
    );
    let mut seeds = Vec::new();
    for path in &report.written {
        assert!(path.starts_with(export_dir.path()), "{}", path.display());
        let image = lumos_engine::imageio::load_image(path).expect("exported PNG reads back");
        if path.to_string_lossy().contains("contact_sheet") {
            assert!(image.width() > 64 && image.height() >= 64);
            continue;
        }
        assert_eq!(image.dimensions(), (64, 64));
        let meta = lumos_engine::imageio::read_png_meta(path)
            .expect("read metadata")
            .expect("settings embedded");
        assert_eq!(meta.settings.steps, 4);
        assert!((meta.settings.guidance - 6.0).abs() < 1e-9);
        assert_eq!(meta.settings.solver, Solver::DpmSolverPp { order: 2 });
        assert_eq!(meta.mode, Mode::Variations { count: 2 });
        assert_eq!(meta.references.len(), 1);
        assert_eq!(meta.references[0].name, "ref_a.png");
        seeds.push(meta.settings.seed);
    }
    seeds.sort_unstable();
    assert_eq!(seeds, [seed, seed + 1], "image i uses seed + i");

    // Exporting again never overwrites silently: the app asks.
    harness.get_by_label("Export all of run 1").click();
    harness.run_steps(2);
    wait_for_exports(&mut harness);
    assert!(harness.state().export_waits_for_answer());
    // The modal fades in: it is visible (and in the accessibility tree) a few frames later.
    harness.run_steps(3);
    harness.get_by_label("Files already exist");
    harness.get_by_label("Keep both").click();
    harness.run_steps(2);
    wait_for_exports(&mut harness);
    let again = harness.state().last_export().expect("exported").clone();
    assert_eq!(again.written.len(), 3);
    for path in &again.written {
        assert!(
            path.to_string_lossy().contains(" (2)"),
            "{}",
            path.display()
        );
    }
    assert_eq!(
        std::fs::read_dir(export_dir.path()).expect("dir").count(),
        6
    );
}

#[test]
fn ctrl_enter_generates_and_escape_cancels_mid_run() {
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_b.png"));
    harness.state_mut().settings_mut().sampler.steps = 1000;
    harness.state_mut().settings_mut().count = 16;
    harness.run_steps(1);

    harness.key_press_modifiers(Modifiers::COMMAND, Key::Enter);
    harness.run_steps(1);
    assert_eq!(
        harness.state().gallery().runs().len(),
        1,
        "Ctrl+Enter queued a run"
    );

    step_until(
        &mut harness,
        Duration::from_secs(120),
        "sampling to start",
        |app| app.has_live_preview(),
    );
    harness.get_by_label_contains("Step ");
    harness.key_press(Key::Escape);
    step_until(
        &mut harness,
        Duration::from_secs(60),
        "the cancel to land",
        |app| app.jobs().is_empty(),
    );
    let run = &harness.state().gallery().runs()[0];
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(run.images.len() < 16, "cancelled before the end");
    assert!(!harness.state().has_live_preview());
    harness.run_steps(1);
    harness.get_by_label_contains("cancelled");
    harness.get_by_label("Idle.");
}

#[test]
fn dropping_a_corrupt_file_shows_an_error_and_the_app_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\n this is not really a png").expect("write");
    let mut harness = harness();
    drop_file(&mut harness, &broken);
    assert!(harness.state().canvas().references.is_empty());
    let errors: Vec<_> = harness
        .state()
        .notifications()
        .items()
        .iter()
        .filter(|n| n.level == Level::Error)
        .map(|n| n.text.clone())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("broken.png"), "{}", errors[0]);
    eprintln!("corrupt file error shown: {}", errors[0]);
    harness.get_by_label_contains("Error: ");
    // Still usable: a good file goes in after the bad one.
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    assert_eq!(harness.state().canvas().references.len(), 1);
    harness.get_by_label("Dismiss").click();
    harness.run_steps(1);
    assert!(harness.state().notifications().items().is_empty());
}

#[test]
fn generate_without_references_explains_what_to_do() {
    let mut harness = harness();
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Enter);
    harness.run_steps(1);
    assert!(harness.state().gallery().runs().is_empty());
    harness.get_by_label_contains("Error: Add a reference image first");
}

#[test]
fn typed_path_adds_a_reference_and_references_can_be_reordered_and_removed() {
    let mut harness = harness();
    harness.get_by_label("Path").click();
    harness.run_steps(1);
    harness
        .get_by_label("Path")
        .type_text(&fixture_ref("ref_a.png").display().to_string());
    harness.run_steps(1);
    harness.get_by_label("Add").click();
    harness.run_steps(2);
    drop_file(&mut harness, &fixture_ref("ref_b.png"));
    let names = |h: &common::AppHarness| -> Vec<String> {
        h.state()
            .canvas()
            .references
            .iter()
            .map(|r| r.name.clone())
            .collect()
    };
    assert_eq!(names(&harness), ["ref_a.png", "ref_b.png"]);
    slider(&harness, "Weight of ref_b.png").set_value_accesskit(0.5);
    harness.run_steps(1);
    assert!((harness.state().canvas().references[1].weight - 0.5).abs() < 1e-6);
    harness
        .get_all_by_label("Move up")
        .nth(1)
        .expect("second Move up")
        .click();
    harness.run_steps(2);
    assert_eq!(names(&harness), ["ref_b.png", "ref_a.png"]);
    harness.get_by_label("Remove ref_b.png").click();
    harness.run_steps(2);
    assert_eq!(names(&harness), ["ref_a.png"]);
}

#[test]
fn engine_crash_is_reported_the_engine_restarts_and_the_canvas_survives() {
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    harness.state_mut().engine_mut().crash_for_test();
    harness.run_steps(2);
    assert_eq!(harness.state_mut().engine_mut().restarts(), 1);
    assert!(harness.state_mut().engine_mut().is_alive());
    harness.get_by_label_contains("engine stopped unexpectedly");
    assert_eq!(
        harness.state().canvas().references.len(),
        1,
        "canvas intact"
    );

    // The restarted engine works.
    harness.state_mut().settings_mut().sampler.steps = 2;
    harness.state_mut().settings_mut().count = 1;
    harness.get_by_label("Generate").click();
    wait_for_first_run(&mut harness);
    assert_eq!(
        harness.state().gallery().runs()[0].status,
        RunStatus::Finished
    );
}

#[test]
fn an_export_is_written_off_the_ui_thread_and_quitting_waits_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    {
        let settings = harness.state_mut().settings_mut();
        settings.sampler.steps = 2;
        settings.count = 2;
        settings.export_dir = Some(dir.path().to_owned());
    }
    harness.get_by_label("Generate").click();
    wait_for_first_run(&mut harness);
    harness.get_by_label("Export all of run 1").click();
    harness.step();
    assert_eq!(harness.state().exports_running(), 1, "on its own thread");
    // Quitting right away still writes every file.
    harness.state_mut().quit();
    let written: Vec<_> = std::fs::read_dir(dir.path())
        .expect("export folder")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "png"))
        .collect();
    assert_eq!(
        written.len(),
        3,
        "two results and the contact sheet: {written:?}"
    );
    for path in &written {
        image::open(path).expect("a complete PNG");
    }
    wait_for_exports(&mut harness);
    harness.get_by_label_contains("Exported 3 file(s)");
}

#[test]
fn dropping_an_exported_png_restores_its_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    {
        let settings = harness.state_mut().settings_mut();
        settings.sampler.steps = 3;
        settings.sampler.guidance = 2.5;
        settings.sampler.seed = 4242;
        settings.count = 1;
        settings.seed_policy = SeedPolicy::Random;
        settings.export_dir = Some(dir.path().to_owned());
    }
    harness.state_mut().canvas_mut().references[0].weight = 0.7;
    harness.get_by_label("Generate").click();
    wait_for_first_run(&mut harness);
    harness.get_by_label("Export all of run 1").click();
    harness.run_steps(2);
    wait_for_exports(&mut harness);
    let exported = harness.state().last_export().expect("export").written[0].clone();

    // A fresh canvas with the same reference (weight 1), then the exported PNG.
    let mut fresh = harness_with_defaults();
    drop_file(&mut fresh, &fixture_ref("ref_a.png"));
    drop_file(&mut fresh, &exported);
    let settings = fresh.state().settings();
    assert_eq!(settings.sampler.steps, 3);
    assert!((settings.sampler.guidance - 2.5).abs() < 1e-9);
    assert_eq!(settings.sampler.seed, 4242);
    assert_eq!(settings.seed_policy, SeedPolicy::Locked);
    let weight = fresh.state().canvas().references[0].weight;
    assert!(
        (weight - 0.7).abs() < 1e-6,
        "reference weight restored: {weight}"
    );
    fresh.get_by_label_contains("Restored the settings");
    fresh.get_by_label_contains("the weights of its 1 reference(s)");
}

fn harness_with_defaults() -> common::AppHarness {
    harness()
}

#[test]
fn result_viewer_offers_reuse_and_use_as_reference() {
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    harness.state_mut().settings_mut().sampler.steps = 2;
    harness.state_mut().settings_mut().count = 1;
    harness.state_mut().settings_mut().sampler.seed = 77;
    harness.state_mut().settings_mut().seed_policy = SeedPolicy::Increment;
    harness.get_by_label("Generate").click();
    wait_for_first_run(&mut harness);
    assert_eq!(
        harness.state().settings().sampler.seed,
        78,
        "increment after a run of 1"
    );
    harness
        .state_mut()
        .push_command(lumos_studio::commands::AppCommand::View { run: 1, index: 0 });
    harness.run_steps(2);
    harness.get_by_label("Result 1.0");
    harness
        .get_by_label("Compare with the first reference")
        .click();
    harness.run_steps(2);
    slider(&harness, "Wipe");
    harness.get_by_label("Reuse settings").click();
    harness.run_steps(2);
    assert_eq!(harness.state().settings().sampler.seed, 77);
    assert_eq!(harness.state().settings().seed_policy, SeedPolicy::Locked);
    harness.get_by_label("Use as reference").click();
    harness.run_steps(2);
    assert_eq!(harness.state().canvas().references.len(), 2);
}

#[test]
fn results_are_written_as_they_arrive_and_come_back_after_a_restart() {
    let history = tempfile::tempdir().expect("tempdir");
    let with_history = || {
        let mut config = config();
        config.history_dir = Some(history.path().to_owned());
        config
    };
    let mut harness = harness_with(with_history());
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    {
        let settings = harness.state_mut().settings_mut();
        settings.sampler.steps = 2;
        settings.sampler.seed = 900;
        settings.count = 2;
    }
    harness.get_by_label("Generate").click();
    wait_for_first_run(&mut harness);
    let dir = harness.state().gallery().runs()[0]
        .history_dir
        .clone()
        .expect("run has a history folder");
    assert_eq!(std::fs::read_dir(&dir).expect("history folder").count(), 2);
    drop(harness);

    let mut restarted = harness_with(with_history());
    step_until(
        &mut restarted,
        Duration::from_secs(30),
        "the history",
        |app| !app.gallery().runs().is_empty(),
    );
    let runs = restarted.state().gallery().runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::FromHistory);
    assert_eq!(runs[0].settings.seed, 900);
    let mut seeds: Vec<u64> = runs[0]
        .images
        .iter()
        .map(|i| i.meta.settings.seed)
        .collect();
    seeds.sort_unstable();
    assert_eq!(seeds, [900, 901]);
    restarted.get_by_label_contains("from history");

    // Removing the run removes it from the history too.
    restarted.get_by_label("Remove run").click();
    restarted.run_steps(2);
    assert!(restarted.state().gallery().runs().is_empty());
    assert!(!dir.exists());
}

#[test]
fn interpolation_between_two_references_exports_frames_sheet_and_gif() {
    let export_dir = tempfile::tempdir().expect("tempdir");
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    drop_file(&mut harness, &fixture_ref("ref_b.png"));
    harness.get_by_label("Mode").click();
    harness.run_steps(2);
    harness.get_by_label("Interpolate").click();
    harness.run_steps(2);
    slider(&harness, "Frames").set_value_accesskit(3.0);
    slider(&harness, "Steps").set_value_accesskit(2.0);
    harness.run_steps(2);
    harness.state_mut().settings_mut().export_dir = Some(export_dir.path().to_owned());
    harness.get_by_label("Generate").click();
    wait_for_first_run(&mut harness);
    let run = &harness.state().gallery().runs()[0];
    assert_eq!(
        run.status,
        RunStatus::Finished,
        "{:?}",
        harness.state().notifications().items()
    );
    assert!(
        matches!(run.mode, Mode::Interpolate { frames: 3, .. }),
        "{:?}",
        run.mode
    );
    assert_eq!(run.images.len(), 3);
    // The morph shows as a strip with a preview that plays and scrubs.
    harness.get_by_label("Play").click();
    harness.run_steps(2);
    harness.get_by_label("Pause").click();
    harness.run_steps(2);
    harness.get_by_label("Play");
    slider(&harness, "Frame").set_value_accesskit(3.0);
    harness.run_steps(2);
    harness.get_by_label("Export all of run 1").click();
    harness.run_steps(2);
    wait_for_exports(&mut harness);
    let written = &harness.state().last_export().expect("export").written;
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(written.len(), 5, "{names:?}");
    let gif = written
        .iter()
        .find(|p| p.to_string_lossy().ends_with("_animation.gif"))
        .unwrap_or_else(|| panic!("no GIF in {names:?}"));
    let decoder = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(
        std::fs::File::open(gif).expect("open gif"),
    ))
    .expect("a GIF");
    // Three frames forward, then back: 0 1 2 1.
    assert_eq!(
        image::AnimationDecoder::into_frames(decoder).count(),
        4,
        "frames of the exported GIF"
    );
    assert!(
        names.iter().any(|n| n.ends_with("_contact_sheet.png")),
        "{names:?}"
    );
}

#[test]
fn a_sweep_renders_a_labelled_grid_and_exports_its_x_y_sheet() {
    let export_dir = tempfile::tempdir().expect("tempdir");
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    harness.get_by_label("Mode").click();
    harness.run_steps(2);
    harness.get_by_label("Sweep (X/Y grid)").click();
    harness.run_steps(2);
    slider(&harness, "Steps").set_value_accesskit(2.0);
    {
        let settings = harness.state_mut().settings_mut();
        settings.sweep_rows.clear();
        settings.sweep_guidance.clear();
        settings.export_dir = Some(export_dir.path().to_owned());
    }
    harness.run_steps(1);
    harness.get_by_label("Row values").click();
    harness.run_steps(1);
    harness.get_by_label("Row values").type_text("3, 4");
    harness.run_steps(1);
    harness.get_by_label("Guidance values").click();
    harness.run_steps(1);
    harness.get_by_label("Guidance values").type_text("1.5 6");
    harness.run_steps(2);
    harness.get_by_label("4 images, shown as a labelled grid");
    harness.get_by_label("Generate").click();
    wait_for_first_run(&mut harness);
    let run = &harness.state().gallery().runs()[0];
    assert_eq!(run.status, RunStatus::Finished);
    assert_eq!(run.images.len(), 4);
    let mut cells: Vec<_> = run
        .images
        .iter()
        .map(|i| (i.index, i.meta.settings.seed, i.meta.settings.guidance))
        .collect();
    cells.sort_by_key(|c| c.0);
    assert_eq!(cells, [(0, 3, 1.5), (1, 3, 6.0), (2, 4, 1.5), (3, 4, 6.0)]);
    // The grid is labelled with its axes.
    harness.get_by_label("guidance 6");
    harness.get_by_label("seed 4");

    harness.get_by_label("Export all of run 1").click();
    harness.run_steps(2);
    wait_for_exports(&mut harness);
    let written = harness
        .state()
        .last_export()
        .expect("export")
        .written
        .clone();
    let sheet_path = written
        .iter()
        .find(|p| p.to_string_lossy().ends_with("_contact_sheet.png"))
        .expect("a contact sheet");
    let sheet = image::open(sheet_path).expect("sheet").to_rgb8();
    let run = &harness.state().gallery().runs()[0];
    let mut images: Vec<_> = run.images.iter().collect();
    images.sort_by_key(|i| i.index);
    let images: Vec<&image::RgbImage> = images.iter().map(|i| i.image.as_ref()).collect();
    let expected = lumos_engine::contact_sheet::sweep_sheet(&run.mode, &images).expect("sheet");
    assert_eq!(sheet, expected, "the export is the labelled X/Y sheet");
}

#[test]
fn a_sweep_with_bad_values_says_why_and_does_not_start() {
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    harness.state_mut().settings_mut().mode = lumos_studio::settings::ModeKind::Sweep;
    harness.state_mut().settings_mut().sweep_guidance = "1.5, lots".into();
    harness.run_steps(2);
    harness.get_by_label_contains("`lots` is not one");
    harness.get_by_label("Generate").click();
    harness.run_steps(2);
    assert!(harness.state().gallery().runs().is_empty());
    harness.get_by_label_contains("Cannot start");
}

#[test]
fn pasting_an_image_or_a_file_path_adds_a_reference() {
    let mut harness = harness();
    let pixels = egui::ColorImage::new([6, 4], vec![egui::Color32::from_rgb(200, 30, 40); 24]);
    harness.event(egui::Event::PasteImage(std::sync::Arc::new(pixels)));
    harness.run_steps(2);
    let canvas = harness.state().canvas();
    assert_eq!(canvas.references.len(), 1);
    assert_eq!(canvas.references[0].image.dimensions(), (6, 4));
    assert_eq!(canvas.references[0].image.get_pixel(0, 0).0, [200, 30, 40]);
    assert!(canvas.references[0].alpha.is_none());
    // A pasted image with transparency keeps it for "mask from alpha".
    let mut see_through = vec![egui::Color32::from_rgb(10, 200, 10); 4];
    see_through[3] = egui::Color32::TRANSPARENT;
    let pixels = egui::ColorImage::new([2, 2], see_through);
    harness.event(egui::Event::PasteImage(std::sync::Arc::new(pixels)));
    harness.run_steps(2);
    let alpha = harness.state().canvas().references[1]
        .alpha
        .clone()
        .expect("alpha kept");
    assert_eq!(alpha.as_raw(), &[255, 255, 255, 0]);

    harness.event(egui::Event::Paste(
        fixture_ref("ref_b.png").display().to_string(),
    ));
    harness.run_steps(1);
    step_until(
        &mut harness,
        Duration::from_secs(30),
        "the file to load",
        |app| app.pending_loads() == 0,
    );
    assert_eq!(harness.state().canvas().references.len(), 3);
    assert_eq!(harness.state().canvas().references[2].name, "ref_b.png");
}

#[test]
fn a_waiting_job_can_be_removed_from_the_queue() {
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    harness.state_mut().settings_mut().sampler.steps = 1000;
    harness.state_mut().settings_mut().count = 16;
    harness.get_by_label("Generate").click();
    // Only a waiting job has a Remove button: let the first one start (on a busy machine the
    // engine can take a while to pick it up).
    step_until(
        &mut harness,
        Duration::from_secs(30),
        "the first job to start",
        |app| app.jobs().running().is_some(),
    );
    harness.state_mut().settings_mut().count = 1;
    harness.get_by_label("Queue another").click();
    harness.run_steps(2);
    assert_eq!(harness.state().jobs().jobs().len(), 2);
    harness.get_by_label("Remove").click();
    harness.run_steps(2);
    // Gone from the queue at once, although the engine only drops it when it gets to it.
    assert_eq!(
        harness.state().jobs().jobs().len(),
        1,
        "{:?}",
        harness.state().jobs().jobs()
    );
    let removed = &harness.state().gallery().runs()[1];
    assert_eq!(removed.status, RunStatus::Cancelled);
    assert!(removed.images.is_empty(), "a removed job never runs");
    harness.key_press(Key::Escape);
    step_until(&mut harness, Duration::from_secs(60), "the cancel", |app| {
        app.jobs().is_empty()
    });
    assert_eq!(
        harness.state().gallery().runs()[0].status,
        RunStatus::Cancelled
    );
}

#[test]
fn an_engine_error_is_shown_with_what_to_do() {
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    harness.state_mut().settings_mut().mode = lumos_studio::settings::ModeKind::Interpolate;
    harness.state_mut().settings_mut().sampler.steps = 2;
    harness.run_steps(1);
    harness.get_by_label("Generate").click();
    step_until(
        &mut harness,
        Duration::from_secs(60),
        "the run to end",
        |app| {
            app.gallery()
                .runs()
                .first()
                .is_some_and(|r| r.status != RunStatus::Pending)
        },
    );
    let status = harness.state().gallery().runs()[0].status.clone();
    assert!(matches!(status, RunStatus::Failed(_)), "{status:?}");
    let errors: Vec<_> = harness
        .state()
        .notifications()
        .items()
        .iter()
        .filter(|n| n.level == Level::Error)
        .map(|n| n.text.clone())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("Run 1 failed: "), "{}", errors[0]);
    eprintln!("engine error shown: {}", errors[0]);
    harness.get_by_label_contains("Error: Run 1 failed");
}

#[test]
fn moving_the_encoder_crop_is_part_of_the_request() {
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png")); // 300×200: the crop can move sideways
    let label = harness.get_by_label_contains("ref_a.png (").rect();
    // The thumbnail sits right under its label; drag from its middle to the right.
    let start = egui::pos2(label.left() + 110.0, label.bottom() + 60.0);
    drag(&mut harness, start, start + egui::vec2(150.0, 0.0));
    let crop = harness.state().canvas().references[0].crop;
    assert_eq!(crop, [1.0, 0.5], "dragged to the right edge");

    harness.state_mut().settings_mut().sampler.steps = 2;
    harness.state_mut().settings_mut().count = 1;
    harness.run_steps(1);
    harness.get_by_label("Generate").click();
    step_until(
        &mut harness,
        Duration::from_secs(60),
        "the run to finish",
        |app| {
            app.gallery()
                .runs()
                .first()
                .is_some_and(|r| r.status != RunStatus::Pending)
        },
    );
    let meta = &harness.state().gallery().runs()[0].images[0].meta;
    assert_eq!(meta.references[0].crop, Some([1.0, 0.5]));
}

/// eframe's storage, in memory.
#[derive(Default)]
struct MemoryStorage(std::collections::HashMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }

    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }

    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }

    fn flush(&mut self) {}
}

#[test]
fn settings_persist_through_eframe_storage() {
    let mut harness = harness();
    slider(&harness, "Guidance").set_value_accesskit(7.5);
    harness.run_steps(2);
    let mut storage = MemoryStorage::default();
    eframe::App::save(harness.state_mut(), &mut storage);
    drop(harness);

    // A new start reads them back (the app reads storage when the config brings no settings).
    let storage: &'static MemoryStorage = Box::leak(Box::new(storage));
    let mut config = config();
    config.settings = None;
    let restarted = egui_kittest::Harness::builder()
        .with_size(common::SIZE)
        .build_eframe(move |cc| {
            cc.storage = Some(storage);
            lumos_studio::LumosApp::new(cc, config).expect("app starts")
        });
    assert!((restarted.state().settings().sampler.guidance - 7.5).abs() < 1e-9);
}

/// Drags with the primary button from `start` to `end` in a few moves.
fn drag(harness: &mut common::AppHarness, start: egui::Pos2, end: egui::Pos2) {
    drag_with(harness, egui::PointerButton::Primary, start, end);
}

/// Drags with `button` from `start` to `end` in a few moves.
fn drag_with(
    harness: &mut common::AppHarness,
    button: egui::PointerButton,
    start: egui::Pos2,
    end: egui::Pos2,
) {
    harness.event(egui::Event::PointerMoved(start));
    harness.event(egui::Event::PointerButton {
        pos: start,
        button,
        pressed: true,
        modifiers: Modifiers::NONE,
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
        button,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    harness.run_steps(2);
}

#[test]
fn start_from_a_result_paint_a_mask_and_repaint_it() {
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    {
        let settings = harness.state_mut().settings_mut();
        settings.sampler.steps = 4;
        settings.count = 1;
        settings.seed_policy = SeedPolicy::Locked;
    }
    harness.run_steps(1);
    harness.get_by_label("Generate").click();
    step_until(
        &mut harness,
        Duration::from_secs(60),
        "the first run",
        |app| {
            app.gallery()
                .runs()
                .first()
                .is_some_and(|r| r.status != RunStatus::Pending)
        },
    );
    harness
        .state_mut()
        .push_command(lumos_studio::commands::AppCommand::View { run: 1, index: 0 });
    harness.run_steps(2);
    harness.get_by_label("Start from this image").click();
    harness.run_steps(2);
    harness
        .state_mut()
        .push_command(lumos_studio::commands::AppCommand::CloseViewer);
    harness.run_steps(2);
    assert_eq!(
        harness.state().start_image().map(|s| s.name.as_str()),
        Some("result 1.0")
    );

    let label = harness.get_by_label_contains("result 1.0 (64×64)").rect();
    let start = egui::pos2(label.left() + 60.0, label.bottom() + 80.0);
    drag(&mut harness, start, start + egui::vec2(120.0, 0.0));
    let masked = harness
        .state()
        .start_image()
        .expect("start")
        .masked_pixels();
    assert!(masked > 0, "the brush painted the mask");
    slider(&harness, "Strength").set_value_accesskit(0.5);
    harness.run_steps(2);

    harness.get_by_label("Generate").click();
    step_until(
        &mut harness,
        Duration::from_secs(60),
        "the img2img run",
        |app| {
            app.gallery()
                .runs()
                .get(1)
                .is_some_and(|r| r.status != RunStatus::Pending)
        },
    );
    let run = &harness.state().gallery().runs()[1];
    assert_eq!(
        run.status,
        RunStatus::Finished,
        "{:?}",
        harness.state().notifications().items()
    );
    let meta = &run.images[0].meta;
    assert_eq!(meta.strength, Some(0.5));
    assert!(meta.init_sha256.is_some(), "{meta:?}");
    assert!(meta.mask_sha256.is_some(), "{meta:?}");

    harness.get_by_label("Clear starting image").click();
    harness.run_steps(2);
    assert!(harness.state().start_image().is_none());
}

/// Masked pixels of the starting image.
fn masked_pixels(harness: &common::AppHarness) -> usize {
    harness
        .state()
        .start_image()
        .expect("a starting image")
        .masked_pixels()
}

/// Starts from the only reference on the canvas.
fn start_from_the_reference(harness: &mut common::AppHarness) {
    harness.get_by_label("Start from this").click();
    harness.run_steps(2);
    assert!(harness.state().start_image().is_some());
}

/// Steps until run `index` (0-based) has ended and returns its status.
fn wait_for_run(harness: &mut common::AppHarness, index: usize) -> RunStatus {
    step_until(harness, Duration::from_secs(60), "the run to end", |app| {
        app.gallery()
            .runs()
            .get(index)
            .is_some_and(|r| r.status != RunStatus::Pending)
    });
    harness.state().gallery().runs()[index].status.clone()
}

#[test]
fn mask_strokes_undo_redo_invert_and_inpaint() {
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png")); // 300×200, no transparency
    {
        let settings = harness.state_mut().settings_mut();
        settings.sampler.steps = 2;
        settings.count = 1;
    }
    start_from_the_reference(&mut harness);
    assert!(
        harness
            .get_by_label("Mask from alpha")
            .accesskit_node()
            .is_disabled(),
        "an opaque image has no mask to take from its alpha"
    );

    // The starting image sits under its label, the lower of the two "ref_a.png (300×200)".
    let label = harness
        .get_all_by_label("ref_a.png (300×200)")
        .map(|node| node.rect())
        .max_by(|a, b| a.top().total_cmp(&b.top()))
        .expect("the starting image's label");
    let start = egui::pos2(label.left() + 40.0, label.bottom() + 60.0);
    drag(&mut harness, start, start + egui::vec2(120.0, 0.0));
    let painted = masked_pixels(&harness);
    assert!(painted > 0, "the brush painted the mask");

    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.run_steps(2);
    assert_eq!(masked_pixels(&harness), 0, "Ctrl+Z takes the stroke back");
    harness.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    harness.run_steps(2);
    assert_eq!(
        masked_pixels(&harness),
        painted,
        "Ctrl+Shift+Z puts it back"
    );
    harness.get_by_label("Undo").click();
    harness.run_steps(2);
    assert_eq!(masked_pixels(&harness), 0, "the Undo button");
    harness.get_by_label("Redo").click();
    harness.run_steps(2);
    assert_eq!(masked_pixels(&harness), painted, "the Redo button");

    harness.get_by_label("Invert mask").click();
    harness.run_steps(2);
    let inverted = 300 * 200 - painted;
    assert_eq!(masked_pixels(&harness), inverted);
    harness.get_by_label("Undo").click();
    harness.run_steps(2);
    assert_eq!(masked_pixels(&harness), painted, "invert can be undone");
    harness.get_by_label("Redo").click();
    harness.run_steps(2);
    assert_eq!(masked_pixels(&harness), inverted);

    harness.get_by_label("Generate").click();
    let status = wait_for_run(&mut harness, 0);
    assert_eq!(
        status,
        RunStatus::Finished,
        "{:?}",
        harness.state().notifications().items()
    );
    let meta = &harness.state().gallery().runs()[0].images[0].meta;
    assert!(meta.mask_sha256.is_some(), "an inpaint: {meta:?}");

    harness.get_by_label("Clear mask").click();
    harness.run_steps(2);
    assert_eq!(masked_pixels(&harness), 0);
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.run_steps(2);
    assert_eq!(masked_pixels(&harness), inverted, "clear can be undone");
}

#[test]
fn strength_presets_set_the_strength_of_the_request() {
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    {
        let settings = harness.state_mut().settings_mut();
        settings.sampler.steps = 2;
        settings.count = 1;
    }
    start_from_the_reference(&mut harness);
    harness.get_by_label("Strong").click();
    harness.run_steps(2);
    assert_eq!(harness.state().settings().strength, 0.75);
    harness.get_by_label("Subtle").click();
    harness.run_steps(2);
    assert_eq!(harness.state().settings().strength, 0.35);

    harness.get_by_label("Generate").click();
    assert_eq!(wait_for_run(&mut harness, 0), RunStatus::Finished);
    let meta = &harness.state().gallery().runs()[0].images[0].meta;
    assert_eq!(meta.strength, Some(0.35));
    assert!(meta.mask_sha256.is_none(), "img2img of the whole image");
}

#[test]
fn a_negative_weight_subtracts_a_reference() {
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    drop_file(&mut harness, &fixture_ref("ref_b.png"));
    {
        let settings = harness.state_mut().settings_mut();
        settings.sampler.steps = 2;
        settings.count = 1;
    }
    slider(&harness, "Weight of ref_b.png").set_value_accesskit(-0.5);
    harness.run_steps(2);
    assert_eq!(harness.state().canvas().references[1].weight, -0.5);
    harness.get_by_label_contains("Negative weight");

    harness.get_by_label("Generate").click();
    assert_eq!(
        wait_for_run(&mut harness, 0),
        RunStatus::Finished,
        "{:?}",
        harness.state().notifications().items()
    );
    let meta = &harness.state().gallery().runs()[0].images[0].meta;
    assert_eq!(meta.references[1].weight, -0.5);
}

#[test]
fn mask_from_alpha_repaints_the_transparent_part_of_a_png() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cutout.png");
    // Left quarter transparent.
    image::RgbaImage::from_fn(64, 32, |x, _| {
        image::Rgba([200, 100, 50, if x < 16 { 0 } else { 255 }])
    })
    .save(&path)
    .expect("write the PNG");
    let mut harness = harness();
    drop_file(&mut harness, &path);
    start_from_the_reference(&mut harness);
    harness.get_by_label("Mask from alpha").click();
    harness.run_steps(2);
    assert_eq!(masked_pixels(&harness), 16 * 32);
    harness.get_by_label("Undo").click();
    harness.run_steps(2);
    assert_eq!(masked_pixels(&harness), 0);
}

#[test]
fn the_starting_image_zooms_about_the_pointer_pans_and_paints_where_shown() {
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png")); // 300×200
    start_from_the_reference(&mut harness);
    let image_size_px = egui::vec2(300.0, 200.0);
    let rect = harness
        .state()
        .start_image()
        .and_then(|s| s.last_rect())
        .expect("the starting image is drawn");
    let reset_disabled = |harness: &common::AppHarness| {
        harness
            .get_by_label("Reset view")
            .accesskit_node()
            .is_disabled()
    };
    assert!(reset_disabled(&harness), "nothing to reset yet");
    let view = |harness: &common::AppHarness| harness.state().start_image().expect("start").view;

    // Ctrl+wheel (or a pinch) zooms about the pointer.
    let pointer = rect.min + rect.size() * egui::vec2(0.25, 0.4);
    let under_pointer = view(&harness).image_from_canvas(rect, image_size_px, pointer);
    harness.event(egui::Event::PointerMoved(pointer));
    harness.run_steps(1);
    harness.event(egui::Event::Zoom(4.0));
    harness.run_steps(2);
    assert_eq!(view(&harness).zoom(), 4.0);
    let after = view(&harness).image_from_canvas(rect, image_size_px, pointer);
    assert!(
        after.distance(under_pointer) < 0.01,
        "the point under the pointer stays: {under_pointer:?} → {after:?}"
    );
    assert!(!reset_disabled(&harness));

    // The brush paints the image point that is shown under it.
    drag(&mut harness, pointer, pointer + egui::vec2(1.0, 0.0));
    let mask = harness
        .state()
        .start_image()
        .and_then(|s| s.mask().cloned())
        .expect("painted");
    assert_eq!(
        mask.get_pixel(under_pointer.x as u32, under_pointer.y as u32)
            .0[0],
        255
    );
    let painted = masked_pixels(&harness);

    // A middle-button drag pans: the image follows the pointer, and nothing is painted.
    drag_with(
        &mut harness,
        egui::PointerButton::Middle,
        pointer,
        pointer + egui::vec2(30.0, 10.0),
    );
    let moved =
        view(&harness).image_from_canvas(rect, image_size_px, pointer + egui::vec2(30.0, 10.0));
    assert!(
        moved.distance(under_pointer) < 0.01,
        "{under_pointer:?} → {moved:?}"
    );
    assert_eq!(masked_pixels(&harness), painted);

    // Space+drag pans as well.
    let before_space = view(&harness);
    harness.event(egui::Event::Key {
        key: Key::Space,
        physical_key: None,
        pressed: true,
        repeat: false,
        modifiers: Modifiers::NONE,
    });
    harness.run_steps(1);
    drag(&mut harness, pointer, pointer + egui::vec2(-20.0, -10.0));
    harness.event(egui::Event::Key {
        key: Key::Space,
        physical_key: None,
        pressed: false,
        repeat: false,
        modifiers: Modifiers::NONE,
    });
    harness.run_steps(1);
    assert_ne!(view(&harness), before_space, "Space+drag moved the view");
    assert_eq!(masked_pixels(&harness), painted, "and painted nothing");

    harness.get_by_label("Reset view").click();
    harness.run_steps(2);
    assert!(view(&harness).is_whole_image());
    assert!(reset_disabled(&harness));
}

#[test]
fn a_reference_zooms_and_its_crop_follows_the_pointer() {
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png")); // 300×200: the crop can move sideways
    let label = harness.get_by_label_contains("ref_a.png (").rect();
    let start = egui::pos2(label.left() + 110.0, label.bottom() + 60.0);
    let crop_x = |harness: &common::AppHarness| harness.state().canvas().references[0].crop[0];

    drag(&mut harness, start, start + egui::vec2(10.0, 0.0));
    let moved_unzoomed = crop_x(&harness) - 0.5;
    assert!(moved_unzoomed > 0.0);
    drag(&mut harness, start, start - egui::vec2(10.0, 0.0));
    assert!((crop_x(&harness) - 0.5).abs() < 1e-5);
    assert!(
        harness.query_by_label("Reset view of ref_a.png").is_none(),
        "no reset button for a whole view"
    );

    harness.event(egui::Event::PointerMoved(start));
    harness.run_steps(1);
    harness.event(egui::Event::Zoom(2.0));
    harness.run_steps(2);
    assert_eq!(harness.state().canvas().references[0].view.zoom(), 2.0);
    // Zoomed in twice, the same drag moves the crop half as far in the image.
    drag(&mut harness, start, start + egui::vec2(10.0, 0.0));
    let moved_zoomed = crop_x(&harness) - 0.5;
    assert!(
        (moved_zoomed - moved_unzoomed / 2.0).abs() < 1e-4,
        "{moved_zoomed} vs {moved_unzoomed}"
    );

    // A middle-button drag pans the view and leaves the crop alone.
    let view = harness.state().canvas().references[0].view;
    drag_with(
        &mut harness,
        egui::PointerButton::Middle,
        start,
        start + egui::vec2(20.0, 0.0),
    );
    assert_ne!(harness.state().canvas().references[0].view, view);
    assert!((crop_x(&harness) - 0.5 - moved_zoomed).abs() < 1e-6);

    harness.get_by_label("Reset view of ref_a.png").click();
    harness.run_steps(2);
    assert!(harness.state().canvas().references[0].view.is_whole_image());
}

/// Clicks the empty canvas's sample button `name` and waits until the reference is there.
fn add_sample(harness: &mut common::AppHarness, name: &str) {
    harness.get_by_label(name).click();
    step_until(
        harness,
        Duration::from_secs(20),
        "the sample loads",
        |app| !app.canvas().references.is_empty(),
    );
}

#[test]
fn a_sample_photo_can_be_added_from_the_empty_canvas() {
    let mut harness = harness();
    add_sample(&mut harness, "chelsea");
    let reference = &harness.state().canvas().references[0];
    assert_eq!(reference.name, "chelsea.jpg");
    assert_eq!(reference.image.dimensions(), (451, 300));
}

/// A first-time user's path: the built-in model, the tangerine sample from the empty canvas,
/// Generate. The variations are the reference's subject in the model's style: an orange
/// shape on a light background (the model knows emoji; it never trained on this one).
#[test]
fn the_tangerine_sample_comes_back_orange_from_the_built_in_model() {
    let spec = lumos_engine::embedded::default_spec().expect("the built-in model");
    let mut harness = harness_with(lumos_studio::AppConfig::with_model(spec));
    add_sample(&mut harness, "tangerine");
    {
        let settings = harness.state_mut().settings_mut();
        settings.count = 2;
        settings.sampler.steps = 10;
    }
    harness.get_by_label("Generate").click();
    assert_eq!(wait_for_run(&mut harness, 0), RunStatus::Finished);
    let run = &harness.state().gallery().runs()[0];
    assert_eq!(run.images.len(), 2);
    for made in &run.images {
        let pixels = made.image.pixels().collect::<Vec<_>>();
        let corner = made.image.get_pixel(2, 2);
        assert!(
            corner.0.iter().all(|&c| c > 200),
            "light background: {corner:?}"
        );
        // Orange: red high, blue low, on a good part of the picture.
        let orange = pixels
            .iter()
            .filter(|p| p[0] > 180 && p[2] < 90 && p[0] > p[1])
            .count();
        assert!(
            orange * 5 > pixels.len(),
            "{orange} orange pixels of {}",
            pixels.len()
        );
    }
}

#[test]
fn the_built_in_model_says_what_it_is_good_at() {
    let spec = lumos_engine::embedded::default_spec().expect("the built-in model");
    let mut harness = harness_with(lumos_studio::AppConfig::with_model(spec));
    harness.run_steps(2);
    harness.get_by_label_contains("trained by this project on emoji and clip art");
    harness.get_by_label_contains("install the full Lumos model");
}
