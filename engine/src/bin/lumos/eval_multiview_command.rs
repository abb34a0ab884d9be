//! `lumos eval-multiview`: generated views against the true ones on the held-out objects of a
//! `lumos render-dataset` set (the figures of [`lumos_engine::multiview_eval`]), with the copy
//! baseline and a contact sheet (input | generated views | true views).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use lumos_engine::checkpoints::{self, ModelChoice};
use lumos_engine::multiview_eval::{Scores, ViewScore, azimuth_gap, report};
use lumos_engine::pipelines::LoadedModel;
use lumos_engine::pipelines::multiview::{
    self, MultiviewRequest, Recentring, SetOutput, as_rendered, flood_object_mask,
};
use lumos_engine::protocol::{DeviceChoice, SamplerSettings};
use lumos_engine::synthetic::{DatasetObject, read_view};

/// Views per row of the contact sheet, generated and true each.
const SHEET_VIEWS: usize = 4;
/// Objects on the contact sheet.
const SHEET_OBJECTS: usize = 6;

/// The arguments of `lumos eval-multiview`.
#[derive(clap::Args)]
pub struct EvalMultiviewArgs {
    /// A folder written by `lumos render-dataset`.
    #[arg(long)]
    data: PathBuf,
    /// The novel-view model: a folder or its `model.json`, or `builtin`.
    #[arg(long, default_value = "builtin")]
    model: ModelChoice,
    /// At most this many test objects.
    #[arg(long, default_value_t = 50)]
    objects: usize,
    /// Sampler steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Classifier-free guidance scale [default: the model's own when its manifest names one
    /// (the built-in model: 1), else 3].
    #[arg(long)]
    guidance: Option<f64>,
    /// Seed of each object's first view.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Device: cpu, cuda, cuda:N, metal or metal:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Write a contact sheet here (input | generated | true views); never overwrites.
    #[arg(long)]
    sheet: Option<PathBuf>,
    /// Bring each input view to the model's framing as the app and `lumos multiview` bring a
    /// reference (cut out, centred, its longer side at the manifest's `object_fill`) and move
    /// its true views the same way: the figures a user's reference gets. Without it the
    /// views keep the renderer's framing.
    #[arg(long)]
    recenter: bool,
}

/// Runs `lumos eval-multiview`.
pub fn run(args: EvalMultiviewArgs) -> anyhow::Result<ExitCode> {
    if let Some(sheet) = &args.sheet
        && sheet.exists()
    {
        bail!("{} already exists (nothing was computed)", sheet.display());
    }
    let spec = checkpoints::resolve_novel_view_model(&args.model)?;
    let guidance = args
        .guidance
        .or(spec.guidance)
        .unwrap_or(crate::multiview_command::DEFAULT_GUIDANCE);
    let device = lumos_engine::device::open(args.device)?;
    let model = LoadedModel::load(&spec, &device)?;
    let size = model.image_size_px() as u32;
    let fill = multiview::object_fill(&spec);
    let mut objects: Vec<DatasetObject> = std::fs::read_dir(&args.data)
        .with_context(|| format!("cannot read {}", args.data.display()))?
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("object.json")).ok())
        .filter_map(|text| serde_json::from_str::<DatasetObject>(&text).ok())
        .filter(|o| o.split == "test" && o.views.len() >= 2)
        .collect();
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    objects.truncate(args.objects);
    if objects.is_empty() {
        bail!(
            "{} has no test objects with two or more views (make one with lumos render-dataset)",
            args.data.display()
        );
    }
    let (mut model_scores, mut copy_scores) = (Scores::default(), Scores::default());
    let mut sheet_cells: Vec<image::RgbImage> = Vec::new();
    for (n, object) in objects.iter().enumerate() {
        eprint!("\r{} / {} objects", n + 1, objects.len());
        let dir = args.data.join(&object.name);
        let load = |name: &str| -> anyhow::Result<(image::RgbImage, image::GrayImage)> {
            Ok(read_view(&dir.join(name))?)
        };
        let (input_rgb, input_alpha) = load(&object.views[0].image)?;
        let recentring = if args.recenter {
            let moved = Recentring::of(&input_alpha, size, fill);
            Some(moved.with_context(|| format!("{}: its input view is empty", object.name))?)
        } else {
            None
        };
        let truths = object.views[1..]
            .iter()
            .map(|v| {
                let (rgb, alpha) = load(&v.image)?;
                Ok(match &recentring {
                    Some(recentring) => recentring.apply(&rgb, &alpha),
                    None => as_rendered(&rgb, Some(&alpha), size),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let request = MultiviewRequest {
            name: object.name.clone(),
            image: Arc::new(input_rgb),
            alpha: Some(Arc::new(input_alpha)),
            input_pose: object.views[0].pose,
            views: object.views[1..].iter().map(|v| v.pose).collect(),
            settings: SamplerSettings {
                steps: args.steps,
                guidance,
                seed: args.seed,
                ..SamplerSettings::default()
            },
            shared_seed: false,
            recenter: args.recenter,
            device: args.device,
        };
        let mut generated = vec![image::RgbImage::new(size, size); truths.len()];
        let mut input = None;
        multiview::run(&model, &request, &mut |_| Ok(()), &mut |output| {
            match output {
                SetOutput::Input(prepared) => input = Some(prepared),
                SetOutput::View(view) => generated[view.index] = view.image,
            }
            Ok(())
        })?;
        let input = input.context("the pipeline prepared no input view")?;
        for (i, truth) in truths.iter().enumerate() {
            let gap = azimuth_gap(
                object.views[i + 1].pose.azimuth_deg,
                object.views[0].pose.azimuth_deg,
            );
            let mask = flood_object_mask(&generated[i]);
            model_scores.add(
                gap,
                ViewScore::of(&generated[i], &mask, &truth.image, &truth.object_mask),
            );
            copy_scores.add(
                gap,
                ViewScore::of(
                    &input.image,
                    &input.object_mask,
                    &truth.image,
                    &truth.object_mask,
                ),
            );
        }
        if n < SHEET_OBJECTS {
            let blank = image::RgbImage::from_pixel(size, size, image::Rgb([255, 255, 255]));
            sheet_cells.push(input.image.clone());
            for i in 0..SHEET_VIEWS {
                sheet_cells.push(generated.get(i).cloned().unwrap_or_else(|| blank.clone()));
            }
            for i in 0..SHEET_VIEWS {
                sheet_cells.push(
                    truths
                        .get(i)
                        .map(|t| t.image.clone())
                        .unwrap_or_else(|| blank.clone()),
                );
            }
        }
    }
    eprintln!();
    let framing = if args.recenter {
        format!("views recentred at fill {fill}")
    } else {
        "views as rendered".to_string()
    };
    println!(
        "{} test objects of {} ({} px, {framing}, {} steps, guidance {}); the copy baseline (the \
         input view as every prediction) in brackets:",
        objects.len(),
        args.data.display(),
        size,
        args.steps,
        guidance
    );
    print!("{}", report(&model_scores, &copy_scores));
    if let Some(path) = &args.sheet {
        let cells: Vec<&image::RgbImage> = sheet_cells.iter().collect();
        if let Some(grid) = lumos_engine::imageio::make_grid(&cells, 1 + 2 * SHEET_VIEWS, 2) {
            lumos_engine::imageio::write_new_file(
                path,
                &lumos_engine::imageio::encode_png(&grid, None)?,
            )?;
            println!(
                "contact sheet (input | generated views | true views): {}",
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
