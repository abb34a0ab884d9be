//! Weights read one tensor at a time, when a model asks for it, from one or more files
//! (the shards of a Hugging Face folder): a safetensors tensor is read from its byte range,
//! a `.pth`/`.bin` pickle is checked once (allow-list, record sizes) and each tensor then read
//! from its own zip entry. A model built block by block from this source never holds more than
//! the blocks it has built — the T5-XXL encoder (19 GB in f32) runs one block at a time this
//! way. Reads, not a memory map: mapped pages stay in the process's resident set while the
//! file is mapped, so a mapped 19 GB encoder would look (and under pressure act) resident.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::io::{Read, Seek, SeekFrom};

use candle_core::pickle::PthTensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;

use super::{CheckpointKind, checkpoint_error, open_pth, recognise_names, refusing_panics};
use crate::error::{EngineError, Result};

enum Source {
    Safetensors(SafetensorsIndex),
    Pickle(PthTensors),
}

/// Where each tensor of a safetensors file lies.
struct SafetensorsIndex {
    /// Offset of the data section.
    data_start: u64,
    /// Name → dtype, shape and byte range within the data section.
    tensors: HashMap<String, (DType, Vec<usize>, u64, u64)>,
}

#[derive(serde::Deserialize)]
struct HeaderEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

impl SafetensorsIndex {
    /// Reads and checks the header: known dtypes, byte ranges inside the file that match
    /// their shapes.
    fn open(path: &Path) -> Result<Self> {
        let bad = |reason: String| {
            checkpoint_error(path, format!("not a readable safetensors file ({reason})"))
        };
        let io = |e: std::io::Error| EngineError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut len = [0u8; 8];
        file.read_exact(&mut len).map_err(|e| bad(e.to_string()))?;
        let header_len = u64::from_le_bytes(len);
        if header_len > file_len.saturating_sub(8) || header_len > 100 << 20 {
            return Err(bad(format!("header of {header_len} bytes")));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header)
            .map_err(|e| bad(e.to_string()))?;
        let mut entries: HashMap<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|e| bad(e.to_string()))?;
        entries.remove("__metadata__");
        let data_start = 8 + header_len;
        let mut tensors = HashMap::with_capacity(entries.len());
        for (name, value) in entries {
            let entry: HeaderEntry =
                serde_json::from_value(value).map_err(|e| bad(format!("`{name}`: {e}")))?;
            let dtype = match entry.dtype.as_str() {
                "F32" => DType::F32,
                "F16" => DType::F16,
                "BF16" => DType::BF16,
                "F64" => DType::F64,
                "I64" => DType::I64,
                "U32" => DType::U32,
                "U8" => DType::U8,
                other => return Err(bad(format!("`{name}` has unsupported dtype {other}"))),
            };
            let [start, end] = entry.data_offsets;
            let needed = entry
                .shape
                .iter()
                .try_fold(dtype.size_in_bytes() as u64, |n, &d| {
                    n.checked_mul(d as u64)
                });
            if start > end || data_start + end > file_len || needed != Some(end - start) {
                return Err(bad(format!(
                    "`{name}` claims bytes {start}..{end} for shape {:?}: the file is truncated \
                     or corrupt",
                    entry.shape
                )));
            }
            tensors.insert(name, (dtype, entry.shape, start, end));
        }
        Ok(Self {
            data_start,
            tensors,
        })
    }

    fn read(&self, path: &Path, name: &str) -> Result<Tensor> {
        let (dtype, shape, start, end) = &self.tensors[name];
        let io = |e: std::io::Error| EngineError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        file.seek(SeekFrom::Start(self.data_start + start))
            .map_err(io)?;
        let mut bytes = vec![0u8; (end - start) as usize];
        file.read_exact(&mut bytes).map_err(io)?;
        Ok(Tensor::from_raw_buffer(
            &bytes,
            *dtype,
            shape,
            &Device::Cpu,
        )?)
    }
}

/// Tensors spread over files, read on demand.
pub struct LazyWeights {
    files: Vec<(PathBuf, Source)>,
    /// Tensor name → index into `files`.
    names: HashMap<String, usize>,
}

impl LazyWeights {
    /// Opens every file (nothing but headers and pickles is read).
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut names = HashMap::new();
        for path in paths {
            let is_pickle = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("pth" | "pt" | "bin" | "ckpt")
            );
            let source =
                refusing_panics(path, "the file is malformed and could not be read", || {
                    if is_pickle {
                        Ok(Source::Pickle(open_pth(path)?))
                    } else {
                        SafetensorsIndex::open(path).map(Source::Safetensors)
                    }
                })?;
            let index = files.len();
            let file_names: Vec<String> = match &source {
                Source::Safetensors(s) => s.tensors.keys().cloned().collect(),
                Source::Pickle(p) => p.tensor_infos().keys().cloned().collect(),
            };
            for name in file_names {
                names.insert(name, index);
            }
            files.push((path.clone(), source));
        }
        Ok(Self { files, names })
    }

    /// Which model the names say this is.
    pub fn kind(&self) -> CheckpointKind {
        recognise_names(&|name| self.names.contains_key(name))
    }

    /// Every tensor name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    /// Whether a tensor is present.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// A `VarBuilder` reading from these files in `dtype` on `device`.
    pub fn into_var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), dtype, device.clone())
    }

    fn read(&self, name: &str) -> Result<Tensor> {
        let index = *self
            .names
            .get(name)
            .ok_or_else(|| EngineError::MissingKey {
                path: self
                    .files
                    .first()
                    .map(|(p, _)| p.clone())
                    .unwrap_or_default(),
                key: name.to_string(),
            })?;
        let (path, source) = &self.files[index];
        refusing_panics(path, "a tensor could not be read", || match source {
            Source::Safetensors(s) => s.read(path, name),
            Source::Pickle(p) => p
                .get(name)
                .map_err(|e| checkpoint_error(path, format!("tensor `{name}`: {e}")))?
                .ok_or_else(|| checkpoint_error(path, format!("tensor `{name}` vanished"))),
        })
    }

    /// The file a tensor lives in.
    pub fn file_of(&self, name: &str) -> Option<&Path> {
        self.names.get(name).map(|&i| self.files[i].0.as_path())
    }
}

fn to_candle(error: EngineError) -> candle_core::Error {
    candle_core::Error::Msg(error.to_string())
}

impl SimpleBackend for LazyWeights {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        if !self.contains(name) {
            return Err(candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            });
        }
        let tensor = self.read(name).map_err(to_candle)?;
        if tensor.shape() != &shape {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: shape,
                got: tensor.shape().clone(),
            });
        }
        tensor.to_dtype(dtype)?.to_device(device)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        if !self.contains(name) {
            return Err(candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            });
        }
        self.read(name)
            .map_err(to_candle)?
            .to_dtype(dtype)?
            .to_device(device)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_weights(path: &Path) {
        let tensors: HashMap<String, Tensor> = [
            (
                "a".to_string(),
                Tensor::arange(0f32, 6.0, &Device::Cpu).expect("tensor"),
            ),
            (
                "b".to_string(),
                Tensor::ones((2, 3), DType::F16, &Device::Cpu).expect("tensor"),
            ),
        ]
        .into_iter()
        .collect();
        candle_core::safetensors::save(&tensors, path).expect("save");
    }

    #[test]
    fn tensors_are_read_by_name_and_damaged_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.safetensors");
        write_weights(&path);
        let weights = LazyWeights::open(std::slice::from_ref(&path)).expect("open");
        assert!(weights.contains("a") && weights.contains("b") && !weights.contains("c"));
        let vb = weights.into_var_builder(DType::F32, &Device::Cpu);
        let a = vb.get(6, "a").expect("a");
        assert_eq!(
            a.to_vec1::<f32>().expect("tensor"),
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        assert_eq!(vb.get((2, 3), "b").expect("b").dtype(), DType::F32);
        assert!(vb.get((3, 2), "b").is_err(), "a wrong shape is refused");

        // Cut inside the data: the header's ranges no longer fit.
        let bytes = std::fs::read(&path).expect("read");
        let cut = dir.path().join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() - 4]).expect("write");
        let error = LazyWeights::open(std::slice::from_ref(&cut))
            .err()
            .expect("refused");
        assert!(
            error.to_string().contains("truncated or corrupt"),
            "{error}"
        );
        // Garbage.
        let junk = dir.path().join("junk.safetensors");
        std::fs::write(&junk, b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a header").expect("write");
        assert!(LazyWeights::open(std::slice::from_ref(&junk)).is_err());
    }
}
