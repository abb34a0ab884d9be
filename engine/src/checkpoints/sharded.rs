//! Hugging Face model folders whose weights may be split into shards
//! (`model.safetensors.index.json` / `pytorch_model.bin.index.json` + `…-0000N-of-0000M…` files),
//! as the T5-XXL text encoder ships (about 19 GB in f32). A missing, truncated or incomplete shard
//! is reported with the shard's own path.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use super::{checkpoint_error, load_tensors};
use crate::error::{EngineError, Result};

/// Index files of sharded checkpoints, in the order they are looked for.
pub const INDEX_FILES: [&str; 2] = [
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
];

/// Single-file weights, in the order they are looked for.
pub const SINGLE_FILES: [&str; 4] = [
    "model.safetensors",
    "pytorch_model.bin",
    "weights.safetensors",
    "weights.pth",
];

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

/// The weights of a model folder (or the given index or weights file): every tensor of every
/// shard, on the CPU.
pub fn load_hf_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    let index = if path.is_dir() {
        INDEX_FILES
            .iter()
            .map(|f| path.join(f))
            .find(|p| p.is_file())
    } else if path.to_string_lossy().ends_with(".index.json") {
        Some(path.to_path_buf())
    } else {
        return load_tensors(path);
    };
    let Some(index) = index else {
        let single = SINGLE_FILES
            .iter()
            .map(|f| path.join(f))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                checkpoint_error(
                    path,
                    format!(
                        "no weights in this folder (looked for {} and {})",
                        INDEX_FILES.join(", "),
                        SINGLE_FILES.join(", ")
                    ),
                )
            })?;
        return load_tensors(&single);
    };
    load_shards(&index)
}

fn load_shards(index_path: &Path) -> Result<HashMap<String, Tensor>> {
    let text = std::fs::read_to_string(index_path).map_err(|e| EngineError::Io {
        path: index_path.to_path_buf(),
        source: e,
    })?;
    let index: ShardIndex = serde_json::from_str(&text)
        .map_err(|e| checkpoint_error(index_path, format!("bad shard index ({e})")))?;
    let folder = index_path.parent().unwrap_or(Path::new("."));
    let mut shards: Vec<&String> = index.weight_map.values().collect();
    shards.sort();
    shards.dedup();
    let index_name = index_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Check every shard is there before reading gigabytes of the others.
    let missing: Vec<PathBuf> = shards
        .iter()
        .map(|s| folder.join(s))
        .filter(|p| !p.is_file())
        .collect();
    if let Some(first) = missing.first() {
        return Err(checkpoint_error(
            first,
            format!(
                "this shard is missing ({} of {} shards listed in {index_name} are absent); \
                 download every file of the model",
                missing.len(),
                shards.len()
            ),
        ));
    }
    let mut tensors = HashMap::new();
    for shard in &shards {
        let shard_path = folder.join(shard);
        let loaded = load_tensors(&shard_path)?;
        for (key, file) in &index.weight_map {
            if file == *shard && !loaded.contains_key(key) {
                return Err(checkpoint_error(
                    &shard_path,
                    format!(
                        "the shard lacks `{key}`, which {index_name} places in it: the file is incomplete"
                    ),
                ));
            }
        }
        tensors.extend(loaded);
    }
    Ok(tensors)
}
