//! The reference encoder: whichever network turns a reference image into the prior's condition
//! token. The published model uses DINO ViT-B/16; the embedded default uses EfficientNet-Lite0.
//! Both give an L2-normalised embedding, the only thing the rest of the engine sees.

use candle_core::{D, Device, Result, Tensor};
use candle_nn::VarBuilder;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::dino::{DinoConfig, DinoVit, condition_from_cls};
use super::efficientnet::{EfficientNetLite, EfficientNetLiteConfig};

/// Which encoder a model uses. Untagged, so a plain DINO config (the original format) still
/// reads as one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EncoderConfig {
    /// DINO ViT (the published Lumos encoder).
    Dino(DinoConfig),
    /// EfficientNet-Lite (the embedded default's encoder).
    EfficientNetLite(EfficientNetLiteConfig),
}

impl EncoderConfig {
    /// Width of the embedding.
    pub fn embed_dim(&self) -> usize {
        match self {
            Self::Dino(cfg) => cfg.embed_dim,
            Self::EfficientNetLite(cfg) => cfg.embed_dim(),
        }
    }

    /// Side of the square crop the encoder sees.
    pub fn image_size(&self) -> usize {
        match self {
            Self::Dino(_) => 224,
            Self::EfficientNetLite(cfg) => cfg.image_size,
        }
    }
}

impl From<DinoConfig> for EncoderConfig {
    fn from(cfg: DinoConfig) -> Self {
        Self::Dino(cfg)
    }
}

/// A loaded reference encoder.
#[derive(Debug, Clone)]
pub enum ImageEncoder {
    /// DINO ViT: the CLS token.
    Dino(DinoVit),
    /// EfficientNet-Lite: the pooled features.
    EfficientNetLite(EfficientNetLite),
}

impl ImageEncoder {
    /// Builds the encoder a config names.
    pub fn load(config: &EncoderConfig, vb: VarBuilder) -> Result<Self> {
        Ok(match config {
            EncoderConfig::Dino(cfg) => Self::Dino(DinoVit::load(cfg, vb)?),
            EncoderConfig::EfficientNetLite(cfg) => {
                Self::EfficientNetLite(EfficientNetLite::load(cfg, vb)?)
            }
        })
    }

    /// Side of the square crop the encoder sees.
    pub fn image_size(&self) -> usize {
        match self {
            Self::Dino(_) => 224,
            Self::EfficientNetLite(net) => net.config().image_size,
        }
    }

    /// Raw features `(b, c)` of normalised pixels `(b, 3, s, s)`.
    pub fn features(&self, pixels: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dino(vit) => vit.forward(pixels),
            Self::EfficientNetLite(net) => net.forward(pixels),
        }
    }

    /// The L2-normalised embedding `(1, c)` of an image: resized (short side) and cropped to the
    /// encoder's size, `crop` placing the window (centre when `None`).
    pub fn embed(
        &self,
        image: &RgbImage,
        crop: Option<[f32; 2]>,
        device: &Device,
    ) -> Result<Tensor> {
        let pixels =
            crate::preprocess::pixel_values(image, self.image_size() as u32, crop, device)?;
        let features = self.features(&pixels)?;
        let (_, c) = features.dims2()?;
        condition_from_cls(&features)?.reshape((1, c))
    }

    /// Condition tokens `(1, (1 + grid²) · c)`: the embedding of [`Self::embed`], then the
    /// feature map average-pooled to `grid × grid` (row-major), each token L2-normalised — the
    /// spatial condition tokens of the built-in prior (`grid` 0 gives the embedding alone).
    pub fn embed_tokens(
        &self,
        image: &RgbImage,
        crop: Option<[f32; 2]>,
        grid: usize,
        device: &Device,
    ) -> Result<Tensor> {
        if grid == 0 {
            return self.embed(image, crop, device);
        }
        let Self::EfficientNetLite(net) = self else {
            candle_core::bail!("spatial condition tokens need the EfficientNet-Lite encoder")
        };
        let pixels =
            crate::preprocess::pixel_values(image, self.image_size() as u32, crop, device)?;
        let map = net.feature_map(&pixels)?; // (1, c, s, s)
        let (_, c, h, w) = map.dims4()?;
        if !h.is_multiple_of(grid) || !w.is_multiple_of(grid) {
            candle_core::bail!("a {h}×{w} feature map cannot be pooled to {grid}×{grid}")
        }
        let pooled = map
            .reshape((c, grid, h / grid, grid, w / grid))?
            .mean(4)?
            .mean(2)? // (c, grid, grid)
            .reshape((c, grid * grid))?
            .t()?;
        // Pooled as `EfficientNetLite::forward` pools, so the first token is exactly `embed`'s.
        let global = map.mean(D::Minus1)?.mean(D::Minus1)?;
        let tokens = Tensor::cat(&[&global, &pooled], 0)?;
        let norms = tokens
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?;
        tokens.broadcast_div(&norms)?.reshape((1, ()))
    }
}
