//! `lumos train`: trains a small prior ([`lumos_engine::train`]), resumably. A folder of images
//! trains an image prior; a posed multi-view dataset (`lumos render-dataset`) trains the
//! novel-view config of the same network, from an image prior's weights (the built-in default
//! unless `--init` names another) or, with `--scratch`, from scratch with the same config.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use lumos_engine::checkpoints::{self, ModelChoice};
use lumos_engine::protocol::{DeviceChoice, ModelSpec};
use lumos_engine::train::{RunFolder, TrainEvent, TrainSettings, multiview};

/// The arguments of `lumos train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// Folder of training images (searched recursively), or a posed multi-view dataset made by
    /// `lumos render-dataset` (trains a novel-view prior).
    #[arg(long)]
    data: PathBuf,
    /// Run folder: settings, cached data, state, loss log and the exported model.
    #[arg(long, short)]
    out: PathBuf,
    /// Train until this many steps in total. A new run's learning rate follows a cosine
    /// from its peak down to a tenth at this step (gradients clipped to norm 1, as the
    /// PyTorch trainers do).
    #[arg(long, default_value_t = 20_000)]
    steps: usize,
    /// Images per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Learning rate after warm-up (default 5e-4 for image priors, 3e-4 for novel views).
    /// Given when resuming, it changes the run's peak rate from its next step on (e.g. lower
    /// for the last steps).
    #[arg(long)]
    lr: Option<f64>,
    /// Steps between saves of state and model.
    #[arg(long, default_value_t = 250)]
    save_every: usize,
    /// The model whose prior the run starts from and whose size, space and encoder it keeps:
    /// `builtin` (the built-in default), a model folder or its `model.json`. A novel-view run
    /// starts from the built-in default unless this names another (an image prior, or a
    /// novel-view model to continue).
    #[arg(long)]
    init: Option<String>,
    /// With multi-view data: the same network as `--init`'s, from scratch (the other arm of
    /// the image-prior-initialisation comparison).
    #[arg(long)]
    scratch: bool,
    /// Transformer width of a new image prior (default 256).
    #[arg(long)]
    width: Option<usize>,
    /// Transformer depth of a new image prior (default 6).
    #[arg(long)]
    depth: Option<usize>,
    /// Patch size of a new image prior, which works on 64×64 pixels (default 8).
    #[arg(long)]
    patch: Option<usize>,
    /// Device: cpu, cuda, cuda:N, metal or metal:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

/// The model named by `--init`: `builtin`, a folder holding `model.json`, or a manifest.
fn base_model(choice: &str) -> anyhow::Result<ModelSpec> {
    let path = Path::new(choice);
    Ok(match choice.parse::<ModelChoice>()? {
        ModelChoice::Path(_) if path.is_dir() => {
            checkpoints::read_manifest(&path.join("model.json"))?
        }
        ModelChoice::Path(_) => checkpoints::read_manifest(path)?,
        other => checkpoints::resolve_model(&other)?.spec,
    })
}

/// The settings of a new run from the arguments.
fn settings(args: &TrainArgs) -> anyhow::Result<TrainSettings> {
    let sized = args.width.is_some() || args.depth.is_some() || args.patch.is_some();
    let mut settings = if multiview::is_posed_dataset(&args.data) {
        if sized {
            bail!(
                "--width, --depth and --patch size a new image prior; a novel-view run takes \
                 its network from --init (the built-in default unless given)"
            );
        }
        let base = base_model(args.init.as_deref().unwrap_or("builtin"))?;
        println!(
            "novel-view run on {}'s network, {}",
            base.name,
            if args.scratch {
                "from scratch"
            } else {
                "starting from its weights"
            }
        );
        TrainSettings::novel_view(&base, !args.scratch)
    } else if let Some(init) = &args.init {
        if sized || args.scratch {
            bail!(
                "--init takes its network from the model it names: leave out --width, --depth, --patch and --scratch"
            );
        }
        let base = base_model(init)?;
        let mut settings = TrainSettings::small_default(base.encoder.path.clone());
        settings.prior = base.prior.config.clone();
        settings.encoder = base.encoder.clone();
        settings.vae = base.vae.clone();
        settings.init = Some(base.prior.path.clone());
        settings
    } else {
        if args.scratch {
            bail!(
                "--scratch is for multi-view data (a new image prior always starts from scratch)"
            );
        }
        let mut settings = TrainSettings::small_default(PathBuf::from(
            "embedded:encoder/efficientnet_lite0.safetensors",
        ));
        settings.prior.hidden_size = args.width.unwrap_or(settings.prior.hidden_size);
        settings.prior.depth = args.depth.unwrap_or(settings.prior.depth);
        settings.prior.patch_size = args.patch.unwrap_or(settings.prior.patch_size);
        settings
    };
    settings.batch = args.batch;
    settings.lr = args.lr.unwrap_or(settings.lr);
    settings.save_every = args.save_every;
    settings.decay_steps = args.steps;
    Ok(settings)
}

/// Runs `lumos train`.
pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let dev = lumos_engine::device::open(args.device)?;
    let run = RunFolder(args.out.clone());
    let settings = if run.settings().exists() {
        println!(
            "resuming the run in {} (its saved settings apply)",
            args.out.display()
        );
        if let Some(lr) = args.lr {
            let old = lumos_engine::train::change_learning_rate(&run, lr)?;
            println!("learning rate {old:.1e} → {lr:.1e} from the next step");
        }
        checkpoints::read_config::<TrainSettings>(&run.settings())?
    } else {
        settings(&args)?
    };
    let steps = args.steps;
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut smoothed: Option<f32> = None;
    lumos_engine::train::train(
        &args.data,
        &run,
        settings,
        steps,
        &dev,
        &mut |event| match event {
            TrainEvent::Preparing { what, done, total } => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                bar.set_message(what);
                if bar.is_hidden() && (done % 2048 < 32 || done == total) {
                    println!(
                        "{what}: {done}/{total} ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            TrainEvent::Step { step, loss, lr } => {
                if bar.length() != Some(steps as u64) {
                    bar.set_length(steps as u64);
                    bar.reset_eta();
                }
                let s = smoothed.map_or(loss, |s| 0.98 * s + 0.02 * loss);
                smoothed = Some(s);
                bar.set_position(step as u64);
                bar.set_message(format!("loss {s:.4} lr {lr:.1e}"));
                if bar.is_hidden() && step % 50 == 0 {
                    // Logging to a file: the bar is hidden, so print a line now and then.
                    println!(
                        "step {step} loss {s:.4} lr {lr:.1e} ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            TrainEvent::Saved { step, path } => {
                let line = format!(
                    "step {step}: saved {} ({:.0} s)",
                    path.display(),
                    started.elapsed().as_secs_f64()
                );
                // A hidden bar (output to a file) prints nothing of its own.
                if bar.is_hidden() {
                    println!("{line}");
                } else {
                    bar.println(line);
                }
            }
        },
    )?;
    bar.finish();
    println!(
        "done: model in {} (use it with --model {})",
        run.0.display(),
        run.manifest().display()
    );
    Ok(ExitCode::SUCCESS)
}
