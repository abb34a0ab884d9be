//! Starting after something went wrong: a damaged settings file and damaged history files are
//! set aside and the app says so in its notifications; an animated image added as a reference
//! is used by its first frame, and the app says that too; a PNG whose settings chunk is damaged
//! is added as a reference, and the app says its settings were not restored.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config, drop_file, harness_with, step_until};
use lumos_studio::settings::{SETTINGS_FILE_NAME, Settings};

fn notification_texts(harness: &common::AppHarness) -> Vec<String> {
    harness
        .state()
        .notifications()
        .items()
        .iter()
        .map(|n| n.text.clone())
        .collect()
}

#[test]
fn the_app_starts_with_a_damaged_settings_file_and_says_where_it_was_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(SETTINGS_FILE_NAME);
    std::fs::write(&path, b"{\"count\": 7, \"mode\": \"Var").expect("a cut-short file");
    let mut config = config();
    config.settings = None;
    config.settings_file = Some(path.clone());
    let mut harness = harness_with(config);
    harness.run_steps(2);
    // The defaults, beside the note of which model the guidance belongs to.
    let settings = harness.state().settings();
    assert_eq!(
        settings,
        &Settings {
            guidance_model: settings.guidance_model.clone(),
            ..Settings::default()
        }
    );
    let texts = notification_texts(&harness);
    let notice = texts
        .iter()
        .find(|t| t.contains("settings could not be read"))
        .unwrap_or_else(|| panic!("no notice among {texts:?}"));
    assert!(notice.contains("settings.json.damaged-"), "{notice}");
    assert!(!path.exists());
    let kept = std::fs::read_dir(dir.path()).expect("dir").count();
    assert_eq!(kept, 1);
}

#[test]
fn damaged_history_files_are_reported_at_start_up_and_the_rest_loads() {
    let history = tempfile::tempdir().expect("tempdir");
    let run_dir = lumos_studio::history::run_dir(history.path(), 1_700_000_000, 3);
    let image = image::RgbImage::from_pixel(16, 16, image::Rgb([9, 99, 199]));
    let meta = |index: usize| lumos_engine::protocol::GenerationMeta {
        version: lumos_engine::protocol::META_VERSION,
        model: "test".into(),
        mode: lumos_engine::protocol::Mode::Variations { count: 2 },
        settings: Default::default(),
        index,
        mix: None,
        references: Vec::new(),
        size: [16, 16],
        parent: None,
        mix_settings: Default::default(),
        strength: None,
        init_sha256: None,
        mask_sha256: None,
        prompt: None,
    };
    for index in 0..2 {
        lumos_studio::history::write_result(&run_dir, index, &image, &meta(index)).expect("write");
    }
    std::fs::write(run_dir.join("001.png"), b"\x89PNG\r\n\x1a\n cut").expect("damage");
    let mut config = config();
    config.history_dir = Some(history.path().to_owned());
    let mut harness = harness_with(config);
    step_until(
        &mut harness,
        Duration::from_secs(30),
        "the history",
        |app| !app.gallery().runs().is_empty(),
    );
    assert_eq!(harness.state().gallery().runs()[0].images.len(), 1);
    let texts = notification_texts(&harness);
    assert!(
        texts.iter().any(|t| t.contains("001.png.damaged")),
        "{texts:?}"
    );
    assert!(run_dir.join("001.png.damaged").exists());
}

#[test]
fn an_animated_reference_is_added_by_its_first_frame_with_a_notice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dance.gif");
    let frames: Vec<_> = [[250u8, 0, 0], [0, 250, 0]]
        .iter()
        .map(|&c| Arc::new(image::RgbImage::from_pixel(32, 32, image::Rgb(c))))
        .collect();
    std::fs::write(
        &path,
        lumos_studio::export::gif_bytes(&frames).expect("gif"),
    )
    .expect("write");
    let mut harness = harness_with(config());
    drop_file(&mut harness, &path);
    assert_eq!(harness.state().canvas().references.len(), 1);
    let first = harness.state().canvas().references[0]
        .image
        .get_pixel(16, 16)
        .0;
    assert!(
        first[0] > 200 && first[1] < 50,
        "{first:?} is not the first frame"
    );
    let texts = notification_texts(&harness);
    assert!(
        texts
            .iter()
            .any(|t| t.contains("dance.gif") && t.contains("only its first frame")),
        "{texts:?}"
    );
}

#[test]
fn a_png_whose_settings_are_damaged_is_added_and_the_app_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("result.png");
    // A PNG with our settings chunk holding broken JSON.
    let bytes = lumos_engine::imageio::encode_png_with_text(
        &image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            8,
            8,
            image::Rgb([90, 90, 90]),
        )),
        &[(
            lumos_engine::imageio::META_KEYWORD,
            "{\"version\": 1, \"mo".to_string(),
        )],
    )
    .expect("encode");
    std::fs::write(&path, bytes).expect("write");
    let mut harness = harness_with(config());
    let seed_before = harness.state().settings().sampler.seed;
    drop_file(&mut harness, &path);
    assert_eq!(
        harness.state().canvas().references.len(),
        1,
        "the pixels are fine"
    );
    assert_eq!(harness.state().settings().sampler.seed, seed_before);
    let texts = notification_texts(&harness);
    assert!(
        texts
            .iter()
            .any(|t| t.contains("result.png") && t.contains("could not be read")),
        "{texts:?}"
    );
}
