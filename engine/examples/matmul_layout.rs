//! Compares candle matmul speed for a weight used transposed (`x @ w.t()`, as candle's Linear
//! does) against the same weight stored pre-transposed and contiguous. Reports CPU seconds,
//! which are less disturbed by other processes than wall time.
use candle_core::{Device, Tensor};

fn cpu_secs() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct on success.
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
    }
    // SAFETY: initialised above (zeroed at worst).
    let u = unsafe { usage.assume_init() };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    s(u.ru_utime) + s(u.ru_stime)
}

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
            let start = cpu_secs();
            for _ in 0..reps {
                x.matmul(&rhs)?;
            }
            let secs = (cpu_secs() - start) / reps as f64;
            println!(
                "{m}x{k}x{n} {name:<11} {:.2} cpu-ms {:.1} GFLOP per cpu-s",
                secs * 1e3,
                2.0 * (m * k * n) as f64 / secs / 1e9
            );
        }
    }
    Ok(())
}
