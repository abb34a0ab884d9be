//! Classifier-free guidance around the text-to-image DiT, as the T2I demo calls DPM-Solver:
//! one batched call on `cat([x, x])` with `cat([null caption, caption])`, the prompt's `(b, l)`
//! mask and one row of micro-conditions passed unchanged — the model tiles both over the
//! doubled batch, which truncates the null caption to the prompt's token count.

use candle_core::Tensor;

use super::guidance::NoisePredictor;
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
        let b = x.dim(0)?;
        let mask = self.mask.as_ref();
        if self.scale == 1.0 {
            return Ok(self
                .model
                .forward_eps(x, &vec![net_t; b], &self.condition, mask, &self.micro)?
                .to_dtype(x.dtype())?);
        }
        // One batched call: unconditional first, as the original.
        let x_in = Tensor::cat(&[x, x], 0)?;
        // Caption features come from the f32 text encoder; the null caption is in the
        // prior's dtype.
        let dtype = self.model.dtype();
        let y_in = Tensor::cat(
            &[
                &self.uncondition.to_dtype(dtype)?,
                &self.condition.to_dtype(dtype)?,
            ],
            0,
        )?;
        let eps = self
            .model
            .forward_eps(&x_in, &vec![net_t; 2 * b], &y_in, mask, &self.micro)?
            .to_dtype(x.dtype())?;
        let eps_uncond = eps.narrow(0, 0, b)?;
        let eps_cond = eps.narrow(0, b, b)?;
        Ok((&eps_uncond + ((&eps_cond - &eps_uncond)? * self.scale)?)?)
    }
}
