//! Project files (`.lumos`): everything an artist set up on the canvas, in one file they can
//! save, reopen, send to someone else or run from the command line (`lumos generate
//! --project FILE`).
//!
//! A project is a zip archive: `project.json` (the versioned manifest: reference names,
//! weights and crops, the start image's name, the prompt, the generation recipe, the app's
//! settings and the history folders of its results) beside lossless PNGs of every reference,
//! its alpha, the start image and its mask. The pixels travel inside the file rather than as
//! links to the originals, because references are often pasted, dropped from a browser or
//! edited afterwards: a project must reopen exactly as it was saved. Zip because any tool can
//! open it and because the `.pth` reader already depends on it.
//!
//! Saving replaces the file atomically ([`crate::imageio::replace_file`]): after a crash or a
//! full disk the old project is still there, whole. Reading checks the format name and version
//! and decodes every image with the same limits as any other image file.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::protocol::{InitImage, MixSettings, Mode, ReferenceImage, SamplerSettings};

/// File extension of project files.
pub const PROJECT_EXTENSION: &str = "lumos";
/// Value of the manifest's `format` field.
pub const PROJECT_FORMAT: &str = "lumos-studio-project";
/// Version written by this build; files of a newer version are refused with a clear message.
pub const PROJECT_VERSION: u32 = 1;
/// Name of the manifest inside the archive.
const MANIFEST_NAME: &str = "project.json";
/// Largest manifest read (it holds names and numbers, no pixels).
const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// Largest image inside a project (as [`crate::imageio::MAX_FILE_BYTES`]).
const MAX_ENTRY_BYTES: u64 = crate::imageio::MAX_FILE_BYTES;
/// Most references a project may hold (far beyond what a canvas shows).
const MAX_REFERENCES: usize = 1024;

/// A reference image of the canvas.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectReference {
    /// Display name.
    pub name: String,
    /// The file it was first loaded from, if any (for information; the pixels are in the
    /// project).
    pub source: Option<PathBuf>,
    /// The pixels.
    pub image: Arc<RgbImage>,
    /// Opacity at the image's size, when the original had transparent pixels.
    pub alpha: Option<Arc<GrayImage>>,
    /// Mixing weight.
    pub weight: f32,
    /// Where the encoder's square crop sits (fractions of the free range; 0.5 = centred).
    pub crop: [f32; 2],
}

/// The starting image (img2img) and the mask painted on it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectStartImage {
    /// Display name.
    pub name: String,
    /// The pixels.
    pub image: Arc<RgbImage>,
    /// Repaint mask as painted (255 = repaint), at the image's size; not feathered.
    pub mask: Option<Arc<GrayImage>>,
    /// Opacity of the original, for "mask from alpha".
    pub alpha: Option<Arc<GrayImage>>,
}

/// What Generate makes from the canvas: the part of the settings the command line needs to
/// repeat a run. `mode` is `None` when the settings did not describe a runnable mode (e.g. a
/// sweep whose rows were still being typed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectRecipe {
    /// What to make.
    pub mode: Option<Mode>,
    /// Steps, guidance, solver and seed.
    pub sampler: SamplerSettings,
    /// How references are mixed.
    pub mix: MixSettings,
    /// img2img strength (used when there is a start image).
    pub strength: f32,
    /// Feathering of the mask edge, in pixels.
    pub feather_px: u32,
    /// Name of the model it was set up with.
    pub model: Option<String>,
}

/// One project.
#[derive(Clone, Debug, PartialEq)]
pub struct Project {
    /// The canvas's references, in order.
    pub references: Vec<ProjectReference>,
    /// The starting image, if any.
    pub start_image: Option<ProjectStartImage>,
    /// The prompt, when the canvas has one.
    pub prompt: Option<String>,
    /// What Generate makes.
    pub recipe: ProjectRecipe,
    /// The app's own settings (panels, export folder, …) as the app serialises them; the
    /// engine keeps them opaque.
    pub app_settings: Option<serde_json::Value>,
    /// History folders of the project's results.
    pub history: Vec<PathBuf>,
}

impl Project {
    /// The references as the engine receives them (a centred crop is the default crop).
    pub fn engine_references(&self) -> Vec<ReferenceImage> {
        self.references
            .iter()
            .map(|r| {
                let centred = r.crop.iter().all(|c| (c - 0.5).abs() < 1e-4);
                ReferenceImage {
                    name: r.name.clone(),
                    image: r.image.clone(),
                    weight: r.weight,
                    crop: (!centred).then_some(r.crop),
                }
            })
            .collect()
    }

    /// The start image as the engine receives it: the mask feathered by the recipe, and no
    /// mask when nothing is painted (img2img of the whole image).
    pub fn engine_init(&self) -> Option<InitImage> {
        let start = self.start_image.as_ref()?;
        let mask = start
            .mask
            .as_deref()
            .filter(|mask| mask.pixels().any(|p| p.0[0] > 0))
            .map(|mask| Arc::new(crate::mask::feather(mask, self.recipe.feather_px)));
        Some(InitImage {
            image: start.image.clone(),
            strength: self.recipe.strength,
            mask,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    #[serde(default)]
    references: Vec<ReferenceEntry>,
    #[serde(default)]
    start_image: Option<StartEntry>,
    #[serde(default)]
    prompt: Option<String>,
    recipe: ProjectRecipe,
    #[serde(default)]
    app_settings: Option<serde_json::Value>,
    #[serde(default)]
    history: Vec<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct ReferenceEntry {
    name: String,
    #[serde(default)]
    source: Option<PathBuf>,
    image: String,
    #[serde(default)]
    alpha: Option<String>,
    weight: f32,
    crop: [f32; 2],
}

#[derive(Serialize, Deserialize)]
struct StartEntry {
    name: String,
    image: String,
    #[serde(default)]
    mask: Option<String>,
    #[serde(default)]
    alpha: Option<String>,
}

fn project_error(path: &Path, reason: impl std::fmt::Display) -> EngineError {
    EngineError::Project {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The project as the bytes of a `.lumos` file.
pub fn encode(project: &Project) -> Result<Vec<u8>> {
    let encode_error = |e: &dyn std::fmt::Display| EngineError::Write {
        path: PathBuf::from("project"),
        reason: e.to_string(),
    };
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    // PNGs are already compressed; the manifest is small text.
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut add = |name: &str, bytes: &[u8]| -> Result<()> {
        zip.start_file(name, stored).map_err(|e| encode_error(&e))?;
        zip.write_all(bytes).map_err(|e| encode_error(&e))
    };
    let mut references = Vec::with_capacity(project.references.len());
    for (i, reference) in project.references.iter().enumerate() {
        let image = format!("references/{i:03}.png");
        add(&image, &crate::imageio::encode_png(&reference.image, None)?)?;
        let alpha = match &reference.alpha {
            Some(alpha) => {
                let name = format!("references/{i:03}-alpha.png");
                add(&name, &encode_gray_png(alpha)?)?;
                Some(name)
            }
            None => None,
        };
        references.push(ReferenceEntry {
            name: reference.name.clone(),
            source: reference.source.clone(),
            image,
            alpha,
            weight: reference.weight,
            crop: reference.crop,
        });
    }
    let start_image = match &project.start_image {
        Some(start) => {
            let image = "start/image.png".to_owned();
            add(&image, &crate::imageio::encode_png(&start.image, None)?)?;
            let mut gray = |name: &str, img: &Option<Arc<GrayImage>>| -> Result<Option<String>> {
                match img {
                    Some(img) => {
                        add(name, &encode_gray_png(img)?)?;
                        Ok(Some(name.to_owned()))
                    }
                    None => Ok(None),
                }
            };
            let mask = gray("start/mask.png", &start.mask)?;
            let alpha = gray("start/alpha.png", &start.alpha)?;
            Some(StartEntry {
                name: start.name.clone(),
                image,
                mask,
                alpha,
            })
        }
        None => None,
    };
    let manifest = Manifest {
        format: PROJECT_FORMAT.into(),
        version: PROJECT_VERSION,
        references,
        start_image,
        prompt: project.prompt.clone(),
        recipe: project.recipe.clone(),
        app_settings: project.app_settings.clone(),
        history: project.history.clone(),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| encode_error(&e))?;
    zip.start_file(MANIFEST_NAME, deflated)
        .map_err(|e| encode_error(&e))?;
    zip.write_all(&json).map_err(|e| encode_error(&e))?;
    let cursor = zip.finish().map_err(|e| encode_error(&e))?;
    Ok(cursor.into_inner())
}

/// Saves the project to `path`, replacing it atomically (the old file survives any failure).
pub fn save(path: &Path, project: &Project) -> Result<()> {
    let bytes = encode(project).map_err(|e| match e {
        EngineError::Write { reason, .. } => EngineError::Write {
            path: path.to_path_buf(),
            reason,
        },
        other => other,
    })?;
    crate::imageio::replace_file(path, &bytes)
}

/// Reads a project file.
pub fn load(path: &Path) -> Result<Project> {
    let file = std::fs::File::open(path).map_err(|e| project_error(path, e))?;
    let len = file.metadata().map_err(|e| project_error(path, e))?.len();
    if len == 0 {
        return Err(project_error(path, "the file is empty"));
    }
    decode_from(std::io::BufReader::new(file), path)
}

/// Reads a project from the bytes of a `.lumos` file; `name` is used in errors.
pub fn decode(bytes: &[u8], name: &str) -> Result<Project> {
    decode_from(std::io::Cursor::new(bytes), Path::new(name))
}

fn decode_from<R: std::io::Read + std::io::Seek>(reader: R, path: &Path) -> Result<Project> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| {
        project_error(
            path,
            format!("not a Lumos Studio project (not a zip archive: {e})"),
        )
    })?;
    let manifest_bytes = read_entry(&mut zip, MANIFEST_NAME, MAX_MANIFEST_BYTES, path)?;
    let manifest: Manifest = match serde_json::from_slice::<serde_json::Value>(&manifest_bytes) {
        Ok(value) => {
            let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
            if format != PROJECT_FORMAT {
                return Err(project_error(
                    path,
                    format!("not a Lumos Studio project (format {format:?})"),
                ));
            }
            let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
            if version > u64::from(PROJECT_VERSION) {
                return Err(project_error(
                    path,
                    format!(
                        "it was saved by a newer Lumos Studio (project format {version}; this \
                         version reads up to {PROJECT_VERSION}): update Lumos Studio to open it"
                    ),
                ));
            }
            serde_json::from_value(value)
                .map_err(|e| project_error(path, format!("damaged project.json ({e})")))?
        }
        Err(e) => {
            return Err(project_error(path, format!("damaged project.json ({e})")));
        }
    };
    if manifest.references.len() > MAX_REFERENCES {
        return Err(project_error(
            path,
            format!(
                "it lists {} references; at most {MAX_REFERENCES} are allowed",
                manifest.references.len()
            ),
        ));
    }
    let mut references = Vec::with_capacity(manifest.references.len());
    for entry in manifest.references {
        let image = read_rgb(&mut zip, &entry.image, path)?;
        let alpha = match &entry.alpha {
            Some(name) => Some(read_gray(&mut zip, name, image.dimensions(), path)?),
            None => None,
        };
        if !entry.weight.is_finite() || entry.crop.iter().any(|c| !(0.0..=1.0).contains(c)) {
            return Err(project_error(
                path,
                format!(
                    "reference {:?} has a weight or crop out of range ({}, {:?})",
                    entry.name, entry.weight, entry.crop
                ),
            ));
        }
        references.push(ProjectReference {
            name: entry.name,
            source: entry.source,
            image: Arc::new(image),
            alpha: alpha.map(Arc::new),
            weight: entry.weight,
            crop: entry.crop,
        });
    }
    let start_image = match manifest.start_image {
        Some(entry) => {
            let image = read_rgb(&mut zip, &entry.image, path)?;
            let size = image.dimensions();
            let mut gray = |name: &Option<String>| -> Result<Option<Arc<GrayImage>>> {
                name.as_deref()
                    .map(|name| read_gray(&mut zip, name, size, path).map(Arc::new))
                    .transpose()
            };
            let mask = gray(&entry.mask)?;
            let alpha = gray(&entry.alpha)?;
            Some(ProjectStartImage {
                name: entry.name,
                image: Arc::new(image),
                mask,
                alpha,
            })
        }
        None => None,
    };
    Ok(Project {
        references,
        start_image,
        prompt: manifest.prompt,
        recipe: manifest.recipe,
        app_settings: manifest.app_settings,
        history: manifest.history,
    })
}

fn read_entry<R: std::io::Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    limit: u64,
    path: &Path,
) -> Result<Vec<u8>> {
    let entry = zip
        .by_name(name)
        .map_err(|e| project_error(path, format!("{name} is missing ({e})")))?;
    // The declared size may lie: read at most one byte past the limit to notice.
    let mut bytes = Vec::new();
    entry
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| project_error(path, format!("{name} is damaged ({e})")))?;
    if bytes.len() as u64 > limit {
        return Err(project_error(
            path,
            format!("{name} is larger than {} MiB", limit >> 20),
        ));
    }
    Ok(bytes)
}

fn read_rgb<R: std::io::Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    path: &Path,
) -> Result<RgbImage> {
    let bytes = read_entry(zip, name, MAX_ENTRY_BYTES, path)?;
    crate::imageio::decode_image(&bytes, name)
        .map_err(|e| project_error(path, format!("{name}: {e}")))
}

fn read_gray<R: std::io::Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    size: (u32, u32),
    path: &Path,
) -> Result<GrayImage> {
    let bytes = read_entry(zip, name, MAX_ENTRY_BYTES, path)?;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(&bytes));
    reader.set_format(image::ImageFormat::Png);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(size.0);
    limits.max_image_height = Some(size.1);
    limits.max_alloc = Some(crate::imageio::MAX_DECODED_BYTES);
    reader.limits(limits);
    let gray = reader
        .decode()
        .map_err(|e| project_error(path, format!("{name}: {e}")))?
        .to_luma8();
    if gray.dimensions() != size {
        return Err(project_error(
            path,
            format!(
                "{name} is {}×{}, not the {}×{} of its image",
                gray.width(),
                gray.height(),
                size.0,
                size.1
            ),
        ));
    }
    Ok(gray)
}

fn encode_gray_png(img: &GrayImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    image::DynamicImage::ImageLuma8(img.clone())
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| EngineError::Write {
            path: PathBuf::from("project"),
            reason: e.to_string(),
        })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{MixSettings, SamplerSettings};

    fn sample_project() -> Project {
        let red = RgbImage::from_fn(6, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 60, 7]));
        let alpha = GrayImage::from_fn(6, 4, |x, _| image::Luma([if x < 3 { 0 } else { 255 }]));
        let mask = GrayImage::from_fn(5, 5, |x, y| image::Luma([((x + y) * 20) as u8]));
        Project {
            references: vec![
                ProjectReference {
                    name: "red.png".into(),
                    source: Some(PathBuf::from("/pictures/red.png")),
                    image: Arc::new(red),
                    alpha: Some(Arc::new(alpha)),
                    weight: -0.5,
                    crop: [0.0, 0.25],
                },
                ProjectReference {
                    name: "pasted image".into(),
                    source: None,
                    image: Arc::new(RgbImage::from_pixel(3, 3, image::Rgb([1, 2, 3]))),
                    alpha: None,
                    weight: 1.5,
                    crop: [0.5, 0.5],
                },
            ],
            start_image: Some(ProjectStartImage {
                name: "start".into(),
                image: Arc::new(RgbImage::from_pixel(5, 5, image::Rgb([9, 9, 9]))),
                mask: Some(Arc::new(mask)),
                alpha: None,
            }),
            prompt: Some("a red fox".into()),
            recipe: ProjectRecipe {
                mode: Some(Mode::Variations { count: 3 }),
                sampler: SamplerSettings {
                    steps: 7,
                    guidance: 2.5,
                    seed: 42,
                    ..SamplerSettings::default()
                },
                mix: MixSettings::default(),
                strength: 0.4,
                feather_px: 3,
                model: Some("Lumos small".into()),
            },
            app_settings: Some(serde_json::json!({"brush_px": 12.0})),
            history: vec![PathBuf::from("/history/run_1_1")],
        }
    }

    #[test]
    fn a_project_comes_back_exactly_as_saved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fox.lumos");
        let project = sample_project();
        save(&path, &project).expect("save");
        assert_eq!(load(&path).expect("load"), project);
        // Saving again replaces the file and leaves nothing else behind.
        let mut changed = project.clone();
        changed.references.pop();
        save(&path, &changed).expect("save again");
        assert_eq!(load(&path).expect("load"), changed);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }

    #[test]
    fn damaged_or_foreign_files_are_refused_with_a_reason() {
        let bytes = encode(&sample_project()).expect("encode");
        let error = |bytes: &[u8]| decode(bytes, "x.lumos").expect_err("refused").to_string();
        assert!(error(b"").contains("not a zip archive"));
        assert!(error(&bytes[..bytes.len() / 2]).contains("not a Lumos Studio project"));
        // A manifest of another format or a newer version.
        let with_manifest = |json: &str| {
            let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            zip.start_file(MANIFEST_NAME, zip::write::SimpleFileOptions::default())
                .expect("start");
            zip.write_all(json.as_bytes()).expect("write");
            zip.finish().expect("finish").into_inner()
        };
        assert!(error(&with_manifest(r#"{"format":"other","version":1}"#)).contains("format"));
        let newer = format!(r#"{{"format":"{PROJECT_FORMAT}","version":99}}"#);
        assert!(error(&with_manifest(&newer)).contains("newer Lumos Studio"));
        let recipe = serde_json::to_string(&sample_project().recipe).expect("json");
        let missing_image = format!(
            r#"{{"format":"{PROJECT_FORMAT}","version":1,"recipe":{recipe},
            "references":[{{"name":"a","image":"references/000.png","weight":1,"crop":[0.5,0.5]}}]}}"#
        );
        let message = error(&with_manifest(&missing_image));
        assert!(
            message.contains("references/000.png is missing"),
            "{message}"
        );
    }
}
