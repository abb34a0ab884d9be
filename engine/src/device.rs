//! Mapping the user's device and precision choices onto candle.

use candle_core::{DType, Device};

use crate::error::{EngineError, Result};
use crate::protocol::{DeviceChoice, Precision};

/// Opens the chosen device; a clear error when this build lacks its backend.
pub fn open(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda(ordinal) => {
            if !candle_core::utils::cuda_is_available() {
                return Err(EngineError::InvalidRequest(
                    "this build has no CUDA support; rebuild with `--features cuda`".into(),
                ));
            }
            // A CUDA build on a machine whose driver finds no GPU (or a stub driver).
            // The first line only: candle appends a backtrace when RUST_BACKTRACE is set.
            Device::new_cuda(ordinal).map_err(|e| {
                let cause = e.to_string();
                EngineError::InvalidRequest(format!(
                    "no CUDA device cuda:{ordinal} ({}); use --device cpu",
                    cause.lines().next().unwrap_or_default()
                ))
            })
        }
        DeviceChoice::Metal(ordinal) => {
            if !candle_core::utils::metal_is_available() {
                return Err(EngineError::InvalidRequest(
                    "this build has no Metal support; rebuild with `--features metal` on macOS"
                        .into(),
                ));
            }
            Ok(Device::new_metal(ordinal)?)
        }
    }
}

/// Devices this build can use on this machine (the CPU always; a GPU when it opens).
pub fn available() -> Vec<DeviceChoice> {
    let mut devices = vec![DeviceChoice::Cpu];
    if candle_core::utils::cuda_is_available() && Device::new_cuda(0).is_ok() {
        devices.push(DeviceChoice::Cuda(0));
    }
    if candle_core::utils::metal_is_available() && Device::new_metal(0).is_ok() {
        devices.push(DeviceChoice::Metal(0));
    }
    devices
}

/// The candle dtype for a precision.
pub fn dtype(precision: Precision) -> DType {
    match precision {
        Precision::F32 => DType::F32,
        Precision::F16 => DType::F16,
        Precision::Bf16 => DType::BF16,
    }
}

/// Fixes candle's CPU threading for the process; call first thing in `main`, before any
/// thread exists (it sets environment variables).
///
/// - `RAYON_NUM_THREADS`: candle asks for its thread count before every matrix product and,
///   when the variable is unset, works it out again by reading `/proc/cpuinfo` — measurable on
///   small models (the built-in default spent 8 % of its time formatting cpuinfo). Set once to
///   the same count candle would pick.
/// - `CANDLE_BARRIER_POOL_SPIN_LIMIT`: after each elementwise op candle's worker spins 25,000
///   iterations waiting for the next; on a 2-core machine that steals a core from the matrix
///   product that follows (the built-in default's 4 × 20 steps: 1.10 → 0.86 s; training 6.0 →
///   3.9 s per step). 200 spins.
/// - `RUST_MIN_STACK`: the stack of threads started without a size, rayon's among them, where
///   [`on_compute_threads`] runs whole commands: 8 MiB, the main thread's, not std's 2 MiB.
///
/// Values already set by the user are kept.
pub fn tune_threads() {
    let threads = candle_core::utils::get_num_threads();
    for (name, value) in [
        ("RAYON_NUM_THREADS", threads.to_string()),
        ("CANDLE_BARRIER_POOL_SPIN_LIMIT", "200".to_string()),
        ("RUST_MIN_STACK", (8 << 20).to_string()),
    ] {
        if std::env::var_os(name).is_none() {
            // SAFETY: documented precondition — called before any other thread exists, so
            // nothing reads the environment concurrently.
            unsafe { std::env::set_var(name, value) };
        }
    }
}

/// Runs `f` on one of rayon's threads and waits for its result; from a rayon thread, runs it
/// in place. The engine's parallel kernels (linear layers, attention, norms, convolutions) are
/// rayon parallel loops; started from a thread outside the pool, each loop is handed to the
/// pool while the caller sleeps until it is done, so each of a forward pass's hundreds of loops
/// costs two thread wake-ups and the caller's core waits. Started from a pool thread, a loop
/// begins on that thread at once and the other threads join it. The CLI runs its commands this
/// way, and the engine thread its jobs. Measured 2026-12-02 on 2 cores, alternating both ways
/// in one process: the built-in default's 4 × 20 steps 6–11 % faster, DINO 4 %, the SD VAE's
/// decode 5–9 % slower (not understood; the DiT step and the encode unchanged); alternating
/// binaries, the default's median 4–5 % faster. `f` must not wait for rayon work it did not
/// start itself (a channel filled by a spawned task): it occupies one of the pool's threads.
pub fn on_compute_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// Keeps freed tensor memory in the process instead of returning it to the OS.
///
/// glibc serves large allocations with fresh `mmap`s and unmaps them on free, so every
/// intermediate tensor of a forward pass costs page faults and kernel page zeroing (a quarter
/// of the CPU time of a DiT step and over a third of a VAE decode in profiles). Serving them
/// from the heap and never trimming it makes that memory reusable. No effect elsewhere.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: libc::c_int = -1;
        const M_MMAP_MAX: libc::c_int = -4;
        // SAFETY: mallopt only adjusts allocator tunables. M_MMAP_MAX = 0 serves every
        // allocation from the heap (the mmap threshold cannot be raised above 32 MiB, and a
        // 256² × 128 activation is larger); the trim threshold keeps freed memory for reuse.
        unsafe {
            libc::mallopt(M_MMAP_MAX, 0);
            libc::mallopt(M_TRIM_THRESHOLD, libc::c_int::MAX);
        }
    }
}
