//! `lumos text2image "PROMPT"`: images from a prompt with the published Lumos text-to-image
//! model (LumosT2IMS XL/2 + T5-v1.1-XXL + the SD VAE) when its files are found, else with the
//! built-in prompt model (128 px, emoji and clip-art names; `--builtin` chooses it always).
//! Each PNG carries the prompt as the first line of its A1111 `parameters` text, as A1111
//! writes it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use lumos_engine::checkpoints::text_to_image::discover_text_to_image;
use lumos_engine::imageio;
use lumos_engine::pipelines::StepReport;
use lumos_engine::pipelines::prompt_model::PromptModel;
use lumos_engine::pipelines::text_to_image::{
    TextToImagePipeline, TextToImageRequest, TextToImageSpec,
};
use lumos_engine::protocol::{DeviceChoice, PromptModelChoice};

use crate::PrecisionArg;

/// The arguments of `lumos text2image`.
#[derive(clap::Args)]
pub struct Text2ImageArgs {
    /// The prompt.
    prompt: String,
    /// Image size `WxH`; the closest aspect-ratio bucket of the model is used (default: the
    /// model's own, 1024x1024 for the published model; the built-in one makes 128 px only).
    #[arg(long)]
    size: Option<String>,
    /// Number of images (image i uses seed + i).
    #[arg(long, short = 'n', default_value_t = 1)]
    count: usize,
    /// Seed of the first image (random when omitted).
    #[arg(long)]
    seed: Option<u64>,
    /// Sampler steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Classifier-free guidance scale.
    #[arg(long, default_value_t = 4.5)]
    guidance: f64,
    /// A folder holding Lumos_T2I.pth, the t5-v1_1-xxl folder and the VAE (the models folder
    /// and the Hugging Face cache are searched too).
    #[arg(long)]
    models: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N, metal or metal:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Precision of the prior: f32, or f16 / bf16 on GPUs.
    #[arg(long, value_enum, default_value = "f32")]
    precision: PrecisionArg,
    /// Use the built-in prompt model even when the published model is installed.
    #[arg(long)]
    builtin: bool,
    /// Output folder (created if missing; existing files are never overwritten).
    #[arg(long, short, default_value = "lumos-out")]
    out: PathBuf,
}

fn parse_size(text: &str) -> anyhow::Result<(u32, u32)> {
    let parsed = text
        .split_once(['x', 'X', '×'])
        .and_then(|(w, h)| Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?)));
    match parsed {
        Some((w, h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => bail!("--size takes WIDTHxHEIGHT in pixels, e.g. 1024x768, not {text:?}"),
    }
}

/// Runs `lumos text2image`.
pub fn run(args: Text2ImageArgs) -> anyhow::Result<ExitCode> {
    if args.prompt.trim().is_empty() {
        bail!("the prompt is empty: say what the image should show");
    }
    let found = discover_text_to_image(args.models.as_deref());
    let model = if found.is_complete() && !args.builtin {
        let mut spec = TextToImageSpec::published(&found)?;
        spec.precision = args.precision.into();
        PromptModelChoice::Published(Box::new(spec))
    } else {
        if args.models.is_some() && !args.builtin {
            // A folder was named: say what it lacks rather than switch models silently.
            bail!(
                "the text-to-image model in that folder is incomplete:\n{}",
                found.report()
            );
        }
        if !args.builtin {
            eprintln!(
                "the full text-to-image model is not installed; using the built-in prompt \
                 model (128 px, emoji and clip-art subjects)"
            );
        }
        PromptModelChoice::builtin()?
    };
    let (width_px, height_px) = match (&args.size, &model) {
        (Some(size), _) => parse_size(size)?,
        (None, PromptModelChoice::Published(_)) => (1024, 1024),
        (None, PromptModelChoice::BuiltIn(files)) => {
            let side = files.image_size_px() as u32;
            (side, side)
        }
    };
    let seed = args.seed.unwrap_or_else(crate::clock_seed);
    eprintln!("seed {seed}");
    let names: Vec<PathBuf> = (0..args.count)
        .map(|i| {
            args.out
                .join(format!("lumos-t2i-{}.png", seed.wrapping_add(i as u64)))
        })
        .collect();
    if let Some(existing) = names.iter().find(|p| p.exists()) {
        bail!(
            "{} already exists; choose another --out folder or --seed (nothing was written)",
            existing.display()
        );
    }
    std::fs::create_dir_all(&args.out)?;
    let device = lumos_engine::device::open(args.device)?;
    let request = TextToImageRequest {
        width_px,
        height_px,
        steps: args.steps,
        guidance: args.guidance,
        seed,
        count: args.count,
        ..TextToImageRequest::new(&args.prompt)
    };
    let bar = ProgressBar::new((args.count * args.steps) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} steps, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut on_step = |report: StepReport| {
        if let StepReport::Step { .. } = report {
            bar.inc(1);
        }
        Ok(())
    };
    let (images, warnings) = match &model {
        PromptModelChoice::Published(spec) => {
            let result =
                TextToImagePipeline::load(spec, &device)?.generate(&request, &mut on_step)?;
            (result.images, result.warnings)
        }
        PromptModelChoice::BuiltIn(files) => {
            let result = PromptModel::load(files, &device)?.generate(&request, &mut on_step)?;
            (result.images, result.warnings)
        }
    };
    bar.finish_and_clear();
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    for (i, (image, path)) in images.iter().zip(&names).enumerate() {
        let parameters = format!(
            "{}\nSteps: {}, Sampler: DPM++ 2M, CFG scale: {}, Seed: {}, Size: {}x{}, Model: {}",
            args.prompt,
            args.steps,
            args.guidance,
            seed.wrapping_add(i as u64),
            image.width(),
            image.height(),
            model.name()
        );
        let bytes = imageio::encode_png_with_text(
            &image::DynamicImage::ImageRgb8(image.clone()),
            &[(imageio::PARAMETERS_KEYWORD, parameters)],
        )?;
        imageio::write_new_file(path, &bytes)?;
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_or_say_how_to_write_them() {
        assert_eq!(parse_size("1024x768").expect("size"), (1024, 768));
        assert_eq!(parse_size("512×512").expect("size"), (512, 512));
        assert!(parse_size("0x5").is_err());
        assert!(parse_size("big").is_err());
    }
}
