//! Projects as a user meets them: undo and redo of canvas edits from the keyboard, File ▸ Save
//! and Open with the questions that protect unsaved work and existing files, and the work
//! coming back after the app is killed with SIGKILL.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{config, drop_file, fixture_ref, harness, harness_with, slider};
use egui::{Key, Modifiers};
use egui_kittest::kittest::Queryable;
use lumos_studio::commands::AppCommand;

fn names_and_weights(harness: &common::AppHarness) -> Vec<(String, f32)> {
    harness
        .state()
        .canvas()
        .references
        .iter()
        .map(|r| (r.name.clone(), r.weight))
        .collect()
}

fn command(harness: &mut common::AppHarness, command: AppCommand) {
    harness.state_mut().push_command(command);
    harness.run_steps(2);
}

#[test]
fn canvas_edits_undo_and_redo_from_the_keyboard() {
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    drop_file(&mut harness, &fixture_ref("ref_b.png"));
    slider(&harness, "Weight of ref_b.png").set_value_accesskit(0.5);
    harness.run_steps(2);
    harness.get_by_label("Remove ref_a.png").click();
    harness.run_steps(2);
    assert_eq!(names_and_weights(&harness), [("ref_b.png".into(), 0.5)]);

    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.run_steps(1);
    assert_eq!(
        names_and_weights(&harness),
        [("ref_a.png".into(), 1.0), ("ref_b.png".into(), 0.5)],
        "the removed reference is back, in its place"
    );
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.run_steps(1);
    assert_eq!(
        names_and_weights(&harness),
        [("ref_a.png".into(), 1.0), ("ref_b.png".into(), 1.0)]
    );
    harness.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    harness.run_steps(1);
    assert_eq!(
        names_and_weights(&harness),
        [("ref_a.png".into(), 1.0), ("ref_b.png".into(), 0.5)]
    );
    // Edit ▸ Undo does the same as Ctrl+Z.
    harness.get_by_label("Edit").click();
    harness.run_steps(3);
    harness.get_by_label("Undo (Ctrl+Z)").click();
    harness.run_steps(2);
    assert_eq!(
        names_and_weights(&harness),
        [("ref_a.png".into(), 1.0), ("ref_b.png".into(), 1.0)]
    );
}

#[test]
fn a_project_saves_reopens_and_asks_before_losing_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut harness = harness();
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    drop_file(&mut harness, &fixture_ref("ref_b.png"));
    slider(&harness, "Weight of ref_b.png").set_value_accesskit(-0.5);
    slider(&harness, "Steps").set_value_accesskit(7.0);
    harness.run_steps(2);
    harness
        .get_all_by_label("Start from this")
        .next()
        .expect("a Start from this button")
        .click();
    harness.run_steps(2);
    {
        let start = harness.state_mut().start_image_mut().expect("start image");
        let brush = lumos_studio::panels::start_image::Brush::hard(
            6.0,
            lumos_studio::panels::start_image::BrushMode::Paint,
        );
        start.stroke_to(egui::pos2(20.0, 20.0), brush);
        start.end_stroke();
    }
    harness.run_steps(1);
    let mask = harness
        .state()
        .start_image()
        .and_then(|s| s.mask().cloned())
        .expect("a mask");
    harness.get_by_label("Untitled •");

    // Save as "scene" (the extension is added).
    command(
        &mut harness,
        AppCommand::SaveProjectAs {
            path: dir.path().join("scene"),
            replace: false,
        },
    );
    let saved = dir.path().join("scene.lumos");
    assert!(
        saved.is_file(),
        "{:?}",
        harness.state().notifications().items()
    );
    assert_eq!(harness.state().project_path(), Some(saved.as_path()));
    assert!(!harness.state().has_unsaved_changes());
    harness.get_by_label("scene.lumos");

    // Change things, then open the saved project: the app asks first.
    slider(&harness, "Weight of ref_a.png").set_value_accesskit(2.0);
    harness.run_steps(2);
    harness.get_by_label("scene.lumos •");
    command(
        &mut harness,
        AppCommand::OpenProject {
            path: saved.clone(),
            discard: false,
        },
    );
    assert!(harness.state().asks_question());
    harness.get_by_label("Cancel").click();
    harness.run_steps(2);
    assert!(!harness.state().asks_question());
    assert_eq!(
        harness.state().canvas().references[0].weight,
        2.0,
        "nothing was lost"
    );
    command(
        &mut harness,
        AppCommand::OpenProject {
            path: saved.clone(),
            discard: false,
        },
    );
    harness.get_by_label("Discard changes").click();
    harness.run_steps(2);
    assert_eq!(
        names_and_weights(&harness),
        [("ref_a.png".into(), 1.0), ("ref_b.png".into(), -0.5)]
    );
    assert_eq!(harness.state().settings().sampler.steps, 7);
    let start = harness
        .state()
        .start_image()
        .expect("the start image is back");
    assert_eq!(
        start.mask(),
        Some(&mask),
        "the painted mask is back, pixel for pixel"
    );
    assert!(!harness.state().has_unsaved_changes());
    // Opening replaced the canvas; Undo still has the references from before.
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.run_steps(1);
    assert_eq!(harness.state().canvas().references[0].weight, 2.0);

    // "Save as" onto another existing file asks; Cancel leaves the file alone.
    let other = dir.path().join("other.lumos");
    std::fs::write(&other, b"precious").expect("write");
    command(
        &mut harness,
        AppCommand::SaveProjectAs {
            path: other.clone(),
            replace: false,
        },
    );
    harness.get_by_label("Replace the file?");
    harness.get_by_label("Cancel").click();
    harness.run_steps(2);
    assert_eq!(std::fs::read(&other).expect("read"), b"precious");
    command(
        &mut harness,
        AppCommand::SaveProjectAs {
            path: other.clone(),
            replace: false,
        },
    );
    harness.get_by_label("Replace").click();
    harness.run_steps(2);
    assert!(lumos_engine::project::load(&other).is_ok());
    // Saving to the project's own file does not ask.
    harness.key_press_modifiers(Modifiers::COMMAND, Key::S);
    harness.run_steps(2);
    assert!(!harness.state().asks_question());

    // A damaged project file: a clear error, the canvas untouched.
    let damaged = dir.path().join("damaged.lumos");
    let bytes = std::fs::read(&saved).expect("read");
    std::fs::write(&damaged, &bytes[..bytes.len() / 3]).expect("write");
    let before = names_and_weights(&harness);
    command(
        &mut harness,
        AppCommand::OpenProject {
            path: damaged,
            discard: true,
        },
    );
    assert_eq!(names_and_weights(&harness), before);
    harness.get_by_label_contains("The project could not be opened");
}

/// Set in the child process of the kill test: where it works.
const CHILD_DIR_VAR: &str = "LUMOS_PROJECT_KILL_CHILD";

fn recovery_config(dir: &Path) -> lumos_studio::AppConfig {
    let mut config = config();
    config.recovery_dir = Some(dir.join("recovery"));
    config
}

/// The child: saves a project, makes more changes, autosaves them, says so, then keeps
/// running until it is killed.
fn run_child(dir: &Path) {
    let mut harness = harness_with(recovery_config(dir));
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    command(
        &mut harness,
        AppCommand::SaveProjectAs {
            path: dir.join("saved.lumos"),
            replace: false,
        },
    );
    drop_file(&mut harness, &fixture_ref("ref_b.png"));
    slider(&harness, "Weight of ref_b.png").set_value_accesskit(1.5);
    harness.run_steps(2);
    harness.state_mut().autosave_now();
    std::fs::write(dir.join("ready"), b"").expect("ready");
    loop {
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn work_comes_back_after_the_app_is_killed() {
    if let Some(dir) = std::env::var_os(CHILD_DIR_VAR) {
        run_child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "work_comes_back_after_the_app_is_killed",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_VAR, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the child");
    let ready: PathBuf = dir.path().join("ready");
    let start = Instant::now();
    while !ready.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the child ended before it was ready: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the child never got ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL"); // `kill` is SIGKILL on Unix
    child.wait().expect("reap");

    // The saved project is whole and holds what was saved.
    let saved = lumos_engine::project::load(&dir.path().join("saved.lumos")).expect("saved");
    assert_eq!(saved.references.len(), 1);

    // The next start offers the autosaved work, which has everything up to the kill.
    let mut harness = harness_with(recovery_config(dir.path()));
    harness.run_steps(2);
    assert!(harness.state().asks_question());
    harness.get_by_label("Restore unsaved work?");
    harness.get_by_label("Restore").click();
    harness.run_steps(2);
    assert_eq!(
        names_and_weights(&harness),
        [("ref_a.png".into(), 1.0), ("ref_b.png".into(), 1.5)]
    );
    assert!(
        harness.state().has_unsaved_changes(),
        "restored work is not in any file yet"
    );
    // A clean quit with the work saved offers nothing next time.
    command(
        &mut harness,
        AppCommand::SaveProjectAs {
            path: dir.path().join("restored.lumos"),
            replace: false,
        },
    );
    harness.state_mut().quit();
    drop(harness);
    let harness = harness_with(recovery_config(dir.path()));
    assert!(!harness.state().asks_question());
}
