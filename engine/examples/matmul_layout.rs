//! Compares candle matmul speed for a weight used transposed (`x @ w.t()`, as candle's Linear
//! does) against the same weight stored pre-transposed and contiguous.
use candle_core::{Device, Tensor};
use std::time::Instant;

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    for (m, k, n) in [
        (512, 1152, 3456),
        (512, 1152, 1152),
        (512, 1152, 4608),
        (512, 4608, 1152),
    ] {
        let x = Tensor::randn(0f32, 1., (m, k), &dev)?;
        let w = Tensor::randn(0f32, 1., (n, k), &dev)?;
        let wt = w.t()?.contiguous()?;
        let reps = 20;
        for (name, rhs) in [("w.t()", w.t()?), ("contiguous", wt.clone())] {
            x.matmul(&rhs)?;
            let start = Instant::now();
            for _ in 0..reps {
                x.matmul(&rhs)?;
            }
            let secs = start.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{m}x{k}x{n} {name:<11} {:.2} ms {:.1} GFLOP/s",
                secs * 1e3,
                2.0 * (m * k * n) as f64 / secs / 1e9
            );
        }
    }
    Ok(())
}
