//! From reference embeddings to one condition per output image: weighted blends for
//! variations, and interpolation paths (the original demo's mixing reproduced exactly, a
//! linear path that reaches every reference, and a spherical one).

use candle_core::{DType, Tensor};

use crate::error::{EngineError, Result};
use crate::protocol::{InterpolationPath, Mode};

/// The conditions of a run.
#[derive(Debug)]
pub struct ConditionPlan {
    /// One condition embedding per output image, `(k, c)`.
    pub conditions: Tensor,
    /// Position along the interpolation path per image (empty for variations).
    pub mix: Vec<f64>,
    /// Whether every image shares one noise (interpolation) or has its own seed.
    pub shared_noise: bool,
}

impl ConditionPlan {
    /// The seed of image `index`.
    pub fn seed_for(&self, base: u64, index: usize) -> u64 {
        if self.shared_noise {
            base
        } else {
            base.wrapping_add(index as u64)
        }
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

/// Weighted mean of unit embeddings, re-normalised to unit length. One reference is returned
/// unchanged.
pub fn blend(embeddings: &[Vec<f32>], weights: &[f32]) -> Result<Vec<f32>> {
    if embeddings.len() == 1 {
        return Ok(embeddings[0].clone());
    }
    let total: f64 = weights.iter().map(|w| f64::from(*w)).sum();
    if total.abs() < 1e-9 {
        return Err(EngineError::InvalidRequest(
            "the reference weights add up to zero; give at least one a non-zero weight".into(),
        ));
    }
    let dim = embeddings[0].len();
    let mut mixed = vec![0f64; dim];
    for (e, w) in embeddings.iter().zip(weights) {
        for (m, x) in mixed.iter_mut().zip(e) {
            *m += f64::from(*w) * f64::from(*x) / total;
        }
    }
    let norm = mixed.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    Ok(mixed.iter().map(|x| (x / norm) as f32).collect())
}

/// Plans the conditions for `mode` from embeddings `(n, c)` and the references' weights.
pub fn plan(embeddings: &Tensor, weights: &[f32], mode: &Mode) -> Result<ConditionPlan> {
    let device = embeddings.device().clone();
    let rows: Vec<Vec<f32>> = embeddings.to_dtype(DType::F32)?.to_vec2()?;
    let dim = rows.first().map(Vec::len).unwrap_or(0);
    let (conditions, mix, shared_noise) = match mode {
        Mode::Variations { count } => {
            let blended = blend(&rows, weights)?;
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
                        // Piecewise through every reference in order.
                        let segments = (rows.len() - 1) as f64;
                        let pos = u * segments;
                        let seg = (pos.floor() as usize).min(rows.len() - 2);
                        let local = pos - seg as f64;
                        if *path == InterpolationPath::Slerp {
                            slerp(&rows[seg], &rows[seg + 1], local)
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
    };
    let k = conditions.len();
    let flat: Vec<f32> = conditions.into_iter().flatten().collect();
    Ok(ConditionPlan {
        conditions: Tensor::from_vec(flat, (k, dim), &device)?,
        mix,
        shared_noise,
    })
}
