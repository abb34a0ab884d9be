//! `lumos`: the headless command line of Lumos Studio — generate, interpolate, list models,
//! check parity against fixtures, and benchmark.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use lumos_engine::checkpoints::{self, ModelChoice};
use lumos_engine::imageio;
use lumos_engine::pipelines::{self, LoadedModel, StepReport};
use lumos_engine::protocol::{
    DeviceChoice, Event, GenerateRequest, GenerationMeta, InterpolationPath, Mode, ReferenceImage,
    SamplerSettings, Solver,
};
use lumos_engine::worker::EngineHandle;

mod bench_command;
mod eval_command;
mod eval_multiview_command;
mod eval_prompts_command;
mod multiview_command;
mod project_run;
mod render_dataset_command;
mod text2image_command;
mod train_command;

#[derive(Parser)]
#[command(
    name = "lumos",
    version,
    about = "Lumos Studio: images from images, on your own machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SolverArg {
    /// DPM-Solver++ 2M (the Lumos default).
    #[value(name = "dpm++2m")]
    DpmPp2m,
    /// DPM-Solver++ 1 (first order).
    #[value(name = "dpm++1")]
    DpmPp1,
    /// DPM-Solver++ 3M.
    #[value(name = "dpm++3m")]
    DpmPp3m,
    /// DDIM.
    Ddim,
}

impl From<SolverArg> for Solver {
    fn from(s: SolverArg) -> Self {
        match s {
            SolverArg::DpmPp2m => Solver::DpmSolverPp { order: 2 },
            SolverArg::DpmPp1 => Solver::DpmSolverPp { order: 1 },
            SolverArg::DpmPp3m => Solver::DpmSolverPp { order: 3 },
            SolverArg::Ddim => Solver::Ddim,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PathArg {
    /// The original demo: weights arange(0, 1, 1/n), never reaches the last reference.
    Demo,
    /// Linear, first and last frames are the references.
    Endpoints,
    /// Spherical, first and last frames are the references.
    Slerp,
}

impl From<PathArg> for InterpolationPath {
    fn from(p: PathArg) -> Self {
        match p {
            PathArg::Demo => Self::Demo,
            PathArg::Endpoints => Self::Endpoints,
            PathArg::Slerp => Self::Slerp,
        }
    }
}

/// Options shared by the generating commands.
#[derive(clap::Args)]
struct SamplingArgs {
    /// Model: `auto` (the published model if found, else the built-in default), `default`
    /// (the built-in small prior), `fixture` (tiny random test model), a models folder, or a
    /// ModelSpec JSON file (e.g. the `model.json` of a `lumos train` run).
    #[arg(long, default_value = "auto")]
    model: ModelChoice,
    /// Classifier-free guidance scale (default: the model's own, where its manifest names one,
    /// else 4.5).
    #[arg(long)]
    guidance: Option<f64>,
    /// Sampler steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Seed (random when omitted; printed so that the run can be repeated).
    #[arg(long)]
    seed: Option<u64>,
    /// Solver.
    #[arg(long, value_enum, default_value = "dpm++2m")]
    solver: SolverArg,
    /// Device: cpu, cuda, cuda:N, metal or metal:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Precision of the prior: f32, or f16 / bf16 on GPUs (encoder and VAE stay f32).
    #[arg(long, value_enum, default_value = "f32")]
    precision: PrecisionArg,
    /// Output folder (created if missing; existing files are never overwritten).
    #[arg(long, short, default_value = "lumos-out")]
    out: PathBuf,
    /// Start from this noise instead of seeded noise: `FILE.safetensors` or
    /// `FILE.safetensors:KEY` (default key `z`), shape (1, 4, h, w).
    #[arg(long)]
    noise: Option<String>,
    /// Start from this image (img2img) instead of pure noise.
    #[arg(long)]
    init: Option<PathBuf>,
    /// How much to change the starting image: 0 keeps it, 1 ignores it ("subtle" ≈ 0.35,
    /// "strong" ≈ 0.75).
    #[arg(long, default_value_t = 0.6)]
    strength: f32,
    /// Repaint mask for the starting image (white = repaint, black = keep exactly).
    #[arg(long, requires = "init")]
    mask: Option<PathBuf>,
    /// Feather the mask edge by this many pixels.
    #[arg(long, default_value_t = 0, requires = "mask")]
    feather: u32,
    /// How references are mixed.
    #[arg(long, value_enum, default_value = "linear")]
    mix: MixArg,
    /// Do not re-normalise mixed embeddings to unit length.
    #[arg(long)]
    no_renormalize: bool,
    /// Frame spacing of morphs.
    #[arg(long, value_enum, default_value = "linear")]
    ease: EaseArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PrecisionArg {
    F32,
    F16,
    Bf16,
}

impl From<PrecisionArg> for lumos_engine::protocol::Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F32 => Self::F32,
            PrecisionArg::F16 => Self::F16,
            PrecisionArg::Bf16 => Self::Bf16,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum SweepRows {
    /// One row per seed.
    Seed,
    /// One row per weight of the last reference.
    Weight,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MixArg {
    /// Weighted mean of the embeddings.
    Linear,
    /// Spherical interpolation.
    Spherical,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum EaseArg {
    /// Evenly spaced frames.
    Linear,
    /// Slow in, slow out.
    Smooth,
}

impl SamplingArgs {
    /// The request these arguments make for `references`, `mode` and `seed`.
    fn request(
        &self,
        references: Vec<ReferenceImage>,
        mode: Mode,
        seed: u64,
    ) -> anyhow::Result<GenerateRequest> {
        let model = self.resolve_model()?;
        let guidance = self
            .guidance
            .or(model.guidance)
            .unwrap_or(SamplerSettings::default().guidance);
        Ok(GenerateRequest {
            model,
            device: self.device,
            references,
            mode,
            settings: SamplerSettings {
                steps: self.steps,
                guidance,
                solver: self.solver.into(),
                seed,
            },
            init: self.init_image()?,
            mix: self.mix_settings(),
        })
    }

    /// The model the arguments ask for, at the requested precision.
    fn resolve_model(&self) -> anyhow::Result<lumos_engine::protocol::ModelSpec> {
        let resolved = checkpoints::resolve_model(&self.model)?;
        if let Some(warning) = &resolved.warning {
            eprintln!("warning: {warning}");
        }
        Ok(lumos_engine::protocol::ModelSpec {
            precision: self.precision.into(),
            ..resolved.spec
        })
    }

    fn mix_settings(&self) -> lumos_engine::protocol::MixSettings {
        use lumos_engine::protocol::{Ease, MixMethod, MixSettings};
        MixSettings {
            method: match self.mix {
                MixArg::Linear => MixMethod::Linear,
                MixArg::Spherical => MixMethod::Spherical,
            },
            renormalize: !self.no_renormalize,
            ease: match self.ease {
                EaseArg::Linear => Ease::Linear,
                EaseArg::Smooth => Ease::Smooth,
            },
        }
    }

    fn init_image(&self) -> anyhow::Result<Option<lumos_engine::protocol::InitImage>> {
        let Some(path) = &self.init else {
            return Ok(None);
        };
        let (image, notice) = imageio::load_image_with_notice(path)?;
        if let Some(notice) = notice {
            eprintln!("note: {notice}");
        }
        let mask = match &self.mask {
            None => None,
            Some(mask_path) => {
                let mask =
                    image::DynamicImage::ImageRgb8(imageio::load_image(mask_path)?).to_luma8();
                if mask.dimensions() != image.dimensions() {
                    bail!(
                        "the mask is {}×{} but the starting image is {}×{}",
                        mask.width(),
                        mask.height(),
                        image.width(),
                        image.height()
                    );
                }
                Some(Arc::new(lumos_engine::mask::feather(&mask, self.feather)))
            }
        };
        Ok(Some(lumos_engine::protocol::InitImage {
            image: Arc::new(image),
            strength: self.strength,
            mask,
        }))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Variations of one reference, or of a weighted blend of several.
    Generate {
        /// Reference images.
        #[arg(required_unless_present = "project", conflicts_with = "project")]
        references: Vec<PathBuf>,
        /// Run a saved project (`.lumos`): its references, weights, crops, start image, mask,
        /// mode and sampler settings. `--seed`, `--model`, `--device`, `--precision` and
        /// `--out` still apply (`--seed` replaces the project's seed).
        #[arg(long)]
        project: Option<PathBuf>,
        /// Weights of the references (comma-separated, default all 1).
        #[arg(long, value_delimiter = ',')]
        weights: Vec<f32>,
        /// Number of images.
        #[arg(long, short = 'n', default_value_t = 4)]
        count: usize,
        #[command(flatten)]
        sampling: SamplingArgs,
    },
    /// Frames along a path through two or more references (shared noise), plus a grid and a GIF.
    Interpolate {
        /// Reference images, in path order.
        #[arg(required = true, num_args = 2..)]
        references: Vec<PathBuf>,
        /// Number of frames.
        #[arg(long, default_value_t = 5)]
        frames: usize,
        /// Interpolation path.
        #[arg(long, value_enum, default_value = "endpoints")]
        path: PathArg,
        #[command(flatten)]
        sampling: SamplingArgs,
    },
    /// An X/Y grid: rows over seeds (or the last reference's weight), columns over guidance,
    /// written as one labelled contact sheet.
    Sweep {
        /// Reference images.
        #[arg(required = true)]
        references: Vec<PathBuf>,
        /// What the rows vary.
        #[arg(long, value_enum, default_value = "seed")]
        rows: SweepRows,
        /// Row values: seeds, or weights of the last reference (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        row_values: Vec<f64>,
        /// Guidance scales of the columns (comma-separated).
        #[arg(
            long = "guidance-values",
            value_delimiter = ',',
            default_value = "1.5,3,4.5,7"
        )]
        guidance_values: Vec<f64>,
        #[command(flatten)]
        sampling: SamplingArgs,
    },
    /// Images from a prompt with the published Lumos text-to-image model when its files are
    /// found, else with the built-in prompt model; the prompt is recorded in each PNG.
    Text2image(text2image_command::Text2ImageArgs),
    /// Views of the object in a reference from other cameras on an orbit, with the camera
    /// files 3D tools read (transforms.json), a grid and a turntable GIF.
    Multiview(multiview_command::MultiviewArgs),
    /// Measure a multi-view model's views against the true ones on a rendered dataset's test
    /// objects (PSNR, SSIM, silhouette IoU by azimuth, beside the copy-the-input baseline).
    EvalMultiview(eval_multiview_command::EvalMultiviewArgs),
    /// Render textured procedural objects from orbit cameras: training and test data for
    /// multi-view models (RGBA views, depth, cameras; shapes and textures held out for test).
    /// Resumes an interrupted run.
    RenderDataset(render_dataset_command::RenderDatasetArgs),
    /// Train a small prior (the Lumos recipe: no text, no labels) on a folder of images, or
    /// its novel-view config on a posed multi-view dataset. Resumes when OUT already holds a
    /// run.
    Train(train_command::TrainArgs),
    /// Measure a prior: retrieval of held-out references from their variations (conditioning),
    /// the spread between variations of one reference (diversity), seams and the Fréchet
    /// distance to real images.
    Eval(eval_command::EvalArgs),
    /// Measure the built-in prompt model: retrieval of held-out named images from images made
    /// from their names, and the Fréchet distance to real images.
    EvalPrompts(eval_prompts_command::EvalPromptsArgs),
    /// What model files were found, and what is missing.
    Models {
        /// Also search this folder first.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Parity checks against a fixture folder (as in shared/fixtures); non-zero exit on failure.
    Selftest {
        /// Fixture root.
        #[arg(long)]
        fixtures: Option<PathBuf>,
        /// Device: cpu, cuda, cuda:N, metal or metal:N.
        #[arg(long, default_value = "cpu")]
        device: DeviceChoice,
        /// Print every tensor, not only the summary per fixture.
        #[arg(long)]
        verbose: bool,
        /// Precision of the networks (the sampler and pipeline fixtures always run in f32);
        /// half precision is held to a tolerance relative to each output's range.
        #[arg(long, value_enum, default_value = "f32")]
        precision: PrecisionArg,
    },
    /// Time the full-size networks with random weights.
    Bench(bench_command::BenchArgs),
}

fn main() -> ExitCode {
    lumos_engine::device::tune_threads();
    let cli = Cli::parse();
    lumos_engine::device::tune_allocator();
    match lumos_engine::device::on_compute_threads(|| run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Generate {
            project: Some(project),
            sampling,
            ..
        } => project_run::generate_project(&project, &sampling),
        Command::Generate {
            references,
            weights,
            count,
            sampling,
            ..
        } => {
            if !weights.is_empty() && weights.len() != references.len() {
                bail!(
                    "{} weights for {} references",
                    weights.len(),
                    references.len()
                );
            }
            let mode = Mode::Variations { count };
            generate(&references, &weights, mode, &sampling)
        }
        Command::Interpolate {
            references,
            frames,
            path,
            sampling,
        } => {
            let mode = Mode::Interpolate {
                frames,
                path: path.into(),
            };
            generate(&references, &[], mode, &sampling)
        }
        Command::Sweep {
            references,
            rows,
            row_values,
            guidance_values,
            sampling,
        } => sweep(&references, rows, &row_values, &guidance_values, &sampling),
        Command::Models { dir } => {
            let found = checkpoints::discover(dir.as_deref());
            print!("{}", found.report());
            match lumos_engine::embedded::default_spec() {
                Ok(spec) => println!(
                    "built-in default: {} ({}×{} px; used when the full model is missing)",
                    spec.name, spec.prior.config.input_size, spec.prior.config.input_size
                ),
                Err(e) => println!("built-in default: unusable ({e})"),
            }
            let text_to_image =
                lumos_engine::checkpoints::text_to_image::discover_text_to_image(dir.as_deref());
            println!(
                "text to image: {}",
                if text_to_image.is_complete() {
                    "the full Lumos T2I model (found)"
                } else {
                    "the built-in prompt model (128 px; the full model is incomplete, see \
                     `lumos text2image`)"
                }
            );
            let fixtures = checkpoints::fixtures_root();
            match checkpoints::pipeline_fixture_spec(&fixtures) {
                Ok(_) => println!(
                    "test model (random weights): {}",
                    fixtures.join("pipeline_tiny").display()
                ),
                Err(e) => println!("test model: not available ({e})"),
            }
            println!(
                "devices in this build: {:?}",
                lumos_engine::device::available()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Selftest {
            fixtures,
            device,
            verbose,
            precision,
        } => selftest(fixtures, device, precision.into(), verbose),
        Command::Bench(args) => bench_command::run(args),
        Command::Eval(args) => eval_command::run(args),
        Command::EvalPrompts(args) => eval_prompts_command::run(args),
        Command::Multiview(args) => multiview_command::run(args),
        Command::Text2image(args) => text2image_command::run(args),
        Command::EvalMultiview(args) => eval_multiview_command::run(args),
        Command::RenderDataset(args) => render_dataset_command::run(args),
        Command::Train(args) => train_command::run(args),
    }
}

fn load_references(paths: &[PathBuf], weights: &[f32]) -> anyhow::Result<Vec<ReferenceImage>> {
    paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let (image, notice) = imageio::load_image_with_notice(path)?;
            if let Some(notice) = notice {
                eprintln!("note: {notice}");
            }
            Ok(ReferenceImage {
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                image: Arc::new(image),
                weight: weights.get(i).copied().unwrap_or(1.0),
                crop: None,
            })
        })
        .collect()
}

/// Creates the output folder and checks that files can be written there.
fn prepare_output_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the output folder {}", dir.display()))?;
    let probe = dir.join(format!(".lumos-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .with_context(|| format!("the output folder is not writable: {}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn output_name(mode: &Mode, meta_seed: u64, index: usize) -> String {
    match mode {
        Mode::Variations { .. } => format!("lumos-{meta_seed}-{index:03}.png"),
        Mode::Interpolate { .. } => format!("lumos-morph-{meta_seed}-{index:03}.png"),
        Mode::Sweep { .. } => format!("lumos-sweep-{meta_seed}-{index:03}.png"),
    }
}

fn read_noise(spec: &str) -> anyhow::Result<candle_core::Tensor> {
    let (file, key) = match spec.rsplit_once(':') {
        Some((file, key)) if file.ends_with(".safetensors") => (file, key),
        _ => (spec, "z"),
    };
    let tensors = candle_core::safetensors::load(file, &candle_core::Device::Cpu)
        .with_context(|| format!("cannot read noise from {file}"))?;
    let noise = tensors
        .get(key)
        .with_context(|| format!("{file} has no tensor `{key}`"))?;
    Ok(noise.to_dtype(candle_core::DType::F32)?)
}

fn generate(
    paths: &[PathBuf],
    weights: &[f32],
    mode: Mode,
    args: &SamplingArgs,
) -> anyhow::Result<ExitCode> {
    let references = load_references(paths, weights)?;
    let seed = args.seed.unwrap_or_else(clock_seed);
    eprintln!("seed {seed}");
    let request = args.request(references, mode, seed)?;
    run_generation(request, args)
}

/// Runs a request and writes its results (and, for morphs, a grid and a GIF) to `--out`;
/// refuses before computing anything if a result would overwrite a file.
fn run_generation(request: GenerateRequest, args: &SamplingArgs) -> anyhow::Result<ExitCode> {
    pipelines::validate(&request)?;
    let mode = request.mode.clone();
    let seed = request.settings.seed;
    let count = pipelines::image_count(&mode);
    // Refuse before computing anything if a result would overwrite a file.
    let names: Vec<PathBuf> = (0..count)
        .map(|i| {
            let image_seed = match mode {
                Mode::Variations { .. } => seed.wrapping_add(i as u64),
                Mode::Interpolate { .. } | Mode::Sweep { .. } => seed,
            };
            args.out.join(output_name(&mode, image_seed, i))
        })
        .collect();
    if let Some(existing) = names.iter().find(|p| p.exists()) {
        bail!(
            "{} already exists; choose another --out folder or --seed (nothing was written)",
            existing.display()
        );
    }
    prepare_output_dir(&args.out)?;

    let batches = pipelines::batch_count(count, args.device);
    let bar = ProgressBar::new((batches * request.settings.steps) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} steps, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("loading model");
    let mut results: Vec<(usize, Arc<image::RgbImage>, GenerationMeta)> = Vec::new();
    let mut on_report = |report: StepReport, bar: &ProgressBar| match report {
        StepReport::Step { steps, .. } => {
            bar.set_length((batches * steps) as u64);
            bar.set_message("sampling");
            bar.inc(1);
        }
        StepReport::Image { index, image, meta } => results.push((index, image, *meta)),
    };

    if let Some(noise_spec) = &args.noise {
        // Given noise: run the pipeline in this thread.
        let noise = read_noise(noise_spec)?;
        let device = lumos_engine::device::open(args.device)?;
        let model = LoadedModel::load(&request.model, &device)?;
        pipelines::run_with_noise(&model, &request, Some(&noise), &mut |r| {
            on_report(r, &bar);
            Ok(())
        })?;
    } else {
        let engine = EngineHandle::spawn(|| {})?;
        let job = engine.generate(request)?;
        loop {
            let Some(event) = engine.recv_timeout(Duration::from_millis(200))? else {
                continue;
            };
            if event.job() != job {
                continue;
            }
            match event {
                Event::Progress { step, steps, .. } => on_report(
                    StepReport::Step {
                        step,
                        steps,
                        preview: None,
                    },
                    &bar,
                ),
                Event::Image {
                    index, image, meta, ..
                } => on_report(StepReport::Image { index, image, meta }, &bar),
                Event::Finished { .. } => break,
                Event::Cancelled { .. } => bail!("the job was cancelled"),
                Event::Failed { error, .. } => bail!("{error}"),
                // A generation job sends no views.
                Event::Started { .. }
                | Event::ModelReady { .. }
                | Event::View { .. }
                | Event::InputView { .. }
                | Event::Notice { .. } => {}
            }
        }
    }
    bar.finish_and_clear();

    results.sort_by_key(|(index, _, _)| *index);
    for ((_, image, meta), path) in results.iter().zip(&names) {
        imageio::write_png(path, image, meta)?;
        println!("{}", path.display());
    }
    if let Mode::Interpolate { frames, .. } = mode {
        let images: Vec<&image::RgbImage> =
            results.iter().map(|(_, img, _)| img.as_ref()).collect();
        if let Some(grid) = imageio::make_grid(&images, (images.len() / 3).max(1), 3) {
            let path = args.out.join(format!("lumos-morph-{seed}-grid.png"));
            imageio::write_new_file(&path, &imageio::encode_png(&grid, None)?)?;
            println!("{}", path.display());
        }
        let path = args.out.join(format!("lumos-morph-{seed}.gif"));
        imageio::write_new_file(&path, &imageio::encode_gif(&images, 100)?)?;
        println!("{} ({frames} frames requested)", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn sweep(
    paths: &[PathBuf],
    rows: SweepRows,
    row_values: &[f64],
    guidance_values: &[f64],
    args: &SamplingArgs,
) -> anyhow::Result<ExitCode> {
    let references = load_references(paths, &[])?;
    let seed = args.seed.unwrap_or(1);
    let rows = match rows {
        SweepRows::Seed => {
            lumos_engine::protocol::SweepRows::seeds_from(row_values).map_err(anyhow::Error::msg)?
        }
        SweepRows::Weight => lumos_engine::protocol::SweepRows::Weights(
            row_values.iter().map(|&v| v as f32).collect(),
        ),
    };
    let mode = Mode::Sweep {
        rows,
        guidance: guidance_values.to_vec(),
    };
    let request = args.request(references, mode.clone(), seed)?;
    pipelines::validate(&request)?;
    let path = args.out.join(format!("lumos-sweep-{seed}.png"));
    if path.exists() {
        bail!(
            "{} already exists; choose another --out folder or --seed (nothing was written)",
            path.display()
        );
    }
    prepare_output_dir(&args.out)?;
    let device = lumos_engine::device::open(args.device)?;
    let model = LoadedModel::load(&request.model, &device)?;
    let bar = ProgressBar::new(pipelines::image_count(&mode) as u64);
    let mut images = Vec::new();
    pipelines::run(&model, &request, &mut |report| {
        if let StepReport::Image { image, .. } = report {
            images.push(image);
            bar.inc(1);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    let cells: Vec<&image::RgbImage> = images.iter().map(|i| i.as_ref()).collect();
    let sheet = lumos_engine::contact_sheet::sweep_sheet(&mode, &cells)
        .context("the sweep's images are missing or differ in size")?;
    imageio::write_new_file(&path, &imageio::encode_png(&sheet, None)?)?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn selftest(
    fixtures: Option<PathBuf>,
    device: DeviceChoice,
    precision: lumos_engine::protocol::Precision,
    verbose: bool,
) -> anyhow::Result<ExitCode> {
    let root = fixtures.unwrap_or_else(checkpoints::fixtures_root);
    let device = lumos_engine::device::open(device)?;
    let dtype = lumos_engine::device::dtype(precision);
    let outcomes = lumos_engine::selftest::run_all(&root, &device, dtype);
    if outcomes.is_empty() {
        bail!("no fixture folders found under {}", root.display());
    }
    let mut failed = false;
    for outcome in outcomes {
        match outcome.checks {
            Err(e) => {
                failed = true;
                println!("{:<18} ERROR {e:#}", outcome.fixture);
            }
            Ok(checks) => {
                let bad = checks.iter().filter(|c| !c.passed).count();
                failed |= bad > 0;
                for c in checks.iter().filter(|c| verbose || !c.passed) {
                    println!(
                        "  {:<44} {:<40} max err {:.2e} (max|ref| {:.2e}, tol {}) {}",
                        c.group,
                        c.name,
                        c.max_abs_err,
                        c.max_abs_ref,
                        c.tolerance,
                        if c.passed { "ok" } else { "FAILED" }
                    );
                }
                let worst = checks
                    .iter()
                    .max_by(|a, b| a.max_abs_err.total_cmp(&b.max_abs_err))
                    .map(|c| format!("{} {} {:.2e}", c.group, c.name, c.max_abs_err))
                    .unwrap_or_default();
                println!(
                    "{:<18} {} ({} tensors, {} failed; largest error: {worst})",
                    outcome.fixture,
                    if bad == 0 { "PASS" } else { "FAIL" },
                    checks.len(),
                    bad
                );
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A seed for runs that were given none (printed, so that the run can be repeated).
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 % 1_000_000_000)
        .unwrap_or(0)
}

fn rayon_threads() -> String {
    std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| {
        std::thread::available_parallelism()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into())
    })
}
