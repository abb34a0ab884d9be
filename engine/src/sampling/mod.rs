//! Noise schedule, solvers and classifier-free guidance, as the Lumos I2I demo samples.
//!
//! Time is continuous in `[1/N, 1]` (DPM-Solver's convention for a discrete schedule); the
//! network sees `(t - 1/N) * N`. Scalars of the schedule are computed in f32 in the original
//! operation order so that results match PyTorch to float rounding.

pub mod ddim;
pub mod dpm_solver;
pub mod guidance;
pub mod ldm_ddim;
pub mod schedule;
pub mod text_guidance;

use candle_core::Tensor;

pub use guidance::{ClassifierFreeGuidance, ClipDenoised, NoisePredictor, PredictionToNoise};
pub use schedule::NoiseSchedule;
pub use text_guidance::TextGuidance;

use crate::error::Result;
use crate::protocol::Solver;

/// When the multistep solver drops to first order on its last steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LowerOrderFinal {
    /// Always (`DPMS_INTER`, the I2I demo's sampler): the last step is first order.
    #[default]
    Always,
    /// Only when `steps < 10` (`DPMS`, the T2I demo's sampler).
    BelowTenSteps,
}

/// What the sampler reports after each update.
#[derive(Debug)]
pub struct SolverStep<'a> {
    /// 1-based index of the update just made.
    pub step: usize,
    /// Total number of updates.
    pub steps: usize,
    /// Solver order used for this update.
    pub order: usize,
    /// Target (continuous) time of this update.
    pub t: f32,
    /// The latent after this update.
    pub x: &'a Tensor,
    /// The latest data prediction (x0), useful for previews.
    pub x0: &'a Tensor,
}

/// A replacement applied to the latent right after each update to time `t`, before the
/// network sees it (inpainting's masked latent blending).
pub type Constraint<'a> = dyn FnMut(f32, Tensor) -> Result<Tensor> + 'a;

/// Samples from `start` along the time grid `grid` (decreasing, `steps + 1` points) with the
/// given solver, calling `predictor` once per step and `on_step` after every update (return
/// an error, e.g. `Cancelled`, to stop). Multistep DPM-Solver++ always ends first order, as
/// the I2I demo's `DPMS_INTER` does.
pub fn sample(
    solver: Solver,
    schedule: &NoiseSchedule,
    grid: &[f32],
    start: &Tensor,
    predictor: &mut dyn NoisePredictor,
    constraint: Option<&mut Constraint<'_>>,
    on_step: &mut dyn FnMut(SolverStep<'_>) -> Result<()>,
) -> Result<Tensor> {
    match solver {
        Solver::DpmSolverPp { order } => dpm_solver::sample(
            &dpm_solver::DpmSolverPp {
                order,
                lower_order_final: LowerOrderFinal::Always,
            },
            schedule,
            grid,
            start,
            predictor,
            constraint,
            on_step,
        ),
        Solver::Ddim => ddim::sample(schedule, grid, start, predictor, constraint, on_step),
    }
}
