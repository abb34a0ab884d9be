//! DDIM exactly as latent-diffusion's `DDIMSampler` runs it for Zero-1-to-3 (`ldm/models/
//! diffusion/ddim.py`), which differs from the engine's continuous-time DDIM and from
//! diffusers' scheduler in ways that change the images:
//!
//! - the timesteps are `range(0, 1000, 1000 // S) + 1`, which can be more than `S`;
//! - the highest one is **dropped** (`timesteps[:-1]`), so `S = 5` runs 601, 401, 201, 1;
//! - η (the demo uses 1) adds fresh noise at every update, including the last;
//! - the schedule arrays are evaluated in f64 on the f32 `alphas_cumprod`, then used as f32.
//!
//! The discrete schedule is SD-1's "linear" one: `β = linspace(√0.00085, √0.012, 1000)²`.

use candle_core::Tensor;

use crate::error::{EngineError, Result};

/// SD-1's training schedule `alphas_cumprod` (f64 cumulative product, stored as f32), as the
/// `alphas_cumprod` buffer of a checkpoint holds it.
pub fn sd1_alphas_cumprod(linear_start: f64, linear_end: f64, steps: usize) -> Vec<f32> {
    let (a, b) = (linear_start.sqrt(), linear_end.sqrt());
    let mut product = 1.0f64;
    (0..steps)
        .map(|i| {
            let root = if steps > 1 {
                a + (b - a) * i as f64 / (steps - 1) as f64
            } else {
                a
            };
            product *= 1.0 - root * root;
            product as f32
        })
        .collect()
}

/// The sampler's arrays for one step count.
#[derive(Clone, Debug, PartialEq)]
pub struct LdmDdimSchedule {
    /// `make_ddim_timesteps('uniform', S, T)`.
    pub timesteps: Vec<usize>,
    /// `alphas_cumprod` at each timestep.
    pub alphas: Vec<f32>,
    /// `alphas_cumprod` at the previous timestep (`alphas_cumprod[0]` for the first).
    pub alphas_prev: Vec<f32>,
    /// `η · √((1 − a_prev)/(1 − a) · (1 − a/a_prev))`.
    pub sigmas: Vec<f32>,
    /// `√(1 − a)`.
    pub sqrt_one_minus_alphas: Vec<f32>,
}

impl LdmDdimSchedule {
    /// The arrays for `steps` requested steps and noise level `eta`.
    pub fn new(alphas_cumprod: &[f32], steps: usize, eta: f64) -> Result<Self> {
        let total = alphas_cumprod.len();
        if steps == 0 || steps > total {
            return Err(EngineError::InvalidRequest(format!(
                "steps must be between 1 and {total}, got {steps}"
            )));
        }
        let stride = total / steps;
        let timesteps: Vec<usize> = (0..total).step_by(stride).map(|t| t + 1).collect();
        if timesteps.iter().any(|&t| t >= total) {
            return Err(EngineError::InvalidRequest(format!(
                "{steps} steps do not fit the {total}-step schedule (its last timestep would be \
                 {total}, past the end, where the original sampler fails too); choose another \
                 step count"
            )));
        }
        let alphas: Vec<f32> = timesteps.iter().map(|&t| alphas_cumprod[t]).collect();
        let alphas_prev: Vec<f32> = std::iter::once(alphas_cumprod[0])
            .chain(alphas[..alphas.len() - 1].iter().copied())
            .collect();
        let sigmas = alphas
            .iter()
            .zip(&alphas_prev)
            .map(|(&a, &prev)| {
                let (a, prev) = (a as f64, prev as f64);
                (eta * ((1.0 - prev) / (1.0 - a) * (1.0 - a / prev)).sqrt()) as f32
            })
            .collect();
        let sqrt_one_minus_alphas = alphas.iter().map(|&a| (1.0 - a).sqrt()).collect();
        Ok(Self {
            timesteps,
            alphas,
            alphas_prev,
            sigmas,
            sqrt_one_minus_alphas,
        })
    }

    /// `(schedule index, timestep)` of the updates, in order. The demo's sampler drops the
    /// highest timestep (`drop_highest`); diffusers' scheduler runs them all.
    pub fn updates(&self, drop_highest: bool) -> Vec<(usize, usize)> {
        let run = self.timesteps.len() - usize::from(drop_highest);
        (0..run).rev().map(|i| (i, self.timesteps[i])).collect()
    }

    /// The four scalars update `index` uses: `[a_t, a_prev, σ_t, √(1 − a_t)]`.
    pub fn scalars(&self, index: usize) -> [f32; 4] {
        [
            self.alphas[index],
            self.alphas_prev[index],
            self.sigmas[index],
            self.sqrt_one_minus_alphas[index],
        ]
    }
}

/// One update (`p_sample_ddim`): returns `(x_prev, pred_x0)`. `noise` is the standard-normal
/// draw (unused when σ is 0).
pub fn update(
    x: &Tensor,
    eps: &Tensor,
    scalars: [f32; 4],
    noise: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let [a_t, a_prev, sigma, sqrt_one_minus] = scalars;
    let pred_x0 = ((x - (eps * sqrt_one_minus as f64)?)? / a_t.sqrt() as f64)?;
    let direction = (eps * (1.0 - a_prev - sigma * sigma).sqrt() as f64)?;
    let mut x_prev = ((&pred_x0 * a_prev.sqrt() as f64)? + direction)?;
    if sigma != 0.0 {
        let noise = noise.ok_or_else(|| {
            EngineError::InvalidRequest("a stochastic DDIM update needs noise".into())
        })?;
        x_prev = (x_prev + (noise * sigma as f64)?)?;
    }
    Ok((x_prev, pred_x0))
}
