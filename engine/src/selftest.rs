//! Parity checks against reference tensors made with the original PyTorch code (the fixture
//! layout of `shared/fixtures`: one folder per component, `config.json` + `io.safetensors` +
//! weights). Used by `lumos selftest` (so a user can check a GPU backend) and by the parity
//! tests. Every shape and hyper-parameter is read from the fixture files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::checkpoints::{self, read_config};
use crate::error::{EngineError, Result};
use crate::models::dino::condition_from_cls;
use crate::models::{AutoencoderKl, DinoConfig, DinoVit, LumosConfig, LumosI2I, VaeConfig};
use crate::pipelines::{self, LoadedModel, StepReport};
use crate::preprocess;
use crate::protocol::{InterpolationPath, SamplerSettings, Solver};
use crate::sampling::dpm_solver::{self, DpmSolverPp};
use crate::sampling::{ClassifierFreeGuidance, LowerOrderFinal, NoisePredictor, NoiseSchedule};

mod text_to_image;
mod zero123;

/// How close a result must be to its reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// `|a - ref| <= atol + rtol * |ref|` elementwise.
    Elementwise { atol: f64, rtol: f64 },
    /// `max|a - ref| <= tol * max|ref|`.
    Scaled { tol: f64 },
    /// u8 images: at most `fraction` of values differ, none by more than `levels`.
    Bytes { levels: f64, fraction: f64 },
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Elementwise { atol, rtol } => write!(f, "atol {atol:e} + rtol {rtol:e}"),
            Self::Scaled { tol } => write!(f, "{tol:e} × max|ref|"),
            Self::Bytes { levels, fraction } => {
                write!(
                    f,
                    "≤ {levels} level on ≤ {:.1}% of values",
                    fraction * 100.0
                )
            }
        }
    }
}

const PARITY: Tolerance = Tolerance::Elementwise {
    atol: 1e-4,
    rtol: 1e-4,
};
const SAMPLER: Tolerance = Tolerance::Scaled { tol: 2e-5 };

/// The tolerance of a network check run in `dtype`: the f32 one as given; in half precision
/// the largest error relative to the output's range, since f16 keeps 11 significant bits and
/// bf16 8, and rounding errors grow with depth. Measured on the fixtures with the CPU backend in
/// f16: at most 2.8e-3 × max|ref| (the VAE's decoded image), so 1e-2 leaves 3.5× headroom; bf16
/// rounds 8× coarser, hence 5e-2 (candle's CPU backend has no bf16 matmul: checked on CUDA).
pub fn network_tolerance(dtype: DType, f32_tolerance: Tolerance) -> Tolerance {
    match dtype {
        DType::F16 => Tolerance::Scaled {
            tol: HALF_TOLERANCE,
        },
        DType::BF16 => Tolerance::Scaled {
            tol: BF16_TOLERANCE,
        },
        _ => f32_tolerance,
    }
}
const HALF_TOLERANCE: f64 = 1e-2;
const BF16_TOLERANCE: f64 = 5e-2;
const EXACT: Tolerance = Tolerance::Elementwise {
    atol: 0.0,
    rtol: 0.0,
};

/// One compared tensor.
#[derive(Clone, Debug)]
pub struct Check {
    /// Fixture folder and variant, e.g. `lumos_i2i_tiny [weights.pth]`.
    pub group: String,
    /// Tensor name.
    pub name: String,
    /// Largest absolute difference.
    pub max_abs_err: f64,
    /// Largest absolute reference value.
    pub max_abs_ref: f64,
    /// The tolerance applied.
    pub tolerance: Tolerance,
    /// Whether it passed.
    pub passed: bool,
}

/// Compares `ours` with `reference` (broadcasting `ours` to the reference's shape).
pub fn compare(
    group: &str,
    name: &str,
    ours: &Tensor,
    reference: &Tensor,
    tolerance: Tolerance,
) -> Result<Check> {
    let ours = ours
        .to_dtype(DType::F64)?
        .to_device(&Device::Cpu)?
        .broadcast_as(reference.shape())?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let reference = reference
        .to_dtype(DType::F64)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let mut max_abs_err = 0f64;
    let mut max_abs_ref = 0f64;
    let mut elementwise_ok = true;
    let mut differing = 0usize;
    for (a, r) in ours.iter().zip(&reference) {
        let err = (a - r).abs();
        if !err.is_finite() {
            max_abs_err = f64::INFINITY;
        }
        max_abs_err = max_abs_err.max(err);
        max_abs_ref = max_abs_ref.max(r.abs());
        if err > 0.0 {
            differing += 1;
        }
        if let Tolerance::Elementwise { atol, rtol } = tolerance {
            elementwise_ok &= err <= atol + rtol * r.abs();
        }
    }
    let passed = max_abs_err.is_finite()
        && match tolerance {
            Tolerance::Elementwise { .. } => elementwise_ok,
            Tolerance::Scaled { tol } => max_abs_err <= tol * max_abs_ref,
            Tolerance::Bytes { levels, fraction } => {
                max_abs_err <= levels && differing as f64 <= fraction * reference.len() as f64
            }
        };
    Ok(Check {
        group: group.into(),
        name: name.into(),
        max_abs_err,
        max_abs_ref,
        tolerance,
        passed,
    })
}

/// The tensors of a fixture file, all on the CPU.
struct Fixture {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl Fixture {
    fn open(path: &Path) -> Result<Self> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
            EngineError::Checkpoint {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// A tensor as f32 on `device`.
    fn get(&self, name: &str, device: &Device) -> Result<Tensor> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| EngineError::MissingKey {
                path: self.path.clone(),
                key: name.into(),
            })?;
        let t = if t.dtype() == DType::U8 || t.dtype() == DType::I64 {
            t.clone()
        } else {
            t.to_dtype(DType::F32)?
        };
        Ok(t.to_device(device)?)
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn f32s(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self
            .get(name, &Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }

    /// Names starting with `prefix`, sorted.
    fn names_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .tensors
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        names.sort();
        names
    }
}

/// The files of `dir` that `keep` accepts, sorted by name.
fn sorted_files(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| EngineError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| keep(p))
        .collect();
    files.sort();
    Ok(files)
}

/// Weight files of a fixture folder (`weights.safetensors`, `weights.pth`) that exist.
fn weight_files(dir: &Path) -> Vec<PathBuf> {
    ["weights.safetensors", "weights.pth"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect()
}

/// The fixture's weight files; an error when it has none (a check over no weights passes
/// nothing).
fn required_weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let files = weight_files(dir);
    if files.is_empty() {
        return Err(EngineError::InvalidRequest(format!(
            "no weights in {}",
            dir.display()
        )));
    }
    Ok(files)
}

/// The folder of the network a solver fixture runs: the first word of its config's `model`
/// (e.g. `"../lumos_i2i_tiny"`), relative to the fixture, else `default` among the fixtures.
fn solver_model_dir(
    dir: &Path,
    model: Option<&str>,
    fixtures_root: &Path,
    default: &str,
) -> PathBuf {
    model
        .and_then(|m| m.split_whitespace().next())
        .map(|m| dir.join(m))
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| fixtures_root.join(default))
}

fn file_label(dir: &Path, file: &Path) -> String {
    let folder = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{folder} [{name}]")
}

/// `lumos_i2i_tiny`: the DiT forward and every intermediate, from both weight files.
pub fn check_lumos_i2i(dir: &Path, device: &Device, dtype: DType) -> Result<Vec<Check>> {
    let config: LumosConfig = read_config(&dir.join("config.json"))?;
    let io = Fixture::open(&dir.join("io.safetensors"))?;
    let x = io.get("x", device)?.to_dtype(dtype)?;
    let t = io.f32s("t")?;
    let y = io.get("y", device)?.to_dtype(dtype)?;
    let tolerance = network_tolerance(dtype, PARITY);
    let mut checks = Vec::new();
    let files = required_weight_files(dir)?;
    for file in files {
        let group = file_label(dir, &file);
        let model =
            checkpoints::build_model(&file, dtype, device, |vb| LumosI2I::load(&config, vb))?;
        let trace = model.forward_traced(&x, &t, &y)?;
        // `out` is required; intermediates are compared where the fixture records them (a
        // full-size fixture made with tools/make_fullsize_fixture.py has only x, t, y, out).
        let mut check = |name: &str, ours: &Tensor| -> Result<()> {
            if name == "out" || io.has(name) {
                checks.push(compare(
                    &group,
                    name,
                    ours,
                    &io.get(name, device)?,
                    tolerance,
                )?);
            }
            Ok(())
        };
        check("x_embed", &trace.x_embed)?;
        check("pos_embed", &trace.pos_embed)?;
        check("x_tokens", &trace.x_embed.broadcast_add(&trace.pos_embed)?)?;
        check("t_freq", &trace.t_freq)?;
        check("t_emb", &trace.t_emb)?;
        check("y_emb", &trace.y_emb)?;
        for (i, block) in trace.blocks.iter().enumerate() {
            check(&format!("blocks.{i}.adaLN"), &block.ada_ln)?;
            check(&format!("blocks.{i}.attn_out"), &block.attn_out)?;
            check(&format!("blocks.{i}.cross_attn_out"), &block.cross_attn_out)?;
            check(&format!("blocks.{i}.mlp_out"), &block.mlp_out)?;
            check(&format!("blocks.{i}.out"), &block.out)?;
        }
        check("final_out", &trace.final_out)?;
        check("out", &trace.out)?;
        if io.has("out_dpmsolver") {
            check("out_dpmsolver", &model.forward_eps(&x, &t, &y)?)?;
        }
        if io.has("y_multi") {
            let y_multi = io.get("y_multi", device)?.to_dtype(dtype)?;
            let multi = model.forward_traced(&x, &t, &y_multi)?;
            check("out_multi", &multi.out)?;
            check("multi.y_emb", &multi.y_emb)?;
            for (i, block) in multi.blocks.iter().enumerate() {
                let name = format!("multi.blocks.{i}.cross_attn_out");
                if io.has(&name) {
                    check(&name, &block.cross_attn_out)?;
                }
            }
        }
    }
    Ok(checks)
}

/// `dino_vit_tiny`: tokens, interpolated positional embedding, blocks, CLS and condition, from
/// both weight files; and the demo's preprocessing of the images in `preprocess/`.
pub fn check_dino_vit(dir: &Path, device: &Device, dtype: DType) -> Result<Vec<Check>> {
    let config: DinoConfig = read_config(&dir.join("config.json"))?;
    let io = Fixture::open(&dir.join("io.safetensors"))?;
    let mut checks = Vec::new();
    for file in weight_files(dir) {
        let group = file_label(dir, &file);
        let model =
            checkpoints::build_model(&file, dtype, device, |vb| DinoVit::load(&config, vb))?;
        for (input, prefix) in [("x224", "224"), ("x_odd", "odd")] {
            if !io.has(input) {
                continue;
            }
            let trace = model.forward_traced(&io.get(input, device)?.to_dtype(dtype)?)?;
            let mut check = |name: &str, ours: &Tensor, tol: Tolerance| -> Result<()> {
                let full = format!("{prefix}.{name}");
                if io.has(&full) {
                    let tol = network_tolerance(dtype, tol);
                    checks.push(compare(&group, &full, ours, &io.get(&full, device)?, tol)?);
                }
                Ok(())
            };
            check(
                "pos_embed_used",
                &trace.pos_embed_used,
                Tolerance::Elementwise {
                    atol: 1e-5,
                    rtol: 1e-5,
                },
            )?;
            check("tokens", &trace.tokens, PARITY)?;
            for (i, block) in trace.blocks.iter().enumerate() {
                check(&format!("blocks.{i}.out"), block, PARITY)?;
            }
            check("cls", &trace.cls, PARITY)?;
            check("cond", &condition_from_cls(&trace.cls)?, PARITY)?;
            // The untraced forward, whose last block runs for the CLS token alone.
            let full = format!("{prefix}.cls");
            if io.has(&full) {
                let cls = model.forward(&io.get(input, device)?.to_dtype(dtype)?)?;
                let reference = io.get(&full, device)?;
                let tol = network_tolerance(dtype, PARITY);
                checks.push(compare(
                    &group,
                    &format!("{full} (forward)"),
                    &cls,
                    &reference,
                    tol,
                )?);
            }
        }
    }
    let preprocess_dir = dir.join("preprocess");
    if preprocess_dir.is_dir() {
        for png in sorted_files(&preprocess_dir, |p| {
            p.extension().is_some_and(|e| e == "png")
        })? {
            let reference = Fixture::open(&png.with_extension("safetensors"))?;
            checks.extend(check_preprocess(&png, &reference, device)?);
        }
    }
    Ok(checks)
}

fn check_preprocess(png: &Path, reference: &Fixture, device: &Device) -> Result<Vec<Check>> {
    let group = format!(
        "dino_vit_tiny/preprocess [{}]",
        png.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let img = crate::imageio::load_image(png)?;
    let mut checks = Vec::new();
    let size_hw = reference
        .get("resized_size_hw", &Device::Cpu)?
        .to_vec1::<i64>()?;
    let (w, h) = preprocess::resized_dims(img.width(), img.height(), 224);
    let ours_hw = Tensor::new(&[f64::from(h), f64::from(w)], &Device::Cpu)?;
    let ref_hw = Tensor::new(
        size_hw.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        &Device::Cpu,
    )?;
    checks.push(compare(
        &group,
        "resized_size_hw",
        &ours_hw,
        &ref_hw,
        EXACT,
    )?);
    let cropped = preprocess::resize_and_crop(&img, 224, None);
    // (h, w, 3) → (3, h, w)
    let ours_u8 = Tensor::from_vec(
        cropped.as_raw().clone(),
        (cropped.height() as usize, cropped.width() as usize, 3),
        &Device::Cpu,
    )?
    .permute((2, 0, 1))?;
    let ref_u8 = reference.get("resized_cropped_u8", &Device::Cpu)?;
    checks.push(compare(
        &group,
        "resized_cropped_u8",
        &ours_u8,
        &ref_u8,
        Tolerance::Bytes {
            levels: 1.0,
            fraction: 1.0,
        },
    )?);
    // Normalisation is exact given the same bytes.
    let (c, hh, ww) = ref_u8.dims3()?;
    let ref_img = image::RgbImage::from_raw(
        ww as u32,
        hh as u32,
        ref_u8.permute((1, 2, 0))?.flatten_all()?.to_vec1::<u8>()?,
    )
    .ok_or_else(|| EngineError::InvalidRequest(format!("bad u8 image of {c} channels")))?;
    checks.push(compare(
        &group,
        "pixel_values (from reference bytes)",
        &preprocess::normalize(&ref_img, device)?,
        &reference.get("pixel_values", device)?,
        EXACT,
    )?);
    // One uint8 level is 1 / (255 · std) ≈ 0.0175 in normalised units.
    checks.push(compare(
        &group,
        "pixel_values",
        &preprocess::normalize(&cropped, device)?,
        &reference.get("pixel_values", device)?,
        Tolerance::Elementwise {
            atol: 0.018,
            rtol: 0.0,
        },
    )?);
    Ok(checks)
}

/// `vae_tiny`: encoder and decoder intermediates, with both attention key spellings.
pub fn check_vae(dir: &Path, device: &Device, dtype: DType) -> Result<Vec<Check>> {
    let config: VaeConfig = read_config(&dir.join("config.json"))?;
    let io = Fixture::open(&dir.join("io.safetensors"))?;
    let files = sorted_files(dir, |p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("diffusion_pytorch_model"))
    })?;
    let mut checks = Vec::new();
    for file in files {
        let group = file_label(dir, &file);
        let vae =
            checkpoints::build_model(&file, dtype, device, |vb| AutoencoderKl::load(&config, vb))?;
        let enc = vae.encode_traced(&io.get("image", device)?.to_dtype(dtype)?)?;
        let posterior = AutoencoderKl::posterior(&enc.moments)?;
        let dec = vae.decode_traced(&io.get("latent", device)?.to_dtype(dtype)?)?;
        let mut ours: Vec<(String, Tensor)> = vec![
            ("enc.conv_in".into(), enc.conv_in.clone()),
            ("enc.mid_block".into(), enc.mid_block.clone()),
            ("enc.out".into(), enc.out.clone()),
            ("moments".into(), enc.moments.clone()),
            ("posterior_mean".into(), posterior.mean.clone()),
            ("posterior_logvar".into(), posterior.logvar.clone()),
            ("posterior_std".into(), posterior.std()?),
            ("dec.post_quant_conv".into(), dec.post_quant_conv.clone()),
            ("dec.conv_in".into(), dec.conv_in.clone()),
            ("dec.mid_block".into(), dec.mid_block.clone()),
            ("decoded".into(), dec.decoded.clone()),
        ];
        ours.extend(
            enc.down_blocks
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("enc.down_blocks.{i}"), t.clone())),
        );
        ours.extend(
            dec.up_blocks
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("dec.up_blocks.{i}"), t.clone())),
        );
        // `decoded` and the posterior mean are required; intermediates where recorded.
        for (name, tensor) in ours {
            if name == "decoded" || name == "posterior_mean" || io.has(&name) {
                checks.push(compare(
                    &group,
                    &name,
                    &tensor,
                    &io.get(&name, device)?,
                    network_tolerance(dtype, PARITY),
                )?);
            }
        }
    }
    Ok(checks)
}

/// Records what a predictor is asked and answers (for trace comparisons).
struct Recording<'a> {
    inner: &'a mut dyn NoisePredictor,
    calls: Vec<(Tensor, f32, Tensor)>,
}

impl NoisePredictor for Recording<'_> {
    fn predict_noise(&mut self, x: &Tensor, net_t: f32) -> Result<Tensor> {
        let eps = self.inner.predict_noise(x, net_t)?;
        self.calls.push((x.clone(), net_t, eps.clone()));
        Ok(eps)
    }
}

/// The analytic noise predictor of the oracle trace: exact eps for data `N(mu, 0.5² I)` with
/// `mu` the first channels of the condition.
struct Oracle<'a> {
    schedule: &'a NoiseSchedule,
    condition: Tensor,
    uncondition: Tensor,
    scale: f64,
}

impl Oracle<'_> {
    fn eps(&self, x: &Tensor, net_t: f32, y: &Tensor) -> Result<Tensor> {
        let table = self.schedule.log_alpha_array();
        let tt = net_t.clamp(0.0, 999.0);
        let i0 = (tt.floor() as usize).min(table.len() - 2);
        let fr = tt - i0 as f32;
        let log_a = table[i0] + fr * (table[i0 + 1] - table[i0]);
        let a = log_a.exp();
        let s = (1.0 - a * a).sqrt();
        let (b, c, _, _) = x.dims4()?;
        let mu = y.flatten_from(1)?.narrow(1, 0, c)?.reshape((b, c, 1, 1))?;
        let centred = x.broadcast_sub(&(mu * f64::from(a))?)?;
        Ok(((centred * f64::from(s))? / f64::from(a * a * 0.25 + s * s))?)
    }
}

impl NoisePredictor for Oracle<'_> {
    fn predict_noise(&mut self, x: &Tensor, net_t: f32) -> Result<Tensor> {
        let eps_u = self.eps(x, net_t, &self.uncondition)?;
        let eps_c = self.eps(x, net_t, &self.condition)?;
        Ok((&eps_u + ((&eps_c - &eps_u)? * self.scale)?)?)
    }
}

/// What one sampler run did: network calls `(x, net_t, eps)`, updates `(order, t, x)`, result.
struct SamplerRun {
    calls: Vec<(Tensor, f32, Tensor)>,
    steps: Vec<(usize, f32, Tensor)>,
    final_x: Tensor,
}

fn compare_trace(
    group: &str,
    trace: &Fixture,
    schedule: &NoiseSchedule,
    run: &SamplerRun,
    tol: Tolerance,
    device: &Device,
) -> Result<Vec<Check>> {
    let SamplerRun {
        calls,
        steps,
        final_x,
    } = run;
    let mut checks = Vec::new();
    let cpu = Device::Cpu;
    let grid = schedule.time_uniform_grid(steps.len());
    let scalars = |f: &dyn Fn(f32) -> f32| {
        Tensor::new(grid.iter().map(|&t| f(t)).collect::<Vec<f32>>(), &cpu)
    };
    let schedule_tol = Tolerance::Elementwise {
        atol: 1e-6,
        rtol: 1e-6,
    };
    for (name, values) in [
        ("timesteps", scalars(&|t| t)?),
        (
            "lambda_at_timesteps",
            scalars(&|t| schedule.marginal_lambda(t))?,
        ),
        (
            "alpha_at_timesteps",
            scalars(&|t| schedule.marginal_alpha(t))?,
        ),
        (
            "sigma_at_timesteps",
            scalars(&|t| schedule.marginal_std(t))?,
        ),
    ] {
        if trace.has(name) {
            checks.push(compare(
                group,
                name,
                &values,
                &trace.get(name, &cpu)?,
                schedule_tol,
            )?);
        }
    }
    for (i, (x, net_t, eps)) in calls.iter().enumerate() {
        let prefix = format!("call{i:02}");
        checks.push(compare(
            group,
            &format!("{prefix}.x"),
            x,
            &trace.get(&format!("{prefix}.x"), device)?,
            tol,
        )?);
        let ref_t = trace.get(&format!("{prefix}.net_t"), &cpu)?;
        let ours_t = Tensor::new(&[*net_t], &cpu)?;
        checks.push(compare(
            group,
            &format!("{prefix}.net_t"),
            &ours_t,
            &ref_t,
            Tolerance::Elementwise {
                atol: 1e-4,
                rtol: 1e-6,
            },
        )?);
        checks.push(compare(
            group,
            &format!("{prefix}.eps_guided"),
            eps,
            &trace.get(&format!("{prefix}.eps_guided"), device)?,
            tol,
        )?);
    }
    for (i, (order, t, x)) in steps.iter().enumerate() {
        let prefix = format!("step{:02}", i + 1);
        if trace.has(&format!("{prefix}.order")) {
            let ref_order = trace
                .get(&format!("{prefix}.order"), &cpu)?
                .to_dtype(DType::F64)?;
            checks.push(compare(
                group,
                &format!("{prefix}.order"),
                &Tensor::new(&[*order as f64], &cpu)?,
                &ref_order,
                EXACT,
            )?);
        }
        if trace.has(&format!("{prefix}.t")) {
            checks.push(compare(
                group,
                &format!("{prefix}.t"),
                &Tensor::new(&[*t], &cpu)?,
                &trace.get(&format!("{prefix}.t"), &cpu)?,
                schedule_tol,
            )?);
        }
        checks.push(compare(
            group,
            &format!("{prefix}.x"),
            x,
            &trace.get(&format!("{prefix}.x"), device)?,
            tol,
        )?);
    }
    if trace.has("final") {
        checks.push(compare(
            group,
            "final",
            final_x,
            &trace.get("final", device)?,
            tol,
        )?);
    }
    Ok(checks)
}

/// The solver a fixture variant names: `DPMS` drops to first order at the end only below ten
/// steps, `DPMS_INTER` always (an `oracle_` prefix only changes the network).
fn solver_for(variant: &str, order: usize) -> DpmSolverPp {
    let lower_order_final = if variant.trim_start_matches("oracle_") == "dpms" {
        LowerOrderFinal::BelowTenSteps
    } else {
        LowerOrderFinal::Always
    };
    DpmSolverPp {
        order,
        lower_order_final,
    }
}

/// Parses `trace_<variant>_steps<N>.safetensors`.
fn parse_trace_name(path: &Path) -> Option<(String, usize)> {
    let stem = path.file_stem()?.to_str()?.strip_prefix("trace_")?;
    let (variant, steps) = stem.rsplit_once("_steps")?;
    Some((variant.to_string(), steps.parse().ok()?))
}

/// `dpm_solver`: the schedule tables, and every recorded sampler trace (network and oracle).
pub fn check_dpm_solver(dir: &Path, fixtures_root: &Path, device: &Device) -> Result<Vec<Check>> {
    #[derive(serde::Deserialize)]
    struct SolverConfig {
        cfg_scale: f64,
        order: usize,
        model: Option<String>,
    }
    let config: SolverConfig = read_config(&dir.join("config.json"))?;
    let schedule = NoiseSchedule::default();
    let mut checks = Vec::new();
    let group = "dpm_solver [schedule]";
    let sched = Fixture::open(&dir.join("schedule.safetensors"))?;
    let cpu = Device::Cpu;
    checks.push(compare(
        group,
        "log_alpha_array_f32",
        &Tensor::new(schedule.log_alpha_array(), &cpu)?,
        &sched.get("log_alpha_array_f32", &cpu)?,
        EXACT,
    )?);
    // PyTorch's vectorised linspace rounds some entries differently: allow one ulp.
    checks.push(compare(
        group,
        "t_array_f32",
        &Tensor::new(schedule.t_array(), &cpu)?,
        &sched.get("t_array_f32", &cpu)?,
        Tolerance::Elementwise {
            atol: 0.0,
            rtol: 1.2e-7,
        },
    )?);
    checks.push(compare(
        group,
        "alphas_cumprod_f64",
        &Tensor::new(schedule.alphas_cumprod.as_slice(), &cpu)?,
        &sched.tensors["alphas_cumprod_f64"],
        Tolerance::Elementwise {
            atol: 1e-12,
            rtol: 1e-9,
        },
    )?);

    let io = Fixture::open(&dir.join("io.safetensors"))?;
    let z = io.get("z", device)?;
    let condition = io.get("condition", device)?;
    let uncondition = io.get("uncondition", device)?;
    // The network is the lumos_i2i_tiny model ("../lumos_i2i_tiny" in the config).
    let model_dir = solver_model_dir(
        dir,
        config.model.as_deref(),
        fixtures_root,
        "lumos_i2i_tiny",
    );
    let model_config: LumosConfig = read_config(&model_dir.join("config.json"))?;
    let model = checkpoints::build_model(
        &model_dir.join("weights.safetensors"),
        DType::F32,
        device,
        |vb| LumosI2I::load(&model_config, vb),
    )?;

    let network = || ClassifierFreeGuidance {
        model: &model,
        condition: condition.clone(),
        uncondition: uncondition.clone(),
        scale: config.cfg_scale,
    };
    let traces = sorted_files(dir, |p| parse_trace_name(p).is_some())?;
    for path in traces {
        let Some((variant, steps)) = parse_trace_name(&path) else {
            continue;
        };
        let trace = Fixture::open(&path)?;
        let oracle = variant.starts_with("oracle_");
        let solver = solver_for(&variant, config.order);
        let mut network = network();
        let mut analytic = Oracle {
            schedule: &schedule,
            condition: condition.clone(),
            uncondition: uncondition.clone(),
            scale: config.cfg_scale,
        };
        let inner: &mut dyn NoisePredictor = if oracle { &mut analytic } else { &mut network };
        let mut recording = Recording {
            inner,
            calls: Vec::new(),
        };
        let mut step_log = Vec::new();
        let final_x = dpm_solver::sample(
            &solver,
            &schedule,
            &schedule.time_uniform_grid(steps),
            &z,
            &mut recording,
            None,
            &mut |s| {
                step_log.push((s.order, s.t, s.x.clone()));
                Ok(())
            },
        )?;
        let tol = if oracle {
            Tolerance::Elementwise {
                atol: 1e-4,
                rtol: 0.0,
            }
        } else {
            SAMPLER
        };
        let group = format!("dpm_solver [{variant}, {steps} steps]");
        let run = SamplerRun {
            calls: recording.calls,
            steps: step_log,
            final_x: final_x.clone(),
        };
        checks.extend(compare_trace(&group, &trace, &schedule, &run, tol, device)?);
        let final_name = format!("final.{variant}.steps{steps}");
        if io.has(&final_name) {
            checks.push(compare(
                &group,
                &final_name,
                &final_x,
                &io.get(&final_name, device)?,
                tol,
            )?);
        }
    }
    // Finals without a full trace (e.g. DPMS at 5 steps).
    for name in io.names_with_prefix("final.") {
        let Some((variant, steps)) = name
            .strip_prefix("final.")
            .and_then(|s| s.rsplit_once(".steps"))
            .and_then(|(v, n)| Some((v.to_string(), n.parse::<usize>().ok()?)))
        else {
            continue;
        };
        if checks.iter().any(|c| c.name == name) || variant.starts_with("oracle_") {
            continue;
        }
        let solver = solver_for(&variant, config.order);
        let mut network = network();
        let final_x = dpm_solver::sample(
            &solver,
            &schedule,
            &schedule.time_uniform_grid(steps),
            &z,
            &mut network,
            None,
            &mut |_| Ok(()),
        )?;
        let group = format!("dpm_solver [{variant}, {steps} steps]");
        checks.push(compare(
            &group,
            &name,
            &final_x,
            &io.get(&name, device)?,
            SAMPLER,
        )?);
    }
    Ok(checks)
}

/// `pipeline_tiny`: image → DINO → LumosI2I + DPM-Solver++ → VAE → u8, single and interpolation.
pub fn check_pipeline(dir: &Path, fixtures_root: &Path, device: &Device) -> Result<Vec<Check>> {
    #[derive(serde::Deserialize)]
    struct PipelineConfig {
        steps: usize,
        cfg_scale: f64,
        interp_bsz: usize,
    }
    let config: PipelineConfig = read_config(&dir.join("config.json"))?;
    let spec = checkpoints::pipeline_fixture_spec(fixtures_root)?;
    let model = LoadedModel::load(&spec, device)?;
    let settings = SamplerSettings {
        steps: config.steps,
        guidance: config.cfg_scale,
        solver: Solver::DpmSolverPp { order: 2 },
        seed: 0,
    };
    let ref_a = crate::imageio::load_image(&dir.join("ref_a.png"))?;
    let ref_b = crate::imageio::load_image(&dir.join("ref_b.png"))?;
    let reference = |image: &image::RgbImage, name: &str| crate::protocol::ReferenceImage {
        name: name.into(),
        image: std::sync::Arc::new(image.clone()),
        weight: 1.0,
        crop: None,
    };
    let latent_tol = SAMPLER;
    let decoded_tol = Tolerance::Elementwise {
        atol: 1e-3,
        rtol: 0.0,
    };
    let bytes_tol = Tolerance::Bytes {
        levels: 1.0,
        fraction: 0.005,
    };
    let mut checks = Vec::new();

    for (mode, file) in [
        ("single", "io_single.safetensors"),
        ("interp", "io_interp.safetensors"),
    ] {
        let io = Fixture::open(&dir.join(file))?;
        let group = format!("pipeline_tiny [{mode}]");
        let refs = if mode == "single" {
            vec![reference(&ref_a, "ref_a.png")]
        } else {
            vec![
                reference(&ref_a, "ref_a.png"),
                reference(&ref_b, "ref_b.png"),
            ]
        };
        let embeddings = pipelines::embed_references(&model, &refs)?;
        let cls_rows = embeddings.dim(0)?;
        // The fixture stores raw CLS features; ours are normalised, so compare normalised.
        let ref_cls = io.get("cls", device)?;
        let ref_norm = condition_from_cls(&ref_cls)?.reshape((cls_rows, ()))?;
        checks.push(compare(
            &group,
            "cls (normalised)",
            &embeddings,
            &ref_norm,
            PARITY,
        )?);
        let mode_value = if mode == "single" {
            crate::protocol::Mode::Variations { count: 1 }
        } else {
            crate::protocol::Mode::Interpolate {
                frames: config.interp_bsz,
                path: InterpolationPath::Demo,
            }
        };
        let weights = vec![1.0; refs.len()];
        let plan =
            pipelines::conditions::plan(&embeddings, 1, &weights, &mode_value, Default::default())?;
        let (k, cc) = plan.conditions.dims2()?;
        let condition = plan.conditions.reshape((k, 1, 1, cc))?;
        checks.push(compare(
            &group,
            "condition",
            &condition,
            &io.get("condition", device)?,
            PARITY,
        )?);
        if io.has("weights") {
            let ours = Tensor::new(plan.mix.as_slice(), &Device::Cpu)?;
            checks.push(compare(
                &group,
                "weights",
                &ours,
                &io.tensors["weights"],
                EXACT,
            )?);
        }
        checks.push(compare(
            &group,
            "uncondition",
            &model.prior.null_condition(k)?,
            &io.get("uncondition", device)?,
            EXACT,
        )?);
        let z = io.get("z", device)?;
        let z = z
            .broadcast_as((k, z.dim(1)?, z.dim(2)?, z.dim(3)?))?
            .contiguous()?;
        // Feed the fixture's own condition so that the sampler check is independent of the
        // encoder check above.
        let latent = pipelines::denoise(
            &model,
            &io.get("condition", device)?,
            &z,
            &settings,
            &mut |_: StepReport| Ok(()),
        )?;
        checks.push(compare(
            &group,
            "latent",
            &latent,
            &io.get("latent", device)?,
            latent_tol,
        )?);
        let decoded = pipelines::decode(&model, &io.get("latent", device)?)?;
        checks.push(compare(
            &group,
            "decoded (from reference latent)",
            &decoded,
            &io.get("decoded", device)?,
            decoded_tol,
        )?);
        let ours_decoded = pipelines::decode(&model, &latent)?;
        let images = pipelines::to_images(&ours_decoded)?;
        let flat: Vec<u8> = images
            .iter()
            .flat_map(|i| i.as_raw().iter().copied())
            .collect();
        let (h, w) = (images[0].height() as usize, images[0].width() as usize);
        let ours_u8 = Tensor::from_vec(flat, (images.len(), h, w, 3), &Device::Cpu)?;
        checks.push(compare(
            &group,
            "image_u8",
            &ours_u8,
            &io.get("image_u8", &Device::Cpu)?,
            bytes_tol,
        )?);
        if io.has("grid_u8") {
            let refs: Vec<&image::RgbImage> = images.iter().collect();
            let nrow = (images.len() / 3).max(1);
            if let Some(grid) = crate::imageio::make_grid(&refs, nrow, 3) {
                let grid_t = Tensor::from_vec(
                    grid.as_raw().clone(),
                    (grid.height() as usize, grid.width() as usize, 3),
                    &Device::Cpu,
                )?;
                checks.push(compare(
                    &group,
                    "grid_u8",
                    &grid_t,
                    &io.get("grid_u8", &Device::Cpu)?,
                    bytes_tol,
                )?);
            }
        }
    }
    Ok(checks)
}

/// The result of one fixture folder.
pub struct FixtureOutcome {
    /// Folder name.
    pub fixture: String,
    /// The checks, or why the folder could not be checked.
    pub checks: Result<Vec<Check>>,
}

/// Fixture folders this build knows how to check.
pub const KNOWN_FIXTURES: [&str; 10] = [
    "lumos_i2i_tiny",
    "dino_vit_tiny",
    "vae_tiny",
    "dpm_solver",
    "pipeline_tiny",
    "lumos_t2ims_tiny",
    "dpm_solver_t2i",
    "t5_tiny",
    "t5_tokenizer_tiny",
    "zero123_tiny",
];

/// Fixture folders whose networks run in the chosen dtype; the others (the sampler and the
/// end-to-end pipeline, whose references are f32 sampler trajectories) always run in f32.
pub const DTYPE_FIXTURES: [&str; 6] = [
    "lumos_i2i_tiny",
    "dino_vit_tiny",
    "vae_tiny",
    "lumos_t2ims_tiny",
    "t5_tiny",
    "zero123_tiny",
];

/// Checks one fixture folder by name, its networks in `dtype` (see [`DTYPE_FIXTURES`]).
pub fn check_fixture(root: &Path, name: &str, device: &Device, dtype: DType) -> Result<Vec<Check>> {
    let dir = root.join(name);
    match name {
        "lumos_i2i_tiny" => check_lumos_i2i(&dir, device, dtype),
        "dino_vit_tiny" => check_dino_vit(&dir, device, dtype),
        "vae_tiny" => check_vae(&dir, device, dtype),
        "dpm_solver" => check_dpm_solver(&dir, root, device),
        "pipeline_tiny" => check_pipeline(&dir, root, device),
        "lumos_t2ims_tiny" => text_to_image::check_lumos_t2ims(&dir, device, dtype),
        "dpm_solver_t2i" => text_to_image::check_dpm_solver_t2i(&dir, root, device),
        "t5_tiny" => text_to_image::check_t5(&dir, device, dtype),
        "t5_tokenizer_tiny" => text_to_image::check_t5_tokenizer(&dir),
        "zero123_tiny" => zero123::check_zero123(&dir, device, dtype),
        other => Err(EngineError::InvalidRequest(format!(
            "unknown fixture `{other}`"
        ))),
    }
}

/// Runs every known fixture folder present under `root`.
pub fn run_all(root: &Path, device: &Device, dtype: DType) -> Vec<FixtureOutcome> {
    KNOWN_FIXTURES
        .iter()
        .filter(|name| root.join(name).is_dir())
        .map(|name| FixtureOutcome {
            fixture: name.to_string(),
            checks: check_fixture(root, name, device, dtype),
        })
        .collect()
}
