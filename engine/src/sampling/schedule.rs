//! The discrete linear-β schedule seen as a continuous-time VP SDE (DPM-Solver's
//! `NoiseScheduleVP('discrete')`): `log α(t)` is piecewise linear between the 1000 points.

/// Number of training timesteps.
pub const TRAIN_STEPS: usize = 1000;

/// `torch.linspace(start, end, n)` in f32, with PyTorch's symmetric formula (the first half is
/// stepped from `start`, the second half back from `end`).
pub fn linspace_f32(start: f32, end: f32, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f32;
    let halfway = n / 2;
    (0..n)
        .map(|i| {
            if i < halfway {
                start + step * i as f32
            } else {
                end - step * (n - i - 1) as f32
            }
        })
        .collect()
}

/// The noise schedule: `log α` sampled at `t_n = (n+1)/N`.
#[derive(Clone, Debug)]
pub struct NoiseSchedule {
    t_array: Vec<f32>,
    log_alpha_array: Vec<f32>,
    /// `ᾱ_n` in f64 (for DDPM-style uses: noising for img2img, training).
    pub alphas_cumprod: Vec<f64>,
}

impl Default for NoiseSchedule {
    fn default() -> Self {
        Self::linear(1e-4, 0.02, TRAIN_STEPS)
    }
}

impl NoiseSchedule {
    /// `betas = linspace(beta_start, beta_end, n)` in f64 (the Lumos/PixArt "linear" schedule).
    pub fn linear(beta_start: f64, beta_end: f64, n: usize) -> Self {
        let betas: Vec<f64> = (0..n)
            .map(|i| beta_start + (beta_end - beta_start) * i as f64 / (n - 1) as f64)
            .collect();
        let mut log_alpha = 0f64;
        let mut cumprod = 1f64;
        let mut log_alpha_array = Vec::with_capacity(n);
        let mut alphas_cumprod = Vec::with_capacity(n);
        for beta in &betas {
            log_alpha += 0.5 * (1.0 - beta).ln();
            cumprod *= 1.0 - beta;
            log_alpha_array.push(log_alpha as f32);
            alphas_cumprod.push(cumprod);
        }
        let t_array = linspace_f32(0.0, 1.0, n + 1)[1..].to_vec();
        Self {
            t_array,
            log_alpha_array,
            alphas_cumprod,
        }
    }

    /// Number of discrete steps `N`.
    pub fn total_n(&self) -> usize {
        self.t_array.len()
    }

    /// The `log α` table (f32).
    pub fn log_alpha_array(&self) -> &[f32] {
        &self.log_alpha_array
    }

    /// The time table `t_n` (f32).
    pub fn t_array(&self) -> &[f32] {
        &self.t_array
    }

    /// `log α(t)`: piecewise-linear interpolation (linear extrapolation outside), evaluated as
    /// DPM-Solver's `interpolate_fn` does in f32.
    pub fn marginal_log_mean_coeff(&self, t: f32) -> f32 {
        let xp = &self.t_array;
        let fp = &self.log_alpha_array;
        let k = xp.len();
        // Index of the segment [start, start + 1] that contains t (clamped for extrapolation).
        let start = match xp.iter().position(|&x| x > t) {
            None => k - 2,
            Some(0) => 0,
            Some(i) => (i - 1).min(k - 2),
        };
        let (sx, ex) = (xp[start], xp[start + 1]);
        let (sy, ey) = (fp[start], fp[start + 1]);
        sy + (t - sx) * (ey - sy) / (ex - sx)
    }

    /// `α(t)`.
    pub fn marginal_alpha(&self, t: f32) -> f32 {
        self.marginal_log_mean_coeff(t).exp()
    }

    /// `σ(t) = sqrt(1 - α²)`.
    pub fn marginal_std(&self, t: f32) -> f32 {
        (1.0 - (2.0 * self.marginal_log_mean_coeff(t)).exp()).sqrt()
    }

    /// `λ(t) = log α - log σ`.
    pub fn marginal_lambda(&self, t: f32) -> f32 {
        let log_mean = self.marginal_log_mean_coeff(t);
        let log_std = 0.5 * (1.0 - (2.0 * log_mean).exp()).ln();
        log_mean - log_std
    }

    /// The timestep the network sees for continuous time `t`: `(t - 1/N) * N`.
    pub fn network_time(&self, t: f32) -> f32 {
        let n = self.total_n() as f32;
        (t - 1.0 / n) * n
    }

    /// The time-uniform grid `linspace(1, 1/N, steps + 1)`.
    pub fn time_uniform_grid(&self, steps: usize) -> Vec<f32> {
        self.time_uniform_grid_from(1.0, steps)
    }

    /// The time-uniform grid from `t_start` down to `1/N` (img2img starts part-way).
    pub fn time_uniform_grid_from(&self, t_start: f32, steps: usize) -> Vec<f32> {
        linspace_f32(t_start, (1.0 / self.total_n() as f64) as f32, steps + 1)
    }
}
