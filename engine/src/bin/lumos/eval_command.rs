//! `lumos eval`: the quality figures of a prior on a folder of images (what the built-in
//! model's card reports): conditioning, diversity, seams and the Fréchet distance.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use image::RgbImage;
use indicatif::ProgressBar;
use lumos_engine::checkpoints::{self, ModelChoice};
use lumos_engine::eval::{EvalPlan, is_held_out, spread_outside_split};
use lumos_engine::imageio;
use lumos_engine::pipelines::LoadedModel;
use lumos_engine::protocol::{DeviceChoice, SamplerSettings};

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Folder of images (the held-out split of `lumos train` is used).
    #[arg(long)]
    data: PathBuf,
    /// References to evaluate.
    #[arg(long, default_value_t = 200)]
    count: usize,
    /// Evaluate every image of the folder, not only the held-out split: how well a model
    /// trained on this folder follows the condition of images it has seen.
    #[arg(long)]
    all_images: bool,
    /// References for the diversity figure and the contact sheet.
    #[arg(long, default_value_t = 8)]
    diversity_references: usize,
    /// Variations per reference for the diversity figure.
    #[arg(long, default_value_t = 4)]
    variations: usize,
    /// Samples per set for the Fréchet distance (variations of the references, and twice as
    /// many real images outside the held-out split); 0 skips it.
    #[arg(long, default_value_t = 1000)]
    fd_samples: usize,
    /// Write a contact sheet (reference | variations) here.
    #[arg(long)]
    sheet: Option<PathBuf>,
    /// Model to evaluate (as for `generate`).
    #[arg(long, default_value = "default")]
    model: ModelChoice,
    /// Classifier-free guidance scale (default: the model's own, where its manifest names one,
    /// else 4.5).
    #[arg(long)]
    guidance: Option<f64>,
    /// Sampler steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Solver.
    #[arg(long, value_enum, default_value = "dpm++2m")]
    solver: super::SolverArg,
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let split = if args.all_images {
        "images"
    } else {
        "held-out references"
    };
    let all = lumos_engine::train::data::list_images(&args.data)?;
    let files: Vec<PathBuf> = all
        .iter()
        .filter(|f| args.all_images || is_held_out(&f.to_string_lossy()))
        .take(args.count)
        .cloned()
        .collect();
    if files.is_empty() {
        bail!("no {split} in {}", args.data.display());
    }
    let load = |files: &[PathBuf]| -> anyhow::Result<Vec<RgbImage>> {
        Ok(files
            .iter()
            .map(|f| imageio::load_image(&args.data.join(f)))
            .collect::<Result<Vec<_>, _>>()?)
    };
    let references = load(&files)?;
    let resolved = checkpoints::resolve_model(&args.model)?;
    let model = LoadedModel::load(
        &resolved.spec,
        &lumos_engine::device::open(DeviceChoice::Cpu)?,
    )?;
    let plan = EvalPlan {
        settings: SamplerSettings {
            steps: args.steps,
            guidance: args
                .guidance
                .or(model.spec.guidance)
                .unwrap_or(SamplerSettings::default().guidance),
            solver: args.solver.into(),
            seed: 0,
        },
        diversity_references: args.diversity_references,
        diversity_variations: args.variations,
    };
    println!(
        "evaluating {} on {} {split} from {} ({} steps, guidance {})",
        model.spec.name,
        references.len(),
        args.data.display(),
        plan.settings.steps,
        plan.settings.guidance
    );
    let bar = ProgressBar::new(0);
    let started = std::time::Instant::now();
    let report = lumos_engine::eval::evaluate(&model, &references, &plan, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let n = report.references as f64;
    let c = &report.conditioning;
    println!(
        "conditioning: top-1 retrieval {:.1}% (chance {:.1}%), top-5 {:.1}%, mean cos(variation, source) {:.3}",
        100.0 * c.top1,
        100.0 / n,
        100.0 * c.top5,
        c.mean_similarity
    );
    for (side, r) in &report.blurred {
        println!(
            "  for scale, the sources blurred through {side}×{side}: top-1 {:.1}%, top-5 {:.1}%, mean cos {:.3}",
            100.0 * r.top1,
            100.0 * r.top5,
            r.mean_similarity
        );
    }
    println!(
        "diversity: embedding distance (1 - cos) within a reference {:.3} vs between references {:.3}; \
         mean pixel difference within a reference {:.1}/255",
        report.within_distance, report.between_distance, report.within_pixel_l1
    );
    let (generated_seams, real_seams) = report.seams;
    println!(
        "seams: {:.4} of the detail's spectral energy at the {}-px token period in variations vs {:.4} in the sources ({:.2}×)",
        generated_seams,
        report.seam_period,
        real_seams,
        generated_seams / real_seams.max(f64::MIN_POSITIVE)
    );
    let mut generated = bar.length().unwrap_or(0);
    if args.fd_samples > 0 {
        // Real images from outside the held-out split, spread over the whole folder.
        let wanted = 2 * args.fd_samples;
        match spread_outside_split(&all, wanted) {
            Ok(picked) => {
                let real = load(&picked)?;
                let bar = ProgressBar::new(args.fd_samples as u64);
                let fd = lumos_engine::eval::frechet(
                    &model,
                    &references,
                    &real,
                    args.fd_samples,
                    &plan.settings,
                    &mut |done, _| bar.set_position(done as u64),
                )?;
                bar.finish_and_clear();
                generated += fd.samples as u64;
                println!(
                    "Fréchet distance ({} samples, encoder embeddings): variations {:.4} vs real images; \
                 floor (other real images) {:.4}, real images blurred 4×4 {:.4}; {:.2}× the floor",
                    fd.samples,
                    fd.variations,
                    fd.real_floor,
                    fd.blurred_4x4,
                    fd.variations / fd.real_floor.max(f64::MIN_POSITIVE)
                );
                if let Some(floor) = fd.autoencoder_floor {
                    println!(
                        "  the autoencoder's floor (the other real images through its encoder and \
                         decoder) {floor:.4}: variations {:.2}× it",
                        fd.variations / floor.max(f64::MIN_POSITIVE)
                    );
                }
            }
            Err(available) => println!(
                "Fréchet distance: skipped ({available} images outside the held-out split, \
                 {wanted} needed; lower --fd-samples)"
            ),
        }
    }
    println!(
        "{generated} images in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.sheet {
        write_sheet(path, &report.sheet_rows, "reference | variations")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The images at twice their size in rows (one per diversity reference: reference |
/// variations); `caption` says what the columns are.
pub(crate) fn write_sheet(
    path: &Path,
    rows: &[Vec<RgbImage>],
    caption: &str,
) -> anyhow::Result<()> {
    let cells: Vec<RgbImage> = rows
        .iter()
        .flatten()
        .map(|img| {
            image::imageops::resize(
                img,
                img.width() * 2,
                img.height() * 2,
                image::imageops::FilterType::Nearest,
            )
        })
        .collect();
    let refs: Vec<&RgbImage> = cells.iter().collect();
    let columns = rows.first().map_or(1, Vec::len);
    if let Some(grid) = imageio::make_grid(&refs, columns, 4) {
        let bytes = imageio::encode_png(&grid, None)?;
        imageio::write_new_file(path, &bytes)?;
        println!("contact sheet ({caption}): {}", path.display());
    }
    Ok(())
}
