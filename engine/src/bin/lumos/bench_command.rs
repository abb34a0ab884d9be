//! `lumos bench`: the full-size networks (random weights) and the built-in default, timed; with
//! `--compare PYTHON` the PyTorch reference runs the same workloads in the same run right after
//! (`../shared/bench/torch_reference.py`, `tools/bench/torch_default.py`), and each row gets
//! its ratio — the figure the CPU-speed work is judged by. Quiet machine only: on 2 cores
//! anything else running distorts both sides.

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
    /// Timed runs per workload (median reported).
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

/// Runs `lumos bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let dev = lumos_engine::device::open(args.device)?;
    let wants = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let precision: Precision = args.precision.into();
    let plan = lumos_engine::bench::BenchPlan {
        runs: args.runs,
        prior: wants("prior"),
        encoder: wants("encoder"),
        vae: wants("vae"),
        default_model: wants("default"),
        dtype: lumos_engine::device::dtype(precision),
    };
    let threads = crate::rayon_threads();
    println!(
        "lumos bench on {} ({threads} threads), {precision:?}, median of {} runs after a warm-up",
        args.device, args.runs
    );
    let results = lumos_engine::bench::run(&dev, plan, &mut |r| {
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
    })?;
    if let Some(python) = &args.compare {
        compare(python, &args, &threads, &results)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the PyTorch reference for the same workloads and prints lumos / torch per row.
fn compare(
    python: &Path,
    args: &BenchArgs,
    threads: &str,
    ours: &[BenchResult],
) -> anyhow::Result<()> {
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
    let repeats = args.runs.max(1).to_string();
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
    println!("\nbeside PyTorch in the same run (lumos ÷ torch; the goal is ≤ 0.85×):");
    for r in ours {
        let torch_secs = torch_key(&r.name).and_then(|key| {
            torch
                .iter()
                .find(|v| v["what"] == key)
                .and_then(|v| v["median_s"].as_f64())
        });
        match torch_secs {
            Some(t) => println!(
                "{:<58} lumos {:>8.3} s   torch {:>8.3} s   ratio {:.2}×",
                r.name,
                r.median_secs,
                t,
                r.median_secs / t
            ),
            None => println!("{:<58} lumos {:>8.3} s   torch n/a", r.name, r.median_secs),
        }
    }
    Ok(())
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
    use super::torch_key;

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
