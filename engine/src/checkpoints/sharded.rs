//! Hugging Face model folders whose weights may be split into shards
//! (`model.safetensors.index.json` / `pytorch_model.bin.index.json` + `…-0000N-of-0000M…` files),
//! as the T5-XXL text encoder ships (about 19 GB in f32). A missing, truncated or incomplete shard
//! is reported with the shard's own path.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use super::{LazyWeights, checkpoint_error, load_tensors};
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
    match weight_files(path)? {
        WeightFiles::Single(file) => load_tensors(&file),
        WeightFiles::Sharded { index, map } => {
            let mut tensors = HashMap::new();
            for shard in shard_files(&index, &map) {
                let loaded = load_tensors(&shard)?;
                check_shard(&index, &shard, &map, &|key| loaded.contains_key(key))?;
                tensors.extend(loaded);
            }
            Ok(tensors)
        }
    }
}

/// The same weights opened for reading one tensor at a time ([`LazyWeights`]): a model built
/// from them block by block holds only the blocks it has built.
pub fn lazy_hf_weights(path: &Path) -> Result<LazyWeights> {
    match weight_files(path)? {
        WeightFiles::Single(file) => LazyWeights::open(&[file]),
        WeightFiles::Sharded { index, map } => {
            let shards = shard_files(&index, &map);
            let weights = LazyWeights::open(&shards)?;
            for shard in &shards {
                check_shard(&index, shard, &map, &|key| {
                    weights.file_of(key) == Some(shard.as_path())
                })?;
            }
            Ok(weights)
        }
    }
}

enum WeightFiles {
    Single(PathBuf),
    Sharded {
        index: PathBuf,
        map: BTreeMap<String, String>,
    },
}

/// Which files hold the weights; for a sharded checkpoint, every shard must exist.
fn weight_files(path: &Path) -> Result<WeightFiles> {
    let index = if path.is_dir() {
        INDEX_FILES
            .iter()
            .map(|f| path.join(f))
            .find(|p| p.is_file())
    } else if path.to_string_lossy().ends_with(".index.json") {
        Some(path.to_path_buf())
    } else {
        return Ok(WeightFiles::Single(path.to_path_buf()));
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
        return Ok(WeightFiles::Single(single));
    };
    let text = std::fs::read_to_string(&index).map_err(|e| EngineError::Io {
        path: index.clone(),
        source: e,
    })?;
    let parsed: ShardIndex = serde_json::from_str(&text)
        .map_err(|e| checkpoint_error(&index, format!("bad shard index ({e})")))?;
    let map = parsed.weight_map;
    let shards = shard_files(&index, &map);
    // Check every shard is there before reading gigabytes of the others.
    let missing: Vec<&PathBuf> = shards.iter().filter(|p| !p.is_file()).collect();
    if let Some(first) = missing.first() {
        return Err(checkpoint_error(
            first,
            format!(
                "this shard is missing ({} of {} shards listed in {} are absent); download \
                 every file of the model",
                missing.len(),
                shards.len(),
                file_name(&index)
            ),
        ));
    }
    Ok(WeightFiles::Sharded { index, map })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The distinct shard files of an index, sorted.
fn shard_files(index: &Path, map: &BTreeMap<String, String>) -> Vec<PathBuf> {
    let folder = index.parent().unwrap_or(Path::new("."));
    let mut shards: Vec<&String> = map.values().collect();
    shards.sort();
    shards.dedup();
    shards.into_iter().map(|s| folder.join(s)).collect()
}

/// Every key the index places in `shard` is in it.
fn check_shard(
    index: &Path,
    shard: &Path,
    map: &BTreeMap<String, String>,
    has: &dyn Fn(&str) -> bool,
) -> Result<()> {
    let shard_name = file_name(shard);
    for (key, file) in map {
        if *file == shard_name && !has(key) {
            return Err(checkpoint_error(
                shard,
                format!(
                    "the shard lacks `{key}`, which {} places in it: the file is incomplete",
                    file_name(index)
                ),
            ));
        }
    }
    Ok(())
}
