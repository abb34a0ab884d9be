//! The turntable preview of a multi-view set (`turntable.wgsl`): its pipeline, the GPU
//! resources of one set, and the CPU twin.
//!
//! A set is uploaded once, its views in turntable order (by azimuth), with one bind group per
//! neighbouring pair, the last view paired with the first; dragging then only picks a pair and
//! writes the blend.

use bytemuck::{Pod, Zeroable};

use crate::bilinear::{lerp, pixel_centre};
use crate::full_screen::{FullScreenPipeline, uniform_buffer, upload_rgba8};
use crate::{Rgba8View, TURNTABLE_WGSL};

/// Mirrors `TurntableUniforms` in `turntable.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct TurntableUniforms {
    /// x: weight of the pair's second view in [0, 1]; y, z, w: padding.
    pub blend: [f32; 4],
}

impl TurntableUniforms {
    /// `blend` of the pair's second view.
    pub fn with_blend(blend: f32) -> Self {
        Self {
            blend: [blend, 0.0, 0.0, 0.0],
        }
    }
}

/// The turntable pipeline for one target format. Build once, draw many sets.
pub struct TurntablePipeline {
    pipeline: FullScreenPipeline,
}

/// GPU resources of one set: a texture per view and a bind group per neighbouring pair.
pub struct TurntableTarget {
    /// Bind group `k` shows view `k` blended towards view `k + 1` (the last towards the first).
    pairs: Vec<wgpu::BindGroup>,
    uniforms: wgpu::Buffer,
}

impl TurntableTarget {
    /// Number of views uploaded.
    pub fn view_count(&self) -> usize {
        self.pairs.len()
    }
}

impl TurntablePipeline {
    /// Compiles `turntable.wgsl` for render targets of `target_format`.
    pub fn new(device: &wgpu::Device, target_format: wgpu::TextureFormat) -> Self {
        let pipeline = FullScreenPipeline::new(
            device,
            "lumos_turntable",
            TURNTABLE_WGSL,
            std::mem::size_of::<TurntableUniforms>(),
            2,
            target_format,
        );
        Self { pipeline }
    }

    /// Uploads the views of a set, in turntable order; `None` when there are none.
    pub fn create_target(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        views: &[Rgba8View<'_>],
    ) -> Option<TurntableTarget> {
        if views.is_empty() {
            return None;
        }
        let textures: Vec<wgpu::TextureView> = views
            .iter()
            .map(|view| upload_rgba8(device, queue, "lumos_turntable_view", view))
            .collect();
        let uniforms = uniform_buffer(
            device,
            "lumos_turntable_uniforms",
            std::mem::size_of::<TurntableUniforms>(),
        );
        let pairs = (0..textures.len())
            .map(|k| {
                let next = (k + 1) % textures.len();
                self.pipeline
                    .bind_group(device, &uniforms, &[&textures[k], &textures[next]])
            })
            .collect();
        Some(TurntableTarget { pairs, uniforms })
    }

    /// Sets how far the drawn pair is blended towards its second view.
    pub fn set_uniforms(
        &self,
        queue: &wgpu::Queue,
        target: &TurntableTarget,
        uniforms: &TurntableUniforms,
    ) {
        queue.write_buffer(&target.uniforms, 0, bytemuck::bytes_of(uniforms));
    }

    /// Draws view `from` (modulo the number of views) blended towards the next one over the
    /// whole viewport of `pass`.
    pub fn draw(&self, pass: &mut wgpu::RenderPass<'_>, target: &TurntableTarget, from: usize) {
        if let Some(pair) = target.pairs.get(from % target.pairs.len().max(1)) {
            self.pipeline.draw(pass, pair);
        }
    }
}

/// The CPU twin of `turntable.wgsl`: `from` blended towards `to` by `blend` (both filtered
/// bilinearly, clamp-to-edge), drawn at `width_px × height_px` as RGBA8 (row-major, alpha 255).
pub fn turntable_cpu(
    from: &Rgba8View<'_>,
    to: &Rgba8View<'_>,
    blend: f32,
    width_px: usize,
    height_px: usize,
) -> Vec<u8> {
    let blend = blend.clamp(0.0, 1.0);
    let mut out = Vec::with_capacity(width_px * height_px * 4);
    for y_px in 0..height_px {
        let v = pixel_centre(y_px, height_px);
        for x_px in 0..width_px {
            let u = pixel_centre(x_px, width_px);
            let rgb = lerp(from.sample_rgb(u, v), to.sample_rgb(u, v), blend);
            out.extend(
                rgb.iter()
                    .map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8),
            );
            out.push(255);
        }
    }
    out
}
