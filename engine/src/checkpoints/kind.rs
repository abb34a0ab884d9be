//! Which model a checkpoint holds, read from its keys, so that a file given in the wrong place
//! (a text-to-image prior where an image-to-image one is expected, a text encoder as a prior...)
//! is refused with a sentence that names what it is, instead of a missing-key or shape error.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::{load_tensors, model_load_error};
use crate::error::{EngineError, Result};

/// The model families the engine recognises by their checkpoint keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointKind {
    /// A Lumos image-to-image prior (`LumosI2I`, or one of our own priors of that class).
    LumosImageToImage,
    /// A Lumos text-to-image prior (`LumosT2IMS`: has the micro-condition embedders).
    LumosTextToImage,
    /// A T5 text encoder (Hugging Face keys).
    T5Encoder,
    /// A DINO ViT image encoder.
    DinoVit,
    /// A Stable Diffusion VAE (diffusers keys).
    Vae,
    /// None of the above.
    Unknown,
}

impl CheckpointKind {
    /// What to call it in a message.
    pub fn description(self) -> &'static str {
        match self {
            Self::LumosImageToImage => "a Lumos image-to-image (I2I) prior",
            Self::LumosTextToImage => "a Lumos text-to-image (T2I) prior",
            Self::T5Encoder => "a T5 text encoder",
            Self::DinoVit => "a DINO ViT image encoder",
            Self::Vae => "a Stable Diffusion VAE",
            Self::Unknown => "an unrecognised model",
        }
    }

    /// What the user can do with it instead.
    fn advice(self) -> &'static str {
        match self {
            Self::LumosImageToImage => "use it for variations, blends and repaints (Lumos_I2I.pth)",
            Self::LumosTextToImage => "use it for text-to-image (Lumos_T2I.pth)",
            Self::T5Encoder => "give it as the text encoder of a text-to-image model",
            Self::DinoVit => "give it as the reference encoder",
            Self::Vae => "give it as the autoencoder",
            Self::Unknown => "check that this is the right file",
        }
    }
}

/// Recognises a checkpoint by its keys.
pub fn recognise(tensors: &HashMap<String, Tensor>) -> CheckpointKind {
    recognise_names(&|key| tensors.contains_key(key))
}

/// Recognises a checkpoint by which keys it `has`.
pub fn recognise_names(has: &dyn Fn(&str) -> bool) -> CheckpointKind {
    if has("csize_embedder.mlp.0.weight") || has("ar_embedder.mlp.0.weight") {
        CheckpointKind::LumosTextToImage
    } else if has("y_embedder.y_embedding") && has("x_embedder.proj.weight") {
        CheckpointKind::LumosImageToImage
    } else if has("encoder.block.0.layer.0.SelfAttention.q.weight") {
        CheckpointKind::T5Encoder
    } else if has("cls_token") && has("patch_embed.proj.weight") {
        CheckpointKind::DinoVit
    } else if has("encoder.conv_in.weight") && has("decoder.conv_in.weight") {
        CheckpointKind::Vae
    } else {
        CheckpointKind::Unknown
    }
}

/// Refuses tensors of a recognised kind other than `expected` (unrecognised ones pass: the
/// model's own loading then names the missing key).
pub fn ensure_kind(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    expected: CheckpointKind,
) -> Result<()> {
    ensure_found_kind(path, recognise(tensors), expected)
}

/// Refuses a checkpoint recognised as `found` where `expected` is wanted.
pub fn ensure_found_kind(
    path: &Path,
    found: CheckpointKind,
    expected: CheckpointKind,
) -> Result<()> {
    if found == expected || found == CheckpointKind::Unknown {
        return Ok(());
    }
    Err(EngineError::Checkpoint {
        path: path.to_path_buf(),
        reason: format!(
            "this is {}, but {} is expected here; {}",
            found.description(),
            expected.description(),
            found.advice()
        ),
    })
}

/// [`super::build_model`] that first checks the checkpoint is of the `expected` kind.
pub fn build_model_of_kind<M>(
    path: &Path,
    expected: CheckpointKind,
    dtype: DType,
    device: &Device,
    build: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<M>,
) -> Result<M> {
    build_from_tensors(path, load_tensors(path)?, expected, dtype, device, build)
}

/// Builds a model of the `expected` kind from tensors already read from `path` (a file, or the
/// folder of a sharded checkpoint), with errors that name `path`.
pub fn build_from_tensors<M>(
    path: &Path,
    tensors: HashMap<String, Tensor>,
    expected: CheckpointKind,
    dtype: DType,
    device: &Device,
    build: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<M>,
) -> Result<M> {
    ensure_kind(path, &tensors, expected)?;
    let vb = VarBuilder::from_tensors(tensors, dtype, device);
    build(vb).map_err(|e| model_load_error(path, e))
}
