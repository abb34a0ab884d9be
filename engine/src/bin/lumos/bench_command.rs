//! `lumos bench`: the full-size networks (random weights) and the built-in default, timed; with
//! `--compare PYTHON` the PyTorch reference runs the same workloads in the same run
//! (`../shared/bench/torch_reference.py`, `tools/bench/torch_default.py`), and each row gets
//! its ratio — the figure the CPU-speed work is judged by. Quiet machine only: on 2 cores
//! anything else running distorts both sides.
//!
//! Each workload's PyTorch runs follow its own runs at once, and `--rounds N` repeats the
//! pairs, printing each round's ratios and their median: on a host where another guest takes
//! a varying share of the CPU (this project's machine loses 40–50 % of it in some minutes), a
//! ratio of two runs a minute apart measured the steal more than the code; adjacent runs see
//! much the same machine.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Context as _;
use lumos_engine::bench::BenchResult;
use lumos_engine::protocol::{DeviceChoice, Precision};

/// The arguments of `lumos bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Device: cpu, cuda, cuda:N, metal or metal:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Timed runs per workload (median reported), at least: one shorter than ~0.7 s runs
    /// until its runs span 2 s (15 at most), and PyTorch runs it as often.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Only these workloads (prior, encoder, vae, default); all by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Precision of the full-size networks (f16/bf16 for GPUs).
    #[arg(long, value_enum, default_value = "f32")]
    precision: crate::PrecisionArg,
    /// A Python with torch (and timm, diffusers for the encoder and VAE rows): run the PyTorch
    /// reference on the same workloads afterwards and print the ratios.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// With --compare: rounds of (lumos, PyTorch) per workload; the summary is the median of
    /// each row's ratios.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// The PyTorch reference script (default: `../shared/bench/torch_reference.py` beside the
    /// workspace).
    #[arg(long)]
    torch_reference: Option<PathBuf>,
}

/// The PyTorch reference's name for one of our workloads.
fn torch_key(name: &str) -> Option<&'static str> {
    [
        ("LumosI2I XL/2", "lumos_i2i_xl2_forward_b2_256px"),
        ("DINO ViT-B/16", "dino_vitb16_224_b1"),
        ("VAE decode", "sd_vae_decode_32_to_256"),
        ("VAE encode", "sd_vae_encode_256"),
        ("built-in default", "default_4_variations_20_steps"),
    ]
    .into_iter()
    .find(|(prefix, _)| name.starts_with(prefix))
    .map(|(_, key)| key)
}

/// The workloads `--only` names, in the order they run.
const WORKLOADS: [&str; 4] = ["prior", "encoder", "vae", "default"];

/// Runs `lumos bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let dev = lumos_engine::device::open(args.device)?;
    if let Some(unknown) = args.only.iter().find(|o| !WORKLOADS.contains(&o.as_str())) {
        anyhow::bail!(
            "unknown workload {unknown:?} (one of {})",
            WORKLOADS.join(", ")
        );
    }
    let wants = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let precision: Precision = args.precision.into();
    let threads = crate::rayon_threads();
    let rounds = if args.compare.is_some() {
        args.rounds.max(1)
    } else {
        1
    };
    println!(
        "lumos bench on {} ({threads} threads), {precision:?}, median of {}+ runs after a warm-up",
        args.device, args.runs
    );
    // Each row's ratio in every round, in the order the rows first appear.
    let mut ratios: Vec<(String, Vec<f64>)> = Vec::new();
    for round in 1..=rounds {
        if rounds > 1 {
            println!("\nround {round} of {rounds}");
        }
        for workload in WORKLOADS.into_iter().filter(|w| wants(w)) {
            let plan = lumos_engine::bench::BenchPlan {
                runs: args.runs,
                prior: workload == "prior",
                encoder: workload == "encoder",
                vae: workload == "vae",
                default_model: workload == "default",
                dtype: lumos_engine::device::dtype(precision),
            };
            let results = lumos_engine::bench::run(&dev, plan, &mut print_row)?;
            let Some(python) = &args.compare else {
                continue;
            };
            for (r, torch_secs) in results
                .iter()
                .zip(torch_times(python, &args, &threads, &results)?)
            {
                match torch_secs {
                    Some(t) => {
                        let ratio = r.median_secs / t;
                        println!(
                            "{:<58} torch  {t:>8.3} s   ratio {ratio:.2}× (lumos ÷ torch)",
                            r.name
                        );
                        match ratios.iter_mut().find(|(name, _)| *name == r.name) {
                            Some((_, row)) => row.push(ratio),
                            None => ratios.push((r.name.clone(), vec![ratio])),
                        }
                    }
                    None => println!("{:<58} torch n/a", r.name),
                }
            }
        }
    }
    if args.compare.is_some() {
        println!("\nbeside PyTorch, run after run (lumos ÷ torch; the goal is ≤ 0.85×):");
        for (name, row) in &ratios {
            let rounded: Vec<f64> = row.iter().map(|r| (r * 100.0).round() / 100.0).collect();
            println!(
                "{name:<58} ratio {:.2}×   (median; each round: {rounded:?})",
                median(row)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One result line.
fn print_row(r: &BenchResult) {
    println!(
        "{:<58} median {:>8.3} s   {:>7.1} GFLOP/s   cpu {}   ({:.1} GFLOP; runs {:?})",
        r.name,
        r.median_secs,
        r.gflops(),
        r.median_cpu_secs
            .map(|c| format!("{c:.2} s"))
            .unwrap_or_else(|| "n/a".into()),
        r.flops / 1e9,
        r.runs_secs
            .iter()
            .map(|s| (s * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );
}

/// The median of a non-empty list.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// Runs the PyTorch reference for the same workloads: its median seconds for each of `ours`
/// (`None` for a row it has no counterpart for).
fn torch_times(
    python: &Path,
    args: &BenchArgs,
    threads: &str,
    ours: &[BenchResult],
) -> anyhow::Result<Vec<Option<f64>>> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let reference = args
        .torch_reference
        .clone()
        .unwrap_or_else(|| workspace.join("../shared/bench/torch_reference.py"));
    if !reference.is_file() {
        anyhow::bail!(
            "the PyTorch reference {} is missing (give --torch-reference)",
            reference.display()
        );
    }
    let what: Vec<&str> = ours
        .iter()
        .filter_map(|r| match torch_key(&r.name)? {
            "lumos_i2i_xl2_forward_b2_256px" => Some("dit"),
            "dino_vitb16_224_b1" => Some("dino"),
            "sd_vae_decode_32_to_256" | "sd_vae_encode_256" => Some("vae"),
            _ => None,
        })
        .fold(Vec::new(), |mut v, w| {
            if !v.contains(&w) {
                v.push(w);
            }
            v
        });
    // As many runs as ours had (short workloads get more than `--runs`).
    let repeats = ours
        .iter()
        .map(|r| r.runs_secs.len())
        .max()
        .unwrap_or(args.runs)
        .max(1)
        .to_string();
    let mut lines = String::new();
    if !what.is_empty() {
        let mut command = Command::new(python);
        command
            .arg(&reference)
            .args(["bench", "--threads", threads, "--repeats", &repeats])
            .args(["--what", &what.join(",")]);
        if args.device != DeviceChoice::Cpu {
            command.args(["--device", "cuda"]);
        }
        lines.push_str(&run_python(command)?);
    }
    if ours.iter().any(|r| r.name.starts_with("built-in default")) {
        let mut command = Command::new(python);
        command
            .arg(workspace.join("tools/bench/torch_default.py"))
            .arg(&reference)
            .args(["--threads", threads, "--repeats", &repeats]);
        lines.push_str(&run_python(command)?);
    }
    let torch: Vec<serde_json::Value> = lines
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Ok(ours
        .iter()
        .map(|r| {
            let key = torch_key(&r.name)?;
            torch
                .iter()
                .find(|v| v["what"] == key)
                .and_then(|v| v["median_s"].as_f64())
        })
        .collect())
}

fn run_python(mut command: Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("could not run {command:?}"))?;
    if !output.status.success() {
        anyhow::bail!(
            "the PyTorch reference failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::{median, torch_key};

    #[test]
    fn the_median_of_odd_and_even_lists() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn every_workload_has_its_pytorch_name() {
        assert_eq!(
            torch_key("LumosI2I XL/2 sampler step, 256 px, CFG (batch-2 forward)"),
            Some("lumos_i2i_xl2_forward_b2_256px")
        );
        assert_eq!(torch_key("VAE encode, 256 px"), Some("sd_vae_encode_256"));
        assert_eq!(torch_key("something else"), None);
    }
}
