//! Seeded Gaussian noise, drawn on the CPU and then moved to the device, so that a seed gives
//! the same image on every backend.

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// `N(0, 1)` noise of the given shape from `seed` (ChaCha8, stable across platforms).
pub fn gaussian(seed: u64, shape: &[usize], device: &Device) -> candle_core::Result<Tensor> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let count: usize = shape.iter().product();
    let values: Vec<f32> = (0..count)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu)?.to_device(device)
}
