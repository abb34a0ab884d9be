//! `lumos-corpus`: builds the training corpus of Lumos Studio's small default image prior —
//! colourful emoji and clip art, framed as square RGB images on white — from pinned packages
//! that `tools/corpus/fetch.sh` downloads from npm and Debian. See tools/corpus/README.md.

mod builder;
mod content_filter;
mod fluent3d;
mod framing;
mod iconify;
mod naming;
mod openclipart;
mod process;
mod raster_input;
mod report;
mod skin_tone;
mod source;
mod svg_raster;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::builder::{BuildOptions, RejectedImages, build};
use crate::source::Selection;

#[derive(Parser)]
#[command(
    name = "lumos-corpus",
    version,
    about = "Builds the default prior's training corpus"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Frame every usable image of the downloaded packages into OUT/images, with
    /// OUT/manifest.jsonl and OUT/ATTRIBUTIONS.md.
    Build(BuildArgs),
}

#[derive(Args)]
struct BuildArgs {
    /// Folder filled by tools/corpus/fetch.sh (default there: ~/.cache/lumos-corpus/dl).
    #[arg(long)]
    downloads: PathBuf,
    /// Output folder; PNGs of an earlier run in OUT/images are replaced.
    #[arg(long)]
    out: PathBuf,
    /// Side of the square output images, in pixels.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(8..=1024))]
    size: u32,
    /// At most this many images per source (for quick trial runs).
    #[arg(long)]
    limit: Option<usize>,
    /// Share of skin-tone emoji variants kept, in percent (base emoji are always kept).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u8).range(0..=100))]
    tone_keep_percent: u8,
    /// Also write the clip art the content filter rejects to OUT/rejected/<reason>/ for review.
    #[arg(long)]
    keep_rejected: bool,
}

fn main() -> Result<()> {
    let Command::Build(args) = Cli::parse().command;
    let options = BuildOptions {
        downloads: args.downloads,
        out: args.out,
        size_px: args.size,
        selection: Selection {
            tone_keep_percent: args.tone_keep_percent,
            limit_per_source: args.limit,
        },
        rejected: if args.keep_rejected {
            RejectedImages::WriteForReview
        } else {
            RejectedImages::Discard
        },
    };
    let started = Instant::now();
    let summary = build(&options)?;
    println!("{summary}");
    println!(
        "wrote {} in {:.1} s",
        options.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
