//! Classifier-free guidance around the text-to-image DiT, as the T2I demo calls DPM-Solver:
//! one batched call on `cat([x, x])` with `cat([null caption, caption])`, the prompt's `(b, l)`
//! mask and one row of micro-conditions passed unchanged — the model tiles both over the
//! doubled batch, which truncates the null caption to the prompt's token count.

use candle_core::Tensor;

use super::guidance::{NoisePredictor, guided_noise};
use crate::error::Result;
use crate::models::{LumosT2IMS, MicroConditions};

/// The text-to-image prior with a caption, the learned null caption and the bucket.
pub struct TextGuidance<'a> {
    /// The prior.
    pub model: &'a LumosT2IMS,
    /// Caption features `(b, 1, l, caption_channels)`.
    pub condition: Tensor,
    /// Same shape; usually `model.null_condition(b)`.
    pub uncondition: Tensor,
    /// The prompt's token mask `(b, l)` (`None`: every token is attended).
    pub mask: Option<Tensor>,
    /// The bucket's size and ratio.
    pub micro: MicroConditions,
    /// Guidance scale; 1 evaluates the conditional branch only.
    pub scale: f64,
}

impl NoisePredictor for TextGuidance<'_> {
    fn predict_noise(&mut self, x: &Tensor, net_t: f32) -> Result<Tensor> {
        let mask = self.mask.as_ref();
        guided_noise(
            x,
            net_t,
            [&self.uncondition, &self.condition],
            self.scale,
            self.model.dtype(),
            |x, t, y| Ok(self.model.forward_eps(x, t, y, mask, &self.micro)?),
        )
    }
}
