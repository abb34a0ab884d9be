//! `lumos eval-prompts`: the built-in prompt model's figures (its model card's): for each
//! held-out image, one image made from its name, and the named image retrieved among all the
//! named ones from it; the Fréchet distance to real images; a contact sheet.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use lumos_engine::eval::{evaluate_prompts, is_held_out, spread_outside_split};
use lumos_engine::imageio;
use lumos_engine::pipelines::prompt_model::{PromptModel, PromptModelFiles};
use lumos_engine::protocol::{DeviceChoice, SamplerSettings};

/// The built-in model's held-out pairs (written by `tools/gpu/train_prompt.py --pairs-out`).
const BUILTIN_PAIRS: &str = "embedded:prompt/held_out_prompts.tsv";

#[derive(clap::Args)]
pub struct EvalPromptsArgs {
    /// Folder of the corpus images the pairs name.
    #[arg(long)]
    data: PathBuf,
    /// `file<TAB>prompt` lines, one per held-out image (default: the built-in model's).
    #[arg(long, default_value = BUILTIN_PAIRS)]
    pairs: PathBuf,
    /// Pairs to evaluate (from the start of the file).
    #[arg(long, default_value_t = 200)]
    count: usize,
    /// Images for the Fréchet distance (made from the prompts in turn), against as many real
    /// images outside the held-out split, beside a second real set; 0 skips it.
    #[arg(long, default_value_t = 1000)]
    fd_samples: usize,
    /// A prompt model file (default: the built-in one).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Write a contact sheet (named image | image made from its name, for the first 16
    /// prompts) here.
    #[arg(long)]
    sheet: Option<PathBuf>,
    /// Classifier-free guidance scale.
    #[arg(long, default_value_t = 4.5)]
    guidance: f64,
    /// Sampler steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
}

fn read_pairs(path: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = match lumos_engine::embedded::resolve(path) {
        Some(bytes) => String::from_utf8_lossy(bytes?).into_owned(),
        None => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the pairs file {}", path.display()))?,
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| match line.split_once('\t') {
            Some((file, prompt)) if !file.is_empty() && !prompt.trim().is_empty() => {
                Ok((file.to_owned(), prompt.to_owned()))
            }
            _ => bail!(
                "{} line {}: expected FILE<TAB>PROMPT, found {line:?}",
                path.display(),
                i + 1
            ),
        })
        .collect()
}

pub fn run(args: EvalPromptsArgs) -> anyhow::Result<ExitCode> {
    let pairs = read_pairs(&args.pairs)?;
    let pairs: Vec<(String, String)> = pairs.into_iter().take(args.count).collect();
    if pairs.is_empty() {
        bail!("no pairs in {}", args.pairs.display());
    }
    let mut files = PromptModelFiles::builtin()?;
    if let Some(path) = &args.model {
        files.weights = path.clone();
        files.name = path.display().to_string();
    }
    let model = PromptModel::load(&files, &lumos_engine::device::open(DeviceChoice::Cpu)?)?;
    let load = |file: &str| {
        imageio::load_image(&args.data.join(file))
            .with_context(|| format!("the pairs name {file}, which cannot be read"))
    };
    let named = pairs
        .iter()
        .map(|(file, prompt)| Ok((prompt.clone(), load(file)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let held_out = pairs.iter().filter(|(f, _)| is_held_out(f)).count();
    let all = lumos_engine::train::data::list_images(&args.data)?;
    let real = match spread_outside_split(&all, 2 * args.fd_samples) {
        Ok(picked) => picked
            .iter()
            .map(|f| load(&f.to_string_lossy()))
            .collect::<anyhow::Result<Vec<_>>>()?,
        Err(available) => bail!(
            "the Fréchet distance needs {} images outside the held-out split of {} (it has \
             {available}); lower --fd-samples",
            2 * args.fd_samples,
            args.data.display()
        ),
    };
    let settings = SamplerSettings {
        steps: args.steps,
        guidance: args.guidance,
        seed: 0,
        ..SamplerSettings::default()
    };
    println!(
        "evaluating {} on {} prompts ({held_out} of them naming held-out images) from {} ({} \
         steps, guidance {})",
        model.name(),
        named.len(),
        args.pairs.display(),
        settings.steps,
        settings.guidance
    );
    let started = std::time::Instant::now();
    let bar = ProgressBar::new(0);
    let report = evaluate_prompts(
        &model,
        &named,
        &real,
        args.fd_samples,
        &settings,
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    let n = report.prompts as f64;
    for (what, r) in [
        ("an image made from its name", &report.generated),
        ("the prompt's vector alone", &report.text_vector),
    ] {
        println!(
            "retrieval of the named image among the {} from {what}: top-1 {:.1}% (chance {:.1}%), \
             top-5 {:.1}%, mean cos {:.3}",
            report.prompts,
            100.0 * r.top1,
            100.0 / n,
            100.0 * r.top5,
            r.mean_similarity
        );
    }
    if let Some((samples, generated, floor)) = report.frechet {
        println!(
            "Fréchet distance ({samples} samples, encoder embeddings): images from prompts \
             {generated:.4} vs real images; floor (other real images) {floor:.4}; {:.2}× the floor",
            generated / floor.max(f64::MIN_POSITIVE)
        );
    }
    println!(
        "{} images in {:.1} s",
        report.prompts + args.fd_samples,
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.sheet {
        // Four pairs a row.
        let rows: Vec<Vec<image::RgbImage>> = report
            .sheet_rows
            .chunks(4)
            .map(|pairs| {
                pairs
                    .iter()
                    .flat_map(|(named, made)| [named.clone(), made.clone()])
                    .collect()
            })
            .collect();
        crate::eval_command::write_sheet(
            path,
            &rows,
            "named image | made from its name, four pairs a row",
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
