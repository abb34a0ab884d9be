//! `lumos render-dataset`: the multi-view training and test data ([`lumos_engine::synthetic`]),
//! resumable.

use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::ProgressBar;
use lumos_engine::synthetic::{DatasetOptions, ShapeSet, write_dataset};

/// Which kinds of object to render.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Shapes {
    /// Procedural solids only, drawn as the first datasets were (reproduces the shipped
    /// multi-view model's data).
    Basic,
    /// Solids, extruded silhouettes of the texture images, and compositions of two or three
    /// solids.
    All,
}

/// The arguments of `lumos render-dataset`.
#[derive(clap::Args)]
pub struct RenderDatasetArgs {
    /// Folder of texture images (e.g. the corpus).
    #[arg(long)]
    textures: PathBuf,
    /// Output folder.
    #[arg(long, short)]
    out: PathBuf,
    /// Number of objects.
    #[arg(long, default_value_t = 1000)]
    objects: usize,
    /// Views per object.
    #[arg(long, default_value_t = 12)]
    views: usize,
    /// Side of each view in pixels.
    #[arg(long, default_value_t = 128)]
    size: u32,
    /// Seed of object 0.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Kinds of object.
    #[arg(long, value_enum, default_value_t = Shapes::All)]
    shapes: Shapes,
}

pub fn run(args: RenderDatasetArgs) -> anyhow::Result<ExitCode> {
    let options = DatasetOptions {
        textures: args.textures,
        out: args.out,
        objects: args.objects,
        views: args.views,
        size_px: args.size,
        seed: args.seed,
        shapes: match args.shapes {
            Shapes::Basic => ShapeSet::Basic,
            Shapes::All => ShapeSet::All,
        },
    };
    let bar = ProgressBar::new(args.objects as u64);
    let made = write_dataset(&options, &mut |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let test = made.iter().filter(|o| o.split == "test").count();
    println!(
        "{} objects ({} train, {test} test) × {} views in {}",
        made.len(),
        made.len() - test,
        args.views,
        options.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
