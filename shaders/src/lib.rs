//! WGSL shaders of Lumos Studio, the wgpu pipelines that draw them, and CPU reference
//! implementations of the same maps.
//!
//! The WGSL files live next to this crate's `Cargo.toml` and are embedded with `include_str!`.
//! Every shader starts with `common.wgsl` (the viewport quad and the one clamped bilinear
//! filter they all use), prepended at compile time since WGSL has no include.
//! Pipelines are built once for a target format ([`LatentPreviewPipeline::new`],
//! [`WipePipeline::new`], [`MaskOverlayPipeline::new`], [`TurntablePipeline::new`]) and then
//! draw into any render pass with that format, such as the one egui_wgpu hands to a paint
//! callback, or an offscreen one in tests. The CPU functions ([`latent_preview_cpu`],
//! [`mask_overlay_cpu`], [`turntable_cpu`], all filtering with [`bilinear_clamped`]) are the
//! fallback for renderers without wgpu (glow) and the reference the offscreen tests compare
//! against.
//!
//! Boundaries: depends on wgpu only, never on egui, eframe or the engine. No threads.

use bytemuck::{Pod, Zeroable};

mod bilinear;
mod full_screen;
mod turntable;

pub use bilinear::bilinear_clamped;
use full_screen::{FullScreenPipeline, texture_2d, uniform_buffer, upload_rgba8, write_texture};
pub use turntable::{TurntablePipeline, TurntableTarget, TurntableUniforms, turntable_cpu};

/// A shader's full source: `common.wgsl` (the viewport quad and the clamped bilinear filter
/// every shader uses; WGSL has no include) followed by the shader's own file.
macro_rules! shader_source {
    ($file:literal) => {
        concat!(
            include_str!("../common.wgsl"),
            "\n",
            include_str!(concat!("../", $file))
        )
    };
}

/// `common.wgsl` alone: what every shader shares (prepended to each of them).
pub const COMMON_WGSL: &str = include_str!("../common.wgsl");
/// `latent_preview.wgsl`: 4 latent channels → RGB with a fixed linear map, bilinear upscale.
pub const LATENT_PREVIEW_WGSL: &str = shader_source!("latent_preview.wgsl");
/// `wipe.wgsl`: before/after wipe between two images.
pub const WIPE_WGSL: &str = shader_source!("wipe.wgsl");
/// `mask_overlay.wgsl`: an image with its repaint mask tinted on top.
pub const MASK_OVERLAY_WGSL: &str = shader_source!("mask_overlay.wgsl");
/// `turntable.wgsl`: a multi-view set's two views either side of an orbit angle, cross-faded.
pub const TURNTABLE_WGSL: &str = shader_source!("turntable.wgsl");

/// Every shader of the crate by file name, each with `common.wgsl` prepended (for
/// validation).
pub const ALL_WGSL: &[(&str, &str)] = &[
    ("latent_preview.wgsl", LATENT_PREVIEW_WGSL),
    ("wipe.wgsl", WIPE_WGSL),
    ("mask_overlay.wgsl", MASK_OVERLAY_WGSL),
    ("turntable.wgsl", TURNTABLE_WGSL),
];

/// A linear map from 4 latent channels to RGB in [−1, 1]: `rgb[c] = Σ_k latent[k]·weights[k][c] + bias[c]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatentRgbMap {
    /// Rows are latent channels, columns are R, G, B.
    pub weights: [[f32; 3]; 4],
    /// Added after the matrix product.
    pub bias: [f32; 3],
}

impl LatentRgbMap {
    /// The widely used approximation for SD-1.x latents (sd-vae-ft-mse shares that latent
    /// space), applied to the 0.18215-scaled latent (ComfyUI's `latent_formats.py`).
    pub const SD1: Self = Self {
        weights: [
            [0.3512, 0.2297, 0.3227],
            [0.3250, 0.4974, 0.2350],
            [-0.2829, 0.1762, 0.2721],
            [-0.2120, -0.2616, -0.7177],
        ],
        bias: [0.0, 0.0, 0.0],
    };

    /// Pixel-space priors (the built-in default): the "latent" already is RGB in [−1, 1]; the
    /// fourth channel is absent (zero).
    pub const PIXELS: Self = Self {
        weights: [
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
            [0.0, 0.0, 0.0],
        ],
        bias: [0.0, 0.0, 0.0],
    };

    /// The map for a model whose samples have `channels` channels: RGB for 3, SD-1.x for 4.
    pub fn for_channels(channels: usize) -> Self {
        if channels == 3 {
            Self::PIXELS
        } else {
            Self::SD1
        }
    }

    /// The map of one latent value, as display values in [0, 1].
    pub fn apply(&self, latent: [f32; 4]) -> [f32; 3] {
        let mut rgb = [0.0f32; 3];
        for (c, out) in rgb.iter_mut().enumerate() {
            let mut sum = self.bias[c];
            for (k, value) in latent.iter().enumerate() {
                sum += value * self.weights[k][c];
            }
            *out = (sum * 0.5 + 0.5).clamp(0.0, 1.0);
        }
        rgb
    }

    /// The uniform block the shader reads.
    pub fn uniforms(&self) -> PreviewUniforms {
        let column = |c: usize| {
            [
                self.weights[0][c],
                self.weights[1][c],
                self.weights[2][c],
                self.weights[3][c],
            ]
        };
        PreviewUniforms {
            weights_r: column(0),
            weights_g: column(1),
            weights_b: column(2),
            bias: [self.bias[0], self.bias[1], self.bias[2], 0.0],
        }
    }
}

impl Default for LatentRgbMap {
    fn default() -> Self {
        Self::SD1
    }
}

/// Mirrors `PreviewUniforms` in `latent_preview.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct PreviewUniforms {
    /// Latent channel weights of red.
    pub weights_r: [f32; 4],
    /// Latent channel weights of green.
    pub weights_g: [f32; 4],
    /// Latent channel weights of blue.
    pub weights_b: [f32; 4],
    /// RGB bias (w unused).
    pub bias: [f32; 4],
}

/// Mirrors `WipeUniforms` in `wipe.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct WipeUniforms {
    /// x: split in [0, 1] of the width; y: divider half-width (same units); z, w: padding.
    pub split: [f32; 4],
    /// Divider colour (gamma-space RGBA in [0, 1]).
    pub divider_color: [f32; 4],
    /// Part of the before image to show: min x, min y, max x, max y in texture coordinates.
    pub before_uv: [f32; 4],
}

/// Mirrors `MaskOverlayUniforms` in `mask_overlay.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct MaskOverlayUniforms {
    /// Tint colour in RGB (gamma space, [0, 1]); alpha: the tint's opacity where the mask is 1.
    pub tint: [f32; 4],
    /// Part of the image to show: min x, min y, max x, max y in texture coordinates.
    pub view_uv: [f32; 4],
}

impl MaskOverlayUniforms {
    /// The whole image with `tint` (RGB plus opacity at a full mask).
    pub fn whole_image(tint: [f32; 4]) -> Self {
        Self {
            tint,
            view_uv: [0.0, 0.0, 1.0, 1.0],
        }
    }
}

/// A borrowed single-channel mask (row-major, 255 = fully masked).
#[derive(Clone, Copy, Debug)]
pub struct MaskView<'a> {
    /// Width in pixels.
    pub width_px: u32,
    /// Height in pixels.
    pub height_px: u32,
    /// `width_px * height_px` bytes.
    pub bytes: &'a [u8],
}

/// A borrowed latent, channel-major `(4, height, width)` as the engine sends it.
#[derive(Clone, Copy, Debug)]
pub struct LatentView<'a> {
    /// Latent width.
    pub width: usize,
    /// Latent height.
    pub height: usize,
    /// Channels (3 for pixel-space priors, 4 for SD latents).
    pub channels: usize,
    /// `channels * height * width` values, channel-major.
    pub data: &'a [f32],
}

/// Why a latent cannot be previewed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatentShapeError(pub String);

impl std::fmt::Display for LatentShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LatentShapeError {}

impl<'a> LatentView<'a> {
    /// Checks that `data` holds exactly `channels × height × width` values with 3 or 4 channels.
    pub fn new(
        channels: usize,
        height: usize,
        width: usize,
        data: &'a [f32],
    ) -> Result<Self, LatentShapeError> {
        if channels != 3 && channels != 4 {
            return Err(LatentShapeError(format!(
                "latent preview needs 3 or 4 channels, got {channels}"
            )));
        }
        if width == 0 || height == 0 || data.len() != channels * height * width {
            return Err(LatentShapeError(format!(
                "latent of {channels}×{height}×{width} has {} values",
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            channels,
            data,
        })
    }

    /// The 4 channels at one position (the fourth is zero for 3-channel samples).
    pub fn at(&self, x: usize, y: usize) -> [f32; 4] {
        let plane = self.width * self.height;
        let i = y * self.width + x;
        let fourth = if self.channels == 4 {
            self.data[3 * plane + i]
        } else {
            0.0
        };
        [
            self.data[i],
            self.data[plane + i],
            self.data[2 * plane + i],
            fourth,
        ]
    }

    /// Interleaved `(height, width, 4)` values, the layout of an rgba32float texture.
    pub fn interleaved(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.data.len());
        for y in 0..self.height {
            for x in 0..self.width {
                out.extend_from_slice(&self.at(x, y));
            }
        }
        out
    }
}

/// The CPU twin of `latent_preview.wgsl`: the preview at `width_px × height_px` as RGBA8
/// (row-major, alpha 255). Same sample positions, same bilinear weights, same clamping.
pub fn latent_preview_cpu(
    latent: &LatentView<'_>,
    map: &LatentRgbMap,
    width_px: usize,
    height_px: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(width_px * height_px * 4);
    for y_px in 0..height_px {
        let v = bilinear::pixel_centre(y_px, height_px);
        for x_px in 0..width_px {
            let u = bilinear::pixel_centre(x_px, width_px);
            let value = bilinear_clamped(latent.width, latent.height, |x, y| latent.at(x, y), u, v);
            let rgb = map.apply(value);
            out.extend(rgb.iter().map(|c| (c * 255.0).round() as u8));
            out.push(255);
        }
    }
    out
}

/// The CPU twin of `mask_overlay.wgsl`: `image` (bilinear, clamp-to-edge) with `mask` (nearest)
/// tinted on top, drawn at `width_px × height_px` as RGBA8 (row-major, alpha 255). Same sample
/// positions, same weights: `out = mix(image, tint, m * tint.a)`.
///
/// An empty `image` or `mask` (or one whose bytes are too few) is read as black / unmasked.
pub fn mask_overlay_cpu(
    image: &Rgba8View<'_>,
    mask: &MaskView<'_>,
    uniforms: &MaskOverlayUniforms,
    width_px: usize,
    height_px: usize,
) -> Vec<u8> {
    let (mask_w, mask_h) = (mask.width_px.max(1) as i64, mask.height_px.max(1) as i64);
    let [min_u, min_v, max_u, max_v] = uniforms.view_uv;
    let mut out = Vec::with_capacity(width_px * height_px * 4);
    for y_px in 0..height_px {
        let v = min_v + (max_v - min_v) * bilinear::pixel_centre(y_px, height_px);
        let mask_y = ((v * mask_h as f32).floor() as i64).clamp(0, mask_h - 1);
        for x_px in 0..width_px {
            let u = min_u + (max_u - min_u) * bilinear::pixel_centre(x_px, width_px);
            let rgb = image.sample_rgb(u, v);
            let mask_x = ((u * mask_w as f32).floor() as i64).clamp(0, mask_w - 1);
            let m = f32::from(
                mask.bytes
                    .get((mask_y * mask_w + mask_x) as usize)
                    .copied()
                    .unwrap_or(0),
            ) / 255.0;
            let t = m * uniforms.tint[3];
            for (value, tint) in rgb.iter().zip(uniforms.tint) {
                let value = value + (tint - value) * t;
                out.push((value.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
            out.push(255);
        }
    }
    out
}

/// The latent-preview pipeline for one target format. Build once, draw many latents.
pub struct LatentPreviewPipeline {
    pipeline: FullScreenPipeline,
}

/// GPU resources of one latent being previewed (texture, uniforms, bind group).
pub struct LatentPreviewTarget {
    texture: wgpu::Texture,
    uniforms: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

impl LatentPreviewPipeline {
    /// Compiles `latent_preview.wgsl` for render targets of `target_format` (single-sampled,
    /// no depth: what egui_wgpu's render pass uses with default renderer options).
    pub fn new(device: &wgpu::Device, target_format: wgpu::TextureFormat) -> Self {
        let pipeline = FullScreenPipeline::new(
            device,
            "lumos_latent_preview",
            LATENT_PREVIEW_WGSL,
            std::mem::size_of::<PreviewUniforms>(),
            1,
            target_format,
        );
        Self { pipeline }
    }

    /// Uploads `latent` into `target`, (re)creating it when the latent's size changed.
    pub fn upload(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        target: &mut Option<LatentPreviewTarget>,
        latent: &LatentView<'_>,
        map: &LatentRgbMap,
    ) {
        let (width, height) = (latent.width as u32, latent.height as u32);
        let reusable = target.as_ref().is_some_and(|t| {
            let size = t.texture.size();
            size.width == width && size.height == height
        });
        if !reusable {
            let texture = texture_2d(
                device,
                "lumos_latent",
                width,
                height,
                wgpu::TextureFormat::Rgba32Float,
            );
            let uniforms = uniform_buffer(
                device,
                "lumos_latent_preview_uniforms",
                std::mem::size_of::<PreviewUniforms>(),
            );
            let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
            let bind_group = self.pipeline.bind_group(device, &uniforms, &[&view]);
            *target = Some(LatentPreviewTarget {
                texture,
                uniforms,
                bind_group,
            });
        }
        if let Some(target) = target {
            let texels = latent.interleaved();
            write_texture(queue, &target.texture, bytemuck::cast_slice(&texels), 16);
            queue.write_buffer(&target.uniforms, 0, bytemuck::bytes_of(&map.uniforms()));
        }
    }

    /// Draws `target` over the whole viewport of `pass`.
    pub fn draw(&self, pass: &mut wgpu::RenderPass<'_>, target: &LatentPreviewTarget) {
        self.pipeline.draw(pass, &target.bind_group);
    }
}

/// The before/after wipe pipeline for one target format.
pub struct WipePipeline {
    pipeline: FullScreenPipeline,
}

/// GPU resources of one before/after pair.
pub struct WipeTarget {
    uniforms: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// An RGBA8 image (gamma space, row-major) to upload.
#[derive(Clone, Copy, Debug)]
pub struct Rgba8View<'a> {
    /// Width in pixels.
    pub width_px: u32,
    /// Height in pixels.
    pub height_px: u32,
    /// `width_px * height_px * 4` bytes.
    pub bytes: &'a [u8],
}

impl Rgba8View<'_> {
    /// RGB of texel `(x, y)` in [0, 1]; bytes past the end read as black.
    pub fn rgb_at(&self, x: usize, y: usize) -> [f32; 3] {
        let i = (y * self.width_px.max(1) as usize + x) * 4;
        std::array::from_fn(|c| f32::from(self.bytes.get(i + c).copied().unwrap_or(0)) / 255.0)
    }

    /// RGB at texture coordinates `(u, v)`, filtered as `sample_bilinear_clamped` does.
    pub fn sample_rgb(&self, u: f32, v: f32) -> [f32; 3] {
        bilinear_clamped(
            self.width_px as usize,
            self.height_px as usize,
            |x, y| self.rgb_at(x, y),
            u,
            v,
        )
    }
}

impl WipePipeline {
    /// Compiles `wipe.wgsl` for render targets of `target_format`.
    pub fn new(device: &wgpu::Device, target_format: wgpu::TextureFormat) -> Self {
        let pipeline = FullScreenPipeline::new(
            device,
            "lumos_wipe",
            WIPE_WGSL,
            std::mem::size_of::<WipeUniforms>(),
            2,
            target_format,
        );
        Self { pipeline }
    }

    /// Uploads a before/after pair.
    pub fn create_target(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        before: &Rgba8View<'_>,
        after: &Rgba8View<'_>,
    ) -> WipeTarget {
        let before_view = upload_rgba8(device, queue, "lumos_wipe_before", before);
        let after_view = upload_rgba8(device, queue, "lumos_wipe_after", after);
        let uniforms = uniform_buffer(
            device,
            "lumos_wipe_uniforms",
            std::mem::size_of::<WipeUniforms>(),
        );
        let bind_group = self
            .pipeline
            .bind_group(device, &uniforms, &[&before_view, &after_view]);
        WipeTarget {
            uniforms,
            bind_group,
        }
    }

    /// Sets the split (fraction of the width) and divider of `target`.
    pub fn set_split(&self, queue: &wgpu::Queue, target: &WipeTarget, uniforms: &WipeUniforms) {
        queue.write_buffer(&target.uniforms, 0, bytemuck::bytes_of(uniforms));
    }

    /// Draws `target` over the whole viewport of `pass`.
    pub fn draw(&self, pass: &mut wgpu::RenderPass<'_>, target: &WipeTarget) {
        self.pipeline.draw(pass, &target.bind_group);
    }
}

/// The mask-overlay pipeline for one target format. Build once, draw many images.
pub struct MaskOverlayPipeline {
    pipeline: FullScreenPipeline,
}

/// GPU resources of one image and its mask (textures, uniforms, bind group).
pub struct MaskOverlayTarget {
    mask: wgpu::Texture,
    uniforms: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

impl MaskOverlayTarget {
    /// Size of the mask texture (width, height) in pixels.
    pub fn mask_size_px(&self) -> (u32, u32) {
        let size = self.mask.size();
        (size.width, size.height)
    }
}

impl MaskOverlayPipeline {
    /// Compiles `mask_overlay.wgsl` for render targets of `target_format`.
    pub fn new(device: &wgpu::Device, target_format: wgpu::TextureFormat) -> Self {
        let pipeline = FullScreenPipeline::new(
            device,
            "lumos_mask_overlay",
            MASK_OVERLAY_WGSL,
            std::mem::size_of::<MaskOverlayUniforms>(),
            2,
            target_format,
        );
        Self { pipeline }
    }

    /// Uploads an image and its mask (of any size; the shader scales it to the image).
    pub fn create_target(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        image: &Rgba8View<'_>,
        mask: &MaskView<'_>,
    ) -> MaskOverlayTarget {
        let image_view = upload_rgba8(device, queue, "lumos_mask_overlay_image", image);
        let mask_texture = texture_2d(
            device,
            "lumos_mask_overlay_mask",
            mask.width_px.max(1),
            mask.height_px.max(1),
            wgpu::TextureFormat::R8Unorm,
        );
        write_texture(queue, &mask_texture, mask.bytes, 1);
        let uniforms = uniform_buffer(
            device,
            "lumos_mask_overlay_uniforms",
            std::mem::size_of::<MaskOverlayUniforms>(),
        );
        let mask_view = mask_texture.create_view(&wgpu::TextureViewDescriptor::default());
        let bind_group = self
            .pipeline
            .bind_group(device, &uniforms, &[&image_view, &mask_view]);
        MaskOverlayTarget {
            mask: mask_texture,
            uniforms,
            bind_group,
        }
    }

    /// Replaces the mask of `target` in place. Returns `false` (and changes nothing) when
    /// `mask` is not the size of the mask texture: create a new target then.
    pub fn write_mask(
        &self,
        queue: &wgpu::Queue,
        target: &MaskOverlayTarget,
        mask: &MaskView<'_>,
    ) -> bool {
        let fits = target.mask_size_px() == (mask.width_px, mask.height_px)
            && mask.bytes.len() == (mask.width_px * mask.height_px) as usize;
        if fits {
            write_texture(queue, &target.mask, mask.bytes, 1);
        }
        fits
    }

    /// Sets the tint and the part of the image shown.
    pub fn set_uniforms(
        &self,
        queue: &wgpu::Queue,
        target: &MaskOverlayTarget,
        uniforms: &MaskOverlayUniforms,
    ) {
        queue.write_buffer(&target.uniforms, 0, bytemuck::bytes_of(uniforms));
    }

    /// Draws `target` over the whole viewport of `pass`.
    pub fn draw(&self, pass: &mut wgpu::RenderPass<'_>, target: &MaskOverlayTarget) {
        self.pipeline.draw(pass, &target.bind_group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_preview_at_texel_centres_is_the_map_of_that_texel() {
        // 2×1 latent drawn at 2×1 pixels: each pixel centre is a texel centre.
        let data = [0.5, -0.5, 1.0, 0.0, -1.0, 0.2, 0.3, 2.0];
        let latent = LatentView::new(4, 1, 2, &data).expect("shape");
        let pixels = latent_preview_cpu(&latent, &LatentRgbMap::SD1, 2, 1);
        for x in 0..2 {
            let rgb = LatentRgbMap::SD1.apply(latent.at(x, 0));
            for c in 0..3 {
                assert_eq!(pixels[x * 4 + c], (rgb[c] * 255.0).round() as u8);
            }
            assert_eq!(pixels[x * 4 + 3], 255);
        }
    }

    #[test]
    fn zero_latent_is_mid_grey_and_bad_shapes_are_refused() {
        let data = [0.0; 4 * 3 * 3];
        let latent = LatentView::new(4, 3, 3, &data).expect("shape");
        let pixels = latent_preview_cpu(&latent, &LatentRgbMap::SD1, 5, 5);
        assert!(pixels.chunks(4).all(|p| p == [128, 128, 128, 255]));
        assert!(LatentView::new(2, 3, 3, &data[..18]).is_err());
        assert!(LatentView::new(4, 3, 3, &data[..35]).is_err());
    }

    #[test]
    fn pixel_space_samples_preview_as_their_own_colours() {
        // A 3-channel 2×1 sample: red then blue, in [-1, 1].
        let data = [1.0, -1.0, -1.0, -1.0, -1.0, 1.0];
        let latent = LatentView::new(3, 1, 2, &data).expect("shape");
        let map = LatentRgbMap::for_channels(3);
        let pixels = latent_preview_cpu(&latent, &map, 2, 1);
        assert_eq!(&pixels[..4], &[255, 0, 0, 255]);
        assert_eq!(&pixels[4..], &[0, 0, 255, 255]);
        assert_eq!(LatentRgbMap::for_channels(4), LatentRgbMap::SD1);
    }

    #[test]
    fn cpu_mask_overlay_tints_only_the_masked_pixels() {
        let image = [10u8, 20, 30, 255, 200, 100, 50, 255];
        let mask = [0u8, 255];
        let uniforms = MaskOverlayUniforms::whole_image([1.0, 0.0, 0.0, 0.5]);
        let pixels = mask_overlay_cpu(
            &Rgba8View {
                width_px: 2,
                height_px: 1,
                bytes: &image,
            },
            &MaskView {
                width_px: 2,
                height_px: 1,
                bytes: &mask,
            },
            &uniforms,
            2,
            1,
        );
        assert_eq!(&pixels[..4], &[10, 20, 30, 255], "unmasked: the image");
        // Half way from (200, 100, 50) to (255, 0, 0).
        assert_eq!(&pixels[4..], &[228, 50, 25, 255], "masked: tinted");
    }

    #[test]
    fn uniforms_hold_the_map_columns() {
        let uniforms = LatentRgbMap::SD1.uniforms();
        assert_eq!(uniforms.weights_r, [0.3512, 0.3250, -0.2829, -0.2120]);
        assert_eq!(uniforms.weights_b, [0.3227, 0.2350, 0.2721, -0.7177]);
    }
}
