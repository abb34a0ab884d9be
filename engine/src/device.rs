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
