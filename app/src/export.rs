//! Export: results as PNGs with their settings embedded (the engine's writer), and a contact
//! sheet. Nothing is ever overwritten unless the user said so for those very files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use image::RgbImage;
use lumos_engine::protocol::{GenerationMeta, Mode};

use crate::commands::{ConflictChoice, ExportSelection};
use crate::gallery::Run;

/// One file to write.
#[derive(Clone, Debug)]
pub struct ExportItem {
    /// Destination.
    pub path: PathBuf,
    /// What goes in it.
    pub content: ExportContent,
}

/// What an export file holds.
#[derive(Clone, Debug)]
pub enum ExportContent {
    /// A result with its settings embedded.
    Result {
        /// The pixels.
        image: Arc<RgbImage>,
        /// The settings.
        meta: Box<GenerationMeta>,
    },
    /// A grid of results.
    ContactSheet(Arc<RgbImage>),
    /// The frames of an interpolation, as an animated GIF that plays back and forth.
    Animation(Vec<Arc<RgbImage>>),
}

/// An export the user has asked for, with the files it would replace.
#[derive(Clone, Debug)]
pub struct ExportPlan {
    /// Files to write.
    pub items: Vec<ExportItem>,
    /// Those of `items` that already exist.
    pub conflicts: Vec<PathBuf>,
}

/// What an export did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExportReport {
    /// Files written.
    pub written: Vec<PathBuf>,
    /// Files left alone because they existed.
    pub skipped: Vec<PathBuf>,
}

/// File name stem shared by a run's exports.
fn run_stem(run: &Run) -> String {
    format!("lumos_{}_run{}", run.created_unix_secs, run.id)
}

/// Plans exporting `selection` of `run` into `dir` (plus a contact sheet if asked).
pub fn plan(
    run: &Run,
    selection: ExportSelection,
    dir: &Path,
    contact_sheet: bool,
) -> anyhow::Result<ExportPlan> {
    let chosen: Vec<_> = run
        .images
        .iter()
        .filter(|i| selection == ExportSelection::All || i.selected)
        .collect();
    if chosen.is_empty() {
        anyhow::bail!(match selection {
            ExportSelection::Selected => "no results are selected: tick some first, or export all",
            ExportSelection::All => "this run has no results yet",
        });
    }
    let stem = run_stem(run);
    let mut items: Vec<_> = chosen
        .iter()
        .map(|result| ExportItem {
            path: dir.join(format!(
                "{stem}_{:02}_seed{}.png",
                result.index, result.meta.settings.seed
            )),
            content: ExportContent::Result {
                image: result.image.clone(),
                meta: Box::new(result.meta.clone()),
            },
        })
        .collect();
    if contact_sheet && chosen.len() > 1 {
        let mut in_order = chosen.clone();
        in_order.sort_by_key(|r| r.index);
        let images: Vec<&RgbImage> = in_order.iter().map(|r| r.image.as_ref()).collect();
        // A whole sweep gets its labelled X/Y sheet; anything else a plain grid.
        let sheet = lumos_engine::contact_sheet::sweep_sheet(&run.mode, &images)
            .unwrap_or_else(|| contact_sheet_image(&images));
        items.push(ExportItem {
            path: dir.join(format!("{stem}_contact_sheet.png")),
            content: ExportContent::ContactSheet(Arc::new(sheet)),
        });
    }
    if matches!(run.mode, Mode::Interpolate { .. }) && chosen.len() > 1 {
        let mut frames: Vec<_> = chosen.iter().map(|r| (r.index, r.image.clone())).collect();
        frames.sort_by_key(|(index, _)| *index);
        items.push(ExportItem {
            path: dir.join(format!("{stem}_animation.gif")),
            content: ExportContent::Animation(frames.into_iter().map(|(_, f)| f).collect()),
        });
    }
    let conflicts = items
        .iter()
        .filter(|i| i.path.exists())
        .map(|i| i.path.clone())
        .collect();
    Ok(ExportPlan { items, conflicts })
}

/// Writes a plan. `choice` says what to do with files that exist (ignored when none do).
pub fn execute(
    plan: &ExportPlan,
    choice: ConflictChoice,
    dir: &Path,
) -> anyhow::Result<ExportReport> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("could not create the export folder {}", dir.display()))?;
    let mut report = ExportReport::default();
    for item in &plan.items {
        let exists = item.path.exists();
        let dest = match (exists, choice) {
            (false, _) => item.path.clone(),
            (true, ConflictChoice::Skip) => {
                report.skipped.push(item.path.clone());
                continue;
            }
            (true, ConflictChoice::KeepBoth) => free_name(&item.path),
            (true, ConflictChoice::Overwrite) => item.path.clone(),
        };
        let replace = exists && choice == ConflictChoice::Overwrite;
        write_item(&dest, &item.content, replace)?;
        report.written.push(dest);
    }
    Ok(report)
}

/// `name (2).png`, `name (3).png`, … : the first that does not exist.
pub fn free_name(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (2u32..)
        .map(|n| path.with_file_name(format!("{stem} ({n}){ext}")))
        .find(|candidate| !candidate.exists())
        .unwrap_or_else(|| path.to_owned())
}

/// Writes one file (a PNG; results carry their settings). Never replaces a file unless
/// `replace` says the user asked for exactly that.
fn write_item(dest: &Path, content: &ExportContent, replace: bool) -> anyhow::Result<()> {
    let bytes = match content {
        ExportContent::Result { image, meta } => {
            lumos_engine::imageio::encode_png(image, Some(meta))
        }
        ExportContent::ContactSheet(image) => lumos_engine::imageio::encode_png(image, None),
        ExportContent::Animation(frames) => return write_gif(dest, frames, replace),
    }
    .with_context(|| format!("could not encode {}", dest.display()))?;
    write_bytes(dest, &bytes, replace)
}

/// Encodes frames as a looping GIF (forward, then backward) and writes it.
fn write_gif(dest: &Path, frames: &[Arc<RgbImage>], replace: bool) -> anyhow::Result<()> {
    let bytes =
        gif_bytes(frames).with_context(|| format!("could not encode {}", dest.display()))?;
    write_bytes(dest, &bytes, replace)
}

/// An animated GIF of `frames`, 8 frames per second, ping-pong, looping forever.
pub fn gif_bytes(frames: &[Arc<RgbImage>]) -> anyhow::Result<Vec<u8>> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 10);
        encoder.set_repeat(Repeat::Infinite)?;
        let delay = image::Delay::from_numer_denom_ms(125, 1);
        let back = frames
            .iter()
            .rev()
            .skip(1)
            .take(frames.len().saturating_sub(2));
        for frame in frames.iter().chain(back) {
            let rgba = image::DynamicImage::ImageRgb8((**frame).clone()).into_rgba8();
            encoder.encode_frame(image::Frame::from_parts(rgba, 0, 0, delay))?;
        }
    }
    Ok(bytes)
}

fn write_bytes(dest: &Path, bytes: &[u8], replace: bool) -> anyhow::Result<()> {
    if !replace {
        // Atomic, and fails if `dest` exists: nothing is replaced.
        lumos_engine::imageio::write_new_file(dest, bytes)?;
        return Ok(());
    }
    // The user said to replace `dest`: the old file stays intact if writing fails.
    lumos_engine::imageio::replace_file(dest, bytes)?;
    Ok(())
}

/// A grid of the images (as square as possible) on a dark background with a small gap.
pub fn contact_sheet_image(images: &[&RgbImage]) -> RgbImage {
    const GAP_PX: u32 = 4;
    let count = images.len().max(1) as u32;
    let columns = (count as f64).sqrt().ceil() as u32;
    let rows = count.div_ceil(columns);
    let cell_w = images.iter().map(|i| i.width()).max().unwrap_or(1);
    let cell_h = images.iter().map(|i| i.height()).max().unwrap_or(1);
    let width = columns * cell_w + (columns + 1) * GAP_PX;
    let height = rows * cell_h + (rows + 1) * GAP_PX;
    let mut sheet = RgbImage::from_pixel(width, height, image::Rgb([24, 24, 24]));
    for (i, img) in images.iter().enumerate() {
        let (col, row) = (i as u32 % columns, i as u32 / columns);
        let x = GAP_PX + col * (cell_w + GAP_PX);
        let y = GAP_PX + row * (cell_h + GAP_PX);
        image::imageops::replace(&mut sheet, *img, i64::from(x), i64::from(y));
    }
    sheet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_sheet_is_a_grid() {
        let a = RgbImage::from_pixel(8, 8, image::Rgb([255, 0, 0]));
        let sheet = contact_sheet_image(&[&a, &a, &a]);
        // 3 images → 2 columns × 2 rows of 8 px with 4 px gaps.
        assert_eq!(sheet.dimensions(), (2 * 8 + 3 * 4, 2 * 8 + 3 * 4));
        assert_eq!(sheet.get_pixel(4, 4).0, [255, 0, 0]);
        assert_eq!(sheet.get_pixel(0, 0).0, [24, 24, 24]);
    }

    #[test]
    fn interpolation_gif_plays_back_and_forth() {
        let frames: Vec<_> = (0..4u8)
            .map(|i| Arc::new(RgbImage::from_pixel(8, 8, image::Rgb([i * 60, 0, 0]))))
            .collect();
        let bytes = gif_bytes(&frames).expect("encode");
        let decoder =
            image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes)).expect("decode");
        let decoded = image::AnimationDecoder::into_frames(decoder)
            .collect_frames()
            .expect("frames");
        // 0 1 2 3 2 1, then it loops.
        assert_eq!(decoded.len(), 6);
        let reds: Vec<u8> = decoded
            .iter()
            .map(|f| f.buffer().get_pixel(0, 0).0[0])
            .collect();
        assert_eq!(reds, [0, 60, 120, 180, 120, 60]);
    }

    #[test]
    fn free_name_skips_existing_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.png");
        std::fs::write(&path, b"x").expect("write");
        std::fs::write(dir.path().join("a (2).png"), b"x").expect("write");
        assert_eq!(free_name(&path), dir.path().join("a (3).png"));
    }

    #[test]
    fn contact_sheet_is_never_clobbered_without_asking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("sheet.png");
        std::fs::write(&dest, b"precious").expect("write");
        let content = ExportContent::ContactSheet(Arc::new(RgbImage::new(2, 2)));
        assert!(write_item(&dest, &content, false).is_err());
        assert_eq!(std::fs::read(&dest).expect("read"), b"precious");
        write_item(&dest, &content, true).expect("replace");
        assert!(image::open(&dest).is_ok());
        let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(leftovers, 1, "no temporary files left behind");
    }
}
