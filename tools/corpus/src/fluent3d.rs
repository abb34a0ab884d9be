//! The npm package `@lobehub/fluent-emoji-3d`: Microsoft's Fluent Emoji in their 3D style,
//! 256×256 WebP files named by code points (`1f44b-1f3fd.webp`), MIT licensed.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::source::{Author, Job, JobInput, Licence, SkipReason, Source, SourcePlan};

/// Folder `fetch.sh` unpacks the package into, inside the downloads folder.
pub const PACKAGE_DIR: &str = "fluent-emoji-3d";

/// Manifest and file-name id of this source.
const SOURCE_ID: &str = "fluent-emoji-3d";

#[derive(Deserialize)]
struct PackageJson {
    name: String,
    version: String,
    license: String,
    homepage: Option<String>,
}

/// Lists every WebP under `assets/` in name order.
pub fn plan(downloads: &Path) -> Result<SourcePlan> {
    let package_dir = downloads.join(PACKAGE_DIR);
    let package_path = package_dir.join("package.json");
    let text = std::fs::read_to_string(&package_path).with_context(|| {
        format!(
            "reading {}; run tools/corpus/fetch.sh first",
            package_path.display()
        )
    })?;
    let package: PackageJson = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", package_path.display()))?;
    if package.license != "MIT" {
        bail!(
            "{} declares licence {:?}, expected MIT; refusing it",
            package.name,
            package.license
        );
    }
    let source = Source {
        id: SOURCE_ID.to_owned(),
        title: "Fluent Emoji 3D".to_owned(),
        licence: Licence {
            title: "MIT".to_owned(),
            spdx: "MIT".to_owned(),
            url: Some("https://github.com/microsoft/fluentui-emoji/blob/main/LICENSE".to_owned()),
        },
        author: Some(Author {
            name: "Microsoft Corporation (Fluent Emoji); WebP packaging by LobeHub".to_owned(),
            url: Some("https://github.com/microsoft/fluentui-emoji".to_owned()),
        }),
        package: format!("npm {}@{}, assets/*.webp", package.name, package.version),
        homepage: package.homepage,
    };
    let mut plan = SourcePlan::new(source);
    let assets_dir = package_dir.join("assets");
    let mut files: Vec<_> = std::fs::read_dir(&assets_dir)
        .with_context(|| format!("listing {}", assets_dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "webp"))
        .collect();
    files.sort();
    plan.tally.seen = files.len();
    for path in files {
        let Some(name) = path.file_stem().and_then(|stem| stem.to_str()) else {
            plan.tally.skip(SkipReason::Unreadable);
            continue;
        };
        plan.jobs.push(Job {
            name: name.to_owned(),
            original: format!("assets/{name}.webp"),
            input: JobInput::EmojiRaster(path.clone()),
        });
    }
    Ok(plan)
}
