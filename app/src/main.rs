//! `lumos-studio`: the desktop app. See the crate docs of `lumos_studio`.

use std::path::PathBuf;
use std::time::Instant;

use lumos_studio::app::BenchConfig;
use lumos_studio::{AppConfig, LumosApp};

const USAGE: &str = "\
Usage: lumos-studio [--renderer wgpu|glow] [--bench-frames [REFERENCE]]

  --renderer wgpu|glow       drawing backend (default: wgpu, falling back to glow)
  --bench-frames [REFERENCE] generate once from REFERENCE (default: the test fixture's
                             ref_a.png), log frame times during the run, then quit
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RendererChoice {
    Wgpu,
    Glow,
}

struct Args {
    renderer: RendererChoice,
    bench: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        renderer: RendererChoice::Wgpu,
        bench: None,
    };
    let mut iter = std::env::args().skip(1).peekable();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "--renderer" => {
                args.renderer = match iter.next().as_deref() {
                    Some("wgpu") => RendererChoice::Wgpu,
                    Some("glow") => RendererChoice::Glow,
                    other => anyhow::bail!("--renderer takes wgpu or glow, not {other:?}\n{USAGE}"),
                };
            }
            "--bench-frames" => {
                let reference = match iter.peek() {
                    Some(next) if !next.starts_with("--") => iter.next().map(PathBuf::from),
                    _ => None,
                };
                args.bench = Some(reference.unwrap_or_else(|| {
                    lumos_engine::checkpoints::fixtures_root().join("pipeline_tiny/ref_a.png")
                }));
            }
            other => anyhow::bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    Ok(args)
}

/// The window icon (the same picture as the packaged icon).
fn icon() -> Option<egui::IconData> {
    let bytes = include_bytes!("../../packaging/icons/org.lumos.LumosStudio.png");
    let rgba = image::load_from_memory(bytes).ok()?.into_rgba8();
    Some(egui::IconData {
        width: rgba.width(),
        height: rgba.height(),
        rgba: rgba.into_raw(),
    })
}

fn native_options(renderer: RendererChoice, bench: bool) -> eframe::NativeOptions {
    let mut wgpu_options = egui_wgpu::WgpuConfiguration::default();
    if bench {
        // The bench measures how fast the app makes frames, not the display's refresh rate.
        wgpu_options.surface.present_mode = wgpu::PresentMode::AutoNoVsync;
    }
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("Lumos Studio")
        .with_app_id("org.lumos.LumosStudio")
        .with_inner_size([1280.0, 820.0])
        .with_min_inner_size([720.0, 480.0])
        .with_drag_and_drop(true);
    if let Some(icon) = icon() {
        viewport = viewport.with_icon(icon);
    }
    eframe::NativeOptions {
        wgpu_options,
        renderer: match renderer {
            RendererChoice::Wgpu => eframe::Renderer::Wgpu,
            RendererChoice::Glow => eframe::Renderer::Glow,
        },
        viewport,
        // Settings in the OS-standard config folder (e.g. ~/.config/lumosstudio/app.ron).
        persistence_path: directories::ProjectDirs::from("org", "Lumos", "Lumos Studio")
            .map(|dirs| dirs.config_dir().join("app.ron")),
        ..Default::default()
    }
}

fn run(renderer: RendererChoice, bench: Option<&BenchConfig>) -> eframe::Result {
    let bench = bench.cloned();
    eframe::run_native(
        "Lumos Studio",
        native_options(renderer, bench.is_some()),
        Box::new(move |cc| {
            let mut config = AppConfig::discover();
            if bench.is_some() {
                // A bench run must not touch the user's history or settings.
                config.history_dir = None;
                config.settings = Some(lumos_studio::settings::Settings::default());
            }
            config.bench = bench;
            let app = LumosApp::new(cc, config)?;
            Ok(Box::new(app))
        }),
    )
}

fn main() -> anyhow::Result<()> {
    // Before any thread starts (it sets environment variables).
    lumos_engine::device::tune_threads();
    let launched_at = Instant::now();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = parse_args()?;
    let bench = args.bench.map(|reference| BenchConfig {
        launched_at,
        reference,
        exit_when_done: true,
    });
    match run(args.renderer, bench.as_ref()) {
        Ok(()) => Ok(()),
        // No wgpu adapter (no Vulkan/Metal/DX12 driver): eframe does not fall back by itself.
        Err(error) if args.renderer == RendererChoice::Wgpu => {
            log::warn!("the wgpu renderer failed ({error}); trying the OpenGL renderer");
            run(RendererChoice::Glow, bench.as_ref())
                .map_err(|e| anyhow::anyhow!("could not open the window: {e}"))
        }
        Err(error) => Err(anyhow::anyhow!("could not open the window: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_icon_decodes() {
        let icon = icon().expect("embedded icon");
        assert_eq!((icon.width, icon.height), (256, 256));
        assert_eq!(icon.rgba.len(), 256 * 256 * 4);
    }
}
