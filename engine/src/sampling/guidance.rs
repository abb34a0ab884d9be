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
        guided_noise(
            x,
            net_t,
            [&self.uncondition, &self.condition],
            self.scale,
            self.model.dtype(),
            |x, t, y| Ok(self.model.forward_eps(x, t, y)?),
        )
    }
}

/// Classifier-free guidance as the originals batch it: with `scale` 1 the conditional branch
/// alone; otherwise one call of `forward(x, net_t per row, condition)` on `cat([x, x])` with
/// `cat([uncondition, condition])` (unconditional first; both cast to the network's `dtype`:
/// conditions arrive in f32, learned nulls in the network's), then `ε_u + scale (ε_c − ε_u)`,
/// in `x`'s dtype.
pub(crate) fn guided_noise(
    x: &Tensor,
    net_t: f32,
    [uncondition, condition]: [&Tensor; 2],
    scale: f64,
    dtype: candle_core::DType,
    forward: impl Fn(&Tensor, &[f32], &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let b = x.dim(0)?;
    if scale == 1.0 {
        return Ok(forward(x, &vec![net_t; b], condition)?.to_dtype(x.dtype())?);
    }
    let x_in = Tensor::cat(&[x, x], 0)?;
    let y_in = Tensor::cat(
        &[&uncondition.to_dtype(dtype)?, &condition.to_dtype(dtype)?],
        0,
    )?;
    let eps = forward(&x_in, &vec![net_t; 2 * b], &y_in)?.to_dtype(x.dtype())?;
    let eps_uncond = eps.narrow(0, 0, b)?;
    let eps_cond = eps.narrow(0, b, b)?;
    Ok((&eps_uncond + ((&eps_cond - &eps_uncond)? * scale)?)?)
}

impl<P: NoisePredictor + ?Sized> NoisePredictor for Box<P> {
    fn predict_noise(&mut self, x: &Tensor, net_t: f32) -> Result<Tensor> {
        (**self).predict_noise(x, net_t)
    }
}

fn alpha_sigma(schedule: &crate::sampling::NoiseSchedule, net_t: f32) -> (f64, f64) {
    let n = schedule.total_n() as f32;
    let t = net_t / n + 1.0 / n;
    (
        f64::from(schedule.marginal_alpha(t)),
        f64::from(schedule.marginal_std(t)),
    )
}

/// Turns what a network predicts into the noise the solvers expect: ε itself; from
/// `v = α ε − σ x0`, `ε = α v + σ x` (since α² + σ² = 1); from x0, `ε = (x − α x0) / σ`.
/// Guidance may be applied to the inner prediction: it is linear, and these maps are affine.
pub struct PredictionToNoise<'a, P: NoisePredictor> {
    /// The model (guided or not).
    pub inner: P,
    /// What it predicts.
    pub prediction: crate::models::Prediction,
    /// The schedule that maps network time to α and σ.
    pub schedule: &'a crate::sampling::NoiseSchedule,
}

impl<P: NoisePredictor> NoisePredictor for PredictionToNoise<'_, P> {
    fn predict_noise(&mut self, x: &Tensor, net_t: f32) -> Result<Tensor> {
        use crate::models::Prediction;
        let out = self.inner.predict_noise(x, net_t)?;
        let (alpha, sigma) = alpha_sigma(self.schedule, net_t);
        Ok(match self.prediction {
            Prediction::Epsilon => out,
            Prediction::V => ((out * alpha)? + (x * sigma)?)?,
            Prediction::Sample => ((x - (out * alpha)?)? / sigma)?,
        })
    }
}

/// Clips the implied clean image `x0 = (x − σ ε) / α` to [−1, 1] and returns the noise that
/// corresponds to the clipped image (DDPM's `clip_denoised`). For priors that work on pixels:
/// at high noise a small error in ε becomes a huge one in x0 (α is 0.006 at t = 1 on the linear
/// schedule), and without the clip the solver's first steps fill the image with saturated
/// blocks. Latent-space priors have no such bound and are left alone.
pub struct ClipDenoised<'a, P: NoisePredictor> {
    /// The predictor whose output is clipped.
    pub inner: P,
    /// The schedule that maps network time to α and σ.
    pub schedule: &'a crate::sampling::NoiseSchedule,
}

impl<P: NoisePredictor> NoisePredictor for ClipDenoised<'_, P> {
    fn predict_noise(&mut self, x: &Tensor, net_t: f32) -> Result<Tensor> {
        let eps = self.inner.predict_noise(x, net_t)?;
        let (alpha, sigma) = alpha_sigma(self.schedule, net_t);
        let x0 = ((x - (&eps * sigma)?)? / alpha)?.clamp(-1f32, 1f32)?;
        Ok(((x - (x0 * alpha)?)? / sigma)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Predicts a fixed noise whatever the input.
    struct Constant(Tensor);
    impl NoisePredictor for Constant {
        fn predict_noise(&mut self, _x: &Tensor, _net_t: f32) -> Result<Tensor> {
            Ok(self.0.clone())
        }
    }

    #[test]
    fn velocity_and_sample_convert_back_to_the_noise_they_were_made_from() -> Result<()> {
        let schedule = crate::sampling::NoiseSchedule::default();
        let dev = Device::Cpu;
        for t in [0.05f32, 0.5, 0.99] {
            let (alpha, sigma) = (
                f64::from(schedule.marginal_alpha(t)),
                f64::from(schedule.marginal_std(t)),
            );
            let x0 = Tensor::new(&[0.5f32, -0.25, 1.0, -1.0], &dev)?;
            let eps = Tensor::new(&[0.3f32, -1.2, 0.7, 2.0], &dev)?;
            let x = ((&x0 * alpha)? + (&eps * sigma)?)?;
            let v = ((&eps * alpha)? - (&x0 * sigma)?)?;
            let mut to_noise = PredictionToNoise {
                inner: Constant(v),
                prediction: crate::models::Prediction::V,
                schedule: &schedule,
            };
            let back = to_noise.predict_noise(&x, schedule.network_time(t))?;
            let err = (back - &eps)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(err < 1e-4, "t {t}: {err}");
            let mut from_sample = PredictionToNoise {
                inner: Constant(x0.clone()),
                prediction: crate::models::Prediction::Sample,
                schedule: &schedule,
            };
            let back = from_sample.predict_noise(&x, schedule.network_time(t))?;
            let err = (back - &eps)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(err < 1e-3, "x0 at t {t}: {err}");
        }
        Ok(())
    }

    #[test]
    fn clipping_bounds_the_implied_image_and_keeps_good_predictions() -> Result<()> {
        let schedule = crate::sampling::NoiseSchedule::default();
        let dev = Device::Cpu;
        let t = 0.9f32;
        let (alpha, sigma) = (
            f64::from(schedule.marginal_alpha(t)),
            f64::from(schedule.marginal_std(t)),
        );
        let x0 = Tensor::new(&[0.5f32, -0.25, 1.0, -1.0], &dev)?;
        let eps = Tensor::new(&[0.3f32, -1.2, 0.7, 2.0], &dev)?;
        let x = ((&x0 * alpha)? + (&eps * sigma)?)?;
        let net_t = schedule.network_time(t);
        // The true noise implies an image inside [-1, 1]: unchanged.
        let mut exact = ClipDenoised {
            inner: Constant(eps.clone()),
            schedule: &schedule,
        };
        let kept = (exact.predict_noise(&x, net_t)? - &eps)?.abs()?.max_all()?;
        assert!(kept.to_scalar::<f32>()? < 1e-4);
        // A slightly wrong noise implies a wild image; the clipped one stays in [-1, 1].
        let mut off = ClipDenoised {
            inner: Constant((&eps + 0.2)?),
            schedule: &schedule,
        };
        let eps_clipped = off.predict_noise(&x, net_t)?;
        let implied = ((&x - (eps_clipped * sigma)?)? / alpha)?;
        let max = implied.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(max <= 1.0 + 1e-4, "implied image reaches {max}");
        Ok(())
    }
}
