//! Debian's `openclipart-png`: public-domain clip art from openclipart.org (release 0.18),
//! as PNGs under `usr/share/openclipart/png/<category>/…`.
//!
//! The package links some files into a second category; links are skipped so each drawing is
//! used once. The `logos` category is left out: public-domain dedications do not clear
//! trademarks. Two files that hold a "Linked Image Not Found" placeholder are left out too.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::source::{Author, Job, JobInput, Licence, SkipReason, Source, SourcePlan};

/// Folder `fetch.sh` unpacks the package into, inside the downloads folder.
pub const PACKAGE_DIR: &str = "openclipart-png";

/// Where the PNG tree sits inside the unpacked package.
const PNG_ROOT: &str = "usr/share/openclipart/png";

/// Top-level categories left out.
const EXCLUDED_CATEGORIES: [&str; 1] = ["logos"];

/// Files whose PNG shows the renderer's "Linked Image Not Found" placeholder instead of the
/// drawing (found by looking at the output of 1:0.18+dfsg-19).
const PLACEHOLDER_RENDERS: [&str; 2] = [
    "animals/birds/duck_yellow_ii_kurt_cagl_.png",
    "animals/birds/penguin/tux_didier_fabert_01.png",
];

/// Manifest and file-name id of this source.
const SOURCE_ID: &str = "openclipart";

/// A file found under the PNG root.
enum Found {
    Png(PathBuf),
    Symlink,
    Excluded,
    Placeholder,
}

/// Lists every PNG under the tree in path order.
pub fn plan(downloads: &Path) -> Result<SourcePlan> {
    let package_dir = downloads.join(PACKAGE_DIR);
    let version_path = package_dir.join("VERSION");
    let version = std::fs::read_to_string(&version_path)
        .with_context(|| {
            format!(
                "reading {}; run tools/corpus/fetch.sh first",
                version_path.display()
            )
        })?
        .trim()
        .to_owned();
    let source = Source {
        id: SOURCE_ID.to_owned(),
        title: "Open Clip Art Library 0.18".to_owned(),
        licence: Licence {
            title: "Public domain (Creative Commons Copyright-Only Dedication)".to_owned(),
            spdx: "LicenseRef-PublicDomain".to_owned(),
            url: Some("https://creativecommons.org/licenses/publicdomain/".to_owned()),
        },
        author: Some(Author {
            name: "openclipart.org contributors".to_owned(),
            url: Some("https://openclipart.org".to_owned()),
        }),
        package: format!("Debian openclipart-png {version}, {PNG_ROOT}"),
        homepage: Some("https://openclipart.org".to_owned()),
    };
    let mut plan = SourcePlan::new(source);
    let root = package_dir.join(PNG_ROOT);
    let mut found = Vec::new();
    walk_sorted(&root, &root, &mut found).with_context(|| format!("listing {}", root.display()))?;
    plan.tally.seen = found.len();
    for item in found {
        match item {
            Found::Symlink => plan.tally.skip(SkipReason::Symlink),
            Found::Excluded => plan.tally.skip(SkipReason::ExcludedCategory),
            Found::Placeholder => plan.tally.skip(SkipReason::PlaceholderRender),
            Found::Png(path) => {
                let relative = path.strip_prefix(&root).unwrap_or(&path);
                let original = relative.to_string_lossy().into_owned();
                let name = original
                    .strip_suffix(".png")
                    .unwrap_or(&original)
                    .to_owned();
                plan.jobs.push(Job {
                    name,
                    original,
                    input: JobInput::ClipartRaster(path),
                });
            }
        }
    }
    Ok(plan)
}

/// Depth-first walk in name order, collecting `.png` entries.
fn walk_sorted(root: &Path, dir: &Path, found: &mut Vec<Found>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let file_type = entry.file_type()?;
        let is_png = path.extension().is_some_and(|ext| ext == "png");
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let excluded = relative.components().next().is_some_and(|category| {
            EXCLUDED_CATEGORIES.contains(&category.as_os_str().to_string_lossy().as_ref())
        });
        let placeholder = PLACEHOLDER_RENDERS.contains(&relative.to_string_lossy().as_ref());
        if file_type.is_dir() {
            walk_sorted(root, &path, found)?;
        } else if !is_png {
            continue;
        } else if file_type.is_symlink() {
            found.push(Found::Symlink);
        } else if excluded {
            found.push(Found::Excluded);
        } else if placeholder {
            found.push(Found::Placeholder);
        } else {
            found.push(Found::Png(path));
        }
    }
    Ok(())
}
