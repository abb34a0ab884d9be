//! The `lumos` command line end to end on the tiny fixture model: it reproduces the original
//! pipeline's image from the same noise, embeds its settings, refuses to overwrite, and turns
//! bad input into a clear error with nothing written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lumos_engine::checkpoints::fixtures_root;

fn lumos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lumos"))
        .args(args)
        .env("LUMOS_FIXTURES", fixtures_root())
        .output()
        .expect("run lumos")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn pipeline_dir() -> PathBuf {
    fixtures_root().join("pipeline_tiny")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Differences between two u8 images: (max difference, number of differing values).
fn image_diff(a: &image::RgbImage, b: &image::RgbImage) -> (u8, usize) {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .fold((0, 0), |(max, n), (x, y)| {
            let d = x.abs_diff(*y);
            (max.max(d), n + usize::from(d > 0))
        })
}

#[test]
fn generate_reproduces_the_original_pipeline_image_from_its_noise() {
    let out = tempfile::tempdir().expect("tempdir");
    let noise = format!(
        "{}:z",
        pipeline_dir().join("io_single.safetensors").display()
    );
    let result = lumos(&[
        "generate",
        path_str(&pipeline_dir().join("ref_a.png")),
        "--model",
        "fixture",
        "--steps",
        "5",
        "--guidance",
        "4.5",
        "--seed",
        "3",
        "-n",
        "1",
        "--noise",
        &noise,
        "-o",
        path_str(out.path()),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let written = out.path().join("lumos-3-000.png");
    let ours = image::open(&written).expect("output png").to_rgb8();
    let reference = image::open(pipeline_dir().join("single_out.png"))
        .expect("fixture")
        .to_rgb8();
    let (max, count) = image_diff(&ours, &reference);
    let allowed = reference.as_raw().len() / 200; // fixtures README: ≤ 1 level on ≤ 0.5 %
    assert!(
        max <= 1 && count <= allowed,
        "max diff {max} on {count} values"
    );

    let meta = lumos_engine::imageio::read_png_meta(&written)
        .expect("readable")
        .expect("settings embedded");
    assert_eq!(meta.settings.steps, 5);
    assert_eq!(meta.settings.seed, 3);
    assert_eq!(meta.references[0].name, "ref_a.png");
    assert_eq!(meta.size, [64, 64]);
}

#[test]
fn generate_writes_distinct_seeded_variations_and_never_overwrites() {
    let out = tempfile::tempdir().expect("tempdir");
    let reference = pipeline_dir().join("ref_b.png");
    let args = [
        "generate",
        path_str(&reference),
        "--model",
        "fixture",
        "--steps",
        "3",
        "--seed",
        "10",
        "-n",
        "3",
        "-o",
        path_str(out.path()),
    ];
    let first = lumos(&args);
    assert!(first.status.success(), "{}", stderr(&first));
    let files = files_in(out.path());
    assert_eq!(files.len(), 3, "{files:?}");
    let images: Vec<_> = files
        .iter()
        .map(|f| image::open(f).expect("png").to_rgb8())
        .collect();
    assert_ne!(
        images[0], images[1],
        "different seeds must give different images"
    );
    let seeds: Vec<u64> = files
        .iter()
        .map(|f| {
            lumos_engine::imageio::read_png_meta(f)
                .expect("meta")
                .expect("meta")
                .settings
                .seed
        })
        .collect();
    assert_eq!(seeds, vec![10, 11, 12]);

    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("read"))
        .collect();
    let second = lumos(&args);
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("already exists"),
        "{}",
        stderr(&second)
    );
    let after: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("read"))
        .collect();
    assert_eq!(before, after, "existing files must be untouched");
}

#[test]
fn interpolate_writes_frames_grid_and_gif() {
    let out = tempfile::tempdir().expect("tempdir");
    let result = lumos(&[
        "interpolate",
        path_str(&pipeline_dir().join("ref_a.png")),
        path_str(&pipeline_dir().join("ref_b.png")),
        "--model",
        "fixture",
        "--steps",
        "3",
        "--frames",
        "4",
        "--path",
        "slerp",
        "--seed",
        "1",
        "-o",
        path_str(out.path()),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let files = files_in(out.path());
    let pngs = files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".png"))
        .count();
    assert_eq!(pngs, 5, "4 frames + grid: {files:?}");
    let gif = files
        .iter()
        .find(|f| f.extension().is_some_and(|e| e == "gif"))
        .expect("gif");
    let decoder = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(
        std::fs::File::open(gif).expect("open gif"),
    ))
    .expect("gif decodes");
    use image::AnimationDecoder;
    assert_eq!(decoder.into_frames().count(), 4);
}

fn assert_refused(args: &[&str], out: &Path, expected: &str) {
    let result = lumos(args);
    assert!(!result.status.success(), "should fail: {args:?}");
    let err = stderr(&result);
    assert!(err.contains(expected), "expected `{expected}` in: {err}");
    assert!(
        files_in(out)
            .iter()
            .all(|f| !f.to_string_lossy().ends_with(".png")),
        "nothing may be written"
    );
}

#[test]
fn bad_images_give_clear_errors_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").expect("write");
    let garbage = dir.path().join("garbage.jpg");
    std::fs::write(&garbage, b"this is not an image at all").expect("write");
    let truncated = dir.path().join("truncated.png");
    let full = std::fs::read(pipeline_dir().join("ref_b.png")).expect("read");
    std::fs::write(&truncated, &full[..full.len() / 3]).expect("write");
    let bomb = dir.path().join("bomb.png");
    std::fs::write(&bomb, huge_png_header(100_000, 100_000)).expect("write");
    for (file, expected) in [
        (&empty, "empty"),
        (&garbage, "not a recognised image"),
        (&truncated, "cannot decode"),
        (&bomb, "too large"),
    ] {
        assert_refused(
            &[
                "generate",
                path_str(file),
                "--model",
                "fixture",
                "--steps",
                "2",
                "-o",
                path_str(&out),
            ],
            &out,
            expected,
        );
    }
}

/// A valid PNG signature and IHDR claiming `w × h` RGB pixels, with one tiny IDAT.
fn huge_png_header(w: u32, h: u32) -> Vec<u8> {
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        let crc = crc32(&[kind, data].concat());
        c.extend_from_slice(&crc.to_be_bytes());
        c
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

#[test]
fn unwritable_output_folder_is_refused_before_sampling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"x").expect("write");
    let out = blocker.join("sub"); // a folder inside a regular file cannot exist
    let result = lumos(&[
        "generate",
        path_str(&pipeline_dir().join("ref_a.png")),
        "--model",
        "fixture",
        "--steps",
        "2",
        "-o",
        path_str(&out),
    ]);
    assert!(!result.status.success());
    assert!(
        stderr(&result).contains("output folder"),
        "{}",
        stderr(&result)
    );
}

#[test]
fn selftest_passes_on_the_fixtures_and_fails_on_a_tampered_copy() {
    let ok = lumos(&["selftest", "--fixtures", path_str(&fixtures_root())]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    // Every fixture of this set (a checkout without ../shared has the in-repo subset).
    let present = lumos_engine::selftest::KNOWN_FIXTURES
        .iter()
        .filter(|fixture| fixtures_root().join(fixture).is_dir())
        .collect::<Vec<_>>();
    assert!(present.len() >= 2, "fixtures in {:?}", fixtures_root());
    for fixture in present {
        assert!(stdout.contains(&format!("{fixture:<18} PASS")), "{stdout}");
    }

    // Same layout, one reference tensor changed: the self-test must notice.
    let copy = tempfile::tempdir().expect("tempdir");
    let src = fixtures_root().join("lumos_i2i_tiny");
    let dst = copy.path().join("lumos_i2i_tiny");
    std::fs::create_dir_all(&dst).expect("mkdir");
    for f in ["config.json", "weights.safetensors"] {
        std::fs::copy(src.join(f), dst.join(f)).expect("copy");
    }
    let mut io =
        candle_core::safetensors::load(src.join("io.safetensors"), &candle_core::Device::Cpu)
            .expect("load io");
    let out = io.get("out").expect("out").clone();
    io.insert("out".into(), (out + 0.01).expect("add"));
    candle_core::safetensors::save(&io, dst.join("io.safetensors")).expect("save");
    let bad = lumos(&["selftest", "--fixtures", path_str(copy.path())]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stdout).contains("FAILED"));
}

#[test]
fn models_reports_what_is_missing_and_where_it_looked() {
    let models = tempfile::tempdir().expect("tempdir");
    let result = Command::new(env!("CARGO_BIN_EXE_lumos"))
        .args(["models", "--dir", path_str(models.path())])
        .env("LUMOS_MODELS", models.path())
        .env("HF_HUB_CACHE", models.path())
        .output()
        .expect("run");
    assert!(result.status.success());
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(stdout.contains("missing  Lumos I2I prior"), "{stdout}");
    assert!(stdout.contains(path_str(models.path())), "{stdout}");
}

#[test]
fn sweep_writes_one_labelled_grid() {
    let out = tempfile::tempdir().expect("tempdir");
    let result = lumos(&[
        "sweep",
        path_str(&pipeline_dir().join("ref_a.png")),
        "--row-values",
        "1,2",
        "--guidance-values",
        "1,3,4.5",
        "--model",
        "fixture",
        "--steps",
        "2",
        "-o",
        path_str(out.path()),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let files = files_in(out.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let sheet = image::open(&files[0]).expect("png").to_rgb8();
    // 3 columns and 2 rows of 64-pixel cells plus labels and gaps.
    assert!(
        sheet.width() > 3 * 64 && sheet.height() > 2 * 64,
        "{:?}",
        sheet.dimensions()
    );
}

#[test]
fn eval_prints_retrieval_beside_blurred_copies_and_can_use_every_image() {
    // The five sample photos the app ships (none falls in the held-out split).
    let data = tempfile::tempdir().expect("tempdir");
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/samples");
    for name in ["astronaut", "chelsea", "coffee", "grace_hopper", "rocket"] {
        let file = format!("{name}.jpg");
        std::fs::copy(samples.join(&file), data.path().join(&file)).expect("copy sample");
    }
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--data",
            path_str(data.path()),
            "--steps",
            "2",
            "--diversity-references",
            "1",
            "--variations",
            "2",
        ];
        args.extend_from_slice(extra);
        lumos(&args)
    };

    let refused = eval(&[]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("no held-out references"),
        "{}",
        stderr(&refused)
    );

    let result = eval(&["--all-images"]);
    assert!(result.status.success(), "{}", stderr(&result));
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(stdout.contains("on 5 images"), "{stdout}");
    assert!(stdout.contains("top-1 retrieval"), "{stdout}");
    for side in ["16×16", "8×8", "4×4"] {
        assert!(
            stdout.contains(&format!("blurred through {side}")),
            "{stdout}"
        );
    }
    // Five different photos are still told apart when blurred through 16×16.
    assert!(
        stdout.contains("blurred through 16×16: top-1 100.0%"),
        "{stdout}"
    );
    assert!(stdout.contains("diversity"), "{stdout}");
    // 1,000 samples need 2,000 real images: skipped, and said why.
    assert!(
        stdout.contains(
            "Fréchet distance: skipped (5 images outside the held-out split, 2000 needed"
        ),
        "{stdout}"
    );

    // Two variations against two real images, beside two other real ones and their blur.
    let result = eval(&["--all-images", "--fd-samples", "2"]);
    assert!(result.status.success(), "{}", stderr(&result));
    let stdout = String::from_utf8_lossy(&result.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Fréchet distance (2 samples"))
        .unwrap_or_else(|| panic!("no Fréchet line in {stdout}"));
    assert!(line.contains("× the floor"), "{line}");
    // The built-in default is a latent model: the floor through its autoencoder is printed
    // too, and it ran at the guidance its manifest names.
    assert!(stdout.contains("the autoencoder's floor"), "{stdout}");
    let own = lumos_engine::embedded::default_spec()
        .expect("built-in default")
        .guidance
        .expect("the built-in default names its guidance");
    assert!(stdout.contains(&format!("guidance {own})")), "{stdout}");
}

#[test]
fn generate_uses_the_models_own_guidance_unless_told() {
    let own = lumos_engine::embedded::default_spec()
        .expect("built-in default")
        .guidance
        .expect("the built-in default names its guidance");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/samples/coffee.jpg");
    let dir = tempfile::tempdir().expect("tempdir");
    for (extra, expected) in [(vec![], own), (vec!["--guidance", "5.5"], 5.5)] {
        let out = dir.path().join(format!("out-{expected}"));
        let mut args = vec![
            "generate",
            path_str(&sample),
            "--model",
            "default",
            "-n",
            "1",
            "--seed",
            "1",
            "--steps",
            "2",
            "-o",
            path_str(&out),
        ];
        args.extend_from_slice(&extra);
        let result = lumos(&args);
        assert!(result.status.success(), "{}", stderr(&result));
        let written = files_in(&out);
        let meta = lumos_engine::imageio::read_png_meta(&written[0])
            .expect("readable")
            .expect("settings embedded");
        assert_eq!(meta.settings.guidance, expected, "{extra:?}");
    }
}

/// A GPU this build or this machine cannot open: a clear error naming the backend, exit code
/// 1, no panic, nothing written. (A CPU build says it lacks the backend; a CUDA build on a
/// machine whose driver finds no GPU says "no CUDA device".)
#[test]
fn a_gpu_that_is_not_there_is_a_clear_error() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/samples/chelsea.jpg");
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("out");
    for (device, backend) in [("cuda", "CUDA"), ("metal:0", "Metal")] {
        let out = lumos(&[
            "generate",
            path_str(&sample),
            "-n",
            "1",
            "--seed",
            "1",
            "--device",
            device,
            "-o",
            path_str(&out_dir),
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{device}: {err}");
        assert!(
            err.contains(backend) && !err.contains("panicked"),
            "{device}: {err}"
        );
        assert!(
            !out_dir.exists() || std::fs::read_dir(&out_dir).expect("out").next().is_none(),
            "{device}: nothing is written"
        );
    }
}

#[test]
fn a_saved_project_renders_what_the_same_flags_render() {
    use lumos_engine::project::{Project, ProjectRecipe, ProjectReference, ProjectStartImage};
    use lumos_engine::protocol::{MixSettings, Mode, SamplerSettings};
    use std::sync::Arc;

    let dir = tempfile::tempdir().expect("tempdir");
    let reference = image::open(pipeline_dir().join("ref_a.png"))
        .expect("fixture")
        .to_rgb8();
    let (w, h) = reference.dimensions();
    let start =
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, 90]));
    let mask =
        image::GrayImage::from_fn(w, h, |x, _| image::Luma([if x < w / 2 { 255 } else { 0 }]));
    start.save(dir.path().join("start.png")).expect("save");
    mask.save(dir.path().join("mask.png")).expect("save");
    let mut project = Project {
        references: vec![ProjectReference {
            name: "ref_a.png".into(),
            source: None,
            image: Arc::new(reference),
            alpha: None,
            weight: 1.0,
            crop: [0.5, 0.5],
        }],
        start_image: Some(ProjectStartImage {
            name: "start".into(),
            image: Arc::new(start),
            mask: Some(Arc::new(mask)),
            alpha: None,
        }),
        prompt: None,
        recipe: ProjectRecipe {
            mode: Some(Mode::Variations { count: 2 }),
            sampler: SamplerSettings {
                steps: 3,
                guidance: 3.0,
                seed: 11,
                ..SamplerSettings::default()
            },
            mix: MixSettings::default(),
            strength: 0.4,
            feather_px: 2,
            model: Some("a model this machine lacks".into()),
        },
        app_settings: None,
        history: Vec::new(),
    };
    let project_path = dir.path().join("scene.lumos");
    lumos_engine::project::save(&project_path, &project).expect("save project");

    let from_project = dir.path().join("from_project");
    let result = lumos(&[
        "generate",
        "--project",
        path_str(&project_path),
        "--model",
        "fixture",
        "-o",
        path_str(&from_project),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(
        stderr(&result).contains("a model this machine lacks"),
        "the model swap is said"
    );
    let from_flags = dir.path().join("from_flags");
    let result = lumos(&[
        "generate",
        path_str(&pipeline_dir().join("ref_a.png")),
        "--model",
        "fixture",
        "--steps",
        "3",
        "--guidance",
        "3",
        "--seed",
        "11",
        "-n",
        "2",
        "--init",
        path_str(&dir.path().join("start.png")),
        "--mask",
        path_str(&dir.path().join("mask.png")),
        "--strength",
        "0.4",
        "--feather",
        "2",
        "-o",
        path_str(&from_flags),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let names = |dir: &Path| -> Vec<String> {
        files_in(dir)
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(&from_project),
        ["lumos-11-000.png", "lumos-12-001.png"]
    );
    assert_eq!(names(&from_project), names(&from_flags));
    for name in names(&from_flags) {
        let a = image::open(from_project.join(&name))
            .expect("png")
            .to_rgb8();
        let b = image::open(from_flags.join(&name)).expect("png").to_rgb8();
        assert_eq!(image_diff(&a, &b), (0, 0), "{name} differs");
    }

    // --seed replaces the project's seed.
    let reseeded = dir.path().join("reseeded");
    let result = lumos(&[
        "generate",
        "--project",
        path_str(&project_path),
        "--model",
        "fixture",
        "--seed",
        "5",
        "-o",
        path_str(&reseeded),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(names(&reseeded), ["lumos-5-000.png", "lumos-6-001.png"]);

    // A project whose mode was left incomplete, and a file that is not a project.
    project.recipe.mode = None;
    lumos_engine::project::save(&project_path, &project).expect("save project");
    let refused = dir.path().join("refused");
    assert_refused(
        &[
            "generate",
            "--project",
            path_str(&project_path),
            "--model",
            "fixture",
            "-o",
            path_str(&refused),
        ],
        &refused,
        "no runnable mode",
    );
    assert_refused(
        &[
            "generate",
            "--project",
            path_str(&dir.path().join("start.png")),
            "--model",
            "fixture",
            "-o",
            path_str(&refused),
        ],
        &refused,
        "not a Lumos Studio project",
    );
}

#[test]
fn text2image_says_what_is_missing_and_refuses_an_empty_prompt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    assert_refused(
        &["text2image", "   ", "-o", path_str(&out)],
        &out,
        "the prompt is empty",
    );
    assert_refused(
        &[
            "text2image",
            "a fox",
            "--size",
            "wide",
            "-o",
            path_str(&out),
        ],
        &out,
        "--size takes WIDTHxHEIGHT",
    );
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).expect("dir");
    assert_refused(
        &[
            "text2image",
            "a red fox",
            "--models",
            path_str(&models),
            "-o",
            path_str(&out),
        ],
        &out,
        "Lumos_T2I.pth",
    );
}

#[test]
fn text2image_makes_images_with_the_built_in_prompt_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let args = [
        "text2image",
        "the zzzq cat face",
        "--builtin",
        "--steps",
        "2",
        "-n",
        "2",
        "--seed",
        "5",
        "-o",
        path_str(&out),
    ];
    let result = lumos(&args);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(stderr(&result).contains("zzzq"), "{}", stderr(&result));
    let written = files_in(&out);
    assert_eq!(written.len(), 2, "{written:?}");
    for png in &written {
        let image = image::open(png).expect("a PNG").to_rgb8();
        let side = lumos_engine::pipelines::prompt_model::builtin_image_size_px() as u32;
        assert_eq!(image.dimensions(), (side, side));
        let parameters =
            lumos_engine::imageio::read_png_text(png, lumos_engine::imageio::PARAMETERS_KEYWORD)
                .expect("read")
                .expect("parameters");
        assert!(
            parameters.starts_with("the zzzq cat face\n"),
            "{parameters}"
        );
        assert!(parameters.contains("prompts (built in)"), "{parameters}");
    }
    // The same seed again would overwrite: refused, nothing changed.
    let again = lumos(&args);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(files_in(&out), written);
}

#[test]
fn eval_prompts_measures_the_built_in_prompt_model_on_named_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("images");
    std::fs::create_dir_all(&data).expect("dir");
    for i in 0..8u32 {
        let image = image::RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 4) as u8, (i * 30) as u8])
        });
        image
            .save(data.join(format!("image-{i}.png")))
            .expect("write");
    }
    let pairs = dir.path().join("pairs.tsv");
    std::fs::write(
        &pairs,
        "image-0.png\tcat face\nimage-1.png\tred apple\nimage-2.png\tpalm tree\n",
    )
    .expect("write");
    let sheet = dir.path().join("sheet.png");
    let eval = |pairs: &Path| {
        lumos(&[
            "eval-prompts",
            "--data",
            path_str(&data),
            "--pairs",
            path_str(pairs),
            "--fd-samples",
            "2",
            "--steps",
            "2",
            "--sheet",
            path_str(&sheet),
        ])
    };
    let result = eval(&pairs);
    assert!(result.status.success(), "{}", stderr(&result));
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        stdout
            .contains("retrieval of the named image among the 3 from an image made from its name"),
        "{stdout}"
    );
    assert!(
        stdout.contains("from the prompt's vector alone"),
        "{stdout}"
    );
    assert!(stdout.contains("Fréchet distance (2 samples"), "{stdout}");
    let sheet_image = image::open(&sheet).expect("contact sheet").to_rgb8();
    assert!(
        sheet_image.width() > 2 * sheet_image.height(),
        "one row of three pairs (named image | made from its name)"
    );
    // A malformed line is named.
    let bad = dir.path().join("bad.tsv");
    std::fs::write(&bad, "image-0.png\tcat face\nno tab here\n").expect("write");
    let refused = eval(&bad);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("line 2"), "{}", stderr(&refused));
}

#[test]
fn an_animated_reference_is_used_by_its_first_frame_and_the_cli_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gif = dir.path().join("dance.gif");
    let still = image::open(pipeline_dir().join("ref_a.png"))
        .expect("fixture")
        .to_rgb8();
    let other = image::RgbImage::from_pixel(still.width(), still.height(), image::Rgb([0, 0, 0]));
    let bytes = lumos_engine::imageio::encode_gif(&[&still, &other], 100).expect("gif");
    std::fs::write(&gif, bytes).expect("write");
    let out = dir.path().join("out");
    let result = lumos(&[
        "generate",
        path_str(&gif),
        "--model",
        "fixture",
        "--steps",
        "1",
        "-n",
        "1",
        "-o",
        path_str(&out),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(
        stderr(&result).contains("dance.gif is an animated GIF: only its first frame is used"),
        "{}",
        stderr(&result)
    );
    assert_eq!(files_in(&out).len(), 1);
}

#[test]
fn a_half_precision_prior_generates_what_the_full_precision_one_does() {
    // The condition is f32 and the learned null embedding f16: guidance used to refuse to join
    // them ("dtype mismatch in cat"), so `--precision f16` could not generate at all.
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |precision: &str| {
        let out = dir.path().join(precision);
        let result = lumos(&[
            "generate",
            path_str(&pipeline_dir().join("ref_a.png")),
            "--model",
            "fixture",
            "--precision",
            precision,
            "--steps",
            "3",
            "--seed",
            "4",
            "-n",
            "1",
            "-o",
            path_str(&out),
        ]);
        assert!(result.status.success(), "{precision}: {}", stderr(&result));
        image::open(out.join("lumos-4-000.png"))
            .expect("output")
            .to_rgb8()
    };
    let (full, half) = (run("f32"), run("f16"));
    let mean_diff = full
        .as_raw()
        .iter()
        .zip(half.as_raw())
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / full.as_raw().len() as f64;
    assert!(
        mean_diff < 4.0,
        "f16 drifts from f32 by {mean_diff:.2} levels on average"
    );
}
