//! What the crate's four pipelines share: every shader here draws one quad over the whole
//! viewport from a uniform buffer at binding 0 and unfilterable 2D textures at bindings 1, 2, …
//! (each filters by hand with `common.wgsl`'s clamped bilinear). [`FullScreenPipeline`] builds
//! that layout and pipeline once, makes the bind groups and draws them, so a pipeline type only
//! says what it uploads.

use std::num::NonZeroU64;

use crate::Rgba8View;

/// A compiled full-screen shader and its bind-group layout (uniforms, then `textures` textures).
pub(crate) struct FullScreenPipeline {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    label: &'static str,
}

impl FullScreenPipeline {
    /// Compiles `source` for render targets of `target_format` (single-sampled, no depth: what
    /// egui_wgpu's render pass uses with default renderer options).
    pub(crate) fn new(
        device: &wgpu::Device,
        label: &'static str,
        source: &str,
        uniform_size: usize,
        textures: u32,
        target_format: wgpu::TextureFormat,
    ) -> Self {
        let entries: Vec<wgpu::BindGroupLayoutEntry> = std::iter::once(uniform_entry(uniform_size))
            .chain((1..=textures).map(texture_entry))
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(label),
            entries: &entries,
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some(label),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                buffers: &[],
                compilation_options: wgpu::PipelineCompilationOptions::default(),
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                targets: &[Some(wgpu::ColorTargetState {
                    format: target_format,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
                compilation_options: wgpu::PipelineCompilationOptions::default(),
            }),
            multiview_mask: None,
            cache: None,
        });
        Self {
            pipeline,
            layout,
            label,
        }
    }

    /// The bind group of `uniforms` and `textures` (in binding order, as many as the layout has).
    pub(crate) fn bind_group(
        &self,
        device: &wgpu::Device,
        uniforms: &wgpu::Buffer,
        textures: &[&wgpu::TextureView],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = std::iter::once(wgpu::BindGroupEntry {
            binding: 0,
            resource: uniforms.as_entire_binding(),
        })
        .chain(
            (1..)
                .zip(textures)
                .map(|(binding, view)| wgpu::BindGroupEntry {
                    binding,
                    resource: wgpu::BindingResource::TextureView(view),
                }),
        )
        .collect();
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.label),
            layout: &self.layout,
            entries: &entries,
        })
    }

    /// Draws `bind_group`'s textures over the whole viewport of `pass`.
    pub(crate) fn draw(&self, pass: &mut wgpu::RenderPass<'_>, bind_group: &wgpu::BindGroup) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        pass.draw(0..6, 0..1);
    }
}

fn uniform_entry(size: usize) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: NonZeroU64::new(size as u64),
        },
        count: None,
    }
}

fn texture_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: false },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        count: None,
    }
}

/// A uniform buffer of `size` bytes, written with `Queue::write_buffer`.
pub(crate) fn uniform_buffer(device: &wgpu::Device, label: &str, size: usize) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// A 2D texture to sample and to write with [`write_texture`].
pub(crate) fn texture_2d(
    device: &wgpu::Device,
    label: &str,
    width: u32,
    height: u32,
    format: wgpu::TextureFormat,
) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    })
}

/// Replaces the whole of `texture` with `bytes` (tightly packed rows).
pub(crate) fn write_texture(
    queue: &wgpu::Queue,
    texture: &wgpu::Texture,
    bytes: &[u8],
    bytes_per_pixel: u32,
) {
    let size = texture.size();
    queue.write_texture(
        texture.as_image_copy(),
        bytes,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(size.width * bytes_per_pixel),
            rows_per_image: Some(size.height),
        },
        size,
    );
}

/// Uploads an RGBA8 image (at least 1×1) and returns the view to bind.
pub(crate) fn upload_rgba8(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    label: &str,
    image: &Rgba8View<'_>,
) -> wgpu::TextureView {
    let texture = texture_2d(
        device,
        label,
        image.width_px.max(1),
        image.height_px.max(1),
        wgpu::TextureFormat::Rgba8Unorm,
    );
    write_texture(queue, &texture, image.bytes, 4);
    texture.create_view(&wgpu::TextureViewDescriptor::default())
}
