//! `lumos multiview`: views of the object in a reference from other cameras on an orbit, and
//! the files 3D tools and artists take them in: a PNG per view with its camera, nerfstudio's
//! `transforms.json`, a grid (Zero123++ v1.2's 3 × 2 order for that preset) and a turntable
//! GIF. The reference itself is frame 0, with its pose.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use lumos_engine::camera::{DEFAULT_FOV_DEG, DEFAULT_RADIUS, OrbitPose, OrbitPreset};
use lumos_engine::checkpoints::{self, ModelChoice, zero123};
use lumos_engine::imageio;
use lumos_engine::multiview_export::{
    ExistingFiles, GridLayout, MultiviewSet, SET_FILES, ViewAlpha,
};
use lumos_engine::pipelines::multiview::{self, MultiviewRequest, SetOutput, View};
use lumos_engine::pipelines::zero123::{self as zero123_pipeline, Zero123Request};
use lumos_engine::pipelines::{LoadedModel, StepReport};
use lumos_engine::protocol::{DeviceChoice, SamplerSettings};

/// Guidance when neither the command line nor the model names one (the Zero123 demo's).
pub const DEFAULT_GUIDANCE: f64 = 3.0;

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
    /// `stable_zero123.ckpt`, a safetensors conversion, a diffusers folder), a Lumos
    /// novel-view model (a folder or its `model.json`), or `builtin`. `auto`: a checkpoint
    /// found in $LUMOS_MODELS, the app's models folder or the Hugging Face cache, else the
    /// built-in multi-view model.
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
    /// Keep the reference's framing: resize the whole image to the model's size and flatten
    /// it onto white by its alpha, instead of cutting the object out and centring it (the
    /// Zero123 demo's "preprocess" box unticked).
    #[arg(long)]
    keep_framing: bool,
    /// Sampler steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Classifier-free guidance scale [default: the model's own when its manifest names one
    /// (the built-in model: 1), else 3, the Zero123 demo's].
    #[arg(long)]
    guidance: Option<f64>,
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
    // A Zero123-family checkpoint when one is named or found, else a Lumos novel-view model
    // (the built-in one unless another is named).
    let checkpoint = match &args.model {
        ModelChoice::Path(path) if zero123::is_zero123_path(path) => Some(path.clone()),
        ModelChoice::Auto => zero123::discover(None).0,
        _ => None,
    };
    let image = imageio::load_image(&args.reference)?;
    let alpha = std::fs::read(&args.reference)
        .ok()
        .and_then(|bytes| imageio::decode_alpha(&bytes));
    let seed = args.seed.unwrap_or_else(crate::clock_seed);
    eprintln!("seed {seed}");

    // Refuse before the long run, not after it.
    let file_names: Vec<String> = (0..=views.len())
        .map(MultiviewSet::frame_file_name)
        .chain(SET_FILES.iter().map(|n| (*n).to_owned()))
        .collect();
    if let Some(existing) = file_names
        .iter()
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
    let mut input = None;
    let mut made: Vec<View> = Vec::new();
    let mut on_step = |report: StepReport| {
        if let StepReport::Step { .. } = report {
            bar.inc(1);
        }
        Ok(())
    };
    let mut on_output = |output: SetOutput| {
        match output {
            SetOutput::Input(prepared) => input = Some(prepared),
            SetOutput::View(view) => made.push(view),
        }
        Ok(())
    };
    if let Some(checkpoint) = checkpoint {
        let loaded = zero123::load(&checkpoint, None, candle_core::DType::F32, &device)?;
        eprintln!("{}", loaded.licence.notice());
        let request = Zero123Request {
            image: Arc::new(image),
            alpha: alpha.map(Arc::new),
            input_pose,
            views: views.clone(),
            steps: args.steps,
            guidance: args.guidance.unwrap_or(DEFAULT_GUIDANCE),
            eta: zero123_pipeline::DEMO_ETA,
            seed,
            shared_seed: args.shared_seed,
            recenter: !args.keep_framing,
            device: args.device,
        };
        bar.set_length((views.len() * zero123_pipeline::update_count(&loaded, &request)?) as u64);
        zero123_pipeline::run(&loaded, &request, &mut on_step, &mut on_output)?;
    } else {
        let spec = checkpoints::resolve_novel_view_model(&args.model)?;
        eprintln!("model: {}", spec.name);
        let model = LoadedModel::load(&spec, &device)?;
        let request = MultiviewRequest {
            name: args.reference.display().to_string(),
            image: Arc::new(image),
            alpha: alpha.map(Arc::new),
            input_pose,
            views: views.clone(),
            settings: SamplerSettings {
                steps: args.steps,
                guidance: args.guidance.or(spec.guidance).unwrap_or(DEFAULT_GUIDANCE),
                seed,
                ..SamplerSettings::default()
            },
            shared_seed: args.shared_seed,
            recenter: !args.keep_framing,
            device: args.device,
        };
        bar.set_length((views.len() * args.steps) as u64);
        multiview::run(&model, &request, &mut on_step, &mut on_output)?;
    }
    bar.finish_and_clear();

    let input = input.context("the pipeline prepared no input view")?;
    let set = MultiviewSet::new(
        &input,
        input_pose,
        made,
        args.fov,
        GridLayout::for_preset(&preset),
    );
    let alpha = if args.alpha {
        ViewAlpha::ObjectMask
    } else {
        ViewAlpha::Opaque
    };
    for path in set.write(&args.out, alpha, ExistingFiles::Refuse)? {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
