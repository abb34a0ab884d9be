//! The `build` command: plan every source, frame all images in parallel, drop duplicates, write
//! the images, the manifest and the attributions.
//!
//! Output is deterministic: jobs keep their planned order through rayon's indexed collect, file
//! names are assigned in that order, and of two identical images the earlier one is kept.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use image::codecs::png::PngEncoder;
use image::{ImageEncoder, RgbImage};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::content_filter::ContentStats;
use crate::naming::FileNames;
use crate::process::{Left, frame};
use crate::report::{ManifestEntry, attributions_markdown, summary_text};
use crate::source::{Job, Selection, SkipReason, SourcePlan, Tally};
use crate::{fluent3d, iconify, openclipart};

/// What to do with clip art the content filter rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectedImages {
    Discard,
    /// Write them under `OUT/rejected/<reason>/` to review the filter.
    WriteForReview,
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub downloads: PathBuf,
    pub out: PathBuf,
    pub size_px: u32,
    pub selection: Selection,
    pub rejected: RejectedImages,
}

/// A framed image written to disk.
struct Written {
    sha256: String,
    stats: ContentStats,
}

/// Builds the corpus and returns the per-source summary table.
pub fn build(options: &BuildOptions) -> Result<String> {
    let mut plans = Vec::new();
    for spec in iconify::ICON_SETS {
        plans.push(iconify::plan_set(&options.downloads, spec.prefix)?);
    }
    plans.push(fluent3d::plan(&options.downloads)?);
    plans.push(openclipart::plan(&options.downloads)?);
    let plans: Vec<SourcePlan> = plans
        .into_iter()
        .map(|plan| plan.select(options.selection))
        .collect();
    for plan in &plans {
        eprintln!(
            "planned {:<20} {:>6} images",
            plan.source.id,
            plan.jobs.len()
        );
    }

    let images_dir = options.out.join("images");
    prepare_output(&options.out, &images_dir)?;
    let mut file_names = FileNames::default();
    let work: Vec<(usize, &Job, String)> = plans
        .iter()
        .enumerate()
        .flat_map(|(source_index, plan)| {
            plan.jobs
                .iter()
                .map(move |job| (source_index, job, &plan.source.id))
        })
        .map(|(source_index, job, source_id)| {
            (source_index, job, file_names.assign(source_id, &job.name))
        })
        .collect();

    let done = AtomicUsize::new(0);
    let outcomes: Vec<Result<Written, Left>> = work
        .par_iter()
        .map(|(_, job, file_name)| {
            let outcome = match frame(&job.input, options.size_px) {
                Ok(framed) => write_png(&images_dir.join(file_name), &framed.image).map(|sha256| {
                    Ok(Written {
                        sha256,
                        stats: framed.stats,
                    })
                }),
                Err(left) => write_rejected(options, &left, file_name).map(|()| Err(left)),
            };
            let done_now = done.fetch_add(1, Ordering::Relaxed) + 1;
            if done_now.is_multiple_of(2000) {
                eprintln!("framed {done_now}/{}", work.len());
            }
            outcome
        })
        .collect::<Result<_>>()?;

    let mut tallies: Vec<Tally> = plans.iter().map(|plan| plan.tally.clone()).collect();
    let mut manifest = String::new();
    let mut seen_hashes = HashSet::new();
    for ((source_index, job, file_name), outcome) in work.iter().zip(outcomes) {
        let source = &plans[*source_index].source;
        let tally = &mut tallies[*source_index];
        match outcome {
            Err(left) => tally.skip(left.reason),
            Ok(written) if !seen_hashes.insert(written.sha256.clone()) => {
                let path = images_dir.join(file_name);
                fs::remove_file(&path)
                    .with_context(|| format!("removing duplicate {}", path.display()))?;
                tally.skip(SkipReason::Duplicate);
            }
            Ok(written) => {
                tally.kept += 1;
                let entry = ManifestEntry::new(
                    file_name,
                    source,
                    &job.original,
                    written.sha256,
                    written.stats,
                );
                manifest.push_str(&serde_json::to_string(&entry)?);
                manifest.push('\n');
            }
        }
    }

    let sources: Vec<_> = plans
        .iter()
        .zip(&tallies)
        .map(|(plan, tally)| (&plan.source, tally))
        .collect();
    write_file(&options.out.join("manifest.jsonl"), manifest.as_bytes())?;
    write_file(
        &options.out.join("ATTRIBUTIONS.md"),
        attributions_markdown(&sources).as_bytes(),
    )?;
    Ok(summary_text(&sources))
}

/// Creates the output folders and removes the PNGs and rejected images of an earlier run, so
/// the folder holds exactly what the manifest lists.
fn prepare_output(out: &Path, images_dir: &Path) -> Result<()> {
    fs::create_dir_all(images_dir).with_context(|| format!("creating {}", images_dir.display()))?;
    for entry in
        fs::read_dir(images_dir).with_context(|| format!("listing {}", images_dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "png") {
            fs::remove_file(&path).with_context(|| format!("removing stale {}", path.display()))?;
        }
    }
    let rejected_dir = out.join("rejected");
    if rejected_dir.exists() {
        fs::remove_dir_all(&rejected_dir)
            .with_context(|| format!("removing stale {}", rejected_dir.display()))?;
    }
    Ok(())
}

/// Writes a clip art the filter rejected under `rejected/<reason>/`, when asked to.
fn write_rejected(options: &BuildOptions, left: &Left, file_name: &str) -> Result<()> {
    let (RejectedImages::WriteForReview, Some(image)) = (options.rejected, &left.rejected_image)
    else {
        return Ok(());
    };
    let reason_dir = match left.reason {
        SkipReason::NearEmpty => "near-empty",
        _ => "line-art-or-monochrome",
    };
    let dir = options.out.join("rejected").join(reason_dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write_png(&dir.join(file_name), image).map(|_| ())
}

/// Encodes `image` as an RGB PNG, writes it, returns the file's SHA-256 in hex.
fn write_png(path: &Path, image: &RgbImage) -> Result<String> {
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .with_context(|| format!("encoding {}", path.display()))?;
    write_file(path, &bytes)?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
