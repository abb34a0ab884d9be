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
            Ok(Device::new_cuda(ordinal)?)
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

/// Devices this build can use (the CPU always).
pub fn available() -> Vec<DeviceChoice> {
    let mut devices = vec![DeviceChoice::Cpu];
    if candle_core::utils::cuda_is_available() {
        devices.push(DeviceChoice::Cuda(0));
    }
    if candle_core::utils::metal_is_available() {
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
