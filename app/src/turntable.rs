//! The turntable preview of a multi-view set: drag sideways to orbit through the views.
//!
//! The views are cameras at a few azimuths; between two of them the preview cross-fades, by
//! how far the orbit angle is from one to the next (their spacing need not be even). With
//! wgpu it is drawn by `turntable.wgsl` through an egui_wgpu paint callback (the set uploaded
//! once, each frame only a pair and a blend); other renderers draw the two thumbnails, the
//! second with the blend as opacity.

use std::sync::Arc;

use egui_wgpu::{CallbackResources, CallbackTrait};
use image::RgbImage;
use lumos_shaders::{Rgba8View, TurntablePipeline, TurntableTarget, TurntableUniforms};

use crate::multiview::MultiviewRun;
use crate::preview::{PreviewRenderer, rgba};

/// Degrees the orbit turns for a drag across the whole preview.
const DEGREES_PER_WIDTH: f64 = 360.0;

/// Which two neighbouring frames (in turntable order) an orbit angle falls between.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TurntablePosition {
    /// The frame at or before the angle.
    pub from: usize,
    /// The next frame round (the first after the last).
    pub to: usize,
    /// How far from `from` to `to`, in [0, 1].
    pub blend: f32,
}

/// Where `angle_deg` falls among frames at `azimuths_deg` (in turntable order: ascending in
/// [0°, 360°)); `None` without frames.
pub fn position_at(azimuths_deg: &[f64], angle_deg: f64) -> Option<TurntablePosition> {
    let n = azimuths_deg.len();
    if n == 0 {
        return None;
    }
    let angle = angle_deg.rem_euclid(360.0);
    let azimuth = |i: usize| azimuths_deg[i].rem_euclid(360.0);
    // The last frame at or before the angle; before the first one, the last (wrapping).
    let from = (0..n).rev().find(|&i| azimuth(i) <= angle).unwrap_or(n - 1);
    let to = (from + 1) % n;
    let span = (azimuth(to) - azimuth(from)).rem_euclid(360.0);
    let travelled = (angle - azimuth(from)).rem_euclid(360.0);
    let blend = if n == 1 || span <= f64::EPSILON {
        0.0
    } else {
        (travelled / span).clamp(0.0, 1.0) as f32
    };
    Some(TurntablePosition { from, to, blend })
}

/// Installs the turntable pipeline into the wgpu renderer's callback resources.
pub fn install_wgpu(render_state: &egui_wgpu::RenderState) {
    let pipeline = TurntablePipeline::new(&render_state.device, render_state.target_format);
    render_state
        .renderer
        .write()
        .callback_resources
        .insert(TurntableResources {
            pipeline,
            target: None,
            uploaded: None,
        });
}

/// The orbit angle the user dragged to, and where the preview was drawn last.
#[derive(Default)]
pub struct TurntablePreview {
    /// The orbit angle (azimuth) shown, in degrees.
    pub angle_deg: f64,
    last: Option<(egui::Rect, TurntablePosition)>,
}

impl TurntablePreview {
    /// Where the preview was drawn last and what it showed.
    pub fn last_drawn(&self) -> Option<(egui::Rect, TurntablePosition)> {
        self.last
    }

    /// Draws the set's frames at the current angle into a `side` × `side` square; dragging
    /// sideways turns it.
    pub fn turntable_ui(
        &mut self,
        ui: &mut egui::Ui,
        renderer: PreviewRenderer,
        run: &mut MultiviewRun,
        side: f32,
    ) -> egui::Response {
        let (rect, response) = ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::drag());
        let response = response.on_hover_text("Drag sideways to orbit through the views");
        if response.dragged() {
            let dx = f64::from(response.drag_delta().x);
            self.angle_deg = (self.angle_deg - dx * DEGREES_PER_WIDTH / f64::from(side.max(1.0)))
                .rem_euclid(360.0);
        }
        let set_key = (run.id, run.version());
        let frames = run.frames_by_azimuth_mut();
        let azimuths: Vec<f64> = frames.iter().map(|f| f.pose.azimuth_deg).collect();
        let Some(position) = position_at(&azimuths, self.angle_deg) else {
            ui.painter()
                .rect_filled(rect, 4.0, ui.visuals().extreme_bg_color);
            return response;
        };
        self.last = Some((rect, position));
        match renderer {
            PreviewRenderer::Wgpu => {
                let images: Vec<Arc<RgbImage>> = frames.iter().map(|f| f.image.clone()).collect();
                ui.painter().add(egui_wgpu::Callback::new_paint_callback(
                    rect,
                    TurntableCallback {
                        set_key,
                        frames: images,
                        from: position.from,
                        blend: position.blend,
                    },
                ));
            }
            PreviewRenderer::Cpu => {
                let ctx = ui.ctx().clone();
                let mut frames = frames;
                let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
                let from = frames[position.from].texture(&ctx, "turntable_frame");
                let to = frames[position.to].texture(&ctx, "turntable_frame");
                ui.painter()
                    .image(from.id(), rect, uv, egui::Color32::WHITE);
                ui.painter().image(
                    to.id(),
                    rect,
                    uv,
                    egui::Color32::WHITE.gamma_multiply(position.blend),
                );
            }
        }
        response
    }
}

struct TurntableResources {
    pipeline: TurntablePipeline,
    target: Option<TurntableTarget>,
    /// Run id and version of the set uploaded.
    uploaded: Option<(u64, u64)>,
}

struct TurntableCallback {
    set_key: (u64, u64),
    /// The frames in turntable order.
    frames: Vec<Arc<RgbImage>>,
    from: usize,
    blend: f32,
}

impl CallbackTrait for TurntableCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen_descriptor: &egui_wgpu::ScreenDescriptor,
        _egui_encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(res) = resources.get_mut::<TurntableResources>() else {
            return Vec::new();
        };
        if res.uploaded != Some(self.set_key) || res.target.is_none() {
            let pixels: Vec<Vec<u8>> = self.frames.iter().map(|f| rgba(f)).collect();
            let views: Vec<Rgba8View<'_>> = self
                .frames
                .iter()
                .zip(&pixels)
                .map(|(frame, bytes)| Rgba8View {
                    width_px: frame.width(),
                    height_px: frame.height(),
                    bytes,
                })
                .collect();
            res.target = res.pipeline.create_target(device, queue, &views);
            res.uploaded = Some(self.set_key);
        }
        if let Some(target) = &res.target {
            res.pipeline
                .set_uniforms(queue, target, &TurntableUniforms::with_blend(self.blend));
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        if let Some(res) = resources.get::<TurntableResources>()
            && let Some(target) = &res.target
        {
            res.pipeline.draw(render_pass, target, self.from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_angle_falls_between_its_neighbouring_views() {
        // Zero123++ with the reference: 0, 30, 90, …, 330 — uneven first step.
        let azimuths = [0.0, 30.0, 90.0, 150.0, 210.0, 270.0, 330.0];
        let at = |angle| position_at(&azimuths, angle).expect("frames");
        assert_eq!(
            at(0.0),
            TurntablePosition {
                from: 0,
                to: 1,
                blend: 0.0
            }
        );
        assert_eq!(at(15.0).blend, 0.5);
        assert_eq!((at(60.0).from, at(60.0).to, at(60.0).blend), (1, 2, 0.5));
        // Past the last view the ring closes back to the reference.
        assert_eq!((at(345.0).from, at(345.0).to, at(345.0).blend), (6, 0, 0.5));
        assert_eq!(at(-15.0), at(345.0), "negative angles wrap");
        assert_eq!(at(720.0 + 90.0).from, 2);
        // Views only (the reference not yet here): before the first, the last one blends in.
        let views = [30.0, 90.0];
        let early = position_at(&views, 0.0).expect("frames");
        assert_eq!((early.from, early.to), (1, 0));
        assert!((early.blend - 270.0 / 300.0).abs() < 1e-6);
        assert_eq!(
            position_at(&[45.0], 200.0),
            Some(TurntablePosition {
                from: 0,
                to: 0,
                blend: 0.0
            })
        );
        assert_eq!(position_at(&[], 10.0), None);
    }
}
