//! `lumos bench`: times the full-size networks with random weights (nothing to download) and
//! reports medians and achieved GFLOP/s. FLOPs are counted analytically from the configs
//! (multiply-add = 2 FLOPs) for the work the original PyTorch code does, so GFLOP/s are
//! comparable with it even where we skip work (the single-token cross-attention).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::error::Result;
use crate::models::{AutoencoderKl, DinoConfig, DinoVit, LumosConfig, LumosI2I, VaeConfig};
use crate::sampling::{ClassifierFreeGuidance, NoisePredictor};

/// One timed workload.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// What was timed.
    pub name: String,
    /// Median seconds per run.
    pub median_secs: f64,
    /// All runs, seconds.
    pub runs_secs: Vec<f64>,
    /// Nominal FLOPs of one run.
    pub flops: f64,
    /// Median CPU seconds (all threads) per run, where the platform reports it; unlike wall
    /// time it barely moves when another process competes for the cores.
    pub median_cpu_secs: Option<f64>,
}

impl BenchResult {
    /// Achieved GFLOP/s at the median.
    pub fn gflops(&self) -> f64 {
        self.flops / self.median_secs / 1e9
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Timed runs of a workload: at least `runs`, and for a short one enough to span
/// [`MIN_TIMED_SECS`] (at most [`MAX_RUNS`]), judged by the warm-up. The median of three 0.2 s
/// runs (DINO) measured one burst of the host's other guests as often as the code; medians of
/// ten on both sides of `--compare` moved far less.
fn timed_run_count(runs: usize, warm_up_secs: f64) -> usize {
    let to_fill = (MIN_TIMED_SECS / warm_up_secs.max(1e-3)).ceil() as usize;
    runs.max(1).max(to_fill.min(MAX_RUNS))
}

/// Seconds a short workload's timed runs span at least ([`timed_run_count`]).
const MIN_TIMED_SECS: f64 = 2.0;
/// Timed runs of a short workload at most ([`timed_run_count`]).
const MAX_RUNS: usize = 15;

fn time_runs(
    name: &str,
    flops: f64,
    runs: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<BenchResult> {
    let warm_up = Instant::now();
    f()?;
    let runs = timed_run_count(runs, warm_up.elapsed().as_secs_f64());
    let mut runs_secs = Vec::with_capacity(runs);
    let mut cpu_secs = Vec::with_capacity(runs);
    for _ in 0..runs {
        let cpu_start = process_cpu_secs();
        let start = Instant::now();
        f()?;
        runs_secs.push(start.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (cpu_start, process_cpu_secs()) {
            cpu_secs.push(b - a);
        }
    }
    Ok(BenchResult {
        name: name.into(),
        median_secs: median(runs_secs.clone()),
        runs_secs,
        flops,
        median_cpu_secs: (!cpu_secs.is_empty()).then(|| median(cpu_secs)),
    })
}

/// User + system CPU time of this process so far.
fn process_cpu_secs() -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes a complete `rusage` into the pointer on success.
        let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } == 0;
        if !ok {
            return None;
        }
        // SAFETY: initialised by the successful call above.
        let usage = unsafe { usage.assume_init() };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        Some(secs(usage.ru_utime) + secs(usage.ru_stime))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Random weights (candle's default initialisers) for a model built through a VarBuilder, as
/// plain tensors like weights read from a file. (A `VarMap` would hand out variables, which
/// track gradients: every op would then record its graph, and the inference kernels that
/// skip tensors tracking gradients would be bypassed — timing a path nobody runs.)
struct RandomWeights;

impl candle_nn::var_builder::SimpleBackend for RandomWeights {
    fn get(
        &self,
        shape: candle_core::Shape,
        _name: &str,
        init: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        Ok(init.var(shape, dtype, device)?.as_detached_tensor())
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _device: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("random weights have no shape for {name}")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        false
    }
}

fn random_vb(device: &Device, dtype: DType) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(RandomWeights), dtype, device.clone())
}

/// Waits for the result (a GPU runs asynchronously) by reading one number back.
fn finish(t: &Tensor) -> Result<()> {
    t.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
    Ok(())
}

/// FLOPs of one LumosI2I forward on `batch` samples of an `h × w` latent with `l` condition
/// tokens, as the original computes it (including the cross-attention's q/k path).
pub fn lumos_flops(cfg: &LumosConfig, batch: usize, h: usize, w: usize, l: usize) -> f64 {
    let c = cfg.hidden_size as f64;
    let n = ((h / cfg.patch_size) * (w / cfg.patch_size)) as f64;
    let m = cfg.hidden_size as f64 * cfg.mlp_ratio;
    let l = l as f64;
    let per_block = 2.0 * n * c * 3.0 * c      // qkv
        + 2.0 * 2.0 * n * n * c                 // scores + weighted sum
        + 2.0 * n * c * c                       // proj
        + 2.0 * n * c * c                       // cross q
        + 2.0 * l * c * 2.0 * c                 // cross kv
        + 2.0 * 2.0 * n * l * c                 // cross attention
        + 2.0 * n * c * c                       // cross proj
        + 2.0 * 2.0 * n * c * m                 // mlp
        + 2.0 * c * 6.0 * c; // adaLN
    let p2 = (cfg.patch_size * cfg.patch_size) as f64;
    let embed = 2.0 * n * c * cfg.in_channels as f64 * p2
        + 2.0 * (256.0 * c + c * c)
        + 2.0 * l * (cfg.caption_channels as f64 * c + c * c);
    let final_layer = 2.0 * n * c * p2 * cfg.out_channels() as f64;
    batch as f64 * (cfg.depth as f64 * per_block + embed + final_layer)
}

/// FLOPs of one DINO ViT forward at `h × w`.
pub fn dino_flops(cfg: &DinoConfig, h: usize, w: usize) -> f64 {
    let c = cfg.embed_dim as f64;
    let n = ((h / cfg.patch_size) * (w / cfg.patch_size) + 1) as f64;
    let m = c * cfg.mlp_ratio;
    let per_block = 2.0 * n * c * 3.0 * c + 4.0 * n * n * c + 2.0 * n * c * c + 4.0 * n * c * m;
    let embed = 2.0 * (n - 1.0) * c * (cfg.in_chans * cfg.patch_size * cfg.patch_size) as f64;
    cfg.depth as f64 * per_block + embed
}

fn conv_flops(cin: usize, cout: usize, k: usize, h: usize, w: usize) -> f64 {
    2.0 * (cin * cout * k * k * h * w) as f64
}

fn resnet_flops(cin: usize, cout: usize, h: usize, w: usize) -> f64 {
    conv_flops(cin, cout, 3, h, w)
        + conv_flops(cout, cout, 3, h, w)
        + if cin != cout {
            conv_flops(cin, cout, 1, h, w)
        } else {
            0.0
        }
}

fn mid_flops(c: usize, h: usize, w: usize) -> f64 {
    let n = (h * w) as f64;
    let c_f = c as f64;
    2.0 * resnet_flops(c, c, h, w) + 2.0 * 4.0 * n * c_f * c_f + 4.0 * n * n * c_f
}

/// FLOPs of the VAE decoder for an `h × w` latent.
pub fn vae_decode_flops(cfg: &VaeConfig, h: usize, w: usize) -> f64 {
    let ch = &cfg.block_out_channels;
    let top = ch[ch.len() - 1];
    let (mut h, mut w) = (h, w);
    let mut total = conv_flops(cfg.latent_channels, cfg.latent_channels, 1, h, w)
        + conv_flops(cfg.latent_channels, top, 3, h, w)
        + mid_flops(top, h, w);
    let mut cin = top;
    for (i, &cout) in ch.iter().rev().enumerate() {
        for j in 0..=cfg.layers_per_block {
            total += resnet_flops(if j == 0 { cin } else { cout }, cout, h, w);
        }
        if i + 1 < ch.len() {
            h *= 2;
            w *= 2;
            total += conv_flops(cout, cout, 3, h, w);
        }
        cin = cout;
    }
    total + conv_flops(ch[0], cfg.out_channels, 3, h, w)
}

/// FLOPs of the VAE encoder for an `h × w` image.
pub fn vae_encode_flops(cfg: &VaeConfig, h: usize, w: usize) -> f64 {
    let ch = &cfg.block_out_channels;
    let (mut h, mut w) = (h, w);
    let mut total = conv_flops(cfg.in_channels, ch[0], 3, h, w);
    let mut cin = ch[0];
    for (i, &cout) in ch.iter().enumerate() {
        for j in 0..cfg.layers_per_block {
            total += resnet_flops(if j == 0 { cin } else { cout }, cout, h, w);
        }
        if i + 1 < ch.len() {
            h /= 2;
            w /= 2;
            total += conv_flops(cout, cout, 3, h, w);
        }
        cin = cout;
    }
    let top = ch[ch.len() - 1];
    total
        + mid_flops(top, h, w)
        + conv_flops(top, 2 * cfg.latent_channels, 3, h, w)
        + conv_flops(2 * cfg.latent_channels, 2 * cfg.latent_channels, 1, h, w)
}

/// Which workloads to time.
#[derive(Clone, Copy, Debug)]
pub struct BenchPlan {
    /// Timed runs per workload (after one warm-up), at least; short workloads get more
    /// ([`timed_run_count`]).
    pub runs: usize,
    /// Time the DiT sampler step.
    pub prior: bool,
    /// Time DINO.
    pub encoder: bool,
    /// Time the VAE.
    pub vae: bool,
    /// Time the built-in default model: 4 variations at 20 steps (the issue's ≤ 3 s target).
    pub default_model: bool,
    /// Weights and activations of the full-size networks (half precision is for GPUs; the
    /// built-in default always runs in f32, as the app runs it).
    pub dtype: DType,
}

/// Runs the benchmark on `device`, reporting each result as soon as it is measured.
pub fn run(
    device: &Device,
    plan: BenchPlan,
    report: &mut dyn FnMut(&BenchResult),
) -> Result<Vec<BenchResult>> {
    let mut results = Vec::new();
    let mut push = |r: BenchResult, results: &mut Vec<BenchResult>| {
        report(&r);
        results.push(r);
    };
    if plan.prior {
        let cfg = LumosConfig::xl_2();
        let vb = random_vb(device, plan.dtype);
        let model = LumosI2I::load(&cfg, vb)?;
        let (h, w) = (cfg.input_size, cfg.input_size);
        let x =
            crate::noise::gaussian(1, &[1, cfg.in_channels, h, w], device)?.to_dtype(plan.dtype)?;
        let y = (crate::noise::gaussian(2, &[1, 1, 1, cfg.caption_channels], device)? * 0.036)?
            .to_dtype(plan.dtype)?;
        let mut cfg_model = ClassifierFreeGuidance {
            uncondition: model.null_condition(1)?,
            model: &model,
            condition: y,
            scale: 4.5,
        };
        let flops = lumos_flops(&cfg, 2, h, w, 1);
        let r = time_runs(
            "LumosI2I XL/2 sampler step, 256 px, CFG (batch-2 forward)",
            flops,
            plan.runs,
            || finish(&cfg_model.predict_noise(&x, 500.0)?),
        )?;
        push(r, &mut results);
    }
    if plan.encoder {
        let cfg = DinoConfig::vit_base_16();
        let vb = random_vb(device, plan.dtype);
        let model = DinoVit::load(&cfg, vb)?;
        let x = crate::noise::gaussian(3, &[1, 3, 224, 224], device)?.to_dtype(plan.dtype)?;
        let r = time_runs(
            "DINO ViT-B/16, 224 px",
            dino_flops(&cfg, 224, 224),
            plan.runs,
            || finish(&model.forward(&x)?),
        )?;
        push(r, &mut results);
    }
    if plan.vae {
        let cfg = VaeConfig::sd_vae_ft_mse();
        let vb = random_vb(device, plan.dtype);
        let vae = AutoencoderKl::load(&cfg, vb)?;
        let latent = crate::noise::gaussian(4, &[1, 4, 32, 32], device)?.to_dtype(plan.dtype)?;
        let r = time_runs(
            "VAE decode, 32×32 → 256 px",
            vae_decode_flops(&cfg, 32, 32),
            plan.runs,
            || finish(&vae.decode(&latent)?),
        )?;
        push(r, &mut results);
        let image = Tensor::rand(-1f32, 1f32, (1, 3, 256, 256), device)?.to_dtype(plan.dtype)?;
        let r = time_runs(
            "VAE encode, 256 px",
            vae_encode_flops(&cfg, 256, 256),
            plan.runs,
            || finish(&vae.encode(&image)?.mean),
        )?;
        push(r, &mut results);
    }
    if plan.default_model {
        let spec = crate::embedded::default_spec()?;
        let model = crate::pipelines::LoadedModel::load(&spec, device)?;
        let reference = crate::embedded::file("samples/chelsea.jpg")
            .ok_or_else(|| crate::EngineError::InvalidRequest("no sample".into()))?;
        let reference = crate::imageio::decode_image(reference, "chelsea.jpg")?;
        let settings = crate::protocol::SamplerSettings::default();
        // FLOPs: 20 steps × 4 images × a batch-2 CFG forward, plus the encoder (not counted).
        let cfg = model.prior.config();
        let flops = 20.0 * 4.0 * lumos_flops(cfg, 2, cfg.input_size, cfg.input_size, 1);
        let r = time_runs(
            "built-in default: 4 variations × 20 steps (loaded)",
            flops,
            plan.runs,
            || {
                let images = crate::eval::variations(&model, &reference, 4, &settings)?;
                if images.len() != 4 {
                    return Err(crate::EngineError::InvalidRequest(
                        "expected 4 images".into(),
                    ));
                }
                Ok(())
            },
        )?;
        push(r, &mut results);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::{MAX_RUNS, timed_run_count};

    #[test]
    fn short_workloads_run_until_they_span_two_seconds() {
        assert_eq!(timed_run_count(3, 4.0), 3, "long: the asked runs");
        assert_eq!(timed_run_count(3, 0.2), 10, "0.2 s: ten runs span 2 s");
        assert_eq!(timed_run_count(12, 0.5), 12, "never fewer than asked");
        assert_eq!(timed_run_count(0, 0.0), MAX_RUNS, "capped");
        assert_eq!(timed_run_count(0, 9.0), 1, "at least one");
    }
}
