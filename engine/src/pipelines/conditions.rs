//! From reference embeddings to one condition per output image: weighted blends for
//! variations, interpolation paths (the original demo's mixing reproduced exactly, a linear
//! path that reaches every reference, and a spherical one), and the cells of sweeps.

use candle_core::{DType, Tensor};

use crate::error::{EngineError, Result};
use crate::protocol::{Ease, InterpolationPath, MixMethod, MixSettings, Mode, SweepRows};

/// The conditions of a run.
#[derive(Debug)]
pub struct ConditionPlan {
    /// One condition per output image, `(k, tokens · c)`: its tokens one after the other.
    pub conditions: Tensor,
    /// Position along the interpolation path per image (empty for variations).
    pub mix: Vec<f64>,
    /// Whether every image shares one noise (interpolation) or has its own seed.
    pub shared_noise: bool,
    /// Per-image overrides (sweeps); empty when every image uses the request's settings.
    pub cells: Vec<CellOverride>,
}

/// What a sweep changes for one image.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CellOverride {
    /// Its seed, if the sweep sets it.
    pub seed: Option<u64>,
    /// Its guidance scale.
    pub guidance: Option<f64>,
    /// The references' weights it was mixed with, if they differ from the request's.
    pub weights: Option<Vec<f32>>,
}

impl ConditionPlan {
    /// The seed of image `index`.
    pub fn seed_for(&self, base: u64, index: usize) -> u64 {
        if let Some(seed) = self.cells.get(index).and_then(|c| c.seed) {
            seed
        } else if self.shared_noise {
            base
        } else {
            base.wrapping_add(index as u64)
        }
    }

    /// The guidance scale of image `index`.
    pub fn guidance_for(&self, base: f64, index: usize) -> f64 {
        self.cells
            .get(index)
            .and_then(|c| c.guidance)
            .unwrap_or(base)
    }
}

/// `np.arange(0, 1, 1/n)` exactly as numpy computes it (length `ceil(1 / (1/n))`, which is
/// `n + 1` for some `n`, e.g. 49), or `k / (n - 1)` for the paths that reach the end.
pub fn path_weights(frames: usize, path: InterpolationPath) -> Vec<f64> {
    match path {
        InterpolationPath::Demo => {
            if frames == 0 {
                return Vec::new();
            }
            let step = 1.0 / frames as f64;
            let len = (1.0 / step).ceil() as usize;
            (0..len).map(|k| k as f64 * step).collect()
        }
        InterpolationPath::Endpoints | InterpolationPath::Slerp => match frames {
            0 => Vec::new(),
            1 => vec![0.0],
            n => (0..n).map(|k| k as f64 / (n - 1) as f64).collect(),
        },
    }
}

/// Spherical interpolation between two vectors (linear when they are nearly parallel).
pub fn slerp(a: &[f32], b: &[f32], w: f64) -> Vec<f32> {
    // The endpoints are returned exactly (morph endpoints equal single-reference runs).
    if w == 0.0 {
        return a.to_vec();
    }
    if w == 1.0 {
        return b.to_vec();
    }
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let (na, nb) = (norm(a), norm(b));
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let cos = (dot / (na * nb).max(1e-12)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    let (wa, wb) = if omega.sin().abs() < 1e-6 {
        (1.0 - w, w)
    } else {
        (
            ((1.0 - w) * omega).sin() / omega.sin(),
            (w * omega).sin() / omega.sin(),
        )
    };
    a.iter()
        .zip(b)
        .map(|(x, y)| (wa * f64::from(*x) + wb * f64::from(*y)) as f32)
        .collect()
}

/// `e2 * w + e1 * (1 - w)` in f32, in the demo's operation order (`w` and `1 - w` are f64
/// scalars cast to f32 by PyTorch).
fn demo_mix(e1: &[f32], e2: &[f32], w: f64) -> Vec<f32> {
    let (w2, w1) = (w as f32, (1.0 - w) as f32);
    e1.iter().zip(e2).map(|(a, b)| b * w2 + a * w1).collect()
}

/// Mixes unit embeddings with weights of any sign (negative weights subtract a reference).
///
/// Linear: `Σ wᵢ eᵢ / Σ wᵢ` (or `Σ wᵢ eᵢ` when the weights cancel out). Spherical: successive
/// slerps, each new reference taking its share of the weight so far. A single reference, or
/// weights that select one reference, give that embedding unchanged unless re-normalised.
pub fn blend(embeddings: &[Vec<f32>], weights: &[f32], mix: MixSettings) -> Result<Vec<f32>> {
    if embeddings.len() == 1 {
        return Ok(embeddings[0].clone());
    }
    if weights.iter().all(|w| *w == 0.0) {
        return Err(EngineError::InvalidRequest(
            "every reference weight is zero; give at least one a non-zero weight".into(),
        ));
    }
    let mixed: Vec<f32> = match mix.method {
        MixMethod::Linear => {
            let total: f32 = weights.iter().sum();
            let divisor = if total.abs() > 1e-6 { total } else { 1.0 };
            (0..embeddings[0].len())
                .map(|k| {
                    let sum: f32 = embeddings.iter().zip(weights).map(|(e, w)| w * e[k]).sum();
                    sum / divisor
                })
                .collect()
        }
        MixMethod::Spherical => {
            let mut acc = embeddings[0].clone();
            let mut acc_weight = weights[0];
            for (e, &w) in embeddings.iter().zip(weights).skip(1) {
                let total = acc_weight + w;
                if w != 0.0 {
                    let share = if total.abs() > 1e-6 { w / total } else { 1.0 };
                    acc = slerp(&acc, e, f64::from(share));
                }
                acc_weight = total;
            }
            acc
        }
    };
    Ok(if mix.renormalize {
        renormalize(&mixed)
    } else {
        mixed
    })
}

fn renormalize(v: &[f32]) -> Vec<f32> {
    let norm = v
        .iter()
        .map(|x| f64::from(*x).powi(2))
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    v.iter().map(|x| (f64::from(*x) / norm) as f32).collect()
}

/// Applies an ease curve to a path position in [0, 1].
pub fn ease(u: f64, ease: Ease) -> f64 {
    match ease {
        Ease::Linear => u,
        Ease::Smooth => u * u * (3.0 - 2.0 * u),
    }
}

/// Plans the conditions for `mode` from the references' conditions `(n, tokens · c)` and
/// weights. Each token is mixed on its own, as if it were the only one (a model with spatial
/// condition tokens blends layouts token by token).
pub fn plan(
    embeddings: &Tensor,
    tokens: usize,
    weights: &[f32],
    mode: &Mode,
    mix: MixSettings,
) -> Result<ConditionPlan> {
    let device = embeddings.device().clone();
    let rows: Vec<Vec<f32>> = embeddings.to_dtype(DType::F32)?.to_vec2()?;
    let dim = rows.first().map(Vec::len).unwrap_or(0);
    if tokens == 0 || !dim.is_multiple_of(tokens) {
        return Err(EngineError::InvalidRequest(format!(
            "conditions of width {dim} do not split into {tokens} tokens"
        )));
    }
    let width = dim / tokens;
    let mut joined: Option<RowPlan> = None;
    for t in 0..tokens {
        let token_rows: Vec<Vec<f32>> = rows
            .iter()
            .map(|r| r[t * width..(t + 1) * width].to_vec())
            .collect();
        let part = plan_rows(&token_rows, weights, mode, mix)?;
        match &mut joined {
            None => joined = Some(part),
            Some(plan) => {
                for (row, token) in plan.conditions.iter_mut().zip(part.conditions) {
                    row.extend(token);
                }
            }
        }
    }
    let plan = joined.unwrap_or_default();
    let k = plan.conditions.len();
    let flat: Vec<f32> = plan.conditions.into_iter().flatten().collect();
    Ok(ConditionPlan {
        conditions: Tensor::from_vec(flat, (k, dim), &device)?,
        mix: plan.mix,
        shared_noise: plan.shared_noise,
        cells: plan.cells,
    })
}

/// A [`ConditionPlan`] before it becomes a tensor: one row per output image.
#[derive(Default)]
struct RowPlan {
    conditions: Vec<Vec<f32>>,
    mix: Vec<f64>,
    shared_noise: bool,
    cells: Vec<CellOverride>,
}

/// [`plan`] for rows of one token each.
fn plan_rows(rows: &[Vec<f32>], weights: &[f32], mode: &Mode, mix: MixSettings) -> Result<RowPlan> {
    let mut cells = Vec::new();
    let (conditions, mix, shared_noise) = match mode {
        Mode::Variations { count } => {
            let blended = blend(rows, weights, mix)?;
            (vec![blended; *count], Vec::new(), false)
        }
        Mode::Interpolate { frames, path } => {
            let ws = path_weights(*frames, *path);
            let conditions = match path {
                InterpolationPath::Demo => {
                    let (first, last) = (&rows[0], &rows[rows.len() - 1]);
                    ws.iter().map(|&w| demo_mix(first, last, w)).collect()
                }
                InterpolationPath::Endpoints | InterpolationPath::Slerp => ws
                    .iter()
                    .map(|&u| {
                        let u = ease(u, mix.ease);
                        // Piecewise through every reference in order.
                        let segments = (rows.len() - 1) as f64;
                        let pos = u * segments;
                        let seg = (pos.floor() as usize).min(rows.len() - 2);
                        let local = pos - seg as f64;
                        if *path == InterpolationPath::Slerp {
                            slerp(&rows[seg], &rows[seg + 1], local)
                        } else if local == 1.0 {
                            rows[seg + 1].clone()
                        } else {
                            rows[seg]
                                .iter()
                                .zip(&rows[seg + 1])
                                .map(|(a, b)| {
                                    (f64::from(*a) * (1.0 - local) + f64::from(*b) * local) as f32
                                })
                                .collect()
                        }
                    })
                    .collect(),
            };
            (conditions, ws, true)
        }
        Mode::Sweep {
            rows: sweep,
            guidance,
        } => {
            let mut conditions = Vec::with_capacity(sweep.len() * guidance.len());
            for row in 0..sweep.len() {
                let (seed, row_weights) = match sweep {
                    SweepRows::Seeds(seeds) => (Some(seeds[row]), None),
                    SweepRows::Weights(last) => {
                        let mut w = weights.to_vec();
                        if let Some(l) = w.last_mut() {
                            *l = last[row];
                        }
                        (None, Some(w))
                    }
                };
                let blended = blend(rows, row_weights.as_deref().unwrap_or(weights), mix)?;
                for &g in guidance {
                    conditions.push(blended.clone());
                    cells.push(CellOverride {
                        seed,
                        guidance: Some(g),
                        weights: row_weights.clone(),
                    });
                }
            }
            (conditions, Vec::new(), true)
        }
    };
    Ok(RowPlan {
        conditions,
        mix,
        shared_noise,
        cells,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two references with two tokens each: every token is blended (and re-normalised) on its
    /// own, exactly as a one-token plan of that token would be.
    #[test]
    fn each_condition_token_is_mixed_on_its_own() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let a = [[0.6f32, 0.8, 0.0], [0.0, 0.0, 1.0]];
        let b = [[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0]];
        let rows: Vec<f32> = a.iter().chain(b.iter()).flatten().copied().collect();
        let embeddings = Tensor::from_vec(rows, (2, 6), &dev)?;
        let mix = MixSettings {
            method: MixMethod::Spherical,
            renormalize: true,
            ..MixSettings::default()
        };
        let weights = [1.0, 3.0];
        let modes = [
            Mode::Variations { count: 2 },
            Mode::Interpolate {
                frames: 5,
                path: InterpolationPath::Slerp,
            },
        ];
        for mode in &modes {
            let two = plan(&embeddings, 2, &weights, mode, mix)?;
            assert_eq!(two.conditions.dims2()?.1, 6);
            let joined: Vec<Vec<f32>> = two.conditions.to_vec2()?;
            for token in 0..2 {
                let alone = Tensor::new(&[a[token], b[token]], &dev)?;
                let one = plan(&alone, 1, &weights, mode, mix)?;
                let expected: Vec<Vec<f32>> = one.conditions.to_vec2()?;
                for (row, want) in joined.iter().zip(&expected) {
                    assert_eq!(&row[token * 3..(token + 1) * 3], want.as_slice());
                }
                assert_eq!(two.mix, one.mix);
            }
        }
        assert!(plan(&embeddings, 4, &weights, &modes[0], mix).is_err());
        Ok(())
    }
}
