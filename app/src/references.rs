//! The canvas's reference images: pixels, weight, the encoder's crop, and the display texture.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use image::{GrayImage, RgbImage};
use lumos_engine::protocol::ReferenceImage;

/// Side of the square crop the image encoder sees, after resizing the shorter side to it.
pub const ENCODER_CROP_PX: f32 = 224.0;

/// Bounds of a reference's weight slider; a negative weight subtracts the reference.
pub const WEIGHT_RANGE: std::ops::RangeInclusive<f32> = -1.0..=2.0;

/// One reference image on the canvas.
pub struct Reference {
    /// Display name (file name).
    pub name: String,
    /// Where it came from, if from a file.
    pub path: Option<PathBuf>,
    /// The pixels.
    pub image: Arc<RgbImage>,
    /// Opacity (255 = opaque) when the file had transparent pixels, for "mask from alpha".
    pub alpha: Option<Arc<GrayImage>>,
    /// Mixing weight.
    pub weight: f32,
    /// Where the encoder's square crop sits, as fractions of the free range (0.5 = centred).
    pub crop: [f32; 2],
    /// Display texture (created on first draw).
    pub texture: Option<egui::TextureHandle>,
    /// Zoom and pan of its view on the canvas (transient).
    pub view: crate::view_transform::ViewTransform,
    /// What the user should know about the file (e.g. only the first frame of an animation
    /// is used); shown once when it is added.
    pub notice: Option<String>,
}

impl Reference {
    /// A reference with weight 1 and the crop centred.
    pub fn new(name: String, path: Option<PathBuf>, image: RgbImage) -> Self {
        Self::from_shared(name, path, Arc::new(image))
    }

    /// A reference sharing pixels that are already in memory (a result).
    pub fn from_shared(name: String, path: Option<PathBuf>, image: Arc<RgbImage>) -> Self {
        Self {
            name,
            path,
            image,
            alpha: None,
            weight: 1.0,
            crop: [0.5, 0.5],
            texture: None,
            view: crate::view_transform::ViewTransform::whole_image(),
            notice: None,
        }
    }

    /// The texture of this reference, uploading it on first use.
    pub fn texture(&mut self, ctx: &egui::Context) -> egui::TextureHandle {
        self.texture
            .get_or_insert_with(|| {
                ctx.load_texture(
                    format!("reference:{}", self.name),
                    crate::gallery::color_image(&self.image),
                    egui::TextureOptions::LINEAR,
                )
            })
            .clone()
    }

    /// The encoder's crop as a rectangle in normalised image coordinates ([0, 1]²).
    pub fn crop_rect_in_image(&self) -> egui::Rect {
        let (w, h) = (self.image.width() as f32, self.image.height() as f32);
        let short = w.min(h).max(1.0);
        let size = egui::vec2(short / w.max(1.0), short / h.max(1.0));
        let min = egui::pos2(self.crop[0] * (1.0 - size.x), self.crop[1] * (1.0 - size.y));
        egui::Rect::from_min_size(min, size)
    }

    /// Moves the crop by a delta in normalised image coordinates.
    pub fn move_crop(&mut self, delta_in_image: egui::Vec2) {
        let size = self.crop_rect_in_image().size();
        for (axis, (free, delta)) in [
            (1.0 - size.x, delta_in_image.x),
            (1.0 - size.y, delta_in_image.y),
        ]
        .into_iter()
        .enumerate()
        {
            if free > f32::EPSILON {
                self.crop[axis] = (self.crop[axis] + delta / free).clamp(0.0, 1.0);
            }
        }
    }

    /// The reference as the engine receives it.
    pub fn to_engine(&self) -> ReferenceImage {
        let centred = (self.crop[0] - 0.5).abs() < 1e-4 && (self.crop[1] - 0.5).abs() < 1e-4;
        ReferenceImage {
            name: self.name.clone(),
            image: self.image.clone(),
            weight: self.weight,
            crop: (!centred).then_some(self.crop),
        }
    }
}

/// The file name of `path` for display.
pub fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Reads an image file (the engine's loader refuses corrupt and huge images with a message
/// that names the file and says what is wrong).
pub fn load_reference(path: &Path) -> anyhow::Result<Reference> {
    let image = lumos_engine::imageio::load_image(path).context("could not add the reference")?;
    let mut reference = Reference::new(display_name(path), Some(path.to_owned()), image);
    // Read again for the alpha (the engine's loader keeps RGB, as the encoder wants) and to
    // tell the user when only the first frame of an animation is used.
    if let Ok(bytes) = std::fs::read(path) {
        reference.alpha = read_alpha(&bytes).map(Arc::new);
        reference.notice = lumos_engine::imageio::animation_notice(&bytes, &reference.name);
    }
    Ok(reference)
}

/// Decodes image bytes (a drop without a path, a paste).
pub fn decode_reference(name: &str, bytes: &[u8]) -> anyhow::Result<Reference> {
    let image =
        lumos_engine::imageio::decode_image(bytes, name).context("could not add the reference")?;
    let mut reference = Reference::new(name.to_owned(), None, image);
    reference.alpha = read_alpha(bytes).map(Arc::new);
    reference.notice = lumos_engine::imageio::animation_notice(bytes, name);
    Ok(reference)
}

/// A reference from raw RGBA pixels (a pasted image): RGB for the encoder, and the alpha kept
/// for "mask from alpha" when any pixel is transparent. Refuses sizes the file loader refuses.
pub fn from_rgba(
    name: String,
    width_px: usize,
    height_px: usize,
    rgba: Vec<u8>,
) -> anyhow::Result<Reference> {
    use lumos_engine::imageio::MAX_SIDE_PX;
    let (w, h) = (width_px as u32, height_px as u32);
    if w == 0 || h == 0 || w > MAX_SIDE_PX || h > MAX_SIDE_PX {
        anyhow::bail!("it is {width_px}×{height_px}; sides must be 1 to {MAX_SIDE_PX} pixels");
    }
    let rgba =
        image::RgbaImage::from_raw(w, h, rgba).context("its pixel data does not match its size")?;
    let alpha = GrayImage::from_fn(w, h, |x, y| image::Luma([rgba.get_pixel(x, y)[3]]));
    let rgb = image::DynamicImage::ImageRgba8(rgba).to_rgb8();
    let mut reference = Reference::new(name, None, rgb);
    reference.alpha = alpha
        .pixels()
        .any(|p| p.0[0] < 255)
        .then(|| Arc::new(alpha));
    Ok(reference)
}

/// The alpha channel of an encoded image, if it has any transparent pixel. Only images whose
/// format has alpha are decoded a second time; any error means "no alpha" (the RGB decode has
/// already said what is wrong with a bad file).
pub fn read_alpha(bytes: &[u8]) -> Option<GrayImage> {
    lumos_engine::imageio::decode_alpha(bytes)
}

/// The references on the canvas, in order.
#[derive(Default)]
pub struct Canvas {
    /// The references.
    pub references: Vec<Reference>,
}

impl Canvas {
    /// Adds a reference at the end.
    pub fn push(&mut self, reference: Reference) {
        self.references.push(reference);
    }

    /// Removes the reference at `index`.
    pub fn remove(&mut self, index: usize) {
        if index < self.references.len() {
            self.references.remove(index);
        }
    }

    /// Moves the reference at `from` to `to`.
    pub fn move_to(&mut self, from: usize, to: usize) {
        if from < self.references.len() && to < self.references.len() {
            let reference = self.references.remove(from);
            self.references.insert(to, reference);
        }
    }

    /// The references as the engine receives them.
    pub fn to_engine(&self) -> Vec<ReferenceImage> {
        self.references.iter().map(Reference::to_engine).collect()
    }

    /// Gives every reference on the canvas whose pixels a result was made from (same pixel
    /// hash) the weight and crop it had then; returns how many of `made_from` were found.
    pub fn restore_weights(
        &mut self,
        made_from: &[lumos_engine::protocol::ReferenceMeta],
    ) -> usize {
        let hashes: Vec<String> = self
            .references
            .iter()
            .map(|r| lumos_engine::imageio::pixel_hash(&r.image))
            .collect();
        let mut found = 0;
        for meta in made_from {
            if let Some(i) = hashes.iter().position(|h| *h == meta.sha256) {
                let reference = &mut self.references[i];
                reference.weight = meta.weight;
                reference.crop = meta.crop.unwrap_or([0.5, 0.5]);
                found += 1;
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_pixels_keep_their_alpha_and_bad_sizes_are_refused() {
        // 2×1: one opaque red pixel, one transparent green one.
        let rgba = vec![255, 0, 0, 255, 0, 255, 0, 0];
        let reference = from_rgba("pasted".into(), 2, 1, rgba).expect("reference");
        assert_eq!(reference.image.as_raw(), &[255, 0, 0, 0, 255, 0]);
        let alpha = reference.alpha.expect("alpha kept");
        assert_eq!(alpha.as_raw(), &[255, 0]);
        let opaque = from_rgba("opaque".into(), 1, 1, vec![1, 2, 3, 255]).expect("reference");
        assert!(
            opaque.alpha.is_none(),
            "an opaque paste has no mask to offer"
        );
        assert!(from_rgba("short".into(), 2, 2, vec![0; 4]).is_err());
        assert!(from_rgba("empty".into(), 0, 5, Vec::new()).is_err());
    }

    #[test]
    fn crop_rect_covers_the_short_side_and_moves_within_the_image() {
        let mut reference = Reference::new("wide".into(), None, RgbImage::new(400, 200));
        let rect = reference.crop_rect_in_image();
        assert!((rect.width() - 0.5).abs() < 1e-6 && (rect.height() - 1.0).abs() < 1e-6);
        assert!((rect.min.x - 0.25).abs() < 1e-6);
        reference.move_crop(egui::vec2(10.0, 10.0));
        assert_eq!(reference.crop, [1.0, 0.5]);
        assert!((reference.crop_rect_in_image().max.x - 1.0).abs() < 1e-6);
        assert_eq!(reference.to_engine().crop, Some([1.0, 0.5]));
        reference.move_crop(egui::vec2(-0.25, 0.0));
        assert!((reference.crop[0] - 0.5).abs() < 1e-6);
        assert_eq!(reference.to_engine().crop, None);
    }

    #[test]
    fn weights_and_crops_come_back_for_the_references_a_result_was_made_from() {
        let mut canvas = Canvas::default();
        let red = RgbImage::from_pixel(4, 2, image::Rgb([255, 0, 0]));
        let blue = RgbImage::from_pixel(4, 2, image::Rgb([0, 0, 255]));
        canvas.push(Reference::new("red".into(), None, red.clone()));
        canvas.push(Reference::new("blue".into(), None, blue.clone()));
        let meta = |img: &RgbImage, weight: f32, crop| lumos_engine::protocol::ReferenceMeta {
            name: "renamed.png".into(),
            sha256: lumos_engine::imageio::pixel_hash(img),
            weight,
            crop,
        };
        let green = RgbImage::from_pixel(4, 2, image::Rgb([0, 255, 0]));
        let made_from = [
            meta(&blue, -0.5, Some([0.0, 0.5])),
            meta(&green, 2.0, None),
            meta(&red, 1.5, None),
        ];
        assert_eq!(
            canvas.restore_weights(&made_from),
            2,
            "green is not on the canvas"
        );
        assert_eq!(canvas.references[0].weight, 1.5);
        assert_eq!(canvas.references[0].crop, [0.5, 0.5]);
        assert_eq!(canvas.references[1].weight, -0.5);
        assert_eq!(canvas.references[1].crop, [0.0, 0.5]);
    }

    #[test]
    fn canvas_reorders_and_removes() {
        let mut canvas = Canvas::default();
        for name in ["a", "b", "c"] {
            canvas.push(Reference::new(name.into(), None, RgbImage::new(2, 2)));
        }
        canvas.move_to(0, 2);
        let names: Vec<_> = canvas.references.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["b", "c", "a"]);
        canvas.remove(1);
        canvas.remove(7);
        let names: Vec<_> = canvas.references.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
    }
}
