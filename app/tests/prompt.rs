//! The prompt box end to end on the real engine with the tiny text-to-image fixtures: type a
//! prompt, pick a size, Ctrl+Enter; the results record the prompt (A1111 `parameters`, the
//! prompt first) and a dropped result gives it back; recent prompts; what happens with
//! references on the canvas; and, without the full model, the built-in prompt model with a
//! plain note of where the full one goes.

mod common;

use std::time::Duration;

use common::{
    AppHarness, drop_file, fixture_ref, harness, harness_with, step_until, wait_for_exports,
};
use egui::{Key, Modifiers};
use egui_kittest::kittest::Queryable;
use lumos_engine::protocol::Mode;
use lumos_studio::gallery::RunStatus;
use lumos_studio::prompt::TextToImageModel;
use lumos_studio::settings::SeedPolicy;

/// The app with the pipeline fixture model and the tiny text-to-image model (its widened T5
/// written into `t5_dir`); `None` when the fixtures are missing outside CI.
fn prompt_harness(t5_dir: &std::path::Path) -> Option<AppHarness> {
    let spec = lumos_tests::tiny_text_to_image_spec(t5_dir)?;
    let mut config = common::config();
    config.text_to_image = TextToImageModel {
        spec: Some(spec),
        report: String::new(),
    };
    Some(harness_with(config))
}

fn type_prompt(harness: &mut AppHarness, text: &str) {
    harness.get_by_label("Describe the image to make").click();
    harness.run_steps(1);
    harness
        .get_by_label("Describe the image to make")
        .type_text(text);
    harness.run_steps(1);
}

fn wait_for_run(harness: &mut AppHarness) -> RunStatus {
    step_until(harness, Duration::from_secs(120), "the run to end", |app| {
        app.gallery()
            .runs()
            .first()
            .is_some_and(|r| r.status != RunStatus::Pending)
    });
    harness.state().gallery().runs()[0].status.clone()
}

#[test]
fn a_prompt_makes_images_that_carry_it_and_a_dropped_result_gives_it_back() {
    let t5_dir = tempfile::tempdir().expect("tempdir");
    let export_dir = tempfile::tempdir().expect("tempdir");
    let Some(mut harness) = prompt_harness(t5_dir.path()) else {
        return;
    };
    {
        let settings = harness.state_mut().settings_mut();
        settings.sampler.steps = 2;
        settings.sampler.seed = 77;
        settings.count = 2;
        settings.seed_policy = SeedPolicy::Locked;
        settings.export_dir = Some(export_dir.path().to_owned());
    }
    harness.run_steps(1);
    type_prompt(&mut harness, "a red fox in the snow");
    harness
        .get_by_label_contains("Generate makes 2 image(s) from the prompt with tiny text-to-image");
    // A landscape size from the model's buckets.
    harness.get_by_label("Size").click();
    harness.run_steps(2);
    // The list scrolls: the item may be outside the popup's visible part.
    harness
        .get_by_label("1216 × 832 (landscape)")
        .click_accesskit();
    harness.run_steps(2);
    assert_eq!(harness.state().settings().prompt_size_px, [1216, 832]);
    // Ctrl+Enter with the cursor still in the prompt box.
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Enter);
    harness.run_steps(1);
    assert_eq!(
        harness.state().settings().prompt,
        "a red fox in the snow",
        "Ctrl+Enter generates, it types no new line"
    );
    assert_eq!(
        wait_for_run(&mut harness),
        RunStatus::Finished,
        "{:?}",
        harness.state().notifications().items()
    );
    harness.run_steps(2);
    {
        let run = &harness.state().gallery().runs()[0];
        assert_eq!(run.prompt.as_deref(), Some("a red fox in the snow"));
        assert!(run.references.is_empty());
        assert_eq!(run.images.len(), 2);
        for (i, result) in run.images.iter().enumerate() {
            assert_eq!(result.meta.prompt.as_deref(), Some("a red fox in the snow"));
            assert_eq!(result.meta.mode, Mode::Variations { count: 2 });
            assert_eq!(
                result.meta.settings.seed,
                77 + result.meta.index as u64,
                "{i}"
            );
            let (w, h) = result.image.dimensions();
            assert!(w > h, "a landscape bucket gives a landscape image: {w}×{h}");
        }
    }
    harness.get_by_label("Prompt: a red fox in the snow");
    assert_eq!(
        harness.state().settings().recent_prompts,
        vec!["a red fox in the snow".to_owned()]
    );

    // Exported PNGs carry the prompt as the first line of A1111's `parameters`.
    harness.get_by_label("Export all of run 1").click();
    harness.run_steps(2);
    wait_for_exports(&mut harness);
    let written = harness
        .state()
        .last_export()
        .expect("export")
        .written
        .clone();
    let png = written
        .iter()
        .find(|p| {
            p.extension().is_some_and(|e| e == "png") && !p.to_string_lossy().contains("contact")
        })
        .expect("a result PNG");
    let parameters =
        lumos_engine::imageio::read_png_text(png, lumos_engine::imageio::PARAMETERS_KEYWORD)
            .expect("read")
            .expect("parameters chunk");
    let mut lines = parameters.lines();
    assert_eq!(lines.next(), Some("a red fox in the snow"));
    let settings_line = lines.next().expect("a settings line");
    assert!(
        settings_line.starts_with("Steps: 2, Sampler: DPM-Solver++ 2M, CFG scale: 4.5, Seed: 7"),
        "{settings_line}"
    );

    // Another prompt, then the first one back from the recent prompts.
    harness.state_mut().settings_mut().prompt = "a blue whale".into();
    harness.run_steps(1);
    harness.get_by_label("Recent prompts").click();
    harness.run_steps(2);
    harness.get_by_label("a red fox in the snow").click();
    harness.run_steps(2);
    assert_eq!(harness.state().settings().prompt, "a red fox in the snow");

    // Dropping a result back restores its prompt and settings, and adds no reference.
    {
        let settings = harness.state_mut().settings_mut();
        settings.prompt.clear();
        settings.sampler.seed = 5;
        settings.seed_policy = SeedPolicy::Random;
    }
    drop_file(&mut harness, png);
    let settings = harness.state().settings();
    assert_eq!(settings.prompt, "a red fox in the snow");
    assert_eq!(settings.sampler.seed, 77, "the run's first seed, locked");
    assert_eq!(settings.seed_policy, SeedPolicy::Locked);
    assert!(harness.state().canvas().references.is_empty());
    let shown = format!("{:?}", harness.state().notifications().items());
    assert!(shown.contains("Restored the prompt"), "{shown}");
}

#[test]
fn with_references_on_the_canvas_generate_works_from_them_and_the_prompt_waits() {
    let t5_dir = tempfile::tempdir().expect("tempdir");
    let Some(mut harness) = prompt_harness(t5_dir.path()) else {
        return;
    };
    harness.state_mut().settings_mut().sampler.steps = 2;
    harness.state_mut().settings_mut().count = 1;
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    type_prompt(&mut harness, "a castle");
    harness
        .get_by_label_contains("References are on the canvas, so Generate makes images from them");
    harness.get_by_label("Generate").click();
    assert_eq!(wait_for_run(&mut harness), RunStatus::Finished);
    let run = &harness.state().gallery().runs()[0];
    assert_eq!(run.prompt, None);
    assert_eq!(run.references, vec!["ref_a.png".to_owned()]);
    assert_eq!(run.images[0].meta.prompt, None);
}

#[test]
fn without_the_full_model_prompts_use_the_built_in_one_and_say_where_the_full_one_goes() {
    let mut harness = harness();
    harness.state_mut().settings_mut().sampler.steps = 2;
    harness.state_mut().settings_mut().count = 1;
    type_prompt(&mut harness, "cat face");
    let side = lumos_engine::pipelines::prompt_model::builtin_image_size_px();
    harness.get_by_label_contains(&format!("Size: {side} × {side} px"));
    harness.get_by_label_contains("with the built-in prompt model");
    // The note says where the full model's files go.
    for part in [
        "The full text-to-image model is not installed",
        "Lumos_T2I.pth",
        "t5-v1_1-xxl",
        "searched:",
    ] {
        harness.get_by_label_contains(part);
    }
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Enter);
    harness.run_steps(1);
    assert_eq!(
        wait_for_run(&mut harness),
        RunStatus::Finished,
        "{:?}",
        harness.state().notifications().items()
    );
    let run = &harness.state().gallery().runs()[0];
    assert_eq!(run.prompt.as_deref(), Some("cat face"));
    assert!(run.model.contains("prompts (built in)"), "{}", run.model);
    assert_eq!(run.images.len(), 1);
    assert_eq!(run.images[0].image.dimensions(), (side as u32, side as u32));
    assert_eq!(run.images[0].meta.prompt.as_deref(), Some("cat face"));

    // A prompt with no word the model knows fails with the reason, and nothing else is lost.
    harness.state_mut().settings_mut().prompt = "zzzq qqqz".into();
    harness.run_steps(1);
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Enter);
    step_until(
        &mut harness,
        Duration::from_secs(60),
        "the second run to end",
        |app| {
            app.gallery().runs().len() == 2 && app.gallery().runs()[1].status != RunStatus::Pending
        },
    );
    let runs = harness.state().gallery().runs();
    match &runs[1].status {
        RunStatus::Failed(reason) => {
            assert!(reason.contains("knows none of the words"), "{reason}")
        }
        other => panic!("the run should fail with the reason, not {other:?}"),
    }
    assert_eq!(runs[0].images.len(), 1, "the first run keeps its image");
}

#[test]
fn searching_a_models_folder_finds_the_text_to_image_model() {
    // The published layout, with the tiny fixtures' files under the published names (found,
    // not run: the published configuration is the full-size one).
    let fixtures = lumos_engine::checkpoints::fixtures_root();
    if !fixtures.join("t5_tiny").is_dir() {
        assert!(!lumos_tests::fixtures_required(), "missing fixture t5_tiny");
        println!("SKIPPED: no fixture t5_tiny");
        return;
    }
    let models = tempfile::tempdir().expect("tempdir");
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from, to).expect("copy");
    };
    copy(
        &fixtures.join("lumos_t2ims_tiny/weights.pth"),
        &models.path().join("Lumos_T2I.pth"),
    );
    let t5 = models.path().join("t5-v1_1-xxl");
    copy(
        &fixtures.join("t5_tiny/config.json"),
        &t5.join("config.json"),
    );
    copy(
        &fixtures.join("t5_tiny/weights.safetensors"),
        &t5.join("model.safetensors"),
    );
    copy(
        &fixtures.join("t5_tokenizer_tiny/spiece.model"),
        &t5.join("spiece.model"),
    );
    let vae = fixtures.join("pipeline_tiny/vae");
    for entry in std::fs::read_dir(&vae).expect("vae folder") {
        let path = entry.expect("entry").path();
        copy(
            &path,
            &models
                .path()
                .join("sd-vae-ft-mse")
                .join(path.file_name().expect("name")),
        );
    }
    let mut harness = harness();
    assert!(!harness.state().has_text_to_image_model());
    harness
        .state_mut()
        .push_command(lumos_studio::commands::AppCommand::SearchModels(
            models.path().to_owned(),
        ));
    harness.run_steps(2);
    assert!(
        harness.state().has_text_to_image_model(),
        "{:?}",
        harness.state().notifications().items()
    );
    type_prompt(&mut harness, "a lighthouse");
    harness.get_by_label_contains("from the prompt with Lumos T2I XL/2");
    let shown = format!("{:?}", harness.state().notifications().items());
    assert!(shown.contains("Found the text-to-image model"), "{shown}");
    assert!(!shown.contains("not complete"), "{shown}");
}
