//! Live preview of the x0 latent, the before/after wipe and the starting image's mask overlay,
//! drawn by the WGSL shaders of
//! `lumos-shaders` through egui_wgpu paint callbacks (eframe's `custom3d_wgpu` pattern:
//! pipelines live in the renderer's callback resources, each frame adds a small callback that
//! carries only parameters). Renderers without wgpu (glow) get textures made by the CPU twin
//! of the same map.

use std::sync::Arc;

use egui_wgpu::{CallbackResources, CallbackTrait};
use image::{GrayImage, RgbImage};
use lumos_engine::protocol::LatentPreview;
use lumos_shaders::{
    LatentPreviewPipeline, LatentPreviewTarget, LatentRgbMap, LatentView, MaskOverlayPipeline,
    MaskOverlayTarget, MaskOverlayUniforms, MaskView, Rgba8View, WipePipeline, WipeTarget,
    WipeUniforms, latent_preview_cpu,
};

/// Which path draws previews.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreviewRenderer {
    /// WGSL shaders through egui_wgpu paint callbacks.
    Wgpu,
    /// Textures from the CPU map (glow renderer, tests without an adapter).
    Cpu,
}

/// Installs the pipelines into the wgpu renderer's callback resources.
pub fn install_wgpu(render_state: &egui_wgpu::RenderState) {
    let device = &render_state.device;
    let format = render_state.target_format;
    let mut renderer = render_state.renderer.write();
    renderer.callback_resources.insert(LatentResources {
        pipeline: LatentPreviewPipeline::new(device, format),
        target: None,
        version: 0,
    });
    renderer.callback_resources.insert(WipeResources {
        pipeline: WipePipeline::new(device, format),
        target: None,
        pair: None,
    });
    renderer.callback_resources.insert(MaskOverlayResources {
        pipeline: MaskOverlayPipeline::new(device, format),
        target: None,
        uploaded: None,
    });
    drop(renderer);
    crate::turntable::install_wgpu(render_state);
}

/// The latest latent of the running job, and its CPU texture when that path is used.
pub struct LivePreview {
    renderer: PreviewRenderer,
    map: LatentRgbMap,
    latent: Option<Arc<LatentPreview>>,
    version: u64,
    cpu_texture: Option<(u64, egui::TextureHandle)>,
    last_rect: Option<egui::Rect>,
}

/// Pixels per latent position of the CPU fallback texture (egui then scales it linearly).
const CPU_UPSCALE: usize = 4;

impl LivePreview {
    /// An empty preview drawn by `renderer`.
    pub fn new(renderer: PreviewRenderer) -> Self {
        Self {
            renderer,
            map: LatentRgbMap::SD1,
            latent: None,
            version: 0,
            cpu_texture: None,
            last_rect: None,
        }
    }

    /// Which path draws.
    pub fn renderer(&self) -> PreviewRenderer {
        self.renderer
    }

    /// Shows a new latent (ignored if its shape is not previewable).
    pub fn set_latent(&mut self, latent: LatentPreview) {
        if LatentView::new(latent.channels, latent.height, latent.width, &latent.data).is_ok() {
            self.map = preview_map(&latent);
            self.latent = Some(Arc::new(latent));
            self.version += 1;
        }
    }

    /// Forgets the latent (the job ended).
    pub fn clear(&mut self) {
        self.latent = None;
    }

    /// Whether there is something to show.
    pub fn has_latent(&self) -> bool {
        self.latent.is_some()
    }

    /// The latent being shown.
    pub fn latent(&self) -> Option<&Arc<LatentPreview>> {
        self.latent.as_ref()
    }

    /// The map from latent to RGB.
    pub fn map(&self) -> &LatentRgbMap {
        &self.map
    }

    /// Where the preview was drawn last (in points).
    pub fn last_rect(&self) -> Option<egui::Rect> {
        self.last_rect
    }

    /// Draws the preview into `rect`.
    pub fn paint_ui(&mut self, ui: &mut egui::Ui, rect: egui::Rect) {
        let Some(latent) = self.latent.clone() else {
            return;
        };
        self.last_rect = Some(rect);
        match self.renderer {
            PreviewRenderer::Wgpu => {
                ui.painter().add(egui_wgpu::Callback::new_paint_callback(
                    rect,
                    LatentCallback {
                        latent,
                        version: self.version,
                        map: self.map,
                    },
                ));
            }
            PreviewRenderer::Cpu => {
                let texture = self.cpu_texture(ui.ctx(), &latent);
                ui.painter().image(
                    texture.id(),
                    rect,
                    egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
                    egui::Color32::WHITE,
                );
            }
        }
    }

    fn cpu_texture(&mut self, ctx: &egui::Context, latent: &LatentPreview) -> egui::TextureHandle {
        if let Some((version, texture)) = &self.cpu_texture
            && *version == self.version
        {
            return texture.clone();
        }
        let image = cpu_preview_image(latent, &self.map);
        let texture = match self.cpu_texture.take() {
            Some((_, mut texture)) => {
                texture.set(image, egui::TextureOptions::LINEAR);
                texture
            }
            None => ctx.load_texture("live_preview", image, egui::TextureOptions::LINEAR),
        };
        self.cpu_texture = Some((self.version, texture.clone()));
        texture
    }
}

/// The latent's own map when its model brings one for four channels, else the one its
/// channel count implies.
fn preview_map(latent: &LatentPreview) -> LatentRgbMap {
    match &latent.rgb {
        Some(own) if latent.channels == 4 && own.matrix.len() == 4 => LatentRgbMap {
            weights: [own.matrix[0], own.matrix[1], own.matrix[2], own.matrix[3]],
            bias: own.bias,
        },
        _ => LatentRgbMap::for_channels(latent.channels),
    }
}

/// The CPU fallback image of a latent.
pub fn cpu_preview_image(latent: &LatentPreview, map: &LatentRgbMap) -> egui::ColorImage {
    let (width_px, height_px) = (latent.width * CPU_UPSCALE, latent.height * CPU_UPSCALE);
    match LatentView::new(latent.channels, latent.height, latent.width, &latent.data) {
        Ok(view) => egui::ColorImage::from_rgba_unmultiplied(
            [width_px, height_px],
            &latent_preview_cpu(&view, map, width_px, height_px),
        ),
        Err(_) => egui::ColorImage::new([1, 1], vec![egui::Color32::BLACK]),
    }
}

struct LatentResources {
    pipeline: LatentPreviewPipeline,
    target: Option<LatentPreviewTarget>,
    version: u64,
}

struct LatentCallback {
    latent: Arc<LatentPreview>,
    version: u64,
    map: LatentRgbMap,
}

impl CallbackTrait for LatentCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen_descriptor: &egui_wgpu::ScreenDescriptor,
        _egui_encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(res) = resources.get_mut::<LatentResources>()
            && (res.version != self.version || res.target.is_none())
            && let Ok(view) = LatentView::new(
                self.latent.channels,
                self.latent.height,
                self.latent.width,
                &self.latent.data,
            )
        {
            res.pipeline
                .upload(device, queue, &mut res.target, &view, &self.map);
            res.version = self.version;
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        if let Some(res) = resources.get::<LatentResources>()
            && let Some(target) = &res.target
        {
            res.pipeline.draw(render_pass, target);
        }
    }
}

/// Identifies the two images of a wipe (so that they are uploaded once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WipePair {
    /// Id of the image left of the split.
    pub before: u64,
    /// Id of the image right of the split.
    pub after: u64,
}

struct WipeResources {
    pipeline: WipePipeline,
    target: Option<WipeTarget>,
    pair: Option<WipePair>,
}

struct WipeCallback {
    pair: WipePair,
    before: Arc<RgbImage>,
    after: Arc<RgbImage>,
    split: f32,
    divider_half_width: f32,
    before_uv: egui::Rect,
}

/// RGBA8 bytes of an RGB image (alpha 255), as the shaders' textures take them.
pub(crate) fn rgba(image: &RgbImage) -> Vec<u8> {
    image
        .pixels()
        .flat_map(|p| [p.0[0], p.0[1], p.0[2], 255])
        .collect()
}

impl CallbackTrait for WipeCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen_descriptor: &egui_wgpu::ScreenDescriptor,
        _egui_encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(res) = resources.get_mut::<WipeResources>() {
            if res.pair != Some(self.pair) || res.target.is_none() {
                let (before, after) = (rgba(&self.before), rgba(&self.after));
                res.target = Some(res.pipeline.create_target(
                    device,
                    queue,
                    &Rgba8View {
                        width_px: self.before.width(),
                        height_px: self.before.height(),
                        bytes: &before,
                    },
                    &Rgba8View {
                        width_px: self.after.width(),
                        height_px: self.after.height(),
                        bytes: &after,
                    },
                ));
                res.pair = Some(self.pair);
            }
            if let Some(target) = &res.target {
                res.pipeline.set_split(
                    queue,
                    target,
                    &WipeUniforms {
                        split: [self.split, self.divider_half_width, 0.0, 0.0],
                        divider_color: [1.0, 1.0, 1.0, 1.0],
                        before_uv: [
                            self.before_uv.min.x,
                            self.before_uv.min.y,
                            self.before_uv.max.x,
                            self.before_uv.max.y,
                        ],
                    },
                );
            }
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        if let Some(res) = resources.get::<WipeResources>()
            && let Some(target) = &res.target
        {
            res.pipeline.draw(render_pass, target);
        }
    }
}

/// One side of a wipe: the pixels (for the shader), their texture (for the CPU path), and the
/// part of them to show in normalised texture coordinates.
pub struct WipeSide<'a> {
    /// The pixels.
    pub image: &'a Arc<RgbImage>,
    /// Their egui texture.
    pub texture: &'a egui::TextureHandle,
    /// The part to show.
    pub uv: egui::Rect,
}

/// Draws a before/after wipe into `rect`: `before` left of `split` (a fraction of the width),
/// `after` right of it.
pub fn wipe_ui(
    ui: &mut egui::Ui,
    renderer: PreviewRenderer,
    rect: egui::Rect,
    pair: WipePair,
    before: &WipeSide<'_>,
    after: &WipeSide<'_>,
    split: f32,
) {
    let divider_px = 2.0;
    match renderer {
        PreviewRenderer::Wgpu => {
            ui.painter().add(egui_wgpu::Callback::new_paint_callback(
                rect,
                WipeCallback {
                    pair,
                    before: before.image.clone(),
                    after: after.image.clone(),
                    split,
                    divider_half_width: divider_px * 0.5 / rect.width().max(1.0),
                    before_uv: before.uv,
                },
            ));
        }
        PreviewRenderer::Cpu => {
            let split_x = rect.left() + rect.width() * split;
            let left = egui::Rect::from_min_max(rect.min, egui::pos2(split_x, rect.bottom()));
            let right = egui::Rect::from_min_max(egui::pos2(split_x, rect.top()), rect.max);
            ui.painter().with_clip_rect(left).image(
                before.texture.id(),
                rect,
                before.uv,
                egui::Color32::WHITE,
            );
            ui.painter().with_clip_rect(right).image(
                after.texture.id(),
                rect,
                after.uv,
                egui::Color32::WHITE,
            );
            ui.painter().line_segment(
                [
                    egui::pos2(split_x, rect.top()),
                    egui::pos2(split_x, rect.bottom()),
                ],
                egui::Stroke::new(divider_px, egui::Color32::WHITE),
            );
        }
    }
}

/// Which image and which mask edit a mask overlay shows (so that each is uploaded once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaskOverlayVersion {
    /// Id of the image (new for every starting image).
    pub image: u64,
    /// Increases with every change of the mask.
    pub mask: u64,
}

/// What a mask overlay draws: the image, its mask (none: nothing painted) and the tint.
pub struct MaskOverlay<'a> {
    /// Ids of the image and of the mask's state.
    pub version: MaskOverlayVersion,
    /// The pixels (for the shader).
    pub image: &'a Arc<RgbImage>,
    /// The mask at the image's size (for the shader), 255 = repaint.
    pub mask: Option<&'a Arc<GrayImage>>,
    /// Tint colour (gamma space) and its opacity where the mask is full, all in [0, 1].
    pub tint: [f32; 4],
    /// Part of the image to show, in normalised texture coordinates.
    pub view_uv: egui::Rect,
}

struct MaskOverlayResources {
    pipeline: MaskOverlayPipeline,
    target: Option<MaskOverlayTarget>,
    uploaded: Option<MaskOverlayVersion>,
}

struct MaskOverlayCallback {
    version: MaskOverlayVersion,
    image: Arc<RgbImage>,
    mask: Option<Arc<GrayImage>>,
    uniforms: MaskOverlayUniforms,
}

impl MaskOverlayCallback {
    /// The mask bytes at the image's size (zeros when nothing is painted).
    fn mask_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        let (w, h) = self.image.dimensions();
        match &self.mask {
            Some(mask) if mask.dimensions() == (w, h) => std::borrow::Cow::Borrowed(mask.as_raw()),
            _ => std::borrow::Cow::Owned(vec![0; (w.max(1) * h.max(1)) as usize]),
        }
    }
}

impl CallbackTrait for MaskOverlayCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen_descriptor: &egui_wgpu::ScreenDescriptor,
        _egui_encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(res) = resources.get_mut::<MaskOverlayResources>() else {
            return Vec::new();
        };
        let new_image = res.uploaded.map(|v| v.image) != Some(self.version.image);
        if new_image || res.target.is_none() || res.uploaded != Some(self.version) {
            let (w, h) = self.image.dimensions();
            let mask_bytes = self.mask_bytes();
            let mask = MaskView {
                width_px: w.max(1),
                height_px: h.max(1),
                bytes: &mask_bytes,
            };
            // Only the mask changed: rewrite it in place (it always has the image's size).
            let rewritten = !new_image
                && res
                    .target
                    .as_ref()
                    .is_some_and(|target| res.pipeline.write_mask(queue, target, &mask));
            if !rewritten {
                let pixels = rgba(&self.image);
                res.target = Some(res.pipeline.create_target(
                    device,
                    queue,
                    &Rgba8View {
                        width_px: w,
                        height_px: h,
                        bytes: &pixels,
                    },
                    &mask,
                ));
            }
            res.uploaded = Some(self.version);
        }
        if let Some(target) = &res.target {
            res.pipeline.set_uniforms(queue, target, &self.uniforms);
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        if let Some(res) = resources.get::<MaskOverlayResources>()
            && let Some(target) = &res.target
        {
            res.pipeline.draw(render_pass, target);
        }
    }
}

/// Draws an image with its mask tinted on top into `rect` through `mask_overlay.wgsl`
/// (wgpu renderer only: under glow the caller paints its CPU textures instead).
pub fn mask_overlay_ui(ui: &mut egui::Ui, rect: egui::Rect, overlay: &MaskOverlay<'_>) {
    let uv = overlay.view_uv;
    ui.painter().add(egui_wgpu::Callback::new_paint_callback(
        rect,
        MaskOverlayCallback {
            version: overlay.version,
            image: overlay.image.clone(),
            mask: overlay.mask.cloned(),
            uniforms: MaskOverlayUniforms {
                tint: overlay.tint,
                view_uv: [uv.min.x, uv.min.y, uv.max.x, uv.max.y],
            },
        },
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use lumos_engine::models::vae::LatentRgbFactors;

    fn latent(channels: usize, rgb: Option<LatentRgbFactors>) -> LatentPreview {
        LatentPreview {
            channels,
            height: 1,
            width: 1,
            data: vec![0.0; channels],
            rgb,
        }
    }

    #[test]
    fn a_model_with_its_own_latent_colours_previews_with_them() {
        let own = LatentRgbFactors {
            matrix: vec![
                [0.5, 0.0, 0.0],
                [0.0, 0.5, 0.0],
                [0.0, 0.0, 0.5],
                [0.1, 0.1, 0.1],
            ],
            bias: [0.2, -0.2, 0.0],
        };
        let map = preview_map(&latent(4, Some(own.clone())));
        assert_eq!(map.weights[3], own.matrix[3]);
        assert_eq!(map.bias, own.bias);
        assert_eq!(preview_map(&latent(4, None)), LatentRgbMap::SD1);
        assert_eq!(preview_map(&latent(3, None)), LatentRgbMap::PIXELS);
        // A map of the wrong shape is not used.
        let short = LatentRgbFactors {
            matrix: own.matrix[..3].to_vec(),
            bias: own.bias,
        };
        assert_eq!(preview_map(&latent(4, Some(short))), LatentRgbMap::SD1);
    }
}
