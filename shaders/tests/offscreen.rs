//! Renders the shaders offscreen with wgpu (lavapipe in CI) and compares them with the CPU
//! reference. Without an adapter the tests print SKIPPED and pass, unless `REQUIRE_WGPU=1`.

use lumos_shaders::{
    LatentPreviewPipeline, LatentRgbMap, LatentView, MaskOverlayPipeline, MaskOverlayUniforms,
    MaskView, Rgba8View, TurntablePipeline, TurntableUniforms, WipePipeline, WipeUniforms,
    latent_preview_cpu, mask_overlay_cpu, turntable_cpu,
};

const FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

fn device() -> Option<(wgpu::Device, wgpu::Queue)> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::LowPower,
        compatible_surface: None,
        ..Default::default()
    }));
    let adapter = match adapter {
        Ok(adapter) => adapter,
        Err(error) => {
            assert!(
                std::env::var("REQUIRE_WGPU").as_deref() != Ok("1"),
                "REQUIRE_WGPU=1 but no wgpu adapter: {error}"
            );
            println!("SKIPPED: no wgpu adapter ({error})");
            return None;
        }
    };
    eprintln!("adapter: {:?}", adapter.get_info());
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
            .expect("request device");
    Some((device, queue))
}

/// Renders with `draw` into a `width × height` RGBA8 texture and reads it back.
fn render(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    width: u32,
    height: u32,
    draw: impl FnOnce(&mut wgpu::RenderPass<'_>),
) -> Vec<u8> {
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("offscreen"),
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: FORMAT,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
    let padded_row = (width * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT)
        * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: u64::from(padded_row * height),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    {
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("offscreen"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &view,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                    store: wgpu::StoreOp::Store,
                },
            })],
            depth_stencil_attachment: None,
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        draw(&mut pass);
    }
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &buffer,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(padded_row),
                rows_per_image: None,
            },
        },
        texture.size(),
    );
    let submission = queue.submit([encoder.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    buffer
        .slice(..)
        .map_async(wgpu::MapMode::Read, move |r| drop(tx.send(r)));
    device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(submission),
            timeout: Some(std::time::Duration::from_secs(30)),
        })
        .expect("poll");
    rx.recv().expect("map callback").expect("map buffer");
    let mapped = buffer.slice(..).get_mapped_range().expect("mapped range");
    mapped
        .chunks_exact(padded_row as usize)
        .flat_map(|row| row[..(width * 4) as usize].iter().copied())
        .collect()
}

/// A deterministic latent with structure in every channel and values beyond the clamp range.
fn test_latent(width: usize, height: usize) -> Vec<f32> {
    let mut data = Vec::with_capacity(4 * width * height);
    for c in 0..4 {
        for y in 0..height {
            for x in 0..width {
                let (xf, yf, cf) = (x as f32, y as f32, c as f32);
                data.push(2.5 * ((0.7 + 0.3 * cf) * xf + 0.45 * yf * (cf - 1.5)).sin() - 0.2 * cf);
            }
        }
    }
    data
}

#[test]
fn latent_preview_shader_matches_cpu_map() {
    let Some((device, queue)) = device() else {
        return;
    };
    let (latent_w, latent_h) = (8, 6);
    let data = test_latent(latent_w, latent_h);
    let latent = LatentView::new(4, latent_h, latent_w, &data).expect("latent shape");
    let map = LatentRgbMap::SD1;
    let pipeline = LatentPreviewPipeline::new(&device, FORMAT);
    let mut target = None;
    pipeline.upload(&device, &queue, &mut target, &latent, &map);
    let target = target.expect("uploaded");
    // Not a multiple of the latent size, so the bilinear weights are fractional everywhere.
    let (width, height) = (70u32, 45u32);
    let gpu = render(&device, &queue, width, height, |pass| {
        pipeline.draw(pass, &target)
    });
    let cpu = latent_preview_cpu(&latent, &map, width as usize, height as usize);
    assert_eq!(gpu.len(), cpu.len());
    let mut worst = 0u8;
    let mut clamped = 0usize;
    for (i, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
        worst = worst.max(g.abs_diff(*c));
        // RGB only: alpha is always 255.
        clamped += usize::from(i % 4 != 3 && (*c == 0 || *c == 255));
    }
    assert!(
        worst <= 2,
        "GPU and CPU previews differ by up to {worst}/255"
    );
    // The test latent must exercise the clamp and the interior alike.
    let rgb_values = cpu.len() / 4 * 3;
    assert!(
        clamped > rgb_values / 50 && clamped < rgb_values / 2,
        "{clamped} of {rgb_values} values clamped"
    );
}

#[test]
fn latent_preview_reuploads_a_new_size() {
    let Some((device, queue)) = device() else {
        return;
    };
    let pipeline = LatentPreviewPipeline::new(&device, FORMAT);
    let mut target = None;
    for (w, h) in [(4usize, 4usize), (8, 8), (8, 8)] {
        let data = test_latent(w, h);
        let latent = LatentView::new(4, h, w, &data).expect("latent shape");
        pipeline.upload(&device, &queue, &mut target, &latent, &LatentRgbMap::SD1);
        let target = target.as_ref().expect("uploaded");
        let gpu = render(&device, &queue, 16, 16, |pass| pipeline.draw(pass, target));
        let cpu = latent_preview_cpu(&latent, &LatentRgbMap::SD1, 16, 16);
        let worst = gpu.iter().zip(&cpu).map(|(g, c)| g.abs_diff(*c)).max();
        assert!(worst <= Some(2), "size {w}×{h}: differ by {worst:?}");
    }
}

#[test]
fn wipe_shader_splits_before_and_after() {
    let Some((device, queue)) = device() else {
        return;
    };
    let solid = |rgba: [u8; 4]| rgba.repeat(4 * 4);
    let (before, after) = (solid([200, 10, 10, 255]), solid([10, 10, 200, 255]));
    let pipeline = WipePipeline::new(&device, FORMAT);
    let target = pipeline.create_target(
        &device,
        &queue,
        &Rgba8View {
            width_px: 4,
            height_px: 4,
            bytes: &before,
        },
        &Rgba8View {
            width_px: 4,
            height_px: 4,
            bytes: &after,
        },
    );
    pipeline.set_split(
        &queue,
        &target,
        &WipeUniforms {
            split: [0.25, 0.02, 0.0, 0.0],
            divider_color: [1.0, 1.0, 1.0, 1.0],
            before_uv: [0.0, 0.0, 1.0, 1.0],
        },
    );
    let (width, height) = (40u32, 10u32);
    let pixels = render(&device, &queue, width, height, |pass| {
        pipeline.draw(pass, &target)
    });
    let at = |x: u32, y: u32| {
        let i = ((y * width + x) * 4) as usize;
        [pixels[i], pixels[i + 1], pixels[i + 2]]
    };
    assert_eq!(
        at(2, 5),
        [200, 10, 10],
        "left of the split shows the before image"
    );
    assert_eq!(
        at(30, 5),
        [10, 10, 200],
        "right of the split shows the after image"
    );
    assert_eq!(at(10, 5), [255, 255, 255], "the divider sits at the split");
}

/// A deterministic RGBA8 image with smooth gradients and hard edges, and a mask with fully
/// masked, partly masked and unmasked pixels.
fn test_image_and_mask(width: u32, height: u32) -> (Vec<u8>, Vec<u8>) {
    let mut image = Vec::with_capacity((width * height * 4) as usize);
    let mut mask = Vec::with_capacity((width * height) as usize);
    for y in 0..height {
        for x in 0..width {
            image.extend([
                (x * 255 / width.max(2).saturating_sub(1)) as u8,
                (y * 37 % 256) as u8,
                if (x / 3 + y / 2) % 2 == 0 { 240 } else { 15 },
                255,
            ]);
            mask.push(match (x + 2 * y) % 5 {
                0 | 1 => 0,
                2 => 255,
                3 => 128,
                _ => 40,
            });
        }
    }
    (image, mask)
}

#[test]
fn mask_overlay_shader_matches_cpu_map() {
    let Some((device, queue)) = device() else {
        return;
    };
    let (image_w, image_h) = (12u32, 9u32);
    let (image, mask) = test_image_and_mask(image_w, image_h);
    let image = Rgba8View {
        width_px: image_w,
        height_px: image_h,
        bytes: &image,
    };
    let mask = MaskView {
        width_px: image_w,
        height_px: image_h,
        bytes: &mask,
    };
    let pipeline = MaskOverlayPipeline::new(&device, FORMAT);
    let target = pipeline.create_target(&device, &queue, &image, &mask);
    // The whole image, and a zoomed-in part of it (the view a zoomed canvas would ask for),
    // chosen so that pixel centres fall a quarter of a texel from mask texel boundaries, where
    // nearest sampling could round either way.
    let views = [[0.0, 0.0, 1.0, 1.0], [0.25, 1.0 / 9.0, 0.75, 5.5 / 9.0]];
    for view_uv in views {
        let uniforms = MaskOverlayUniforms {
            tint: [1.0, 40.0 / 255.0, 60.0 / 255.0, 0.5],
            view_uv,
        };
        pipeline.set_uniforms(&queue, &target, &uniforms);
        let (width, height) = (2 * image_w, 2 * image_h);
        let gpu = render(&device, &queue, width, height, |pass| {
            pipeline.draw(pass, &target)
        });
        let cpu = mask_overlay_cpu(&image, &mask, &uniforms, width as usize, height as usize);
        assert_eq!(gpu.len(), cpu.len());
        let worst = gpu.iter().zip(&cpu).map(|(g, c)| g.abs_diff(*c)).max();
        assert!(
            worst <= Some(2),
            "view {view_uv:?}: GPU and CPU overlays differ by up to {worst:?}/255"
        );
    }
}

#[test]
fn mask_overlay_rewrites_the_mask_in_place() {
    let Some((device, queue)) = device() else {
        return;
    };
    let (image, _) = test_image_and_mask(4, 4);
    let image = Rgba8View {
        width_px: 4,
        height_px: 4,
        bytes: &image,
    };
    let clear = [0u8; 16];
    let full = [255u8; 16];
    let view = |bytes| MaskView {
        width_px: 4,
        height_px: 4,
        bytes,
    };
    let pipeline = MaskOverlayPipeline::new(&device, FORMAT);
    let target = pipeline.create_target(&device, &queue, &image, &view(&clear));
    let uniforms = MaskOverlayUniforms::whole_image([0.0, 1.0, 0.0, 1.0]);
    pipeline.set_uniforms(&queue, &target, &uniforms);
    for mask in [&full, &clear] {
        assert!(pipeline.write_mask(&queue, &target, &view(mask)));
        let gpu = render(&device, &queue, 4, 4, |pass| pipeline.draw(pass, &target));
        let cpu = mask_overlay_cpu(&image, &view(mask), &uniforms, 4, 4);
        let worst = gpu.iter().zip(&cpu).map(|(g, c)| g.abs_diff(*c)).max();
        assert!(worst <= Some(2), "differ by {worst:?}");
    }
    let wrong_size = MaskView {
        width_px: 2,
        height_px: 2,
        bytes: &[0; 4],
    };
    assert!(
        !pipeline.write_mask(&queue, &target, &wrong_size),
        "a mask of another size needs a new target"
    );
}

#[test]
fn wipe_shader_filters_like_the_shared_cpu_filter() {
    let Some((device, queue)) = device() else {
        return;
    };
    // Gradients, so that the bilinear weights show; the split at the far right leaves the
    // before image almost everywhere, a zoomed-in part of it.
    let (image, _) = test_image_and_mask(6, 5);
    let view = Rgba8View {
        width_px: 6,
        height_px: 5,
        bytes: &image,
    };
    let pipeline = WipePipeline::new(&device, FORMAT);
    let target = pipeline.create_target(&device, &queue, &view, &view);
    let before_uv = [0.1, 0.2, 0.9, 0.7];
    pipeline.set_split(
        &queue,
        &target,
        &WipeUniforms {
            split: [2.0, 0.0, 0.0, 0.0],
            divider_color: [1.0, 1.0, 1.0, 1.0],
            before_uv,
        },
    );
    let (width, height) = (17u32, 13u32);
    let gpu = render(&device, &queue, width, height, |pass| {
        pipeline.draw(pass, &target)
    });
    let mut worst = 0u8;
    for y in 0..height {
        for x in 0..width {
            let (u, v) = (
                (x as f32 + 0.5) / width as f32,
                (y as f32 + 0.5) / height as f32,
            );
            let rgb = view.sample_rgb(
                before_uv[0] + (before_uv[2] - before_uv[0]) * u,
                before_uv[1] + (before_uv[3] - before_uv[1]) * v,
            );
            let i = ((y * width + x) * 4) as usize;
            for c in 0..3 {
                worst = worst.max(gpu[i + c].abs_diff((rgb[c] * 255.0).round() as u8));
            }
        }
    }
    assert!(
        worst <= 2,
        "GPU wipe and CPU filter differ by up to {worst}/255"
    );
}

/// A view of `width × height` with a gradient towards `rgb` and a hard vertical edge.
fn test_view(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..height {
        for x in 0..width {
            let t = (x + y) as f32 / (width + height - 2).max(1) as f32;
            let edge = if x < width / 2 { 1.0 } else { 0.4 };
            bytes.extend(rgb.map(|c| (f32::from(c) * t * edge) as u8));
            bytes.push(255);
        }
    }
    bytes
}

#[test]
fn turntable_shader_blends_neighbouring_views_like_the_cpu_map() {
    let Some((device, queue)) = device() else {
        return;
    };
    let colours = [[250, 20, 20], [20, 250, 20], [20, 20, 250]];
    let bytes: Vec<Vec<u8>> = colours.iter().map(|&c| test_view(9, 7, c)).collect();
    let views: Vec<Rgba8View<'_>> = bytes
        .iter()
        .map(|b| Rgba8View {
            width_px: 9,
            height_px: 7,
            bytes: b,
        })
        .collect();
    let pipeline = TurntablePipeline::new(&device, FORMAT);
    assert!(pipeline.create_target(&device, &queue, &[]).is_none());
    let target = pipeline
        .create_target(&device, &queue, &views)
        .expect("target");
    assert_eq!(target.view_count(), 3);
    let (width, height) = (23u32, 19u32);
    // Pair 2 is the last view blended towards the first: the ring closes.
    for (from, blend) in [(0usize, 0.0f32), (0, 0.3), (1, 1.0), (2, 0.75)] {
        let uniforms = TurntableUniforms::with_blend(blend);
        pipeline.set_uniforms(&queue, &target, &uniforms);
        let gpu = render(&device, &queue, width, height, |pass| {
            pipeline.draw(pass, &target, from)
        });
        let cpu = turntable_cpu(
            &views[from],
            &views[(from + 1) % 3],
            blend,
            width as usize,
            height as usize,
        );
        let worst = gpu.iter().zip(&cpu).map(|(g, c)| g.abs_diff(*c)).max();
        assert!(
            worst <= Some(2),
            "pair {from} at blend {blend}: GPU and CPU differ by {worst:?}"
        );
        // The blend shows in the pixels: the dominant channel is the nearer view's.
        let centre = (((height / 2) * width + width / 4) * 4) as usize;
        let dominant = (0..3)
            .max_by_key(|&c| gpu[centre + c])
            .expect("three channels");
        let nearer = if blend <= 0.5 { from } else { (from + 1) % 3 };
        assert_eq!(dominant, nearer, "pair {from} at blend {blend}");
    }
}
