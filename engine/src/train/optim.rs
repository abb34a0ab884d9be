//! AdamW and an exponential moving average of the weights, with state that can be saved and
//! resumed (candle-nn's `AdamW` keeps its moments private, so a resumed run would restart them).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// AdamW hyper-parameters.
#[derive(Clone, Copy, Debug)]
pub struct AdamWConfig {
    /// Learning rate after warm-up.
    pub lr: f64,
    /// Linear warm-up length in steps.
    pub warmup: usize,
    /// Cosine decay to 10 % of `lr` at this step, then 10 % (the PyTorch trainers' schedule);
    /// 0: constant after warm-up.
    pub decay_steps: usize,
    /// Gradients are scaled down to at most this global L2 norm (PyTorch's
    /// `clip_grad_norm_`); 0: not clipped.
    pub clip_norm: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 4e-4,
            warmup: 300,
            decay_steps: 0,
            clip_norm: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// AdamW over named variables.
pub struct AdamW {
    vars: Vec<(String, Var)>,
    first: HashMap<String, Tensor>,
    second: HashMap<String, Tensor>,
    config: AdamWConfig,
    /// Updates applied so far.
    pub step: usize,
}

impl AdamW {
    /// An optimiser with zero moments.
    pub fn new(vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
        let mut first = HashMap::new();
        let mut second = HashMap::new();
        for (name, var) in &vars {
            first.insert(name.clone(), var.zeros_like()?);
            second.insert(name.clone(), var.zeros_like()?);
        }
        Ok(Self {
            vars,
            first,
            second,
            config,
            step: 0,
        })
    }

    /// The learning rate at the current step: linear warm-up, then constant or along a cosine
    /// to 10 % at `decay_steps`.
    pub fn learning_rate(&self) -> f64 {
        let c = &self.config;
        let warm = ((self.step + 1) as f64 / c.warmup.max(1) as f64).min(1.0);
        let decay = if c.decay_steps > 0 {
            let progress = (self.step as f64 / c.decay_steps as f64).min(1.0);
            0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        } else {
            1.0
        };
        c.lr * warm * decay
    }

    /// One update from `grads`, clipped to `clip_norm`; variables without a gradient are left
    /// alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let lr = self.learning_rate();
        self.step += 1;
        let c = self.config;
        let bias1 = 1.0 - c.beta1.powi(self.step as i32);
        let bias2 = 1.0 - c.beta2.powi(self.step as i32);
        // Detached: gradients (and anything computed from a variable) carry the step's whole
        // computation graph; keeping them in the moments would keep every step's activations
        // alive.
        let grads: Vec<Option<Tensor>> = self
            .vars
            .iter()
            .map(|(_, var)| grads.get(var).map(Tensor::detach))
            .collect();
        let mut clip = 1.0;
        if c.clip_norm > 0.0 {
            let mut squares = 0.0;
            for grad in grads.iter().flatten() {
                squares += grad
                    .sqr()?
                    .sum_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()?;
            }
            let norm = squares.sqrt();
            if norm > c.clip_norm {
                clip = c.clip_norm / (norm + 1e-6);
            }
        }
        for ((name, var), grad) in self.vars.iter().zip(grads) {
            let Some(grad) = grad else {
                continue;
            };
            let grad = if clip < 1.0 { (grad * clip)? } else { grad };
            let m = &self.first[name];
            let v = &self.second[name];
            let m = ((m * c.beta1)? + (&grad * (1.0 - c.beta1))?)?.detach();
            let v = ((v * c.beta2)? + (grad.sqr()? * (1.0 - c.beta2))?)?.detach();
            let update = ((&m / bias1)? / ((&v / bias2)?.sqrt()? + c.eps)?)?;
            let decayed = (var.as_tensor().detach() * (1.0 - lr * c.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
            self.first.insert(name.clone(), m);
            self.second.insert(name.clone(), v);
        }
        Ok(())
    }

    /// Moments to save, as `adam_m.NAME` / `adam_v.NAME`.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (name, m) in &self.first {
            out.insert(format!("adam_m.{name}"), m.clone());
        }
        for (name, v) in &self.second {
            out.insert(format!("adam_v.{name}"), v.clone());
        }
        out
    }

    /// Restores moments saved by [`AdamW::state`] (missing ones stay zero).
    pub fn restore(&mut self, saved: &HashMap<String, Tensor>, step: usize) {
        for (name, _) in &self.vars {
            if let Some(m) = saved.get(&format!("adam_m.{name}")) {
                self.first.insert(name.clone(), m.clone());
            }
            if let Some(v) = saved.get(&format!("adam_v.{name}")) {
                self.second.insert(name.clone(), v.clone());
            }
        }
        self.step = step;
    }
}

/// An exponential moving average of the weights (what gets shipped).
pub struct Ema {
    /// Averaged weights by name.
    pub weights: HashMap<String, Tensor>,
    decay: f64,
}

impl Ema {
    /// Starts the average at the current weights.
    pub fn new(vars: &[(String, Var)], decay: f64) -> Result<Self> {
        let weights = vars
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.as_tensor().detach().copy()?)))
            .collect::<Result<_>>()?;
        Ok(Self { weights, decay })
    }

    /// Folds the current weights in; early on the effective decay is lower
    /// (`min(decay, (1 + n) / (10 + n))`) so the average does not remember the initialisation.
    pub fn update(&mut self, vars: &[(String, Var)], step: usize) -> Result<()> {
        let n = step as f64;
        let decay = self.decay.min((1.0 + n) / (10.0 + n));
        for (name, var) in vars {
            if let Some(avg) = self.weights.get_mut(name) {
                let current = var.as_tensor().detach();
                *avg = ((&*avg * decay)? + (current * (1.0 - decay))?)?.detach();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn adamw_minimises_a_quadratic() -> Result<()> {
        let target = Tensor::new(&[3f32, -2.0], &Device::Cpu)?;
        let x = Var::zeros(2, DType::F32, &Device::Cpu)?;
        let config = AdamWConfig {
            lr: 0.1,
            warmup: 1,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![("x".into(), x.clone())], config)?;
        for _ in 0..500 {
            let loss = (x.as_tensor() - &target)?.sqr()?.sum_all()?;
            opt.step(&loss.backward()?)?;
        }
        let err = (x.as_tensor() - &target)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(err < 1e-2, "{err}");
        Ok(())
    }

    #[test]
    fn ema_moves_towards_the_weights() -> Result<()> {
        let x = Var::zeros(1, DType::F32, &Device::Cpu)?;
        let vars = vec![("x".to_string(), x.clone())];
        let mut ema = Ema::new(&vars, 0.9)?;
        x.set(&Tensor::new(&[1f32], &Device::Cpu)?)?;
        for step in 1000..1010 {
            ema.update(&vars, step)?;
        }
        let v = ema.weights["x"].to_vec1::<f32>()?[0];
        // 1 − 0.9^10
        assert!((v - 0.651_322_6).abs() < 1e-5, "{v}");
        Ok(())
    }

    #[test]
    fn the_learning_rate_warms_up_then_follows_a_cosine_to_a_tenth() -> Result<()> {
        let x = Var::zeros(1, DType::F32, &Device::Cpu)?;
        let config = AdamWConfig {
            lr: 1.0,
            warmup: 10,
            decay_steps: 100,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![("x".into(), x)], config)?;
        let mut at = |step: usize| {
            opt.step = step;
            opt.learning_rate()
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(at(0), 0.1), "warm-up starts at a tenth");
        assert!(close(at(50), 0.55), "half-way down the cosine: {}", at(50));
        assert!(
            close(at(100), 0.1) && close(at(400), 0.1),
            "a tenth from the end on"
        );
        Ok(())
    }

    #[test]
    fn gradients_are_clipped_to_the_global_norm() -> Result<()> {
        // d/dx of 30 x₀ + 40 x₁ is (30, 40), norm 50; clipped to 1 it is (0.6, 0.8).
        let x = Var::zeros(2, DType::F32, &Device::Cpu)?;
        let slope = Tensor::new(&[30f32, 40.0], &Device::Cpu)?;
        let first_moment = |clip_norm: f64| -> Result<Vec<f32>> {
            let config = AdamWConfig {
                clip_norm,
                warmup: 1,
                ..Default::default()
            };
            let mut opt = AdamW::new(vec![("x".into(), x.clone())], config)?;
            opt.step(&(x.as_tensor() * &slope)?.sum_all()?.backward()?)?;
            opt.state()["adam_m.x"].to_vec1::<f32>()
        };
        let clipped = first_moment(1.0)?;
        assert!((clipped[0] - 0.06).abs() < 1e-6 && (clipped[1] - 0.08).abs() < 1e-6);
        let loose = first_moment(100.0)?;
        assert!((loose[0] - 3.0).abs() < 1e-5 && (loose[1] - 4.0).abs() < 1e-5);
        Ok(())
    }
}
