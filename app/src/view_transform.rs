//! Zoom and pan of an image shown in a rectangle of the UI (the starting image's mask view).
//!
//! Spaces: *canvas* positions are egui points on screen (`pos_in_canvas`), *image* positions
//! are pixels of the image (`pos_in_image`), *uv* is the image normalised to [0, 1]. The view
//! never shows anything outside the image: zoom is at least 1 and the visible part stays inside.

/// Largest zoom factor (a 768-pixel image then shows 24 pixels across).
pub const MAX_ZOOM: f32 = 32.0;

/// Which part of an image a view shows: `zoom` times magnified, the visible part starting at
/// `min_uv` (its top-left corner in normalised image coordinates).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewTransform {
    zoom: f32,
    min_uv: egui::Vec2,
}

impl Default for ViewTransform {
    fn default() -> Self {
        Self {
            zoom: 1.0,
            min_uv: egui::Vec2::ZERO,
        }
    }
}

impl ViewTransform {
    /// The whole image.
    pub fn whole_image() -> Self {
        Self::default()
    }

    /// The magnification (1: the whole image fills the view).
    pub fn zoom(&self) -> f32 {
        self.zoom
    }

    /// Whether the view shows the whole image.
    pub fn is_whole_image(&self) -> bool {
        *self == Self::whole_image()
    }

    /// The visible part of the image in normalised coordinates (a paint callback's or
    /// `Painter::image`'s uv rectangle).
    pub fn visible_uv(&self) -> egui::Rect {
        egui::Rect::from_min_size(self.min_uv.to_pos2(), egui::Vec2::splat(1.0 / self.zoom))
    }

    /// The image position (pixels) under `pos_in_canvas`, for a view drawn into `rect` of an
    /// image of `image_size_px`.
    pub fn image_from_canvas(
        &self,
        rect: egui::Rect,
        image_size_px: egui::Vec2,
        pos_in_canvas: egui::Pos2,
    ) -> egui::Pos2 {
        let in_view = (pos_in_canvas - rect.min) / rect.size().max(egui::Vec2::splat(1e-6));
        let uv = self.min_uv + in_view / self.zoom;
        (uv * image_size_px).to_pos2()
    }

    /// Where the image position `pos_in_image` (pixels) is drawn: the inverse of
    /// [`Self::image_from_canvas`].
    pub fn canvas_from_image(
        &self,
        rect: egui::Rect,
        image_size_px: egui::Vec2,
        pos_in_image: egui::Pos2,
    ) -> egui::Pos2 {
        let uv = pos_in_image.to_vec2() / image_size_px.max(egui::Vec2::splat(1e-6));
        let in_view = (uv - self.min_uv) * self.zoom;
        rect.min + in_view * rect.size()
    }

    /// Multiplies the zoom by `factor`, keeping the image point under `pos_in_canvas` where it
    /// is (unless that would show something outside the image).
    pub fn zoom_about(&mut self, rect: egui::Rect, pos_in_canvas: egui::Pos2, factor: f32) {
        if !factor.is_finite() || factor <= 0.0 {
            return;
        }
        let in_view = (pos_in_canvas - rect.min) / rect.size().max(egui::Vec2::splat(1e-6));
        let uv = self.min_uv + in_view / self.zoom;
        self.zoom = (self.zoom * factor).clamp(1.0, MAX_ZOOM);
        self.min_uv = uv - in_view / self.zoom;
        self.keep_inside();
    }

    /// Moves the image by `delta_in_canvas` (points), as a drag of the image does.
    pub fn pan_by(&mut self, rect: egui::Rect, delta_in_canvas: egui::Vec2) {
        let delta_in_view = delta_in_canvas / rect.size().max(egui::Vec2::splat(1e-6));
        self.min_uv -= delta_in_view / self.zoom;
        self.keep_inside();
    }

    fn keep_inside(&mut self) {
        let max = 1.0 - 1.0 / self.zoom;
        self.min_uv = egui::vec2(self.min_uv.x.clamp(0.0, max), self.min_uv.y.clamp(0.0, max));
    }
}

/// Applies the pointer input of one view: Ctrl+wheel or pinch zooms about the pointer, a
/// middle-button drag or Space+drag pans. Plain wheel is left to the enclosing scroll area.
/// `panning` is set when a drag starts and says whether that drag pans (then the caller must
/// not also use it to paint or move things). Returns whether the view changed.
pub fn view_input(
    ui: &egui::Ui,
    rect: egui::Rect,
    response: &egui::Response,
    view: &mut ViewTransform,
    panning: &mut bool,
) -> bool {
    let before = *view;
    if let Some(pos_in_canvas) = response.hover_pos() {
        let factor = ui.input(|i| i.zoom_delta());
        if factor != 1.0 {
            view.zoom_about(rect, pos_in_canvas, factor);
        }
    }
    if response.drag_started() {
        let space_down = ui.input(|i| i.key_down(egui::Key::Space));
        *panning = response.drag_started_by(egui::PointerButton::Middle) || space_down;
    }
    if *panning && response.dragged() {
        view.pan_by(rect, response.drag_delta());
    }
    *view != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rect() -> egui::Rect {
        egui::Rect::from_min_size(egui::pos2(8.0, 390.0), egui::vec2(300.0, 225.0))
    }

    const IMAGE_PX: egui::Vec2 = egui::vec2(480.0, 360.0);

    #[test]
    fn whole_image_maps_corners_to_corners() {
        let view = ViewTransform::whole_image();
        let r = rect();
        assert_eq!(
            view.image_from_canvas(r, IMAGE_PX, r.min),
            egui::pos2(0.0, 0.0)
        );
        assert_eq!(
            view.image_from_canvas(r, IMAGE_PX, r.max),
            IMAGE_PX.to_pos2()
        );
        assert_eq!(
            view.visible_uv(),
            egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0))
        );
    }

    #[test]
    fn zoom_keeps_the_point_under_the_cursor_and_reset_restores() {
        let r = rect();
        let mut view = ViewTransform::whole_image();
        let cursor = r.min + egui::vec2(120.0, 80.0);
        let before = view.image_from_canvas(r, IMAGE_PX, cursor);
        view.zoom_about(r, cursor, 4.0);
        assert_eq!(view.zoom(), 4.0);
        let after = view.image_from_canvas(r, IMAGE_PX, cursor);
        assert!(before.distance(after) < 1e-3, "{before:?} → {after:?}");
        view.pan_by(r, egui::vec2(30.0, -20.0));
        let moved = view.image_from_canvas(r, IMAGE_PX, cursor + egui::vec2(30.0, -20.0));
        assert!(before.distance(moved) < 1e-3, "the image follows the drag");
        view.zoom_about(r, cursor, 1e-3);
        assert!(
            view.is_whole_image(),
            "zooming out stops at the whole image"
        );
    }

    #[test]
    fn the_view_stays_inside_the_image() {
        let r = rect();
        let mut view = ViewTransform::whole_image();
        view.pan_by(r, egui::vec2(500.0, 500.0));
        assert!(view.is_whole_image());
        view.zoom_about(r, r.max, 2.0);
        view.pan_by(r, egui::vec2(-5000.0, -5000.0));
        let uv = view.visible_uv();
        assert!(
            uv.min.x >= 0.0 && uv.min.y >= 0.0 && uv.max.x <= 1.0 + 1e-6 && uv.max.y <= 1.0 + 1e-6,
            "{uv:?}"
        );
        assert_eq!(
            view.image_from_canvas(r, IMAGE_PX, r.max),
            IMAGE_PX.to_pos2()
        );
    }

    proptest! {
        #[test]
        fn canvas_and_image_positions_round_trip(
            zoom in 0.01f32..100.0,
            cursor in (0.0f32..1.0, 0.0f32..1.0),
            pan in (-400.0f32..400.0, -400.0f32..400.0),
            at in (-50.0f32..350.0, -50.0f32..300.0),
            image in (1.0f32..2048.0, 1.0f32..2048.0),
        ) {
            let r = rect();
            let image_size_px = egui::vec2(image.0, image.1);
            let mut view = ViewTransform::whole_image();
            view.zoom_about(r, r.lerp_inside(egui::vec2(cursor.0, cursor.1)), zoom);
            view.pan_by(r, egui::vec2(pan.0, pan.1));
            let pos_in_canvas = r.min + egui::vec2(at.0, at.1);
            let pos_in_image = view.image_from_canvas(r, image_size_px, pos_in_canvas);
            let back = view.canvas_from_image(r, image_size_px, pos_in_image);
            prop_assert!(back.distance(pos_in_canvas) < 1e-2, "{pos_in_canvas:?} → {pos_in_image:?} → {back:?}");
            let uv = view.visible_uv();
            prop_assert!(uv.min.x >= 0.0 && uv.min.y >= 0.0);
            prop_assert!(uv.max.x <= 1.0 + 1e-5 && uv.max.y <= 1.0 + 1e-5);
        }
    }
}
