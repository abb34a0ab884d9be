//! The emoji and colour-icon sets of the npm package `@iconify/json`: reading a set, checking
//! its licence, and turning each icon into a standalone SVG document.
//!
//! IconifyJSON stores only each icon's inner SVG `body`; the view box comes from the icon's own
//! `left`/`top`/`width`/`height` or, where absent, the set's (default 0, 0, 16, 16). Aliases
//! only point at other icons (often with a flip), and `hidden` icons are names kept for old
//! releases, nearly all duplicates of current icons, so both are left out.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::source::{Author, Job, JobInput, Licence, SkipReason, Source, SourcePlan};

/// Folder `fetch.sh` unpacks the package into, inside the downloads folder.
pub const PACKAGE_DIR: &str = "iconify-json";

/// An Iconify set the corpus uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IconSetSpec {
    /// The set's prefix (its file is `json/<prefix>.json`).
    pub prefix: &'static str,
    /// The only licence (SPDX id) it may declare; anything else, share-alike licences in
    /// particular, is refused.
    pub licence: &'static str,
    /// Whether each icon must pass the clip-art content filter (colour-icon sets mix filled
    /// illustrations with outline and two-tone glyphs; emoji sets are all filled colour art).
    pub judged: bool,
}

const fn emoji(prefix: &'static str, licence: &'static str) -> IconSetSpec {
    IconSetSpec {
        prefix,
        licence,
        judged: false,
    }
}

const fn colour_icons(prefix: &'static str, licence: &'static str) -> IconSetSpec {
    IconSetSpec {
        prefix,
        licence,
        judged: true,
    }
}

/// The sets used. Logo sets are left out (trademarks), and so are share-alike ones (OpenMoji,
/// EmojiOne v1), Streamline's freehand colour set (black line drawings with a touch of colour)
/// and Meteocons (small weather glyphs, many near-duplicates). The blue two-tone Streamline
/// families (`streamline-color`, `-flex-`, `-plump-`, `-sharp-color`) are in for the variety of
/// their subjects, at the price of one palette for 18 % of the corpus.
pub const ICON_SETS: [IconSetSpec; 17] = [
    emoji("fluent-emoji", "MIT"),
    emoji("fluent-emoji-flat", "MIT"),
    emoji("noto", "Apache-2.0"),
    emoji("noto-v1", "Apache-2.0"),
    emoji("twemoji", "CC-BY-4.0"),
    emoji("emojione", "CC-BY-4.0"),
    emoji("streamline-emojis", "CC-BY-4.0"),
    emoji("fxemoji", "Apache-2.0"),
    colour_icons("streamline-color", "CC-BY-4.0"),
    colour_icons("streamline-flex-color", "CC-BY-4.0"),
    colour_icons("streamline-plump-color", "CC-BY-4.0"),
    colour_icons("streamline-sharp-color", "CC-BY-4.0"),
    colour_icons("streamline-ultimate-color", "CC-BY-4.0"),
    colour_icons("streamline-kameleon-color", "CC-BY-4.0"),
    colour_icons("fluent-color", "MIT"),
    colour_icons("flat-color-icons", "MIT"),
    colour_icons("circle-flags", "MIT"),
];

/// Iconify's default view-box side when neither icon nor set gives one.
const DEFAULT_SIDE: f64 = 16.0;

/// One IconifyJSON file (only the fields used).
#[derive(Debug, Deserialize)]
pub struct IconSet {
    pub prefix: String,
    pub info: SetInfo,
    pub icons: BTreeMap<String, Icon>,
    #[serde(default)]
    pub aliases: BTreeMap<String, IgnoredAny>,
    #[serde(flatten)]
    pub view_box: ViewBoxFields,
}

#[derive(Debug, Deserialize)]
pub struct SetInfo {
    pub name: String,
    pub author: Option<SetAuthor>,
    pub license: SetLicence,
}

#[derive(Debug, Deserialize)]
pub struct SetAuthor {
    pub name: String,
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SetLicence {
    pub title: String,
    pub spdx: Option<String>,
    pub url: Option<String>,
}

/// Optional view-box fields, present on a set (defaults) and on icons (overrides).
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct ViewBoxFields {
    pub left: Option<f64>,
    pub top: Option<f64>,
    pub width: Option<f64>,
    pub height: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct Icon {
    pub body: String,
    #[serde(flatten)]
    pub view_box: ViewBoxFields,
    #[serde(default)]
    pub hidden: bool,
}

/// A resolved view box in SVG user units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewBox {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

/// The icon's view box: icon fields first, then the set's, then Iconify's defaults.
pub fn resolve_view_box(set: &ViewBoxFields, icon: &ViewBoxFields) -> ViewBox {
    ViewBox {
        left: icon.left.or(set.left).unwrap_or(0.0),
        top: icon.top.or(set.top).unwrap_or(0.0),
        width: icon.width.or(set.width).unwrap_or(DEFAULT_SIDE),
        height: icon.height.or(set.height).unwrap_or(DEFAULT_SIDE),
    }
}

/// A standalone SVG document showing `body` in `view_box`.
pub fn wrap_in_svg(body: &str, view_box: ViewBox) -> String {
    let ViewBox {
        left,
        top,
        width,
        height,
    } = view_box;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
         width=\"{width}\" height=\"{height}\" viewBox=\"{left} {top} {width} {height}\">{body}</svg>"
    )
}

/// The spec of set `prefix`, or `None` when the set is not on the list.
pub fn set_spec(prefix: &str) -> Option<IconSetSpec> {
    ICON_SETS.iter().copied().find(|spec| spec.prefix == prefix)
}

/// The licence `prefix` must declare, or `None` when the set is not on the list.
pub fn expected_licence(prefix: &str) -> Option<&'static str> {
    set_spec(prefix).map(|spec| spec.licence)
}

/// Refuses a set that is not on the list, declares another licence than expected, or declares
/// a share-alike licence.
pub fn check_licence(prefix: &str, declared: &SetLicence) -> Result<()> {
    let declared_spdx = declared.spdx.as_deref().unwrap_or("");
    let Some(expected) = expected_licence(prefix) else {
        bail!("set {prefix} is not on the list of approved icon sets");
    };
    if declared_spdx.contains("-SA") || declared_spdx != expected {
        bail!(
            "set {prefix} declares licence {declared_spdx:?} ({}), expected {expected}",
            declared.title
        );
    }
    Ok(())
}

/// Reads the package version from the unpacked `package.json`.
pub fn package_version(package_dir: &Path) -> Result<String> {
    #[derive(Deserialize)]
    struct PackageJson {
        version: String,
    }
    let path = package_dir.join("package.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {}; run tools/corpus/fetch.sh first",
            path.display()
        )
    })?;
    let package: PackageJson =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(package.version)
}

/// Reads one set and lists its icons as jobs (aliases and hidden icons counted as skipped).
/// A set with a refused licence gives a plan with no jobs, every icon counted as refused.
pub fn plan_set(downloads: &Path, prefix: &str) -> Result<SourcePlan> {
    let package_dir = downloads.join(PACKAGE_DIR);
    let version = package_version(&package_dir)?;
    let path = package_dir.join("json").join(format!("{prefix}.json"));
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {}; run tools/corpus/fetch.sh first",
            path.display()
        )
    })?;
    let set: IconSet =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    drop(text);
    let source = Source {
        id: set.prefix.clone(),
        title: set.info.name.clone(),
        licence: Licence {
            title: set.info.license.title.clone(),
            spdx: set.info.license.spdx.clone().unwrap_or_default(),
            url: set.info.license.url.clone(),
        },
        author: set.info.author.as_ref().map(|author| Author {
            name: author.name.clone(),
            url: author.url.clone(),
        }),
        package: format!("npm @iconify/json@{version}, json/{prefix}.json"),
        homepage: set
            .info
            .author
            .as_ref()
            .and_then(|author| author.url.clone()),
    };
    let mut plan = SourcePlan::new(source);
    plan.tally.seen = set.icons.len() + set.aliases.len();
    if let Err(refusal) = check_licence(&set.prefix, &set.info.license) {
        eprintln!("REFUSED {:#}", refusal);
        for _ in 0..plan.tally.seen {
            plan.tally.skip(SkipReason::LicenceRefused);
        }
        return Ok(plan);
    }
    for _ in 0..set.aliases.len() {
        plan.tally.skip(SkipReason::Alias);
    }
    let judged = set_spec(&set.prefix).is_some_and(|spec| spec.judged);
    for (name, icon) in set.icons {
        if icon.hidden {
            plan.tally.skip(SkipReason::Hidden);
            continue;
        }
        let view_box = resolve_view_box(&set.view_box, &icon.view_box);
        plan.jobs.push(Job {
            original: format!("{}:{name}", set.prefix),
            input: JobInput::Svg {
                svg: wrap_in_svg(&icon.body, view_box),
                judged,
            },
            name,
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET_JSON: &str = r##"{
        "prefix": "test-emoji",
        "info": {
            "name": "Test Emoji",
            "author": { "name": "Someone", "url": "https://example.invalid" },
            "license": { "title": "MIT", "spdx": "MIT" }
        },
        "width": 32, "height": 32,
        "icons": {
            "square": { "body": "<path fill=\"#f00\" d=\"M0 0h32v32H0z\"/>" },
            "wide": { "body": "<g/>", "width": 48, "left": -8 },
            "old": { "body": "<g/>", "hidden": true }
        },
        "aliases": { "square-2": { "parent": "square" } }
    }"##;

    #[test]
    fn icons_take_their_view_box_from_the_set_unless_they_override_it() {
        let set: IconSet = serde_json::from_str(SET_JSON).expect("valid set");
        assert_eq!(set.aliases.len(), 1);
        let square = resolve_view_box(&set.view_box, &set.icons["square"].view_box);
        assert_eq!(
            square,
            ViewBox {
                left: 0.0,
                top: 0.0,
                width: 32.0,
                height: 32.0
            }
        );
        let wide = resolve_view_box(&set.view_box, &set.icons["wide"].view_box);
        assert_eq!(
            wide,
            ViewBox {
                left: -8.0,
                top: 0.0,
                width: 48.0,
                height: 32.0
            }
        );
        assert!(set.icons["old"].hidden);
        let bare = resolve_view_box(&ViewBoxFields::default(), &ViewBoxFields::default());
        assert_eq!((bare.width, bare.height), (16.0, 16.0));
    }

    #[test]
    fn wrapping_gives_a_standalone_svg_with_the_view_box() {
        let svg = wrap_in_svg(
            "<path d=\"M0 0h1v1H0z\"/>",
            ViewBox {
                left: -8.0,
                top: 0.5,
                width: 48.0,
                height: 32.0,
            },
        );
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("width=\"48\" height=\"32\" viewBox=\"-8 0.5 48 32\""));
        assert!(svg.ends_with("><path d=\"M0 0h1v1H0z\"/></svg>"));
    }

    #[test]
    fn only_the_listed_licence_of_each_set_is_accepted() {
        let licence = |spdx: &str| SetLicence {
            title: spdx.to_owned(),
            spdx: Some(spdx.to_owned()),
            url: None,
        };
        assert!(check_licence("twemoji", &licence("CC-BY-4.0")).is_ok());
        assert!(check_licence("noto", &licence("Apache-2.0")).is_ok());
        assert!(check_licence("twemoji", &licence("CC-BY-SA-4.0")).is_err());
        assert!(check_licence("noto", &licence("MIT")).is_err());
        assert!(check_licence("openmoji", &licence("CC-BY-SA-4.0")).is_err());
        assert!(check_licence("emojione-v1", &licence("CC-BY-SA-4.0")).is_err());
        assert!(check_licence("streamline-color", &licence("CC-BY-4.0")).is_ok());
        assert!(
            check_licence("selfhst", &licence("CC-BY-4.0")).is_err(),
            "logos"
        );
        let undeclared = SetLicence {
            title: "?".to_owned(),
            spdx: None,
            url: None,
        };
        assert!(check_licence("fxemoji", &undeclared).is_err());
    }
}
