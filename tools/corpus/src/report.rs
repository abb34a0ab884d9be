//! What the build leaves next to the images: `manifest.jsonl` (one line per image, for the
//! training data loader and for audits), `ATTRIBUTIONS.md` (what the CC-BY and Apache licences
//! ask us to credit) and the per-source summary printed at the end.

use std::fmt::Write as _;

use serde::Serialize;

use crate::content_filter::ContentStats;
use crate::source::{Source, Tally};

/// One line of `manifest.jsonl`.
#[derive(Debug, Serialize)]
pub struct ManifestEntry<'a> {
    /// Path relative to the output folder, e.g. `images/noto-waving-hand.png`.
    pub file: String,
    pub source: &'a str,
    /// SPDX id of the image's licence.
    pub licence: &'a str,
    /// Name or path inside the source package.
    pub original: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author_url: Option<&'a str>,
    /// SHA-256 of the PNG file.
    pub sha256: String,
    #[serde(flatten)]
    pub stats: ContentStats,
}

impl<'a> ManifestEntry<'a> {
    pub fn new(
        file_name: &str,
        source: &'a Source,
        original: &'a str,
        sha256: String,
        stats: ContentStats,
    ) -> Self {
        Self {
            file: format!("images/{file_name}"),
            source: &source.id,
            licence: &source.licence.spdx,
            original,
            author: source.author.as_ref().map(|author| author.name.as_str()),
            author_url: source
                .author
                .as_ref()
                .and_then(|author| author.url.as_deref()),
            sha256,
            stats,
        }
    }
}

/// `ATTRIBUTIONS.md`: one section per source with its licence, author, package and count.
pub fn attributions_markdown(sources: &[(&Source, &Tally)]) -> String {
    let total: usize = sources.iter().map(|(_, tally)| tally.kept).sum();
    let mut md = String::new();
    let _ = writeln!(md, "# Attributions\n");
    let _ = writeln!(
        md,
        "This corpus of {total} images was built by `lumos-corpus` (tools/corpus in Lumos Studio) \
         from the packages below. Each image's source is listed in `manifest.jsonl`.\n"
    );
    for (source, tally) in sources {
        let _ = writeln!(md, "## {} (`{}`)\n", source.title, source.id);
        let _ = writeln!(md, "- Images used: {}", tally.kept);
        let licence = &source.licence;
        match &licence.url {
            Some(url) => {
                let _ = writeln!(
                    md,
                    "- Licence: {} ({}), <{url}>",
                    licence.title, licence.spdx
                );
            }
            None => {
                let _ = writeln!(md, "- Licence: {} ({})", licence.title, licence.spdx);
            }
        }
        if let Some(author) = &source.author {
            match &author.url {
                Some(url) => {
                    let _ = writeln!(md, "- Author: {}, <{url}>", author.name);
                }
                None => {
                    let _ = writeln!(md, "- Author: {}", author.name);
                }
            }
        }
        if let Some(homepage) = source.homepage.as_ref().filter(|homepage| {
            Some(*homepage) != source.author.as_ref().and_then(|a| a.url.as_ref())
        }) {
            let _ = writeln!(md, "- Homepage: <{homepage}>");
        }
        let _ = writeln!(md, "- Package: {}", source.package);
        let _ = writeln!(
            md,
            "- Changes: rasterised or decoded, composited on white, padded to a square and \
             resized; see tools/corpus/README.md\n"
        );
    }
    md
}

/// The end-of-run table: seen, kept and skipped by reason, per source and in total.
pub fn summary_text(sources: &[(&Source, &Tally)]) -> String {
    let mut text = String::new();
    let mut total = Tally::default();
    let _ = writeln!(
        text,
        "{:<20} {:>7} {:>7} {:>7}  skipped by reason",
        "source", "seen", "kept", "skipped"
    );
    for (source, tally) in sources {
        let _ = writeln!(
            text,
            "{:<20} {:>7} {:>7} {:>7}  {}",
            source.id,
            tally.seen,
            tally.kept,
            tally.skipped_total(),
            reasons_text(tally)
        );
        total.seen += tally.seen;
        total.kept += tally.kept;
        for (reason, count) in &tally.skipped {
            *total.skipped.entry(*reason).or_default() += count;
        }
    }
    let _ = writeln!(
        text,
        "{:<20} {:>7} {:>7} {:>7}  {}",
        "total",
        total.seen,
        total.kept,
        total.skipped_total(),
        reasons_text(&total)
    );
    text
}

fn reasons_text(tally: &Tally) -> String {
    tally
        .skipped
        .iter()
        .map(|(reason, count)| format!("{reason}: {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}
