//! `lumos eval`: does the prior follow its condition, and does it vary?
//!
//! Conditioning: for each held-out reference, generate one variation, embed it with the model's
//! own encoder and rank all references by cosine similarity; the source should come first (top-1
//! retrieval; chance is 1/N). Diversity: several variations of the same reference should differ
//! from each other — reported as the mean pairwise embedding distance (1 − cos) and mean pixel
//! distance between variations of one reference, next to the same figures between variations of
//! different references.
//!
//! To read the retrieval figure, the same retrieval is also run on copies of the sources blurred
//! through a small grid (16×16, 8×8, 4×4) instead of generated variations: a variation that
//! retrieves like the 16×16 copy keeps about that much of its source's layout.
//!
//! Distribution: the Fréchet distance between variations and real images in the encoder's
//! embedding space ([`frechet`]), beside three scales: a second set of real images (the floor a
//! perfect model would reach with this many samples), that set blurred through 4×4, and — for
//! a latent prior — that set round-tripped through the model's autoencoder (the floor a perfect
//! prior would reach through this decoder).

use std::sync::Arc;

use candle_core::Tensor;
use image::RgbImage;

use crate::error::Result;
use crate::pipelines::{self, LoadedModel, StepReport};
use crate::protocol::{
    GenerateRequest, InitImage, MixSettings, Mode, ReferenceImage, SamplerSettings,
};

/// What to measure.
#[derive(Clone, Debug)]
pub struct EvalPlan {
    /// Sampler settings for every generation (the seed is replaced per image).
    pub settings: SamplerSettings,
    /// References used for the diversity figure (spread evenly over the list).
    pub diversity_references: usize,
    /// Variations per reference for the diversity figure.
    pub diversity_variations: usize,
}

/// The figures.
#[derive(Clone, Debug, Default)]
pub struct EvalReport {
    /// References evaluated.
    pub references: usize,
    /// Retrieval of each source from its variation.
    pub conditioning: Retrieval,
    /// The same retrieval from the sources blurred through a `side × side` grid, for scale:
    /// `(side, retrieval)`.
    pub blurred: Vec<(u32, Retrieval)>,
    /// Mean pairwise embedding distance (1 − cos) between variations of one reference.
    pub within_distance: f64,
    /// The same between variations of different references.
    pub between_distance: f64,
    /// Mean absolute pixel difference (0–255) between variations of one reference.
    pub within_pixel_l1: f64,
    /// The period in pixels of the network's tokens (patch × latent downsampling).
    pub seam_period: usize,
    /// [`seam_energy`] of the variations and of the sources at `seam_period`.
    pub seams: (f64, f64),
    /// One row per diversity reference: the reference resized to the output size, then its
    /// variations.
    pub sheet_rows: Vec<Vec<RgbImage>>,
}

/// Retrieval of the sources from one query image each.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Retrieval {
    /// Fraction whose query ranks its source first.
    pub top1: f64,
    /// Fraction whose source is among the five nearest.
    pub top5: f64,
    /// Mean cosine similarity between a query and its source.
    pub mean_similarity: f64,
}

/// Ranks all sources by cosine similarity to each query; query `i` belongs to source `i`.
/// Both `(n, c)`, unit rows.
pub fn retrieval(queries: &Tensor, sources: &Tensor) -> Result<Retrieval> {
    let similarity: Vec<Vec<f32>> = queries.matmul(&sources.t()?)?.to_vec2()?;
    let n = similarity.len().max(1) as f64;
    let mut out = Retrieval::default();
    for (i, row) in similarity.iter().enumerate() {
        let better = row.iter().filter(|&&s| s > row[i]).count();
        out.top1 += f64::from(u8::from(better == 0)) / n;
        out.top5 += f64::from(u8::from(better < 5)) / n;
        out.mean_similarity += f64::from(row[i]) / n;
    }
    Ok(out)
}

/// `image` reduced to `side × side` and enlarged back to its size (bilinear both ways).
pub fn blurred(image: &RgbImage, side: u32) -> RgbImage {
    use image::imageops::{FilterType, resize};
    let small = resize(image, side, side, FilterType::Triangle);
    resize(&small, image.width(), image.height(), FilterType::Triangle)
}

fn reference(image: &RgbImage, name: &str) -> ReferenceImage {
    ReferenceImage {
        name: name.into(),
        image: Arc::new(image.clone()),
        weight: 1.0,
        crop: None,
    }
}

/// Generates `count` variations of one reference with seeds `seed, seed + 1, …`.
pub fn variations(
    model: &LoadedModel,
    image: &RgbImage,
    count: usize,
    settings: &SamplerSettings,
) -> Result<Vec<RgbImage>> {
    let request = GenerateRequest {
        model: model.spec.clone(),
        device: crate::protocol::DeviceChoice::Cpu,
        references: vec![reference(image, "reference")],
        mode: Mode::Variations { count },
        settings: settings.clone(),
        init: None::<InitImage>,
        mix: MixSettings::default(),
    };
    let mut out = Vec::with_capacity(count);
    pipelines::run(model, &request, &mut |report| {
        if let StepReport::Image { image, .. } = report {
            out.push((*image).clone());
        }
        Ok(())
    })?;
    Ok(out)
}

fn embed_all(model: &LoadedModel, images: &[RgbImage]) -> Result<Tensor> {
    let rows = images
        .iter()
        .map(|img| model.encoder.embed(img, None, &model.device))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Tensor::cat(&rows, 0)?)
}

fn mean_pairwise(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

fn pixel_l1(a: &RgbImage, b: &RgbImage) -> f64 {
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    total as f64 / a.as_raw().len().max(1) as f64
}

/// How much of an image set's detail repeats with the token grid: the fraction of the luma's
/// AC spectral energy (rows and columns, 1-D DFTs) that lies at the harmonics of `period` pixels
/// (frequencies `m · width / period`). Patch seams raise it; compare with the same figure of
/// real images, which have some energy there too.
pub fn seam_energy(images: &[RgbImage], period: usize) -> f64 {
    let mut at_period = 0.0;
    let mut total = 0.0;
    let mut line_energy = |line: &[f64]| {
        let n = line.len();
        if n < period || period < 2 {
            return;
        }
        let mean = line.iter().sum::<f64>() / n as f64;
        let base = n / period;
        for k in 1..=n / 2 {
            let (mut re, mut im) = (0.0, 0.0);
            for (x, v) in line.iter().enumerate() {
                let phase = std::f64::consts::TAU * (k * x) as f64 / n as f64;
                re += (v - mean) * phase.cos();
                im -= (v - mean) * phase.sin();
            }
            let energy = re * re + im * im;
            total += energy;
            if base > 0 && k % base == 0 {
                at_period += energy;
            }
        }
    };
    for image in images {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let luma: Vec<f64> = image
            .pixels()
            .map(|p| {
                (0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
                    / 255.0
            })
            .collect();
        for y in 0..h {
            line_energy(&luma[y * w..(y + 1) * w]);
        }
        for x in 0..w {
            let column: Vec<f64> = (0..h).map(|y| luma[y * w + x]).collect();
            line_energy(&column);
        }
    }
    if total > 0.0 { at_period / total } else { 0.0 }
}

/// Runs the evaluation on `references`; `progress` gets (done, total) generations.
pub fn evaluate(
    model: &LoadedModel,
    references: &[RgbImage],
    plan: &EvalPlan,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport> {
    let n = references.len();
    let div_refs = plan.diversity_references.min(n);
    let total = n + div_refs * plan.diversity_variations.saturating_sub(1);
    let mut done = 0;
    let sources = embed_all(model, references)?; // (n, c), unit length
    let mut generated = Vec::with_capacity(n);
    for (i, image) in references.iter().enumerate() {
        let settings = SamplerSettings {
            seed: plan.settings.seed + i as u64,
            ..plan.settings.clone()
        };
        generated.extend(variations(model, image, 1, &settings)?);
        done += 1;
        progress(done, total);
    }
    let generated_emb = embed_all(model, &generated)?;
    let conditioning = retrieval(&generated_emb, &sources)?;
    // The references at the output size: blurred for scale, and the first column of the sheet.
    let size = model.image_size_px() as u32;
    let at_output_size = at_output_size(model, references);
    let mut blurred_retrieval = Vec::new();
    for side in [16, 8, 4] {
        let copies: Vec<RgbImage> = at_output_size.iter().map(|r| blurred(r, side)).collect();
        blurred_retrieval.push((side, retrieval(&embed_all(model, &copies)?, &sources)?));
    }

    let (_, latent_h, _) = model.latent_shape();
    let patch = model.prior.config().patch_size;
    let seam_period = (size as usize * patch / latent_h.max(1)).max(2);
    let seams = (
        seam_energy(&generated, seam_period),
        seam_energy(&at_output_size, seam_period),
    );

    // Diversity: more variations of references spread evenly over the list (a folder's names
    // sort by source, so the first few are often one set's look-alikes); the first variation
    // is reused.
    let picked: Vec<usize> = (0..div_refs).map(|k| k * n / div_refs).collect();
    let mut groups: Vec<Vec<RgbImage>> = Vec::with_capacity(div_refs);
    for (k, &i) in picked.iter().enumerate() {
        let settings = SamplerSettings {
            seed: plan.settings.seed + 1_000_000 + k as u64 * 100,
            ..plan.settings.clone()
        };
        let mut group = vec![generated[i].clone()];
        group.extend(variations(
            model,
            &references[i],
            plan.diversity_variations.saturating_sub(1),
            &settings,
        )?);
        done += plan.diversity_variations.saturating_sub(1);
        progress(done, total);
        groups.push(group);
    }
    let mut within = Vec::new();
    let mut within_px = Vec::new();
    let mut between = Vec::new();
    let group_emb: Vec<Tensor> = groups
        .iter()
        .map(|g| embed_all(model, g))
        .collect::<Result<_>>()?;
    for (gi, group) in groups.iter().enumerate() {
        let sims: Vec<Vec<f32>> = group_emb[gi].matmul(&group_emb[gi].t()?)?.to_vec2()?;
        for a in 0..group.len() {
            for b in a + 1..group.len() {
                within.push(1.0 - f64::from(sims[a][b]));
                within_px.push(pixel_l1(&group[a], &group[b]));
            }
        }
        if let Some(next) = group_emb.get(gi + 1) {
            let cross: Vec<Vec<f32>> = group_emb[gi].matmul(&next.t()?)?.to_vec2()?;
            between.extend(cross.iter().flatten().map(|&s| 1.0 - f64::from(s)));
        }
    }
    let sheet_rows = groups
        .into_iter()
        .zip(picked)
        .map(|(group, i)| {
            let mut row = vec![at_output_size[i].clone()];
            row.extend(group);
            row
        })
        .collect();
    Ok(EvalReport {
        references: n,
        seam_period,
        seams,
        conditioning,
        blurred: blurred_retrieval,
        within_distance: mean_pairwise(&within),
        between_distance: mean_pairwise(&between),
        within_pixel_l1: mean_pairwise(&within_px),
        sheet_rows,
    })
}

/// `images` resized and centre-cropped to the model's output size (how real images are compared
/// with generated ones).
fn at_output_size(model: &LoadedModel, images: &[RgbImage]) -> Vec<RgbImage> {
    let size = model.image_size_px() as u32;
    images
        .iter()
        .map(|r| crate::preprocess::resize_and_crop(r, size, None))
        .collect()
}

/// Fréchet distance between two sets of feature rows (`(n, d)` each), as in FID:
/// `|μa − μb|² + tr Σa + tr Σb − 2 tr (Σa Σb)^½` with sample covariances.
///
/// With fewer samples than dimensions the covariances are low-rank, and `tr (Σa Σb)^½` is the
/// sum of the singular values of `A Bᵀ / √((na − 1)(nb − 1))` for the centred rows A and B (the
/// non-zero eigenvalues of `Σa Σb` are those of `(A Bᵀ)(A Bᵀ)ᵀ`), so only an `na × na`
/// symmetric eigenproblem is solved, whatever `d`.
pub fn frechet_distance(a: &Tensor, b: &Tensor) -> Result<f64> {
    use candle_core::DType;
    let a = a.to_dtype(DType::F64)?;
    let b = b.to_dtype(DType::F64)?;
    let (na, nb) = (a.dim(0)?, b.dim(0)?);
    if na < 2 || nb < 2 {
        return Err(crate::EngineError::InvalidRequest(
            "the Fréchet distance needs at least two samples per set".into(),
        ));
    }
    let (mean_a, mean_b) = (a.mean_keepdim(0)?, b.mean_keepdim(0)?);
    let mean_gap = (&mean_a - &mean_b)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
    let centred_a = a.broadcast_sub(&mean_a)?;
    let centred_b = b.broadcast_sub(&mean_b)?;
    let scale_a = (na - 1) as f64;
    let scale_b = (nb - 1) as f64;
    let trace_a = centred_a.sqr()?.sum_all()?.to_scalar::<f64>()? / scale_a;
    let trace_b = centred_b.sqr()?.sum_all()?.to_scalar::<f64>()? / scale_b;
    let cross = centred_a.matmul(&centred_b.t()?)?; // (na, nb)
    let gram = cross.matmul(&cross.t()?)?; // (na, na), symmetric PSD
    let values: Vec<f64> = gram.flatten_all()?.to_vec1()?;
    let eigen = nalgebra::DMatrix::from_row_slice(na, na, &values).symmetric_eigenvalues();
    // Eigenvalues that are zero in exact arithmetic come out as rounding noise, which the square
    // root would magnify: drop those below 1e-10 of the largest.
    let floor = eigen.iter().fold(0f64, |m, &l| m.max(l)) * 1e-10;
    let nuclear: f64 = eigen
        .iter()
        .filter(|&&l| l > floor)
        .map(|&l| l.sqrt())
        .sum();
    let sqrt_trace = nuclear / (scale_a * scale_b).sqrt();
    Ok((mean_gap + trace_a + trace_b - 2.0 * sqrt_trace).max(0.0))
}

/// The Fréchet-distance figures of `lumos eval`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FrechetReport {
    /// Samples in each set.
    pub samples: usize,
    /// Variations of the references against real images.
    pub variations: f64,
    /// A second set of real images against the first: the floor at this sample count.
    pub real_floor: f64,
    /// The second set blurred through 4×4 against the first.
    pub blurred_4x4: f64,
    /// The second set encoded and decoded by the model's autoencoder against the first (latent
    /// priors only).
    pub autoencoder_floor: Option<f64>,
}

/// The Fréchet distances of `lumos eval`: `samples` variations (shared evenly among
/// `references`) against `real[..samples]`, beside `real[samples..2·samples]` and its 4×4 blur.
/// `real` must hold `2 · samples` images that are not among the references.
pub fn frechet(
    model: &LoadedModel,
    references: &[RgbImage],
    real: &[RgbImage],
    samples: usize,
    settings: &SamplerSettings,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<FrechetReport> {
    if references.is_empty() || real.len() < 2 * samples || samples < 2 {
        return Err(crate::EngineError::InvalidRequest(format!(
            "the Fréchet distance of {samples} samples needs references and {} real images (got {})",
            2 * samples,
            real.len()
        )));
    }
    let first = at_output_size(model, &real[..samples]);
    let second = at_output_size(model, &real[samples..2 * samples]);
    let blurred_second: Vec<RgbImage> = second.iter().map(|r| blurred(r, 4)).collect();
    // The references in turn, each reference's share in one batched call.
    let n = references.len();
    let mut generated = Vec::with_capacity(samples);
    for (i, reference) in references.iter().enumerate() {
        let count = samples / n + usize::from(i < samples % n);
        if count == 0 {
            break;
        }
        let settings = SamplerSettings {
            seed: settings.seed + 2_000_000 + 1_000 * i as u64,
            ..settings.clone()
        };
        generated.extend(variations(model, reference, count, &settings)?);
        progress(generated.len(), samples);
    }
    let reals = embed_all(model, &first)?;
    let autoencoder_floor = match model.vae {
        Some(_) => Some(frechet_distance(
            &embed_all(model, &reconstructed(model, &second)?)?,
            &reals,
        )?),
        None => None,
    };
    Ok(FrechetReport {
        samples,
        variations: frechet_distance(&embed_all(model, &generated)?, &reals)?,
        real_floor: frechet_distance(&embed_all(model, &second)?, &reals)?,
        blurred_4x4: frechet_distance(&embed_all(model, &blurred_second)?, &reals)?,
        autoencoder_floor,
    })
}

/// Images (at the model's size) encoded to latents and decoded again by the model's
/// autoencoder: what a perfect latent prior could show at best.
fn reconstructed(model: &LoadedModel, images: &[RgbImage]) -> Result<Vec<RgbImage>> {
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(16) {
        let batch = chunk
            .iter()
            .map(|image| pipelines::to_model_input(image, &model.device))
            .collect::<Result<Vec<_>>>()?;
        let latents = model.encode_images(&Tensor::cat(&batch, 0)?)?;
        out.extend(pipelines::to_images(&pipelines::decode(model, &latents)?)?);
    }
    Ok(out)
}

/// The figures of `lumos eval-prompts`: does the prompt model draw what a name says?
#[derive(Clone, Debug, Default)]
pub struct PromptEvalReport {
    /// Prompts evaluated.
    pub prompts: usize,
    /// Retrieval of each named image among all the named images from one image made from its
    /// name (the built-in image model's encoder embeds both).
    pub generated: Retrieval,
    /// The same from the prompt's vector itself (the text encoder alone).
    pub text_vector: Retrieval,
    /// `(samples, generated vs real, floor: other real vs real)`, when asked for.
    pub frechet: Option<(usize, f64, f64)>,
    /// `(named image, image made from its name)` for the first prompts.
    pub sheet_rows: Vec<(RgbImage, RgbImage)>,
}

/// Evaluates a prompt model on `(prompt, the image it names)` pairs: one image per prompt
/// (seed `settings.seed + i`); with `fd_samples > 0`, that many images from the prompts in
/// turn against `real[..fd_samples]`, beside `real[fd_samples..2·fd_samples]` (the floor).
pub fn evaluate_prompts(
    model: &crate::pipelines::prompt_model::PromptModel,
    pairs: &[(String, RgbImage)],
    real: &[RgbImage],
    fd_samples: usize,
    settings: &SamplerSettings,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PromptEvalReport> {
    use crate::pipelines::text_to_image::TextToImageRequest;
    let image_model = model.image_model();
    let side = image_model.image_size_px() as u32;
    let total = pairs.len() + fd_samples;
    let make = |prompt: &str, seed: u64| -> Result<RgbImage> {
        let request = TextToImageRequest {
            steps: settings.steps,
            guidance: settings.guidance,
            seed,
            count: 1,
            width_px: side,
            height_px: side,
            ..TextToImageRequest::new(prompt)
        };
        let made = model.generate(&request, &mut |_| Ok(()))?;
        Ok(made.images.into_iter().next().unwrap_or_default())
    };
    let mut generated = Vec::with_capacity(pairs.len());
    let mut vectors = Vec::with_capacity(pairs.len());
    for (i, (prompt, _)) in pairs.iter().enumerate() {
        generated.push(make(prompt, settings.seed + i as u64)?);
        vectors.push(model.condition(prompt)?.0.flatten_from(1)?);
        progress(i + 1, total);
    }
    let sources: Vec<RgbImage> = pairs.iter().map(|(_, image)| image.clone()).collect();
    let sources = at_output_size(image_model, &sources);
    let source_embeddings = embed_all(image_model, &sources)?;
    let mut report = PromptEvalReport {
        prompts: pairs.len(),
        generated: retrieval(&embed_all(image_model, &generated)?, &source_embeddings)?,
        text_vector: retrieval(&Tensor::cat(&vectors, 0)?, &source_embeddings)?,
        frechet: None,
        sheet_rows: sources.into_iter().zip(generated).take(16).collect(),
    };
    if fd_samples > 0 {
        if real.len() < 2 * fd_samples || fd_samples < 2 || pairs.is_empty() {
            return Err(crate::EngineError::InvalidRequest(format!(
                "the Fréchet distance of {fd_samples} samples needs prompts and {} real images \
                 (got {})",
                2 * fd_samples,
                real.len()
            )));
        }
        let mut made = Vec::with_capacity(fd_samples);
        for i in 0..fd_samples {
            let (prompt, _) = &pairs[i % pairs.len()];
            made.push(make(prompt, settings.seed + 2_000_000 + i as u64)?);
            progress(pairs.len() + i + 1, total);
        }
        let first = embed_all(
            image_model,
            &at_output_size(image_model, &real[..fd_samples]),
        )?;
        let second = at_output_size(image_model, &real[fd_samples..2 * fd_samples]);
        report.frechet = Some((
            fd_samples,
            frechet_distance(&embed_all(image_model, &made)?, &first)?,
            frechet_distance(&embed_all(image_model, &second)?, &first)?,
        ));
    }
    Ok(report)
}

/// `wanted` files outside the held-out split, spread evenly over `files` (the real images of
/// the Fréchet distances); when there are fewer, how many there are.
pub fn spread_outside_split(
    files: &[std::path::PathBuf],
    wanted: usize,
) -> std::result::Result<Vec<std::path::PathBuf>, usize> {
    let others: Vec<&std::path::PathBuf> = files
        .iter()
        .filter(|f| !is_held_out(&f.to_string_lossy()))
        .collect();
    if others.len() < wanted {
        return Err(others.len());
    }
    let stride = (others.len() / wanted.max(1)).max(1);
    Ok(others
        .into_iter()
        .step_by(stride)
        .take(wanted)
        .cloned()
        .collect())
}

/// The held-out split: files whose name hashes to 0 mod 64 (about 1.6%, ~230 of the default corpus,
/// enough for the 200-image evaluation) are never trained on.
pub fn is_held_out(name: &str) -> bool {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    digest[0] & 0x3f == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seam_energy_finds_a_patch_grid() {
        // A smooth diagonal gradient, and the same with a dark line every 8 pixels.
        let smooth = RgbImage::from_fn(64, 64, |x, y| {
            let v = (x * 2 + y * 2) as u8;
            image::Rgb([v, v, v])
        });
        let mut seamed = smooth.clone();
        for (x, y, p) in seamed.enumerate_pixels_mut() {
            if x % 8 == 0 || y % 8 == 0 {
                p.0 = [p[0] / 2, p[1] / 2, p[2] / 2];
            }
        }
        let clean = seam_energy(std::slice::from_ref(&smooth), 8);
        let grid = seam_energy(std::slice::from_ref(&seamed), 8);
        assert!(
            grid > 0.2 && grid > 5.0 * clean,
            "grid {grid} vs smooth {clean}"
        );
        // A grid of another period is not counted as this one.
        assert!(seam_energy(std::slice::from_ref(&seamed), 6) < grid / 3.0);
    }

    #[test]
    fn retrieval_ranks_each_query_against_every_source() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let sources = Tensor::new(&[[1f32, 0., 0.], [0., 1., 0.], [0., 0., 1.]], &dev)?;
        // Query 0 is its source; query 1 is source 2 (a miss, but in the top 5 of 3);
        // query 2 leans to source 2 (a hit).
        let lean = [0f32, 0.6, 0.8];
        let queries = Tensor::new(&[[1f32, 0., 0.], [0., 0., 1.], lean], &dev)?;
        let r = retrieval(&queries, &sources)?;
        assert!((r.top1 - 2.0 / 3.0).abs() < 1e-9, "{r:?}");
        assert!((r.top5 - 1.0).abs() < 1e-9, "{r:?}");
        assert!(
            (r.mean_similarity - (1.0 + 0.0 + 0.8) / 3.0).abs() < 1e-6,
            "{r:?}"
        );
        Ok(())
    }

    #[test]
    fn blurring_through_one_pixel_leaves_the_mean_colour() {
        let image = RgbImage::from_fn(64, 64, |x, _| {
            if x < 32 {
                image::Rgb([200, 0, 0])
            } else {
                image::Rgb([0, 0, 100])
            }
        });
        let flat = blurred(&image, 1);
        assert_eq!(flat.dimensions(), (64, 64));
        for p in flat.pixels() {
            assert!(
                p.0[0].abs_diff(100) <= 2 && p.0[2].abs_diff(50) <= 2,
                "{p:?}"
            );
        }
        assert_eq!(
            blurred(&image, 64),
            image,
            "a full-size grid changes nothing"
        );
    }

    /// Against the textbook formula with the matrix square root from an eigendecomposition, on
    /// full-rank covariances (more samples than dimensions) and on low-rank ones (fewer, as in
    /// `lumos eval`: 1,000 samples of 1,280-d embeddings).
    #[test]
    fn the_frechet_distance_matches_the_covariance_formula() -> Result<()> {
        use nalgebra::DMatrix;
        let dev = candle_core::Device::Cpu;
        let sqrt_psd = |m: &DMatrix<f64>| {
            let e = m.clone().symmetric_eigen();
            let root = e.eigenvalues.map(|l| l.max(0.0).sqrt());
            &e.eigenvectors * DMatrix::from_diagonal(&root) * e.eigenvectors.transpose()
        };
        for (n, d, tolerance) in [(40, 5, 1e-8), (6, 10, 1e-6)] {
            let a = Tensor::randn(0f64, 1.0, (n, d), &dev)?;
            let b = ((Tensor::randn(0f64, 1.0, (n + 7, d), &dev)? * 1.5)? + 0.3)?;
            let stats = |t: &Tensor| -> Result<(DMatrix<f64>, DMatrix<f64>)> {
                let rows = t.dim(0)?;
                let m = DMatrix::from_row_slice(rows, d, &t.flatten_all()?.to_vec1::<f64>()?);
                let mean = m.row_mean();
                let centred = DMatrix::from_fn(rows, d, |r, c| m[(r, c)] - mean[c]);
                let cov = centred.transpose() * &centred / (rows as f64 - 1.0);
                Ok((DMatrix::from_row_slice(1, d, mean.as_slice()), cov))
            };
            let (ma, ca) = stats(&a)?;
            let (mb, cb) = stats(&b)?;
            // tr (Σa Σb)^½ = tr (Σa^½ Σb Σa^½)^½, the symmetric form.
            let root_a = sqrt_psd(&ca);
            let middle = sqrt_psd(&(&root_a * &cb * &root_a));
            let expected =
                (&ma - &mb).norm_squared() + ca.trace() + cb.trace() - 2.0 * middle.trace();
            let ours = frechet_distance(&a, &b)?;
            assert!(
                (ours - expected).abs() < tolerance * expected.max(1.0),
                "{n} samples of {d}: {ours} vs {expected}"
            );
            // A set against itself is at distance 0; a shifted copy at the squared shift.
            assert!(frechet_distance(&a, &a)?.abs() < 1e-9);
            let shifted = frechet_distance(&a, &(&a + 2.0)?)?;
            assert!((shifted - 4.0 * d as f64).abs() < 1e-9, "{shifted}");
        }
        Ok(())
    }

    #[test]
    fn the_held_out_split_is_about_one_in_64_and_stable() {
        let held = (0..100_000)
            .filter(|i| is_held_out(&format!("images/file-{i}.png")))
            .count();
        assert!((1350..=1800).contains(&held), "{held}");
        assert_eq!(is_held_out("a.png"), is_held_out("a.png"));
    }
}
