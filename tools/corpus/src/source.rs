//! What every source planner hands the builder: who made the images and under which licence,
//! the list of images to process, and the count of those it already left out and why.
//!
//! Planning (listing, licence checks, skin-tone thinning, `--limit`) is sequential and cheap;
//! the expensive part (decode, rasterise, filter, encode) runs afterwards over all jobs at once
//! with rayon, so the split keeps every planner simple and the output order deterministic.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::PathBuf;

use crate::skin_tone::{is_skin_tone_variant, keep_tone_variant};

/// A licence as the source declares it.
#[derive(Debug, Clone)]
pub struct Licence {
    pub title: String,
    /// SPDX identifier (or `LicenseRef-…` for public-domain dedications).
    pub spdx: String,
    pub url: Option<String>,
}

/// The author or attribution line a source asks for.
#[derive(Debug, Clone)]
pub struct Author {
    pub name: String,
    pub url: Option<String>,
}

/// One source set of images (an Iconify set, the 3D emoji, the clip art).
#[derive(Debug, Clone)]
pub struct Source {
    /// Short id: prefix of output file names and the manifest's `source`.
    pub id: String,
    pub title: String,
    pub licence: Licence,
    pub author: Option<Author>,
    /// Where it came from, e.g. "npm @iconify/json@2.2.535, json/noto.json".
    pub package: String,
    pub homepage: Option<String>,
}

/// What to decode for one image.
#[derive(Debug, Clone)]
pub enum JobInput {
    /// A complete SVG document (an Iconify icon wrapped in `<svg>`), judged by the content
    /// filter when `judged` (colour-icon sets).
    Svg { svg: String, judged: bool },
    /// A raster emoji (WebP/PNG): framed as it is.
    EmojiRaster(PathBuf),
    /// A raster clip art: cropped to its content and filtered.
    ClipartRaster(PathBuf),
}

/// One image to process.
#[derive(Debug, Clone)]
pub struct Job {
    /// Name inside the source (icon id, code points, relative path without extension).
    pub name: String,
    /// Original name or path, as written to the manifest.
    pub original: String,
    pub input: JobInput,
}

/// Why an image was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    LicenceRefused,
    Alias,
    Hidden,
    Symlink,
    ExcludedCategory,
    PlaceholderRender,
    SkinToneVariant,
    OverLimit,
    TooLarge,
    Unreadable,
    RenderFailed,
    NearEmpty,
    LineArtOrMonochrome,
    Duplicate,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LicenceRefused => "licence refused",
            Self::Alias => "alias",
            Self::Hidden => "hidden (deprecated duplicate)",
            Self::Symlink => "symlink (duplicate path)",
            Self::ExcludedCategory => "excluded category",
            Self::PlaceholderRender => "placeholder render",
            Self::SkinToneVariant => "skin-tone variant",
            Self::OverLimit => "over --limit",
            Self::TooLarge => "too large",
            Self::Unreadable => "unreadable",
            Self::RenderFailed => "render failed",
            Self::NearEmpty => "near-empty",
            Self::LineArtOrMonochrome => "line art / monochrome",
            Self::Duplicate => "duplicate image",
        })
    }
}

/// Counts for one source.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub seen: usize,
    pub kept: usize,
    pub skipped: BTreeMap<SkipReason, usize>,
}

impl Tally {
    pub fn skip(&mut self, reason: SkipReason) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }
}

/// How the planners thin their lists.
#[derive(Debug, Clone, Copy)]
pub struct Selection {
    /// Share of skin-tone variants kept, in percent.
    pub tone_keep_percent: u8,
    /// At most this many jobs per source (for quick trial runs).
    pub limit_per_source: Option<usize>,
}

/// A source with its jobs, after planning.
#[derive(Debug)]
pub struct SourcePlan {
    pub source: Source,
    pub jobs: Vec<Job>,
    pub tally: Tally,
}

impl SourcePlan {
    /// Starts a plan; planners count every image they look at in `tally.seen`.
    pub fn new(source: Source) -> Self {
        Self {
            source,
            jobs: Vec::new(),
            tally: Tally::default(),
        }
    }

    /// Drops all but a deterministic share of the skin-tone variants, then applies the limit.
    pub fn select(mut self, selection: Selection) -> Self {
        let candidates = std::mem::take(&mut self.jobs);
        let names: HashSet<&str> = candidates.iter().map(|job| job.name.as_str()).collect();
        let keep: Vec<bool> = candidates
            .iter()
            .map(|job| {
                !is_skin_tone_variant(&job.name, &names)
                    || keep_tone_variant(&self.source.id, &job.name, selection.tone_keep_percent)
            })
            .collect();
        let limit = selection.limit_per_source.unwrap_or(usize::MAX);
        for (job, keep) in candidates.into_iter().zip(keep) {
            if !keep {
                self.tally.skip(SkipReason::SkinToneVariant);
            } else if self.jobs.len() >= limit {
                self.tally.skip(SkipReason::OverLimit);
            } else {
                self.jobs.push(job);
            }
        }
        self
    }
}
