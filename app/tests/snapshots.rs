//! The main screens rendered with wgpu (lavapipe in CI) as image snapshots, and the live
//! preview, the starting image's mask overlay and the multi-view turntable drawn by the WGSL
//! shaders through egui_wgpu's paint callbacks, checked against the CPU maps. Without a wgpu adapter these tests print SKIPPED and pass, unless
//! `REQUIRE_WGPU=1`. Update snapshots deliberately: `UPDATE_SNAPSHOTS=1 cargo test -p lumos-studio --test snapshots`.

mod common;

use std::time::Duration;

use common::{AppHarness, SIZE, config, drop_file, fixture_ref, step_until, wait_for_first_run};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use lumos_shaders::{
    LatentView, MaskOverlayUniforms, MaskView, Rgba8View, latent_preview_cpu, mask_overlay_cpu,
    turntable_cpu,
};
use lumos_studio::LumosApp;
use lumos_studio::panels::start_image::{Brush, BrushMode, MASK_TINT};
use lumos_studio::preview::PreviewRenderer;
use lumos_studio::settings::SeedPolicy;
use lumos_studio::view_transform::ViewTransform;

/// Whether a wgpu adapter exists; prints SKIPPED (or fails with `REQUIRE_WGPU=1`) if not.
fn wgpu_available() -> bool {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    match pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())) {
        Ok(_) => true,
        Err(error) => {
            assert!(
                std::env::var("REQUIRE_WGPU").as_deref() != Ok("1"),
                "REQUIRE_WGPU=1 but no wgpu adapter: {error}"
            );
            println!("SKIPPED: no wgpu adapter ({error})");
            false
        }
    }
}

fn wgpu_harness() -> AppHarness {
    Harness::builder()
        .with_size(SIZE)
        .wgpu()
        .build_eframe(|cc| LumosApp::new(cc, config()).expect("app starts"))
}

/// Two results of a fixed seed, so that the screen is the same on every run.
fn generate_fixed_run(harness: &mut AppHarness) {
    drop_file(harness, &fixture_ref("ref_a.png"));
    {
        let settings = harness.state_mut().settings_mut();
        settings.sampler.steps = 4;
        settings.sampler.seed = 1234;
        settings.count = 2;
        settings.seed_policy = SeedPolicy::Locked;
    }
    harness.get_by_label("Generate").click();
    wait_for_first_run(harness);
    harness.run_steps(4);
}

/// Covers the result thumbnails: these snapshots are about the UI, and the pixels the model
/// makes are checked by the engine's own tests (they would change with any numeric change).
fn mask_results(harness: &mut AppHarness) {
    let rects: Vec<egui::Rect> = harness
        .query_all_by_label_contains("Select ")
        .map(|node| node.rect())
        .collect();
    for select in rects {
        harness.mask(egui::Rect::from_min_max(
            egui::pos2(select.left() - 4.0, select.top() - 136.0),
            egui::pos2(select.left() + 132.0, select.top() - 2.0),
        ));
    }
}

#[test]
fn main_screen_snapshots() {
    if !wgpu_available() {
        return;
    }
    let mut harness = wgpu_harness();
    assert_eq!(harness.state().preview_renderer(), PreviewRenderer::Wgpu);
    harness.run_steps(2);
    harness.snapshot("empty");
    generate_fixed_run(&mut harness);
    mask_results(&mut harness);
    harness.snapshot("results");
}

#[test]
fn viewer_wipe_snapshot() {
    if !wgpu_available() {
        return;
    }
    let mut harness = wgpu_harness();
    generate_fixed_run(&mut harness);
    harness
        .state_mut()
        .push_command(lumos_studio::commands::AppCommand::View { run: 1, index: 0 });
    harness.run_steps(2);
    harness
        .get_by_label("Compare with the first reference")
        .click();
    harness.run_steps(4);
    // Mask the result's half of the wipe (see `mask_results`); the reference's half stays.
    let image = harness
        .state()
        .viewer()
        .and_then(|v| v.image_rect)
        .expect("viewer drawn");
    mask_results(&mut harness);
    harness.mask(egui::Rect::from_min_max(
        egui::pos2(image.center().x + 2.0, image.top()),
        image.max,
    ));
    harness.snapshot("viewer_wipe");
}

#[test]
fn live_preview_shader_draws_the_cpu_map() {
    if !wgpu_available() {
        return;
    }
    let mut harness = wgpu_harness();
    harness.set_render_cursor(false);
    drop_file(&mut harness, &fixture_ref("ref_b.png"));
    harness.state_mut().settings_mut().sampler.steps = 1000;
    harness.state_mut().settings_mut().count = 16;
    harness.get_by_label("Generate").click();
    step_until(&mut harness, Duration::from_secs(120), "a preview", |app| {
        app.live_preview().last_rect().is_some()
    });
    // Render the last frame and read the latent it drew (no step in between).
    let screen = harness.render().expect("render");
    let live = harness.state().live_preview();
    let latent = live.latent().expect("latent").clone();
    let rect = live.last_rect().expect("drawn");
    let view = LatentView::new(latent.channels, latent.height, latent.width, &latent.data)
        .expect("previewable latent");
    let (w, h) = (
        rect.width().round() as usize,
        rect.height().round() as usize,
    );
    let cpu = latent_preview_cpu(&view, live.map(), w, h);
    // Compare an interior grid (edges depend on how the viewport rounds).
    let mut worst = 0u8;
    for gy in 1..16 {
        for gx in 1..16 {
            let (x, y) = (gx * w / 16, gy * h / 16);
            let on_screen =
                screen.get_pixel(rect.left() as u32 + x as u32, rect.top() as u32 + y as u32);
            let i = (y * w + x) * 4;
            for c in 0..3 {
                worst = worst.max(on_screen.0[c].abs_diff(cpu[i + c]));
            }
        }
    }
    assert!(
        worst <= 8,
        "shader preview differs from the CPU map by {worst}/255"
    );
    harness
        .state_mut()
        .push_command(lumos_studio::commands::AppCommand::CancelCurrent);
    step_until(&mut harness, Duration::from_secs(60), "the cancel", |app| {
        app.jobs().is_empty()
    });
}

#[test]
fn mask_overlay_shader_draws_the_cpu_map() {
    if !wgpu_available() {
        return;
    }
    let mut harness = wgpu_harness();
    harness.set_render_cursor(false);
    drop_file(&mut harness, &fixture_ref("ref_b.png"));
    harness.run_steps(1);
    harness
        .state_mut()
        .push_command(lumos_studio::commands::AppCommand::StartFromReference(0));
    harness.run_steps(2);
    // A disc of mask in the middle, then a larger disc after a redraw (the mask is rewritten
    // in place on the GPU), so both the first upload and the update are seen; then the same
    // mask zoomed in (the shader draws the visible part of the image).
    for (radius_of_width, zoom) in [(0.1, 1.0), (0.25, 1.0), (0.25, 3.0)] {
        {
            let start = harness.state_mut().start_image_mut().expect("start image");
            let (w, h) = start.image.dimensions();
            let center = egui::pos2(w as f32 * 0.5, h as f32 * 0.5);
            start.stroke_to(
                center,
                Brush::hard(w as f32 * radius_of_width, BrushMode::Paint),
            );
            start.end_stroke();
            // The transform works in normalised coordinates: any rect will do.
            let unit = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::Vec2::splat(1.0));
            start.view = ViewTransform::whole_image();
            start.view.zoom_about(unit, egui::pos2(0.3, 0.6), zoom);
        }
        harness.run_steps(2);
        let screen = harness.render().expect("render");
        let start = harness.state().start_image().expect("start image");
        let rect = start.last_rect().expect("drawn");
        let (w, h) = start.image.dimensions();
        let image: Vec<u8> = start
            .image
            .pixels()
            .flat_map(|p| [p.0[0], p.0[1], p.0[2], 255])
            .collect();
        let mask = start.mask().expect("painted");
        let uv = start.view.visible_uv();
        let (width_px, height_px) = (
            rect.width().round() as usize,
            rect.height().round() as usize,
        );
        let cpu = mask_overlay_cpu(
            &Rgba8View {
                width_px: w,
                height_px: h,
                bytes: &image,
            },
            &MaskView {
                width_px: w,
                height_px: h,
                bytes: mask.as_raw(),
            },
            &MaskOverlayUniforms {
                tint: MASK_TINT.map(|c| f32::from(c) / 255.0),
                view_uv: [uv.min.x, uv.min.y, uv.max.x, uv.max.y],
            },
            width_px,
            height_px,
        );
        let at = |x: usize, y: usize| {
            let i = (y * width_px + x) * 4;
            [cpu[i], cpu[i + 1], cpu[i + 2]]
        };
        // Compare an interior grid, away from edges of the mask and of the image's detail
        // (where a sub-pixel shift of the viewport changes the value).
        let (mut worst, mut compared, mut tinted) = (0u8, 0usize, 0usize);
        for gy in 1..24 {
            for gx in 1..24 {
                let (x, y) = (gx * width_px / 24, gy * height_px / 24);
                let expected = at(x, y);
                let flat =
                    [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)]
                        .iter()
                        .all(|&(nx, ny)| {
                            at(nx, ny)
                                .iter()
                                .zip(expected)
                                .all(|(a, b)| a.abs_diff(b) <= 4)
                        });
                if !flat {
                    continue;
                }
                let on_screen =
                    screen.get_pixel(rect.left() as u32 + x as u32, rect.top() as u32 + y as u32);
                for (shown, wanted) in on_screen.0.iter().zip(expected) {
                    worst = worst.max(shown.abs_diff(wanted));
                }
                compared += 1;
                let pos_in_image = start.view.image_from_canvas(
                    rect,
                    egui::vec2(w as f32, h as f32),
                    rect.min + egui::vec2(x as f32, y as f32),
                );
                tinted += usize::from(
                    mask.get_pixel(pos_in_image.x as u32, pos_in_image.y as u32)
                        .0[0]
                        == 255,
                );
            }
        }
        assert!(compared > 100, "only {compared} flat points compared");
        assert!(
            tinted > 0,
            "no compared point lies in the mask ({compared} compared, image {w}×{h}, rect {rect:?})"
        );
        assert!(
            worst <= 8,
            "radius {radius_of_width} of the width, zoom {zoom}: shader overlay differs from the CPU map by {worst}/255"
        );
    }
}

#[test]
fn turntable_shader_draws_the_cpu_blend_and_the_multiview_screen() {
    if !wgpu_available() {
        return;
    }
    let models = tempfile::tempdir().expect("tempdir");
    let spec = lumos_tests::tiny_novel_view_model(models.path());
    let mut harness = Harness::builder()
        .with_size(SIZE)
        .wgpu()
        .build_eframe(move |cc| {
            LumosApp::new(cc, lumos_studio::AppConfig::with_model(spec)).expect("app starts")
        });
    harness.set_render_cursor(false);
    drop_file(&mut harness, &fixture_ref("ref_a.png"));
    harness.get_by_label("Mode").click();
    harness.run_steps(2);
    harness.get_by_label("Multi-view").click();
    harness.run_steps(2);
    {
        let settings = harness.state_mut().settings_mut();
        settings.sampler.steps = 2;
        settings.sampler.seed = 1234;
        settings.seed_policy = SeedPolicy::Locked;
    }
    harness.get_by_label("Generate").click();
    step_until(&mut harness, Duration::from_secs(120), "the set", |app| {
        app.multiview()
            .run
            .as_ref()
            .is_some_and(|run| run.is_complete())
    });
    // Half way between the reference (0°) and the view at 30°: both show (the tiny model's
    // views hardly differ from each other, but they all differ from the reference).
    common::slider(&harness, "Orbit angle").set_value_accesskit(15.0);
    harness.run_steps(3);
    let screen = harness.render().expect("render");
    let multiview = harness.state().multiview();
    let (rect, position) = multiview.turntable.last_drawn().expect("drawn");
    assert_eq!((position.from, position.to), (0, 1));
    assert!((position.blend - 0.5).abs() < 1e-6, "{position:?}");
    let frames = multiview.run.as_ref().expect("set").frames_by_azimuth();
    let pixels = |i: usize| -> (u32, u32, Vec<u8>) {
        let image = &frames[i].image;
        let bytes = image
            .pixels()
            .flat_map(|p| [p.0[0], p.0[1], p.0[2], 255])
            .collect();
        (image.width(), image.height(), bytes)
    };
    let ((fw, fh, from), (tw, th, to)) = (pixels(position.from), pixels(position.to));
    let (w, h) = (
        rect.width().round() as usize,
        rect.height().round() as usize,
    );
    let cpu = turntable_cpu(
        &Rgba8View {
            width_px: fw,
            height_px: fh,
            bytes: &from,
        },
        &Rgba8View {
            width_px: tw,
            height_px: th,
            bytes: &to,
        },
        position.blend,
        w,
        h,
    );
    let only_from = turntable_cpu(
        &Rgba8View {
            width_px: fw,
            height_px: fh,
            bytes: &from,
        },
        &Rgba8View {
            width_px: fw,
            height_px: fh,
            bytes: &from,
        },
        0.0,
        w,
        h,
    );
    // An interior grid (edges depend on how the viewport rounds).
    let (mut worst, mut blended) = (0u8, 0usize);
    for gy in 1..16 {
        for gx in 1..16 {
            let (x, y) = (gx * w / 16, gy * h / 16);
            let on_screen =
                screen.get_pixel(rect.left() as u32 + x as u32, rect.top() as u32 + y as u32);
            let i = (y * w + x) * 4;
            for c in 0..3 {
                worst = worst.max(on_screen.0[c].abs_diff(cpu[i + c]));
                blended += usize::from(on_screen.0[c].abs_diff(only_from[i + c]) > 8);
            }
        }
    }
    assert!(
        worst <= 8,
        "the shader's turntable differs from the CPU blend by {worst}/255"
    );
    let views_differ = from.iter().zip(&to).map(|(a, b)| a.abs_diff(*b)).max();
    assert!(
        blended > 0,
        "the second view shows in the blend (views differ by {views_differ:?})"
    );
    // The screen, with the model's pixels (turntable and thumbnails) masked as in `results`.
    harness.mask(rect.expand(2.0));
    let thumbnails: Vec<egui::Rect> = harness
        .query_all_by_label_contains("Turn to ")
        .map(|node| node.rect())
        .collect();
    assert_eq!(thumbnails.len(), 7, "the reference and six views");
    for thumbnail in thumbnails {
        harness.mask(thumbnail.expand(1.0));
    }
    harness.snapshot("multiview");
}
