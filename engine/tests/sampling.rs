//! Solver properties that the fixtures do not pin down: the time grid, the order schedule,
//! one network call per step, and DDIM agreeing with first-order DPM-Solver++.

use candle_core::{Device, Tensor};
use lumos_engine::protocol::Solver;
use lumos_engine::sampling::dpm_solver::DpmSolverPp;
use lumos_engine::sampling::{self, LowerOrderFinal, NoisePredictor, NoiseSchedule};
use proptest::prelude::*;

/// Exact eps for data `N(0.3, 0.5²)` (an analytic "network").
struct Gaussian<'a> {
    schedule: &'a NoiseSchedule,
    calls: usize,
}

impl NoisePredictor for Gaussian<'_> {
    fn predict_noise(&mut self, x: &Tensor, net_t: f32) -> lumos_engine::error::Result<Tensor> {
        self.calls += 1;
        let t = net_t / 1000.0 + 0.001;
        let a = f64::from(self.schedule.marginal_alpha(t));
        let s = (1.0 - a * a).sqrt();
        Ok((((x - 0.3 * a)? * s)? / (a * a * 0.25 + s * s))?)
    }
}

fn sample(solver: Solver, steps: usize) -> (Tensor, usize, Vec<usize>) {
    let schedule = NoiseSchedule::default();
    let noise = lumos_engine::noise::gaussian(9, &[2, 4, 4, 4], &Device::Cpu).expect("noise");
    let mut predictor = Gaussian {
        schedule: &schedule,
        calls: 0,
    };
    let mut orders = Vec::new();
    let x = sampling::sample(
        solver,
        &schedule,
        &schedule.time_uniform_grid(steps),
        &noise,
        &mut predictor,
        None,
        &mut |s| {
            orders.push(s.order);
            Ok(())
        },
    )
    .expect("sample");
    (x, predictor.calls, orders)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .expect("sub")
        .abs()
        .expect("abs")
        .max_all()
        .expect("max")
        .to_scalar()
        .expect("scalar")
}

#[test]
fn ddim_agrees_with_first_order_dpm_solver() {
    let (dpm, _, _) = sample(Solver::DpmSolverPp { order: 1 }, 10);
    let (ddim, _, _) = sample(Solver::Ddim, 10);
    assert!(
        max_abs_diff(&dpm, &ddim) < 1e-4,
        "{}",
        max_abs_diff(&dpm, &ddim)
    );
}

#[test]
fn higher_orders_converge_to_the_data_mean() {
    // Data is N(0.3, 0.25): with enough steps every solver lands near the deterministic ODE
    // solution; higher orders get there in fewer steps.
    let (reference, _, _) = sample(Solver::DpmSolverPp { order: 3 }, 200);
    let errors: Vec<f32> = (1..=3)
        .map(|order| max_abs_diff(&sample(Solver::DpmSolverPp { order }, 15).0, &reference))
        .collect();
    assert!(errors[1] < errors[0] && errors[2] < errors[1], "{errors:?}");
    assert!(errors[2] < 0.5 * errors[0], "{errors:?}");
}

proptest! {
    #[test]
    fn time_grid_decreases_strictly_and_has_steps_plus_one_points(steps in 1usize..300) {
        let grid = NoiseSchedule::default().time_uniform_grid(steps);
        prop_assert_eq!(grid.len(), steps + 1);
        prop_assert_eq!(grid[0], 1.0);
        prop_assert!((grid[steps] - 0.001).abs() < 1e-7);
        prop_assert!(grid.windows(2).all(|w| w[1] < w[0]));
    }

    #[test]
    fn order_schedule_warms_up_and_ends_first_order(steps in 1usize..40, order in 1usize..=3) {
        let solver = DpmSolverPp { order, lower_order_final: LowerOrderFinal::Always };
        let orders: Vec<usize> = (1..=steps).map(|s| solver.step_order(s, steps)).collect();
        prop_assert_eq!(orders[steps - 1], 1);
        prop_assert!(orders.iter().all(|&o| (1..=order).contains(&o)));
        for (i, &o) in orders.iter().enumerate() {
            prop_assert!(o <= i + 1, "step {} cannot use order {}", i + 1, o);
        }
    }

    #[test]
    fn one_network_call_per_step(steps in 1usize..12, order in 1usize..=3) {
        let (_, calls, orders) = sample(Solver::DpmSolverPp { order }, steps);
        prop_assert_eq!(calls, steps);
        prop_assert_eq!(orders.len(), steps);
    }
}
