//! The starting image (img2img) and its repaint mask (inpainting): a brush and an eraser paint
//! the mask over the image; the strength says how much to change. The mask is feathered when
//! the request is made. Mask edits (strokes, invert, clear, from alpha) can be undone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use image::{GrayImage, RgbImage, RgbaImage};

use crate::commands::{AppCommand, MaskEdit};
use crate::preview::{MaskOverlay, MaskOverlayVersion, PreviewRenderer, mask_overlay_ui};
use crate::settings::Settings;
use crate::view_transform::{ViewTransform, view_input};

/// Ids of starting images, so that the GPU overlay uploads each image once.
static NEXT_START_ID: AtomicU64 = AtomicU64::new(1);

/// The mask's tint: colour (gamma space) and opacity where the mask is full. The CPU path
/// draws the same colour at the same opacity with egui's blending.
pub const MASK_TINT: [u8; 4] = [255, 40, 60, 128];

/// Longest side of a starting image as kept by the app: the engine resizes it to the model's
/// size anyway, and a smaller mask keeps painting fast.
pub const MAX_START_SIDE_PX: u32 = 768;

/// Mask edits that can be undone (a 768² mask is 0.6 MB, so this stays under 20 MB).
const MASK_HISTORY: usize = 32;

/// Strength of the "Subtle" preset: the composition stays, details change.
pub const STRENGTH_SUBTLE: f32 = 0.35;

/// Strength of the "Strong" preset: little more than the layout stays.
pub const STRENGTH_STRONG: f32 = 0.75;

/// What the brush does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BrushMode {
    /// Mark pixels for repainting.
    #[default]
    Paint,
    /// Keep pixels as they are.
    Erase,
}

/// The mask brush: full coverage out to `hardness × radius`, then a linear fall-off to nothing
/// at the radius.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Brush {
    /// Radius in image pixels.
    pub radius_px: f32,
    /// 1 for a hard edge, 0 for a cone.
    pub hardness: f32,
    /// Paint or erase.
    pub mode: BrushMode,
}

impl Brush {
    /// A hard brush.
    pub fn hard(radius_px: f32, mode: BrushMode) -> Self {
        Self {
            radius_px,
            hardness: 1.0,
            mode,
        }
    }

    /// Coverage in [0, 1] at `distance` pixels from the centre.
    pub fn coverage(&self, distance: f32) -> f32 {
        let r = self.radius_px.max(0.5);
        let core = r * self.hardness.clamp(0.0, 1.0);
        if distance <= core {
            1.0
        } else if distance >= r {
            0.0
        } else {
            (r - distance) / (r - core)
        }
    }
}

/// The starting image with its mask and display textures.
pub struct StartImage {
    /// Display name.
    pub name: String,
    /// The pixels (at most [`MAX_START_SIDE_PX`] on the longer side).
    pub image: Arc<RgbImage>,
    /// Repaint mask at the image's size (255 = repaint), if any was painted. Private so that
    /// every change goes through a method that bumps `mask_version` (the GPU overlay and the
    /// CPU texture re-upload on that).
    mask: Option<GrayImage>,
    /// Opacity of the original image at the image's size (255 = opaque), if it had any
    /// transparency: the pixels are kept as RGB, so "mask from alpha" needs it apart.
    pub alpha: Option<GrayImage>,
    /// Masks before each edit, newest last.
    undo: Vec<Option<GrayImage>>,
    /// Masks undone, most recently undone last.
    redo: Vec<Option<GrayImage>>,
    /// Unique per starting image.
    id: u64,
    /// Mask edits made so far (undo and redo not counted): the app's undo history interleaves
    /// them with canvas edits.
    edit_count: u64,
    /// Increases with every change of the mask.
    mask_version: u64,
    texture: Option<egui::TextureHandle>,
    /// The CPU overlay texture and the mask version it shows.
    mask_texture: Option<(u64, Option<egui::TextureHandle>)>,
    /// A shared copy of the mask for the GPU overlay and the mask version it holds.
    shared_mask: Option<(u64, Option<Arc<GrayImage>>)>,
    last_brush_pos: Option<egui::Pos2>,
    last_rect: Option<egui::Rect>,
    /// Zoom and pan of the view (transient: a new starting image shows whole).
    pub view: ViewTransform,
}

impl StartImage {
    /// A starting image without a mask; large images are scaled down.
    pub fn new(name: String, image: &RgbImage) -> Self {
        let (w, h) = image.dimensions();
        let image = if w.max(h) > MAX_START_SIDE_PX {
            let scale = MAX_START_SIDE_PX as f32 / w.max(h) as f32;
            image::imageops::resize(
                image,
                ((w as f32 * scale).round() as u32).max(1),
                ((h as f32 * scale).round() as u32).max(1),
                image::imageops::FilterType::Triangle,
            )
        } else {
            image.clone()
        };
        Self {
            name,
            image: Arc::new(image),
            mask: None,
            alpha: None,
            undo: Vec::new(),
            redo: Vec::new(),
            id: NEXT_START_ID.fetch_add(1, Ordering::Relaxed),
            edit_count: 0,
            mask_version: 0,
            texture: None,
            mask_texture: None,
            shared_mask: None,
            last_brush_pos: None,
            last_rect: None,
            view: ViewTransform::whole_image(),
        }
    }

    /// The repaint mask at the image's size (255 = repaint), if any was painted.
    pub fn mask(&self) -> Option<&GrayImage> {
        self.mask.as_ref()
    }

    /// Starts with this mask (a reopened project); a mask of another size is scaled to the
    /// image. Not an edit: there is nothing to undo.
    pub fn with_mask(mut self, mask: Option<&GrayImage>) -> Self {
        let (w, h) = self.image.dimensions();
        self.mask = mask.map(|mask| {
            if mask.dimensions() == (w, h) {
                mask.clone()
            } else {
                image::imageops::resize(mask, w, h, image::imageops::FilterType::Triangle)
            }
        });
        self.mask_version += 1;
        self
    }

    /// Unique per starting image.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Mask edits made so far (undo and redo not counted).
    pub fn edit_count(&self) -> u64 {
        self.edit_count
    }

    /// Increases with every change of the mask, undo and redo included.
    pub fn mask_version(&self) -> u64 {
        self.mask_version
    }

    /// Where the image was drawn last (in points).
    pub fn last_rect(&self) -> Option<egui::Rect> {
        self.last_rect
    }

    /// Keeps the original's opacity (at the original's size) for "mask from alpha".
    pub fn with_alpha(mut self, alpha: Option<&GrayImage>) -> Self {
        let (w, h) = self.image.dimensions();
        self.alpha = alpha.map(|alpha| {
            if alpha.dimensions() == (w, h) {
                alpha.clone()
            } else {
                image::imageops::resize(alpha, w, h, image::imageops::FilterType::Triangle)
            }
        });
        self
    }

    /// Paints (or erases) with `brush` at `center` (image pixels), and along the segment from
    /// the previous position so that fast strokes have no gaps.
    pub fn stroke_to(&mut self, center: egui::Pos2, brush: Brush) {
        if self.last_brush_pos.is_none() {
            // A new stroke: one undo step per stroke.
            self.remember();
        }
        let from = self.last_brush_pos.unwrap_or(center);
        let distance = from.distance(center);
        let stamps = (distance / (brush.radius_px * 0.5).max(1.0))
            .ceil()
            .max(1.0) as usize;
        for i in 0..=stamps {
            let t = i as f32 / stamps as f32;
            self.stamp(from + (center - from) * t, brush);
        }
        self.last_brush_pos = Some(center);
    }

    /// Ends a stroke.
    pub fn end_stroke(&mut self) {
        self.last_brush_pos = None;
    }

    /// One dab: painting raises the mask to the brush's coverage, erasing lowers it to the
    /// complement, so overlapping dabs of a soft brush never darken or lighten twice.
    fn stamp(&mut self, center: egui::Pos2, brush: Brush) {
        let (w, h) = self.image.dimensions();
        let mask = self.mask.get_or_insert_with(|| GrayImage::new(w, h));
        let r = brush.radius_px.max(0.5);
        let x0 = (center.x - r).floor().max(0.0) as u32;
        let y0 = (center.y - r).floor().max(0.0) as u32;
        let x1 = ((center.x + r).ceil().max(0.0) as u32).min(w);
        let y1 = ((center.y + r).ceil().max(0.0) as u32).min(h);
        for y in y0..y1 {
            for x in x0..x1 {
                let d = egui::pos2(x as f32 + 0.5, y as f32 + 0.5).distance(center);
                let coverage = (brush.coverage(d) * 255.0).round() as u8;
                if coverage == 0 {
                    continue;
                }
                let pixel = mask.get_pixel_mut(x, y);
                pixel.0[0] = match brush.mode {
                    BrushMode::Paint => pixel.0[0].max(coverage),
                    BrushMode::Erase => pixel.0[0].min(255 - coverage),
                };
            }
        }
        self.mask_version += 1;
    }

    /// Applies an edit to the mask; every edit but undo and redo can be undone.
    pub fn edit_mask(&mut self, edit: MaskEdit) {
        self.end_stroke();
        match edit {
            MaskEdit::Undo => {
                if let Some(previous) = self.undo.pop() {
                    let current = std::mem::replace(&mut self.mask, previous);
                    self.redo.push(current);
                }
            }
            MaskEdit::Redo => {
                if let Some(next) = self.redo.pop() {
                    let current = std::mem::replace(&mut self.mask, next);
                    self.undo.push(current);
                }
            }
            MaskEdit::Invert => {
                self.remember();
                let (w, h) = self.image.dimensions();
                let mask = self.mask.take().unwrap_or_else(|| GrayImage::new(w, h));
                self.mask = Some(lumos_engine::mask::invert(&mask));
            }
            MaskEdit::Clear => {
                if self.mask.is_some() {
                    self.remember();
                    self.mask = None;
                }
            }
            MaskEdit::FromAlpha => {
                let Some(alpha) = &self.alpha else {
                    return;
                };
                // `from_alpha` reads only the alpha channel; the colour is irrelevant here.
                let rgba = RgbaImage::from_fn(alpha.width(), alpha.height(), |x, y| {
                    image::Rgba([0, 0, 0, alpha.get_pixel(x, y).0[0]])
                });
                let mask = lumos_engine::mask::from_alpha(&rgba);
                self.remember();
                self.mask = Some(mask);
            }
        }
        self.mask_version += 1;
    }

    /// Removes the mask (the whole image is changed by the strength); can be undone.
    pub fn clear_mask(&mut self) {
        self.edit_mask(MaskEdit::Clear);
    }

    /// Whether there is a mask edit to undo.
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Whether there is an undone mask edit to redo.
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    /// Saves the mask before an edit and forgets what was undone.
    fn remember(&mut self) {
        if self.undo.len() == MASK_HISTORY {
            self.undo.remove(0);
        }
        self.undo.push(self.mask.clone());
        self.redo.clear();
        self.edit_count += 1;
    }

    /// Number of pixels marked for repainting.
    pub fn masked_pixels(&self) -> usize {
        self.mask
            .as_ref()
            .map_or(0, |m| m.pixels().filter(|p| p.0[0] > 0).count())
    }

    /// The mask as the engine receives it: feathered by `feather_px`; `None` if nothing is
    /// painted (img2img of the whole image).
    pub fn engine_mask(&self, feather_px: u32) -> Option<Arc<GrayImage>> {
        let mask = self.mask.as_ref()?;
        if mask.pixels().all(|p| p.0[0] == 0) {
            return None;
        }
        Some(Arc::new(lumos_engine::mask::feather(mask, feather_px)))
    }

    fn image_texture(&mut self, ctx: &egui::Context) -> egui::TextureHandle {
        self.texture
            .get_or_insert_with(|| {
                ctx.load_texture(
                    format!("start:{}", self.name),
                    crate::gallery::color_image(&self.image),
                    egui::TextureOptions::LINEAR,
                )
            })
            .clone()
    }

    /// The CPU path's overlay: the tint colour with the mask scaled into its alpha.
    fn mask_texture(&mut self, ctx: &egui::Context) -> Option<egui::TextureHandle> {
        if let Some((version, texture)) = &self.mask_texture
            && *version == self.mask_version
        {
            return texture.clone();
        }
        let previous = self.mask_texture.take().and_then(|(_, texture)| texture);
        let texture = self.mask.as_ref().map(|mask| {
            let [r, g, b, a] = MASK_TINT;
            let overlay = egui::ColorImage::from_rgba_unmultiplied(
                [mask.width() as usize, mask.height() as usize],
                &mask
                    .pixels()
                    .flat_map(|p| [r, g, b, (u16::from(p.0[0]) * u16::from(a) / 255) as u8])
                    .collect::<Vec<u8>>(),
            );
            match previous {
                Some(mut handle) => {
                    handle.set(overlay, egui::TextureOptions::NEAREST);
                    handle
                }
                None => ctx.load_texture("start_mask", overlay, egui::TextureOptions::NEAREST),
            }
        });
        self.mask_texture = Some((self.mask_version, texture.clone()));
        texture
    }

    /// A shared copy of the mask for the GPU overlay, copied again only after a change.
    fn shared_mask(&mut self) -> Option<Arc<GrayImage>> {
        if let Some((version, mask)) = &self.shared_mask
            && *version == self.mask_version
        {
            return mask.clone();
        }
        let mask = self.mask.clone().map(Arc::new);
        self.shared_mask = Some((self.mask_version, mask.clone()));
        mask
    }

    /// Draws the image with its mask tinted on top into `rect`: by `mask_overlay.wgsl` under
    /// wgpu, by two egui textures otherwise.
    fn paint_ui(&mut self, ui: &mut egui::Ui, rect: egui::Rect, renderer: PreviewRenderer) {
        self.last_rect = Some(rect);
        let visible = self.view.visible_uv();
        match renderer {
            PreviewRenderer::Wgpu => {
                let mask = self.shared_mask();
                let tint = MASK_TINT.map(|c| f32::from(c) / 255.0);
                mask_overlay_ui(
                    ui,
                    rect,
                    &MaskOverlay {
                        version: MaskOverlayVersion {
                            image: self.id,
                            mask: self.mask_version,
                        },
                        image: &self.image,
                        mask: mask.as_ref(),
                        tint,
                        view_uv: visible,
                    },
                );
            }
            PreviewRenderer::Cpu => {
                let texture = self.image_texture(ui.ctx());
                ui.painter()
                    .image(texture.id(), rect, visible, egui::Color32::WHITE);
                if let Some(mask) = self.mask_texture(ui.ctx()) {
                    ui.painter()
                        .image(mask.id(), rect, visible, egui::Color32::WHITE);
                }
            }
        }
    }
}

/// Transient state of the panel.
#[derive(Default)]
pub struct StartImagePanel {
    /// Brush or eraser.
    pub brush_mode: BrushMode,
    /// Whether the current drag pans the view (it paints otherwise).
    panning: bool,
}

impl StartImagePanel {
    /// Draws the starting image with its mask, the brush controls and the strength.
    pub fn start_image_ui(
        &mut self,
        ui: &mut egui::Ui,
        start: Option<&mut StartImage>,
        renderer: PreviewRenderer,
        settings: &mut Settings,
        commands: &mut Vec<AppCommand>,
    ) {
        ui.heading("Starting image");
        let Some(start) = start else {
            ui.weak("None: new images start from noise. Use \"Start from this\" on a reference or a result.");
            return;
        };
        ui.horizontal(|ui| {
            ui.label(format!(
                "{} ({}×{})",
                start.name,
                start.image.width(),
                start.image.height()
            ));
            if ui.button("Clear starting image").clicked() {
                commands.push(AppCommand::ClearStartImage);
            }
        });
        let (w, h) = start.image.dimensions();
        let width = ui.available_width().clamp(60.0, 300.0);
        let size = egui::vec2(width, width * h as f32 / w.max(1) as f32);
        let (rect, response) = ui.allocate_exact_size(size, egui::Sense::drag());
        view_input(ui, rect, &response, &mut start.view, &mut self.panning);
        start.paint_ui(ui, rect, renderer);
        let image_size_px = egui::vec2(w as f32, h as f32);
        let primary = egui::PointerButton::Primary;
        if let Some(pos_in_canvas) = response.interact_pointer_pos()
            && !self.panning
            && (response.dragged_by(primary) || response.drag_started_by(primary))
        {
            let pos_in_image = start
                .view
                .image_from_canvas(rect, image_size_px, pos_in_canvas);
            let brush = Brush {
                radius_px: settings.brush_px,
                hardness: settings.brush_hardness,
                mode: self.brush_mode,
            };
            start.stroke_to(pos_in_image, brush);
            ui.ctx().request_repaint();
        }
        if response.drag_stopped() {
            start.end_stroke();
        }
        response.on_hover_text(
            "Paint where the image should change (with a mask, only there). \
             Ctrl+wheel zooms; drag with the middle button or Space+drag pans.",
        );
        ui.horizontal(|ui| {
            ui.radio_value(&mut self.brush_mode, BrushMode::Paint, "Brush");
            ui.radio_value(&mut self.brush_mode, BrushMode::Erase, "Eraser");
            if ui
                .add_enabled(
                    !start.view.is_whole_image(),
                    egui::Button::new("Reset view"),
                )
                .on_hover_text("Show the whole image")
                .clicked()
            {
                start.view = ViewTransform::whole_image();
            }
            if ui
                .add_enabled(start.alpha.is_some(), egui::Button::new("Mask from alpha"))
                .on_hover_text("Repaint where the image is transparent")
                .on_disabled_hover_text("The starting image has no transparent pixels")
                .clicked()
            {
                commands.push(AppCommand::EditMask(MaskEdit::FromAlpha));
            }
        });
        ui.horizontal(|ui| {
            let edits = [
                (MaskEdit::Undo, "Undo", "Ctrl+Z", start.can_undo()),
                (MaskEdit::Redo, "Redo", "Ctrl+Shift+Z", start.can_redo()),
                (
                    MaskEdit::Invert,
                    "Invert mask",
                    "Repaint what was kept",
                    true,
                ),
                (
                    MaskEdit::Clear,
                    "Clear mask",
                    "Change the whole image",
                    true,
                ),
            ];
            for (edit, label, hint, enabled) in edits {
                if ui
                    .add_enabled(enabled, egui::Button::new(label))
                    .on_hover_text(hint)
                    .clicked()
                {
                    commands.push(AppCommand::EditMask(edit));
                }
            }
        });
        ui.add(egui::Slider::new(&mut settings.brush_px, 2.0..=128.0).text("Brush size"));
        ui.add(
            egui::Slider::new(&mut settings.brush_hardness, 0.0..=1.0)
                .text("Hardness")
                .fixed_decimals(2),
        )
        .on_hover_text("1 paints a hard-edged disc; lower values fade the brush's edge");
        ui.add(egui::Slider::new(&mut settings.feather_px, 0..=32).text("Feather"));
        ui.add(
            egui::Slider::new(&mut settings.strength, 0.0..=1.0)
                .text("Strength")
                .fixed_decimals(2),
        )
        .on_hover_text("How much to change: 0 keeps the image, 1 ignores it");
        ui.horizontal(|ui| {
            let presets = [
                (
                    "Subtle",
                    STRENGTH_SUBTLE,
                    "Keep the composition, change the details",
                ),
                (
                    "Strong",
                    STRENGTH_STRONG,
                    "Keep little more than the layout",
                ),
            ];
            for (label, strength, hint) in presets {
                if ui
                    .button(label)
                    .on_hover_text(format!("{hint} (strength {strength})"))
                    .clicked()
                {
                    settings.strength = strength;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strokes_paint_and_erase_without_gaps() {
        let mut start = StartImage::new("s".into(), &RgbImage::new(100, 50));
        start.stroke_to(egui::pos2(10.0, 25.0), Brush::hard(4.0, BrushMode::Paint));
        start.stroke_to(egui::pos2(90.0, 25.0), Brush::hard(4.0, BrushMode::Paint));
        start.end_stroke();
        let mask = start.mask.as_ref().expect("mask");
        assert!(
            (10..=90).all(|x| mask.get_pixel(x, 25).0[0] == 255),
            "a continuous line"
        );
        assert_eq!(mask.get_pixel(50, 5).0[0], 0);
        start.stroke_to(egui::pos2(50.0, 25.0), Brush::hard(6.0, BrushMode::Erase));
        start.end_stroke();
        assert_eq!(start.mask.as_ref().expect("mask").get_pixel(50, 25).0[0], 0);
        assert!(start.engine_mask(2).is_some());
        start.clear_mask();
        assert_eq!(start.masked_pixels(), 0);
        assert!(start.engine_mask(2).is_none());
    }

    #[test]
    fn a_soft_brush_fades_towards_its_edge_and_never_paints_twice() {
        let mut start = StartImage::new("s".into(), &RgbImage::new(64, 64));
        let soft = Brush {
            radius_px: 20.0,
            hardness: 0.5,
            mode: BrushMode::Paint,
        };
        start.stroke_to(egui::pos2(32.0, 32.0), soft);
        start.end_stroke();
        let mask = start.mask.clone().expect("mask");
        let at = |x: u32| mask.get_pixel(x, 32).0[0];
        assert_eq!(at(32), 255, "full inside the hard core");
        assert_eq!(at(39), 255, "the core is half the radius");
        assert!(at(46) > 0 && at(46) < 255, "fading edge: {}", at(46));
        assert!(at(44) > at(48), "coverage falls outwards");
        assert_eq!(at(53), 0, "nothing beyond the radius");
        // A second dab at the same place leaves the soft edge as it was (max, not sum).
        start.stroke_to(egui::pos2(32.0, 32.0), soft);
        start.end_stroke();
        assert_eq!(
            start.mask.as_ref().expect("mask").get_pixel(46, 32),
            mask.get_pixel(46, 32)
        );
        // A soft eraser lowers the edge but keeps what it only grazes.
        let eraser = Brush {
            mode: BrushMode::Erase,
            ..soft
        };
        start.stroke_to(egui::pos2(10.0, 32.0), eraser);
        start.end_stroke();
        let after = start.mask.as_ref().expect("mask");
        assert_eq!(
            after.get_pixel(32, 32).0[0],
            255,
            "the centre is out of the eraser's reach"
        );
        assert!(after.get_pixel(20, 32).0[0] < mask.get_pixel(20, 32).0[0]);
        assert_eq!(Brush::hard(4.0, BrushMode::Paint).coverage(3.9), 1.0);
        assert_eq!(Brush::hard(4.0, BrushMode::Paint).coverage(4.1), 0.0);
    }

    #[test]
    fn undo_and_redo_step_through_strokes_and_edits() {
        let mut start = StartImage::new("s".into(), &RgbImage::new(40, 20));
        assert!(!start.can_undo());
        start.stroke_to(egui::pos2(5.0, 10.0), Brush::hard(3.0, BrushMode::Paint));
        start.stroke_to(egui::pos2(15.0, 10.0), Brush::hard(3.0, BrushMode::Paint));
        start.end_stroke();
        let one_stroke = start.mask.clone();
        start.stroke_to(egui::pos2(30.0, 10.0), Brush::hard(3.0, BrushMode::Paint));
        start.end_stroke();
        start.edit_mask(MaskEdit::Undo);
        assert_eq!(
            start.mask, one_stroke,
            "undo removes the whole second stroke"
        );
        start.edit_mask(MaskEdit::Undo);
        assert_eq!(start.masked_pixels(), 0);
        assert!(!start.can_undo());
        start.edit_mask(MaskEdit::Redo);
        assert_eq!(start.mask, one_stroke);
        let painted = start.masked_pixels();
        start.edit_mask(MaskEdit::Invert);
        assert_eq!(start.masked_pixels(), 40 * 20 - painted);
        assert!(!start.can_redo(), "a new edit forgets what was undone");
        start.edit_mask(MaskEdit::Clear);
        assert_eq!(start.masked_pixels(), 0);
        start.edit_mask(MaskEdit::Undo);
        assert_eq!(start.masked_pixels(), 40 * 20 - painted);
    }

    #[test]
    fn mask_from_alpha_repaints_the_transparent_part() {
        let alpha = GrayImage::from_fn(8, 4, |x, _| image::Luma([if x < 2 { 0 } else { 255 }]));
        let mut start = StartImage::new("a".into(), &RgbImage::new(8, 4)).with_alpha(Some(&alpha));
        start.edit_mask(MaskEdit::FromAlpha);
        assert_eq!(start.masked_pixels(), 2 * 4);
        let mut opaque = StartImage::new("b".into(), &RgbImage::new(8, 4));
        opaque.edit_mask(MaskEdit::FromAlpha);
        assert!(opaque.mask.is_none() && !opaque.can_undo());
    }

    #[test]
    fn large_starting_images_are_scaled_down() {
        let start = StartImage::new("big".into(), &RgbImage::new(2000, 1000));
        assert_eq!(
            start.image.dimensions(),
            (MAX_START_SIDE_PX, MAX_START_SIDE_PX / 2)
        );
    }
}
