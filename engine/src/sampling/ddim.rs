//! DDIM (η = 0) on the same continuous time grid: `x_t = α_t x̂0 + σ_t ε̂`.
//!
//! Mathematically the first-order DPM-Solver++; written in DDIM's own form so that it is an
//! independent second solver (a test checks the two agree).

use candle_core::Tensor;

use super::guidance::NoisePredictor;
use super::schedule::NoiseSchedule;
use super::{Constraint, SolverStep};
use crate::error::{EngineError, Result};

/// Samples with DDIM in `steps` network evaluations.
pub fn sample(
    schedule: &NoiseSchedule,
    timesteps: &[f32],
    noise: &Tensor,
    predictor: &mut dyn NoisePredictor,
    mut constraint: Option<&mut Constraint<'_>>,
    on_step: &mut dyn FnMut(SolverStep<'_>) -> Result<()>,
) -> Result<Tensor> {
    if timesteps.len() < 2 {
        return Err(EngineError::InvalidRequest(
            "steps must be at least 1".into(),
        ));
    }
    let steps = timesteps.len() - 1;
    let mut x = noise.clone();
    for (step, pair) in timesteps.windows(2).enumerate() {
        let step = step + 1;
        let (s, t) = (pair[0], pair[1]);
        let eps = predictor.predict_noise(&x, schedule.network_time(s))?;
        let (alpha_s, sigma_s) = (schedule.marginal_alpha(s), schedule.marginal_std(s));
        let (alpha_t, sigma_t) = (schedule.marginal_alpha(t), schedule.marginal_std(t));
        let x0 = ((&x - (&eps * sigma_s as f64)?)? / alpha_s as f64)?;
        x = ((&x0 * alpha_t as f64)? + (&eps * sigma_t as f64)?)?;
        if let Some(constraint) = constraint.as_mut() {
            x = constraint(t, x)?;
        }
        on_step(SolverStep {
            step,
            steps,
            order: 1,
            t,
            x: &x,
            x0: &x0,
        })?;
    }
    Ok(x)
}
