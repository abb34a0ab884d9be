//! Parity checks of the text-to-image path (`README_T2I.md`, `README_T5_TOKENIZER.md`): the
//! `LumosT2IMS` forward and its bucket table, the T2I demo's sampler, the T5 encoder, the
//! tokenizer and the demo's caption cleaning. Every size comes from the fixture files.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::{
    EXACT, Fixture, PARITY, Recording, SAMPLER, SamplerRun, Tolerance, compare, compare_trace,
    file_label, network_tolerance, required_weight_files, solver_for, solver_model_dir,
};
use crate::checkpoints::{self, read_config};
use crate::error::{EngineError, Result};
use crate::models::t5::relative_position_bucket;
use crate::models::{LumosT2IConfig, LumosT2IMS, MicroConditions, T5Config, T5Encoder};
use crate::pipelines::aspect_ratio::{self, BucketTableFile};
use crate::sampling::dpm_solver;
use crate::sampling::{NoiseSchedule, TextGuidance};
use crate::text::{T5Tokenizer, cleaning};

use super::Check;

/// The raw sinusoids (timestep, size, ratio): a 1-ulp difference in a float32 `exp()` of a
/// frequency is amplified by arguments up to 2048 (`README_T2I.md`).
const SINUSOID: Tolerance = Tolerance::Elementwise {
    atol: 3e-4,
    rtol: 0.0,
};

/// Micro-conditions stored as `img_hw` `(rows, 2)` and `aspect_ratio` `(rows, 1)`.
fn micro_conditions(io: &Fixture, prefix: &str) -> Result<MicroConditions> {
    let hw = io
        .get(&format!("{prefix}img_hw"), &Device::Cpu)?
        .to_vec2::<f32>()?;
    let ratio = io.f32s(&format!("{prefix}aspect_ratio"))?;
    Ok(MicroConditions {
        img_hw: hw.iter().map(|r| [r[0], r[1]]).collect(),
        aspect_ratio: ratio,
    })
}

/// `lumos_t2ims_tiny`: the forward with mask (square, non-square, per-sample micro-conditions,
/// no mask) and every intermediate, from both weight files; and the bucket table.
pub fn check_lumos_t2ims(dir: &Path, device: &Device, dtype: DType) -> Result<Vec<Check>> {
    let config: LumosT2IConfig = read_config(&dir.join("config.json"))?;
    let io = Fixture::open(&dir.join("io.safetensors"))?;
    let x = io.get("x", device)?.to_dtype(dtype)?;
    let t = io.f32s("t")?;
    let y = io.get("y", device)?.to_dtype(dtype)?;
    let mask = io.get("mask", device)?;
    let micro = micro_conditions(&io, "")?;
    let tolerance = network_tolerance(dtype, PARITY);
    let sinusoid = network_tolerance(dtype, SINUSOID);
    let files = required_weight_files(dir)?;
    let mut checks = Vec::new();
    for file in files {
        let group = file_label(dir, &file);
        let model =
            checkpoints::build_model(&file, dtype, device, |vb| LumosT2IMS::load(&config, vb))?;
        let mut check = |name: &str, ours: &Tensor, tol: Tolerance| -> Result<()> {
            if name == "out" || io.has(name) {
                let reference = io.get(name, device)?;
                checks.push(compare(&group, name, ours, &reference, tol)?);
            }
            Ok(())
        };
        let trace = model.forward_traced(&x, &t, &y, Some(&mask), &micro)?;
        let x_tokens = trace.x_embed.broadcast_add(&trace.pos_embed)?;
        check("x_embed", &trace.x_embed, tolerance)?;
        check("pos_embed", &trace.pos_embed, tolerance)?;
        check("x_tokens", &x_tokens, tolerance)?;
        check("blocks_in.x", &x_tokens, tolerance)?;
        check("t_freq", &trace.t_freq, sinusoid)?;
        check("t_emb", &trace.t_emb, tolerance)?;
        check("csize_freq", &trace.csize_freq, sinusoid)?;
        check("csize_emb", &trace.csize_emb, tolerance)?;
        check("ar_freq", &trace.ar_freq, sinusoid)?;
        check("ar_emb", &trace.ar_emb, tolerance)?;
        check("blocks_in.t_cond", &trace.t_cond, tolerance)?;
        check("y_emb", &trace.y_emb, tolerance)?;
        check("blocks_in.y_packed", &trace.y_packed, tolerance)?;
        let lens: Vec<f64> = trace.y_lens.iter().map(|&n| n as f64).collect();
        check(
            "blocks_in.y_lens",
            &Tensor::new(lens.as_slice(), device)?,
            EXACT,
        )?;
        for (i, block) in trace.blocks.iter().enumerate() {
            check(&format!("blocks.{i}.adaLN"), &block.ada_ln, tolerance)?;
            check(&format!("blocks.{i}.attn_out"), &block.attn_out, tolerance)?;
            check(
                &format!("blocks.{i}.cross_attn_out"),
                &block.cross_attn_out,
                tolerance,
            )?;
            check(&format!("blocks.{i}.mlp_out"), &block.mlp_out, tolerance)?;
            check(&format!("blocks.{i}.out"), &block.out, tolerance)?;
        }
        check("final_out", &trace.final_out, tolerance)?;
        check("out", &trace.out, tolerance)?;
        if io.has("out_dpmsolver") {
            let eps = model.forward_eps(&x, &t, &y, Some(&mask), &micro)?;
            check("out_dpmsolver", &eps, tolerance)?;
        }
        if io.has("out_nomask") {
            let nomask = model.forward_traced(&x, &t, &y, None, &micro)?;
            check("out_nomask", &nomask.out, tolerance)?;
            for (i, block) in nomask.blocks.iter().enumerate() {
                let name = format!("nomask.blocks.{i}.cross_attn_out");
                check(&name, &block.cross_attn_out, tolerance)?;
            }
        }
        if io.has("x_ns") {
            let x_ns = io.get("x_ns", device)?.to_dtype(dtype)?;
            let ns =
                model.forward_traced(&x_ns, &t, &y, Some(&mask), &micro_conditions(&io, "ns.")?)?;
            check("out_ns", &ns.out, tolerance)?;
            check("ns.pos_embed", &ns.pos_embed, tolerance)?;
            check("ns.x_embed", &ns.x_embed, tolerance)?;
            check("ns.csize_emb", &ns.csize_emb, tolerance)?;
            check("ns.ar_emb", &ns.ar_emb, tolerance)?;
            check("ns.blocks_in.t_cond", &ns.t_cond, tolerance)?;
            for (i, block) in ns.blocks.iter().enumerate() {
                check(&format!("ns.blocks.{i}.out"), &block.out, tolerance)?;
            }
            check("ns.final_out", &ns.final_out, tolerance)?;
        }
        if io.has("out_ps") {
            let ps =
                model.forward_traced(&x, &t, &y, Some(&mask), &micro_conditions(&io, "ps.")?)?;
            check("out_ps", &ps.out, tolerance)?;
            check("ps.blocks_in.t_cond", &ps.t_cond, tolerance)?;
        }
    }
    let table = dir.join("aspect_ratios_1024.json");
    if table.is_file() {
        checks.extend(check_buckets(dir, &table)?);
    }
    Ok(checks)
}

/// The bucket table in code against `aspect_ratios_1024.json`, and its worked examples.
fn check_buckets(dir: &Path, path: &Path) -> Result<Vec<Check>> {
    let file: BucketTableFile = read_config(path)?;
    let group = file_label(dir, path);
    let cpu = Device::Cpu;
    let as_tensor = |rows: Vec<[f64; 3]>| -> Result<Tensor> {
        let n = rows.len();
        let flat: Vec<f64> = rows.into_iter().flatten().collect();
        Ok(Tensor::from_vec(flat, (n, 3), &cpu)?)
    };
    let mut checks = Vec::new();
    let ours: Vec<[f64; 3]> = aspect_ratio::ASPECT_RATIO_1024
        .iter()
        .map(|b| {
            [
                f64::from(b.ratio()),
                f64::from(b.height_px),
                f64::from(b.width_px),
            ]
        })
        .collect();
    let mut theirs = Vec::new();
    for entry in &file.table {
        let key: f64 = entry.key.parse().map_err(|_| {
            EngineError::InvalidRequest(format!(
                "bad bucket key `{}` in {}",
                entry.key,
                path.display()
            ))
        })?;
        theirs.push([f64::from(key as f32), entry.height, entry.width]);
    }
    if ours.len() != theirs.len() {
        return Err(EngineError::InvalidRequest(format!(
            "{} buckets in code, {} in {}",
            ours.len(),
            theirs.len(),
            path.display()
        )));
    }
    checks.push(compare(
        &group,
        "table (ratio, height, width)",
        &as_tensor(ours)?,
        &as_tensor(theirs)?,
        EXACT,
    )?);
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for example in &file.examples {
        let bucket =
            aspect_ratio::closest_bucket(example.height, example.width).ok_or_else(|| {
                EngineError::InvalidRequest(format!(
                    "no bucket for {}×{}",
                    example.height, example.width
                ))
            })?;
        let (lh, lw) = bucket.latent_hw(8);
        ours.push([
            f64::from(bucket.height_px),
            f64::from(bucket.width_px),
            f64::from(bucket.ratio()),
        ]);
        ours.push([lh as f64, lw as f64, 0.0]);
        theirs.push([
            example.closest_hw[0],
            example.closest_hw[1],
            f64::from(example.closest_ratio as f32),
        ]);
        theirs.push([
            example.latent_hw[0] as f64,
            example.latent_hw[1] as f64,
            0.0,
        ]);
    }
    checks.push(compare(
        &group,
        "get_closest_ratio examples",
        &as_tensor(ours)?,
        &as_tensor(theirs)?,
        EXACT,
    )?);
    Ok(checks)
}

/// `dpm_solver_t2i`: the T2I demo's `DPMS` with the tiny T2I model under guidance, its trace,
/// the non-square run and the run without mask.
pub fn check_dpm_solver_t2i(
    dir: &Path,
    fixtures_root: &Path,
    device: &Device,
) -> Result<Vec<Check>> {
    #[derive(serde::Deserialize)]
    struct SolverConfig {
        cfg_scale: f64,
        order: usize,
        steps: usize,
        model: Option<String>,
    }
    let config: SolverConfig = read_config(&dir.join("config.json"))?;
    let schedule = NoiseSchedule::default();
    let io = Fixture::open(&dir.join("io.safetensors"))?;
    let model_dir = solver_model_dir(
        dir,
        config.model.as_deref(),
        fixtures_root,
        "lumos_t2ims_tiny",
    );
    let model_config: LumosT2IConfig = read_config(&model_dir.join("config.json"))?;
    let model = checkpoints::build_model(
        &model_dir.join("weights.safetensors"),
        DType::F32,
        device,
        |vb| LumosT2IMS::load(&model_config, vb),
    )?;
    let condition = io.get("condition", device)?;
    let uncondition = io.get("uncondition", device)?;
    let mask = io.get("mask", device)?;
    let guidance = |mask: Option<Tensor>, micro: MicroConditions| TextGuidance {
        model: &model,
        condition: condition.clone(),
        uncondition: uncondition.clone(),
        mask,
        micro,
        scale: config.cfg_scale,
    };
    let solver = solver_for("dpms", config.order);
    let mut checks = Vec::new();

    // The traced square run.
    let trace_path = dir.join(format!("trace_dpms_steps{}.safetensors", config.steps));
    let mut network = guidance(Some(mask.clone()), micro_conditions(&io, "")?);
    let mut recording = Recording {
        inner: &mut network,
        calls: Vec::new(),
    };
    let mut step_log = Vec::new();
    let z = io.get("z", device)?;
    let final_x = dpm_solver::sample(
        &solver,
        &schedule,
        &schedule.time_uniform_grid(config.steps),
        &z,
        &mut recording,
        None,
        &mut |s| {
            step_log.push((s.order, s.t, s.x.clone()));
            Ok(())
        },
    )?;
    let group = format!("dpm_solver_t2i [dpms, {} steps]", config.steps);
    if trace_path.is_file() {
        let trace = Fixture::open(&trace_path)?;
        let run = SamplerRun {
            calls: recording.calls,
            steps: step_log,
            final_x: final_x.clone(),
        };
        checks.extend(compare_trace(
            &group, &trace, &schedule, &run, SAMPLER, device,
        )?);
    }
    checks.push(compare(
        &group,
        "final (io.safetensors)",
        &final_x,
        &io.get("final", device)?,
        SAMPLER,
    )?);

    let mut runs: Vec<(&str, &str, Option<Tensor>, &str)> = Vec::new();
    if io.has("final_nomask") {
        runs.push(("final_nomask", "z", None, ""));
    }
    if io.has("ns.final") {
        runs.push(("ns.final", "ns.z", Some(mask.clone()), "ns."));
    }
    for (name, start, run_mask, prefix) in runs {
        let mut network = guidance(run_mask, micro_conditions(&io, prefix)?);
        let final_x = dpm_solver::sample(
            &solver,
            &schedule,
            &schedule.time_uniform_grid(config.steps),
            &io.get(start, device)?,
            &mut network,
            None,
            &mut |_| Ok(()),
        )?;
        checks.push(compare(
            &group,
            name,
            &final_x,
            &io.get(name, device)?,
            SAMPLER,
        )?);
    }
    Ok(checks)
}

/// `t5_tiny`: embeddings, relative-position buckets and bias, block outputs and the last
/// hidden state with and without the attention mask, from both weight files.
pub fn check_t5(dir: &Path, device: &Device, dtype: DType) -> Result<Vec<Check>> {
    let config: T5Config = read_config(&dir.join("config.json"))?;
    let io = Fixture::open(&dir.join("io.safetensors"))?;
    let input_ids = io.get("input_ids", device)?;
    let attention_mask = io.get("attention_mask", device)?;
    let tolerance = network_tolerance(dtype, PARITY);
    let files = required_weight_files(dir)?;
    let mut checks = Vec::new();
    let cpu = Device::Cpu;
    let group = format!(
        "{} [buckets]",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    for (offsets, buckets) in [
        ("relative_position", "relative_position_bucket"),
        ("relative_position_long", "relative_position_bucket_long"),
    ] {
        if !io.has(offsets) {
            continue;
        }
        let reference = io.get(offsets, &cpu)?;
        let ours: Vec<f64> = reference
            .flatten_all()?
            .to_vec1::<i64>()?
            .into_iter()
            .map(|d| {
                relative_position_bucket(
                    d,
                    config.relative_attention_num_buckets,
                    config.relative_attention_max_distance,
                ) as f64
            })
            .collect();
        let ours = Tensor::from_vec(ours, reference.shape(), &cpu)?;
        checks.push(compare(
            &group,
            buckets,
            &ours,
            &io.get(buckets, &cpu)?.to_dtype(DType::F64)?,
            EXACT,
        )?);
    }
    for file in files {
        let group = file_label(dir, &file);
        let model =
            checkpoints::build_model(&file, dtype, device, |vb| T5Encoder::load(&config, vb))?;
        let mut check = |name: &str, ours: &Tensor| -> Result<()> {
            if name == "last_hidden_state" || io.has(name) {
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
        let trace = model.forward_traced(&input_ids, Some(&attention_mask))?;
        check("embeddings", &trace.embeddings)?;
        check("position_bias", &trace.position_bias)?;
        for (i, block) in trace.blocks.iter().enumerate() {
            check(&format!("blocks.{i}.out"), block)?;
        }
        check("last_hidden_state", &trace.last_hidden_state)?;
        if io.has("last_hidden_state_nomask") {
            check(
                "last_hidden_state_nomask",
                &model.forward(&input_ids, None)?,
            )?;
        }
        // As the text-to-image pipeline runs it: one block at a time from lazily read weights.
        let streamed = T5Encoder::load_streaming(
            &config,
            checkpoints::LazyWeights::open(std::slice::from_ref(&file))?
                .into_var_builder(dtype, device),
        )?;
        let hidden = streamed.forward(&input_ids, Some(&attention_mask))?;
        checks.push(compare(
            &group,
            "last_hidden_state (streamed blocks)",
            &hidden,
            &io.get("last_hidden_state", device)?,
            tolerance,
        )?);
    }
    let examples = dir.join("text_preprocessing_examples.json");
    if examples.is_file() {
        checks.extend(check_cleaning(dir, &examples)?);
    }
    Ok(checks)
}

/// A string comparison as a check: the error is the number of differing items.
fn text_check(group: &str, name: &str, mismatches: usize, total: usize) -> Result<Check> {
    let cpu = Device::Cpu;
    compare(
        group,
        name,
        &Tensor::new(&[mismatches as f64], &cpu)?,
        &Tensor::new(&[0f64], &cpu)?,
        EXACT,
    )
    .map(|mut c| {
        c.max_abs_ref = total as f64;
        c
    })
}

/// `t5_tiny/text_preprocessing_examples.json`: the demo's caption cleaning, every example.
fn check_cleaning(dir: &Path, path: &Path) -> Result<Vec<Check>> {
    #[derive(serde::Deserialize)]
    struct Example {
        prompt: String,
        after_demo_strip: String,
        clean_once: String,
        text_preprocessing: String,
    }
    #[derive(serde::Deserialize)]
    struct Examples {
        examples: Vec<Example>,
    }
    let file: Examples = read_config(path)?;
    let group = file_label(dir, path);
    let mut checks = Vec::new();
    for example in &file.examples {
        let stripped = if example.prompt.ends_with('.') {
            example.prompt.trim()
        } else {
            example.prompt.as_str()
        };
        let once = cleaning::clean_caption(&example.after_demo_strip);
        let twice = cleaning::text_preprocessing(&example.after_demo_strip);
        let full = cleaning::prepare_prompt(&example.prompt);
        let mismatches = usize::from(stripped != example.after_demo_strip)
            + usize::from(once != example.clean_once)
            + usize::from(twice != example.text_preprocessing)
            + usize::from(full != example.text_preprocessing);
        let name = if mismatches == 0 {
            format!("{:?}", example.prompt)
        } else {
            format!(
                "{:?} → {twice:?}, expected {:?}",
                example.prompt, example.text_preprocessing
            )
        };
        checks.push(text_check(&group, &name, mismatches, 4)?);
    }
    Ok(checks)
}

/// `t5_tokenizer_tiny`: ids, mask and pieces of every case of `io.json` (exact).
pub fn check_t5_tokenizer(dir: &Path) -> Result<Vec<Check>> {
    #[derive(serde::Deserialize)]
    struct Case {
        text: String,
        input_ids: Vec<u32>,
        attention_mask: Vec<u32>,
        pieces: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct Io {
        max_length: usize,
        vocab_size_with_extra_ids: Option<usize>,
        cases: Vec<Case>,
    }
    let io: Io = read_config(&dir.join("io.json"))?;
    let model = dir.join("spiece.model");
    let tokenizer = T5Tokenizer::from_file(&model)?;
    let group = file_label(dir, &model);
    let mut checks = Vec::new();
    if let Some(size) = io.vocab_size_with_extra_ids {
        let ours = tokenizer.vocab_size();
        checks.push(text_check(
            &group,
            &format!("vocab size {ours} (expected {size})"),
            usize::from(ours != size),
            1,
        )?);
    }
    let cpu = Device::Cpu;
    for case in &io.cases {
        let ours = tokenizer.encode(&case.text, io.max_length)?;
        let label: String = case.text.chars().take(40).collect();
        let ids =
            |v: &[u32]| Tensor::new(v.iter().map(|&i| f64::from(i)).collect::<Vec<_>>(), &cpu);
        if ours.input_ids.len() != case.input_ids.len() {
            checks.push(text_check(&group, &format!("{label:?} length"), 1, 1)?);
            continue;
        }
        checks.push(compare(
            &group,
            &format!("{label:?} input_ids"),
            &ids(&ours.input_ids)?,
            &ids(&case.input_ids)?,
            EXACT,
        )?);
        checks.push(compare(
            &group,
            &format!("{label:?} attention_mask"),
            &ids(&ours.attention_mask)?,
            &ids(&case.attention_mask)?,
            EXACT,
        )?);
        let piece_mismatches = ours
            .pieces
            .iter()
            .zip(&case.pieces)
            .filter(|(a, b)| a != b)
            .count()
            + ours.pieces.len().abs_diff(case.pieces.len());
        checks.push(text_check(
            &group,
            &format!("{label:?} pieces"),
            piece_mismatches,
            case.pieces.len(),
        )?);
    }
    Ok(checks)
}
