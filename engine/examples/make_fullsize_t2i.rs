//! Writes a text-to-image model of the published sizes with random weights, laid out as
//! `lumos text2image --models DIR` finds the real one, to measure what a 1024² image costs in
//! memory and time without the 22 GB download:
//!
//! ```text
//! cargo run --example make_fullsize_t2i -- DIR [--t5-dtype f16|f32]
//! /usr/bin/time -v target/debug/lumos text2image "a red apple" --models DIR --steps 2 --out OUT
//! ```
//!
//! `DIR/Lumos_T2I.safetensors` is `LumosT2IMS_XL_2` (f32), `DIR/t5-v1_1-xxl/` T5-v1.1-XXL's
//! encoder in 13 safetensors shards with an index (f16 by default, half the disk; the engine
//! reads each tensor into f32 exactly as from the f32 files), its `config.json` and the
//! tokenizer of the fixtures, `DIR/sd-vae-ft-mse/` the VAE. Weights are uniform with the
//! variance of `N(0, 1/fan_in)`, so activations stay in range.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use lumos_engine::models::{AutoencoderKl, LumosT2IConfig, LumosT2IMS, T5Config, VaeConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = PathBuf::from(
        args.first()
            .ok_or_else(|| anyhow::anyhow!("usage: make_fullsize_t2i DIR [--t5-dtype f16|f32]"))?,
    );
    let t5_dtype = match args.iter().position(|a| a == "--t5-dtype") {
        Some(i) if args.get(i + 1).map(String::as_str) == Some("f32") => DType::F32,
        _ => DType::F16,
    };
    std::fs::create_dir_all(&out)?;

    let prior = VarMap::new();
    let config = LumosT2IConfig::xl_2();
    LumosT2IMS::load(
        &config,
        VarBuilder::from_varmap(&prior, DType::F32, &Device::Cpu),
    )?;
    prior.save(out.join("Lumos_T2I.safetensors"))?;
    eprintln!("prior written");

    let vae_dir = out.join("sd-vae-ft-mse");
    std::fs::create_dir_all(&vae_dir)?;
    let vae = VarMap::new();
    let vae_config = VaeConfig::sd_vae_ft_mse();
    AutoencoderKl::load(
        &vae_config,
        VarBuilder::from_varmap(&vae, DType::F32, &Device::Cpu),
    )?;
    vae.save(vae_dir.join("diffusion_pytorch_model.safetensors"))?;
    std::fs::write(
        vae_dir.join("config.json"),
        serde_json::to_string_pretty(&vae_config)?,
    )?;
    eprintln!("VAE written");

    write_t5(&out.join("t5-v1_1-xxl"), &T5Config::v1_1_xxl(), t5_dtype)?;
    eprintln!("T5 written");
    Ok(())
}

/// Uniform values with the variance of N(0, 1/fan_in) (xorshift; speed over quality).
fn random(shape: &[usize], fan_in: usize, seed: &mut u64, dtype: DType) -> anyhow::Result<Tensor> {
    let count: usize = shape.iter().product();
    let half_width = (3.0 / fan_in as f32).sqrt();
    let values: Vec<f32> = (0..count)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            ((*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * half_width
        })
        .collect();
    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(dtype)?)
}

fn write_t5(dir: &Path, config: &T5Config, dtype: DType) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(config)?,
    )?;
    let tokenizer = lumos_engine::checkpoints::fixtures_root()
        .join("t5_tokenizer_tiny")
        .join("spiece.model");
    std::fs::copy(&tokenizer, dir.join("spiece.model"))?;
    let (d, ff, inner) = (config.d_model, config.d_ff, config.num_heads * config.d_kv);
    // The embedding table alone, then two blocks (1.5 GB in f32) per shard.
    let per_shard = 2;
    let shards = 1 + config.num_layers.div_ceil(per_shard);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut weight_map = BTreeMap::new();
    for shard in 0..shards {
        let name = format!("model-{:05}-of-{shards:05}.safetensors", shard + 1);
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        if shard == 0 {
            tensors.insert(
                "shared.weight".into(),
                random(&[config.vocab_size, d], 1, &mut seed, dtype)?,
            );
            tensors.insert(
                "encoder.final_layer_norm.weight".into(),
                Tensor::ones(d, dtype, &Device::Cpu)?,
            );
            tensors.insert(
                "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight".into(),
                random(
                    &[config.relative_attention_num_buckets, config.num_heads],
                    1,
                    &mut seed,
                    dtype,
                )?,
            );
        } else {
            let first = (shard - 1) * per_shard;
            for block in first..(first + per_shard).min(config.num_layers) {
                let prefix = format!("encoder.block.{block}.layer");
                for p in ["q", "k", "v"] {
                    tensors.insert(
                        format!("{prefix}.0.SelfAttention.{p}.weight"),
                        random(&[inner, d], d, &mut seed, dtype)?,
                    );
                }
                tensors.insert(
                    format!("{prefix}.0.SelfAttention.o.weight"),
                    random(&[d, inner], inner, &mut seed, dtype)?,
                );
                for norm in ["0", "1"] {
                    tensors.insert(
                        format!("{prefix}.{norm}.layer_norm.weight"),
                        Tensor::ones(d, dtype, &Device::Cpu)?,
                    );
                }
                for w in ["wi_0", "wi_1"] {
                    tensors.insert(
                        format!("{prefix}.1.DenseReluDense.{w}.weight"),
                        random(&[ff, d], d, &mut seed, dtype)?,
                    );
                }
                tensors.insert(
                    format!("{prefix}.1.DenseReluDense.wo.weight"),
                    random(&[d, ff], ff, &mut seed, dtype)?,
                );
            }
        }
        for key in tensors.keys() {
            weight_map.insert(key.clone(), name.clone());
        }
        candle_core::safetensors::save(&tensors, dir.join(&name))?;
        eprintln!("{name}");
    }
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "metadata": {},
            "weight_map": weight_map,
        }))?,
    )?;
    Ok(())
}
