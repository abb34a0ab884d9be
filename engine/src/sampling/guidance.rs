//! Classifier-free guidance around the Lumos DiT, as DPM-Solver's `model_wrapper` does it.

use candle_core::Tensor;

use crate::error::Result;
use crate::models::LumosI2I;

/// Anything that predicts the (guided) noise of a batch at one network timestep.
pub trait NoisePredictor {
    /// `x`: `(b, c, h, w)`; `net_t`: the network timestep `(t - 1/N) * N`.
    fn predict_noise(&mut self, x: &Tensor, net_t: f32) -> Result<Tensor>;
}

/// The Lumos model with a condition and the learned null condition.
pub struct ClassifierFreeGuidance<'a> {
    /// The prior.
    pub model: &'a LumosI2I,
    /// `(b, 1, l, caption_channels)`.
    pub condition: Tensor,
    /// Same shape; usually `model.null_condition(b)`.
    pub uncondition: Tensor,
    /// Guidance scale; 1 evaluates the conditional branch only.
    pub scale: f64,
}

impl NoisePredictor for ClassifierFreeGuidance<'_> {
    fn predict_noise(&mut self, x: &Tensor, net_t: f32) -> Result<Tensor> {
        let b = x.dim(0)?;
        if self.scale == 1.0 {
            return Ok(self
                .model
                .forward_eps(x, &vec![net_t; b], &self.condition)?
                .to_dtype(x.dtype())?);
        }
        // One batched call: unconditional first, as the original.
        let x_in = Tensor::cat(&[x, x], 0)?;
        let y_in = Tensor::cat(&[&self.uncondition, &self.condition], 0)?;
        let eps = self
            .model
            .forward_eps(&x_in, &vec![net_t; 2 * b], &y_in)?
            .to_dtype(x.dtype())?;
        let eps_uncond = eps.narrow(0, 0, b)?;
        let eps_cond = eps.narrow(0, b, b)?;
        Ok((&eps_uncond + ((&eps_cond - &eps_uncond)? * self.scale)?)?)
    }
}
