//! Network architectures, one per file. Pure `forward`s: no threads, no channels, no IO
//! beyond reading weights through a `VarBuilder`.

pub mod clip_vision;
pub mod dino;
pub mod direct_conv;
pub mod efficientnet;
pub mod encoder;
pub mod fast_ops;
pub mod gemm_panels;
pub mod layers;
pub mod ldm_unet;
pub mod lumos;
pub mod lumos_t2i;
pub mod panel_gemm;
pub mod prompt_encoder;
pub mod t5;
pub mod vae;
pub mod winograd;
pub mod zero123;

pub use dino::{DinoConfig, DinoVit};
pub use efficientnet::{EfficientNetLite, EfficientNetLiteConfig};
pub use encoder::{EncoderConfig, ImageEncoder};
pub use lumos::{LumosConfig, LumosI2I, Prediction};
pub use lumos_t2i::{LumosT2IConfig, LumosT2IMS, MicroConditions};
pub use t5::{T5Config, T5Encoder};
pub use vae::{AutoencoderKl, VaeConfig};
