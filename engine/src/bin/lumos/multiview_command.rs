//! `lumos multiview`: views of the object in a reference from other cameras on an orbit, and
//! the files 3D tools and artists take them in: a PNG per view with its camera, nerfstudio's
//! `transforms.json`, a grid (Zero123++ v1.2's 3 × 2 order for that preset) and a turntable
//! GIF. The reference itself is frame 0, with its pose.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use lumos_engine::camera::{
    DEFAULT_FOV_DEG, DEFAULT_RADIUS, Intrinsics, OrbitPose, OrbitPreset, Transforms,
};
use lumos_engine::checkpoints::{self, ModelChoice, zero123};
use lumos_engine::imageio;
use lumos_engine::pipelines::multiview::{self, MultiviewRequest, View};
use lumos_engine::pipelines::zero123::{self as zero123_pipeline, Zero123Request};
use lumos_engine::pipelines::{LoadedModel, StepReport};
use lumos_engine::protocol::{DeviceChoice, SamplerSettings};

/// Keyword of the PNG chunk holding a view's camera (JSON of its orbit pose and intrinsics).
pub const CAMERA_KEYWORD: &str = "lumos-camera";

/// The arguments of `lumos multiview`.
#[derive(clap::Args)]
pub struct MultiviewArgs {
    /// The reference image (an object; transparent or plain background).
    reference: PathBuf,
    /// Views: `zero123pp` (6 views, Zero123++ v1.2), `turntable:N` (N frames around, the
    /// reference first), or `custom:FILE` (lines of `elevation azimuth [radius]`, degrees).
    #[arg(long, default_value = "zero123pp")]
    preset: String,
    /// A multi-view model: a Zero123-family checkpoint (`105000.ckpt`, `zero123-xl.ckpt`,
    /// `stable_zero123.ckpt`, a safetensors conversion, a diffusers folder) or a Lumos
    /// novel-view model (a folder or its `model.json`).
    #[arg(long, default_value = "auto")]
    model: ModelChoice,
    /// Elevation of the reference's camera, in degrees.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    input_elevation: f64,
    /// Distance of the reference's camera (the default radius of every view).
    #[arg(long, default_value_t = DEFAULT_RADIUS)]
    radius: f64,
    /// Field of view written to transforms.json, in degrees.
    #[arg(long, default_value_t = DEFAULT_FOV_DEG)]
    fov: f64,
    /// Seed of the first view (view i uses seed + i; random when omitted).
    #[arg(long)]
    seed: Option<u64>,
    /// Every view from the same noise.
    #[arg(long)]
    shared_seed: bool,
    /// Sampler steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Classifier-free guidance scale (3 is the Zero123 demo's).
    #[arg(long, default_value_t = 3.0)]
    guidance: f64,
    /// Device: cpu, cuda, cuda:N, metal or metal:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Write the views with an alpha channel (the object cut from the white background).
    #[arg(long)]
    alpha: bool,
    /// Output folder (created if missing; existing files are never overwritten).
    #[arg(long, short, default_value = "lumos-multiview")]
    out: PathBuf,
}

/// Runs `lumos multiview`.
pub fn run(args: MultiviewArgs) -> anyhow::Result<ExitCode> {
    let preset = OrbitPreset::parse(&args.preset)?;
    let input_pose = OrbitPose::new(args.input_elevation, 0.0, args.radius)?;
    let views = preset.views(&input_pose);
    let model_path = match &args.model {
        ModelChoice::Path(path) => Some(path.clone()),
        ModelChoice::Auto => zero123::discover(None).0,
        _ => None,
    };
    let Some(model_path) = model_path else {
        bail!(
            "Lumos Studio has no built-in multi-view model yet; give --model with a Zero123 \
             checkpoint (105000.ckpt, zero123-xl.ckpt, stable_zero123.ckpt, a diffusers \
             folder; found automatically in $LUMOS_MODELS, the app's models folder or the \
             Hugging Face cache) or the model.json (or folder) of a Lumos novel-view model"
        )
    };
    let image = imageio::load_image(&args.reference)?;
    let alpha = std::fs::read(&args.reference)
        .ok()
        .and_then(|bytes| imageio::decode_alpha(&bytes));
    let seed = args.seed.unwrap_or_else(crate::clock_seed);
    eprintln!("seed {seed}");

    let names: Vec<String> = (0..=views.len())
        .map(|i| format!("view_{i:02}.png"))
        .collect();
    let extra = ["transforms.json", "grid.png", "turntable.gif"];
    if let Some(existing) = names
        .iter()
        .map(String::as_str)
        .chain(extra)
        .map(|n| args.out.join(n))
        .find(|p| p.exists())
    {
        bail!(
            "{} already exists; choose another --out folder (nothing was written)",
            existing.display()
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the output folder {}", args.out.display()))?;

    let device = lumos_engine::device::open(args.device)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} views [{bar:30}] {pos}/{len} steps, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut made: Vec<View> = Vec::new();
    let mut on_step = |report: StepReport| {
        if let StepReport::Step { .. } = report {
            bar.inc(1);
        }
        Ok(())
    };
    let mut on_view = |view: View| {
        made.push(view);
        Ok(())
    };
    let (input, size) = if zero123::is_zero123_path(&model_path) {
        let loaded = zero123::load(&model_path, None, candle_core::DType::F32, &device)?;
        eprintln!("{}", loaded.licence.notice());
        let request = Zero123Request {
            image: Arc::new(image),
            alpha: alpha.map(Arc::new),
            input_pose,
            views: views.clone(),
            steps: args.steps,
            guidance: args.guidance,
            eta: zero123_pipeline::DEMO_ETA,
            seed,
            shared_seed: args.shared_seed,
            device: args.device,
        };
        let updates = lumos_engine::sampling::ldm_ddim::LdmDdimSchedule::new(
            &loaded.alphas_cumprod,
            args.steps,
            request.eta,
        )?
        .updates(true)
        .len();
        bar.set_length((views.len() * updates) as u64);
        let input = zero123_pipeline::run(&loaded, &request, &mut on_step, &mut on_view)?;
        (input, zero123_pipeline::CANVAS)
    } else {
        let spec = checkpoints::resolve_model(&args.model)?.spec;
        let model = LoadedModel::load(&spec, &device)?;
        let request = MultiviewRequest {
            name: args.reference.display().to_string(),
            image: Arc::new(image),
            alpha: alpha.map(Arc::new),
            input_pose,
            views: views.clone(),
            settings: SamplerSettings {
                steps: args.steps,
                guidance: args.guidance,
                seed,
                ..SamplerSettings::default()
            },
            shared_seed: args.shared_seed,
            recenter: true,
            device: args.device,
        };
        bar.set_length((views.len() * args.steps) as u64);
        let input = multiview::run(&model, &request, &mut on_step, &mut on_view)?;
        (input, model.image_size_px() as u32)
    };
    bar.finish_and_clear();

    let intrinsics = Intrinsics {
        size_px: size,
        fov_deg: args.fov,
    };
    // Frame 0 is the reference as prepared, then the views in the preset's order.
    let mut frames: Vec<(String, OrbitPose, image::RgbImage, image::GrayImage)> = vec![(
        names[0].clone(),
        input_pose,
        input.image.clone(),
        input.object_mask.clone(),
    )];
    made.sort_by_key(|v| v.index);
    for view in made {
        let mask = multiview::flood_object_mask(&view.image);
        frames.push((names[view.index + 1].clone(), view.pose, view.image, mask));
    }
    for (name, pose, image, mask) in &frames {
        let camera = serde_json::json!({
            "orbit": pose,
            "camera_to_world": pose.camera_to_world(),
            "fov_deg": args.fov,
            "convention": "Z up, object at the origin, OpenGL camera axes",
        });
        let picture = if args.alpha {
            let rgba = image::RgbaImage::from_fn(image.width(), image.height(), |x, y| {
                let [r, g, b] = image.get_pixel(x, y).0;
                image::Rgba([r, g, b, mask.get_pixel(x, y).0[0]])
            });
            image::DynamicImage::ImageRgba8(rgba)
        } else {
            image::DynamicImage::ImageRgb8(image.clone())
        };
        let bytes =
            imageio::encode_png_with_text(&picture, &[(CAMERA_KEYWORD, camera.to_string())])?;
        write(&args.out.join(name), &bytes)?;
    }
    let transforms = Transforms::new(
        intrinsics,
        &frames
            .iter()
            .map(|(name, pose, _, _)| (name.clone(), *pose))
            .collect::<Vec<_>>(),
    );
    write(
        &args.out.join("transforms.json"),
        serde_json::to_string_pretty(&transforms)?.as_bytes(),
    )?;
    // The grid: Zero123++'s 3 rows × 2 columns of its six views, else every frame.
    let grid_images: Vec<&image::RgbImage> = match preset {
        OrbitPreset::Zero123Plus => frames[1..].iter().map(|f| &f.2).collect(),
        _ => frames.iter().map(|f| &f.2).collect(),
    };
    let per_row = match preset {
        OrbitPreset::Zero123Plus => 2,
        _ => (grid_images.len() as f64).sqrt().ceil().max(1.0) as usize,
    };
    if let Some(grid) = imageio::make_grid(&grid_images, per_row, 0) {
        write(
            &args.out.join("grid.png"),
            &imageio::encode_png(&grid, None)?,
        )?;
    }
    // The turntable: frames by azimuth, from the reference round.
    let mut by_azimuth: Vec<&(String, OrbitPose, image::RgbImage, image::GrayImage)> =
        frames.iter().collect();
    by_azimuth.sort_by(|a, b| {
        a.1.azimuth_deg
            .rem_euclid(360.0)
            .total_cmp(&b.1.azimuth_deg.rem_euclid(360.0))
    });
    let gif_frames: Vec<&image::RgbImage> = by_azimuth.iter().map(|f| &f.2).collect();
    write(
        &args.out.join("turntable.gif"),
        &imageio::encode_gif(&gif_frames, 250)?,
    )?;
    for name in names.iter().map(String::as_str).chain(extra) {
        println!("{}", args.out.join(name).display());
    }
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    imageio::write_new_file(path, bytes)?;
    Ok(())
}
