//! `lumos multiview` end to end on a tiny random novel-view prior (the Lumos NVS config in
//! pixel space with the built-in encoder): the files it writes and what they contain, seeds
//! that repeat, nothing overwritten, and clear errors for bad input; and the same sets made
//! through the engine thread's `Multiview` request (the app's path).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use lumos_engine::camera::{OrbitPose, OrbitPreset, Transforms};
use lumos_engine::pipelines::multiview::MultiviewRequest;
use lumos_engine::protocol::{
    DeviceChoice, Event, ModelSpec, MultiviewJob, MultiviewModel, SamplerSettings,
};

fn lumos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lumos"))
        .args(args)
        .output()
        .expect("run lumos")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The shared tiny novel-view prior (`lumos_tests`), saved as `model.json` +
/// `prior.safetensors`; returns the manifest.
fn tiny_nvs_model(dir: &Path) -> PathBuf {
    lumos_tests::tiny_novel_view_model(dir);
    dir.join("model.json")
}

/// A red disc on white.
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

#[test]
fn a_zero123pp_set_writes_views_cameras_grid_and_turntable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = tiny_nvs_model(dir.path());
    let reference = dir.path().join("disc.png");
    disc_reference(&reference);
    let out = dir.path().join("set");
    let args = |out: &Path| -> Vec<String> {
        [
            "multiview",
            path_str(&reference),
            "--preset",
            "zero123pp",
            "--model",
            path_str(&model),
            "--steps",
            "2",
            "--seed",
            "9",
            "--input-elevation",
            "-5",
            "--alpha",
            "-o",
            path_str(out),
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |args: Vec<String>| lumos(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let result = run(args(&out));
    assert!(result.status.success(), "{}", stderr(&result));

    // Frame 0 (the reference) and six views, each with its camera; the grid is 2 × 3 views.
    let transforms: Transforms = serde_json::from_str(
        &std::fs::read_to_string(out.join("transforms.json")).expect("transforms.json"),
    )
    .expect("parse transforms.json");
    assert_eq!(transforms.frames.len(), 7);
    assert_eq!((transforms.w, transforms.h), (16, 16));
    assert_eq!(transforms.frames[0].file_path, "view_00.png");
    assert_eq!(transforms.frames[0].orbit.elevation_deg, -5.0);
    let angles: Vec<(f64, f64)> = transforms.frames[1..]
        .iter()
        .map(|f| (f.orbit.elevation_deg, f.orbit.azimuth_deg))
        .collect();
    assert_eq!(
        angles,
        [
            (20.0, 30.0),
            (-10.0, 90.0),
            (20.0, 150.0),
            (-10.0, 210.0),
            (20.0, 270.0),
            (-10.0, 330.0)
        ]
    );
    for (i, frame) in transforms.frames.iter().enumerate() {
        let path = out.join(&frame.file_path);
        let view = image::open(&path).expect("view png");
        assert_eq!((view.width(), view.height()), (16, 16));
        assert!(view.color().has_alpha(), "--alpha writes RGBA");
        let camera = lumos_engine::imageio::read_png_text(&path, "lumos-camera")
            .expect("readable")
            .expect("camera chunk");
        let camera: serde_json::Value = serde_json::from_str(&camera).expect("json");
        assert_eq!(
            camera["orbit"]["azimuth_deg"].as_f64(),
            Some(frame.orbit.azimuth_deg),
            "frame {i}"
        );
        // Every camera sees the object's centre in the middle of its view.
        let [u, v] = transforms.project(i, [0.0; 3]).expect("in front");
        assert!((u - 8.0).abs() < 1e-9 && (v - 8.0).abs() < 1e-9);
    }
    let grid = image::open(out.join("grid.png")).expect("grid").to_rgb8();
    assert_eq!((grid.width(), grid.height()), (2 * 16, 3 * 16));
    // Zero123++ v1.2's order: two views per row, in pose order (30°, 90° | 150°, 210° | …).
    for i in 0..6u32 {
        let tile = image::imageops::crop_imm(&grid, (i % 2) * 16, (i / 2) * 16, 16, 16).to_image();
        let view = image::open(out.join(format!("view_{:02}.png", i + 1)))
            .expect("view")
            .to_rgb8();
        assert_eq!(tile, view, "tile {i} is view {}", i + 1);
    }
    let gif = std::fs::File::open(out.join("turntable.gif")).expect("gif");
    let frames = image::AnimationDecoder::into_frames(
        image::codecs::gif::GifDecoder::new(std::io::BufReader::new(gif)).expect("decode"),
    )
    .collect_frames()
    .expect("frames");
    assert_eq!(frames.len(), 7);

    // The same seed gives the same views; nothing is overwritten.
    let again = dir.path().join("again");
    let result = run(args(&again));
    assert!(result.status.success(), "{}", stderr(&result));
    for i in 0..7 {
        let name = format!("view_{i:02}.png");
        let a = image::open(out.join(&name)).expect("png").to_rgba8();
        let b = image::open(again.join(&name)).expect("png").to_rgba8();
        assert_eq!(a, b, "{name}");
    }
    let before = std::fs::read(out.join("view_03.png")).expect("read");
    let result = run(args(&out));
    assert!(!result.status.success());
    assert!(
        stderr(&result).contains("already exists"),
        "{}",
        stderr(&result)
    );
    assert_eq!(
        std::fs::read(out.join("view_03.png")).expect("read"),
        before
    );
}

#[test]
fn bad_multiview_input_gives_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = tiny_nvs_model(dir.path());
    let reference = dir.path().join("disc.png");
    disc_reference(&reference);
    let out = dir.path().join("out");
    let refused = |args: &[&str], expected: &str| {
        let result = lumos(args);
        assert!(!result.status.success(), "should fail: {args:?}");
        let err = stderr(&result);
        assert!(err.contains(expected), "expected `{expected}` in: {err}");
        let written = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
        assert_eq!(written, 0, "nothing may be written");
    };
    // A fully transparent reference.
    let clear = dir.path().join("clear.png");
    image::RgbaImage::new(32, 32).save(&clear).expect("save");
    let model_arg = path_str(&model);
    refused(
        &[
            "multiview",
            path_str(&clear),
            "--model",
            model_arg,
            "--steps",
            "1",
            "-o",
            path_str(&out),
        ],
        "no object",
    );
    // An orbit file with an unreadable line.
    let orbit = dir.path().join("orbit.txt");
    std::fs::write(&orbit, "0 90\n10 left\n").expect("write");
    let preset = format!("custom:{}", orbit.display());
    refused(
        &[
            "multiview",
            path_str(&reference),
            "--preset",
            &preset,
            "--model",
            model_arg,
            "-o",
            path_str(&out),
        ],
        "line 2",
    );
    refused(
        &[
            "multiview",
            path_str(&reference),
            "--preset",
            "turntable:x",
            "--model",
            model_arg,
            "-o",
            path_str(&out),
        ],
        "turntable",
    );
    // An image-to-image model given.
    let image_model = dir.path().join("image-model.json");
    let spec = lumos_engine::embedded::default_spec().expect("built-in model");
    std::fs::write(&image_model, serde_json::to_string(&spec).expect("json")).expect("write");
    refused(
        &[
            "multiview",
            path_str(&reference),
            "--model",
            path_str(&image_model),
            "-o",
            path_str(&out),
        ],
        "not views from other cameras",
    );
}

#[test]
fn without_a_model_the_built_in_multi_view_model_turns_the_object() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = dir.path().join("disc.png");
    disc_reference(&reference);
    let out = dir.path().join("set");
    let result = lumos(&[
        "multiview",
        path_str(&reference),
        "--preset",
        "turntable:3",
        "--steps",
        "4",
        "--seed",
        "1",
        "-o",
        path_str(&out),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(
        stderr(&result).contains("(built in)"),
        "{}",
        stderr(&result)
    );
    // The views are of the red object on white, from elsewhere: red pixels on a light
    // background, not the reference copied.
    let reference_view = image::open(out.join("view_00.png")).expect("png").to_rgb8();
    for index in 1..3 {
        let view = image::open(out.join(format!("view_{index:02}.png")))
            .expect("png")
            .to_rgb8();
        let pixels = view.pixels().count() as f64;
        let red = view
            .pixels()
            .filter(|p| p[0] > 120 && p[0] as i32 - p[1] as i32 > 60)
            .count() as f64;
        let light = view
            .pixels()
            .filter(|p| p.0.iter().all(|&c| c > 200))
            .count() as f64;
        assert!(red / pixels > 0.02, "view {index}: {:.3} red", red / pixels);
        assert!(
            light / pixels > 0.5,
            "view {index}: {:.3} light",
            light / pixels
        );
        assert_ne!(view, reference_view, "view {index} is the reference");
    }
}

#[test]
fn eval_multiview_scores_held_out_objects_beside_the_copy_baseline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = tiny_nvs_model(dir.path());
    let textures = dir.path().join("textures");
    std::fs::create_dir_all(&textures).expect("dir");
    for i in 0..40u8 {
        image::RgbImage::from_fn(8, 8, |x, _| image::Rgb([i * 6, (x * 30) as u8, 90]))
            .save(textures.join(format!("t{i:02}.png")))
            .expect("save");
    }
    let data = dir.path().join("data");
    let result = lumos(&[
        "render-dataset",
        "--textures",
        path_str(&textures),
        "-o",
        path_str(&data),
        "--objects",
        "10",
        "--views",
        "3",
        "--size",
        "32",
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let sheet = dir.path().join("sheet.png");
    let result = lumos(&[
        "eval-multiview",
        "--data",
        path_str(&data),
        "--model",
        path_str(&model),
        "--steps",
        "1",
        "--sheet",
        path_str(&sheet),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let out = String::from_utf8_lossy(&result.stdout);
    // One test object (every tenth) with two views besides its input.
    let all = out
        .lines()
        .find(|l| l.starts_with("all"))
        .expect("an overall row");
    let fields: Vec<&str> = all.split('|').map(str::trim).collect();
    assert_eq!(fields[1], "2", "{out}");
    assert!(out.contains("1 test objects"), "{out}");
    // input | 4 generated | 4 true, 16 px cells with 2 px padding; one object.
    let grid = image::open(&sheet).expect("sheet");
    assert_eq!((grid.width(), grid.height()), (9 * 18 + 2, 18 + 2));
    // The sheet is never overwritten.
    let result = lumos(&[
        "eval-multiview",
        "--data",
        path_str(&data),
        "--model",
        path_str(&model),
        "--sheet",
        path_str(&sheet),
    ]);
    assert!(!result.status.success());
}

/// Collects the events of `job` until its terminal event.
fn events_of(engine: &lumos_engine::worker::EngineHandle, job: u64) -> Vec<Event> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut events = Vec::new();
    while std::time::Instant::now() < deadline {
        if let Some(event) = engine
            .recv_timeout(std::time::Duration::from_millis(100))
            .expect("engine alive")
            && event.job() == job
        {
            let terminal = event.is_terminal();
            events.push(event);
            if terminal {
                return events;
            }
        }
    }
    panic!("job {job} never ended: {events:?}");
}

fn multiview_job(spec: &ModelSpec, views: usize, steps: usize) -> MultiviewJob {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = dir.path().join("disc.png");
    disc_reference(&reference);
    let input_pose = OrbitPose::new(0.0, 0.0, 1.5).expect("pose");
    MultiviewJob {
        model: MultiviewModel::NovelView(Box::new(spec.clone())),
        request: MultiviewRequest {
            name: "disc.png".into(),
            image: Arc::new(lumos_engine::imageio::load_image(&reference).expect("load")),
            alpha: None,
            input_pose,
            views: OrbitPreset::Turntable(views + 1).views(&input_pose),
            settings: SamplerSettings {
                steps,
                seed: 3,
                ..SamplerSettings::default()
            },
            shared_seed: false,
            recenter: true,
            device: DeviceChoice::Cpu,
        },
    }
}

#[test]
fn the_engine_thread_sends_the_input_then_views_and_one_terminal_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = tiny_nvs_model(dir.path());
    let spec: ModelSpec =
        serde_json::from_str(&std::fs::read_to_string(manifest).expect("read")).expect("spec");
    assert!(spec.is_novel_view());
    let engine = lumos_engine::worker::EngineHandle::spawn(|| {}).expect("engine");

    let job = engine
        .multiview(multiview_job(&spec, 3, 2))
        .expect("queued");
    let events = events_of(&engine, job);
    assert!(
        matches!(
            events.first(),
            Some(Event::Started {
                images: 3,
                steps: 2,
                ..
            })
        ),
        "{events:?}"
    );
    let views: Vec<(usize, u64, f64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::View { view, .. } => Some((view.index, view.seed, view.pose.azimuth_deg)),
            _ => None,
        })
        .collect();
    assert_eq!(views, vec![(0, 3, 90.0), (1, 4, 180.0), (2, 5, 270.0)]);
    let input_at = events
        .iter()
        .position(|e| matches!(e, Event::InputView { .. }))
        .expect("the input view is sent");
    let first_view = events
        .iter()
        .position(|e| matches!(e, Event::View { .. }))
        .expect("views");
    assert!(
        input_at < first_view,
        "the input comes first, so that a set cut short keeps its frame 0"
    );
    assert!(matches!(events.last(), Some(Event::Finished { .. })));

    // Cancelled while it runs: the input view, then Cancelled.
    let long = engine
        .multiview(multiview_job(&spec, 3, 400))
        .expect("queued");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline {
        if let Some(event) = engine
            .recv_timeout(std::time::Duration::from_millis(100))
            .expect("alive")
        {
            let progressed = matches!(event, Event::Progress { .. });
            seen.push(event);
            if progressed {
                break;
            }
        }
    }
    engine.cancel(long);
    seen.extend(events_of(&engine, long));
    assert!(
        matches!(seen.last(), Some(Event::Cancelled { .. })),
        "{seen:?}"
    );
    assert!(seen.iter().any(|e| matches!(e, Event::InputView { .. })));

    // An image-to-image model fails with what to do.
    let image_model = lumos_engine::embedded::default_spec().expect("built-in model");
    assert!(!image_model.is_novel_view());
    let wrong = engine
        .multiview(multiview_job(&image_model, 2, 2))
        .expect("queued");
    match events_of(&engine, wrong).last() {
        Some(Event::Failed { error, .. }) => {
            assert!(error.contains("choose a multi-view model"), "{error}")
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}
