//! Weights read one tensor at a time, when a model asks for it, from one or more files
//! (the shards of a Hugging Face folder): safetensors are memory-mapped, `.pth`/`.bin` pickles
//! are checked once (allow-list, record sizes) and each tensor is then read from its own zip
//! entry. A model built block by block from this source never holds more than the blocks it
//! has built — the T5-XXL encoder (19 GB in f32) runs one block at a time this way.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::pickle::PthTensors;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;

use super::{CheckpointKind, checkpoint_error, open_pth, recognise_names, refusing_panics};
use crate::error::{EngineError, Result};

enum Source {
    Safetensors(MmapedSafetensors),
    Pickle(PthTensors),
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
                        // SAFETY: mapped read-only; tensors are copied out as they are read. A file
                        // truncated by another process meanwhile would fault, as with any reader
                        // of a file that changes under it.
                        unsafe { MmapedSafetensors::new(path) }
                            .map(Source::Safetensors)
                            .map_err(|e| {
                                checkpoint_error(
                                    path,
                                    format!("not a readable safetensors file ({e})"),
                                )
                            })
                    }
                })?;
            let index = files.len();
            let file_names: Vec<String> = match &source {
                Source::Safetensors(s) => s.tensors().into_iter().map(|(n, _)| n).collect(),
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
            Source::Safetensors(s) => s
                .load(name, &Device::Cpu)
                .map_err(|e| checkpoint_error(path, format!("tensor `{name}`: {e}"))),
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
