//! DPM-Solver++ multistep (data prediction, `solver_type="dpmsolver"`), orders 1–3, on the
//! time-uniform grid — the update rules of `lumos_diffusion/model/dpm_solver*.py`.
//!
//! Scalars (λ, α, σ, φ) are computed in f32 in the original order; tensors are combined in the
//! same order as the original expressions.

use candle_core::Tensor;

use super::guidance::NoisePredictor;
use super::schedule::NoiseSchedule;
use super::{Constraint, LowerOrderFinal, SolverStep};
use crate::error::{EngineError, Result};

/// Solver settings.
#[derive(Clone, Copy, Debug)]
pub struct DpmSolverPp {
    /// Multistep order, 1..=3.
    pub order: usize,
    /// When to drop to first order at the end.
    pub lower_order_final: LowerOrderFinal,
}

impl DpmSolverPp {
    /// The order used for update `step` (1-based) of `steps`.
    pub fn step_order(&self, step: usize, steps: usize) -> usize {
        let order = self.order.min(steps);
        if step < order {
            return step; // warm-up
        }
        let lower = match self.lower_order_final {
            LowerOrderFinal::Always => true,
            LowerOrderFinal::BelowTenSteps => steps < 10,
        };
        if lower {
            order.min(steps + 1 - step)
        } else {
            order
        }
    }
}

/// `x0 = (x - σ_t ε) / α_t`.
pub fn data_prediction(
    schedule: &NoiseSchedule,
    predictor: &mut dyn NoisePredictor,
    x: &Tensor,
    t: f32,
) -> Result<Tensor> {
    let eps = predictor.predict_noise(x, schedule.network_time(t))?;
    let alpha_t = schedule.marginal_alpha(t);
    let sigma_t = schedule.marginal_std(t);
    Ok(((x - (eps * sigma_t as f64)?)? / alpha_t as f64)?)
}

/// One multistep update to time `t` of the given order, from the latest `order` data
/// predictions `x0s` (oldest first) at times `ts`.
pub fn multistep_update(
    schedule: &NoiseSchedule,
    x: &Tensor,
    x0s: &[Tensor],
    ts: &[f32],
    t: f32,
    order: usize,
) -> Result<Tensor> {
    let n = x0s.len();
    let lambda_t = schedule.marginal_lambda(t);
    let log_alpha_t = schedule.marginal_log_mean_coeff(t);
    let sigma_t = schedule.marginal_std(t);
    let alpha_t = log_alpha_t.exp();
    let t_prev_0 = ts[n - 1];
    let m0 = &x0s[n - 1];
    let lambda_prev_0 = schedule.marginal_lambda(t_prev_0);
    let sigma_prev_0 = schedule.marginal_std(t_prev_0);
    let h = lambda_t - lambda_prev_0;
    let phi_1 = (-h).exp_m1();
    let ratio = (sigma_t / sigma_prev_0) as f64;
    let out = match order {
        1 => ((x * ratio)? - (m0 * (alpha_t * phi_1) as f64)?)?,
        2 => {
            let m1 = &x0s[n - 2];
            let lambda_prev_1 = schedule.marginal_lambda(ts[n - 2]);
            let h_0 = lambda_prev_0 - lambda_prev_1;
            let r0 = h_0 / h;
            let d1_0 = ((m0 - m1)? * (1.0 / r0) as f64)?;
            let coeff = alpha_t * phi_1;
            (((x * ratio)? - (m0 * coeff as f64)?)? - (d1_0 * (0.5 * coeff) as f64)?)?
        }
        3 => {
            let (m1, m2) = (&x0s[n - 2], &x0s[n - 3]);
            let lambda_prev_1 = schedule.marginal_lambda(ts[n - 2]);
            let lambda_prev_2 = schedule.marginal_lambda(ts[n - 3]);
            let h_1 = lambda_prev_1 - lambda_prev_2;
            let h_0 = lambda_prev_0 - lambda_prev_1;
            let (r0, r1) = (h_0 / h, h_1 / h);
            let d1_0 = ((m0 - m1)? * (1.0 / r0) as f64)?;
            let d1_1 = ((m1 - m2)? * (1.0 / r1) as f64)?;
            let d1 = (&d1_0 + ((&d1_0 - &d1_1)? * (r0 / (r0 + r1)) as f64)?)?;
            let d2 = ((&d1_0 - &d1_1)? * (1.0 / (r0 + r1)) as f64)?;
            let phi_2 = phi_1 / h + 1.0;
            let phi_3 = phi_2 / h - 0.5;
            ((((x * ratio)? - (m0 * (alpha_t * phi_1) as f64)?)?
                + (d1 * (alpha_t * phi_2) as f64)?)?
                - (d2 * (alpha_t * phi_3) as f64)?)?
        }
        _ => {
            return Err(EngineError::InvalidRequest(format!(
                "DPM-Solver++ order {order} is not supported (use 1, 2 or 3)"
            )));
        }
    };
    Ok(out)
}

/// The multistep sampling loop (`method="multistep"`, `skip_type="time_uniform"`).
pub fn sample(
    solver: &DpmSolverPp,
    schedule: &NoiseSchedule,
    timesteps: &[f32],
    noise: &Tensor,
    predictor: &mut dyn NoisePredictor,
    mut constraint: Option<&mut Constraint<'_>>,
    on_step: &mut dyn FnMut(SolverStep<'_>) -> Result<()>,
) -> Result<Tensor> {
    if !(1..=3).contains(&solver.order) {
        return Err(EngineError::InvalidRequest(format!(
            "DPM-Solver++ order {} is not supported (use 1, 2 or 3)",
            solver.order
        )));
    }
    if timesteps.len() < 2 {
        return Err(EngineError::InvalidRequest(
            "steps must be at least 1".into(),
        ));
    }
    let steps = timesteps.len() - 1;
    let mut x = noise.clone();
    let mut ts = vec![timesteps[0]];
    let mut x0s = vec![data_prediction(schedule, predictor, &x, timesteps[0])?];
    for (step, &t) in timesteps.iter().enumerate().skip(1) {
        let order = solver.step_order(step, steps);
        let history = x0s.len();
        x = multistep_update(
            schedule,
            &x,
            &x0s[history - order..],
            &ts[ts.len() - order..],
            t,
            order,
        )?;
        if let Some(constraint) = constraint.as_mut() {
            x = constraint(t, x)?;
        }
        // The network is not evaluated at the final time.
        if step < steps {
            x0s.push(data_prediction(schedule, predictor, &x, t)?);
            ts.push(t);
            let max_history = solver.order.max(1);
            if x0s.len() > max_history {
                x0s.remove(0);
                ts.remove(0);
            }
        }
        let x0 = x0s.last().unwrap_or(&x).clone();
        on_step(SolverStep {
            step,
            steps,
            order,
            t,
            x: &x,
            x0: if step < steps { &x0 } else { &x },
        })?;
    }
    Ok(x)
}
