//! Choosing the burn device from the command line: flex (CPU default), ndarray, wgpu, cuda.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// Where to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceChoice {
    /// The CPU through burn's flex backend (the default; `cpu` is an alias).
    #[default]
    Flex,
    /// The CPU through burn's ndarray backend.
    Ndarray,
    /// A GPU (or software adapter) through wgpu: Vulkan, Metal or DX12.
    Wgpu,
    /// An NVIDIA GPU through CUDA (needs the `cuda` cargo feature).
    Cuda,
}

impl DeviceChoice {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }

    /// Builds the device (without autodiff).
    pub fn device(self) -> Result<Device, TrainError> {
        match self {
            Self::Flex => Ok(Device::flex()),
            #[allow(deprecated)] // ndarray stays selectable because users know it
            Self::Ndarray => Ok(Device::ndarray()),
            Self::Wgpu => {
                // wgpu panics when no adapter exists; turn that into an error.
                let device = Device::wgpu(DeviceKind::DefaultDevice);
                let probe = device.clone();
                std::panic::catch_unwind(move || {
                    Tensor::<1>::zeros([1], &probe).try_into_data().map(|_| ())
                })
                .map_err(|_| TrainError::Device {
                    device: "wgpu".into(),
                    reason: "no wgpu adapter (GPU or software Vulkan driver) was found".into(),
                })?
                .map_err(|e| TrainError::Device { device: "wgpu".into(), reason: e.to_string() })?;
                Ok(device)
            }
            Self::Cuda => cuda(),
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Device, TrainError> {
    Ok(Device::cuda(0))
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Device, TrainError> {
    Err(TrainError::Device {
        device: "cuda".into(),
        reason: "this build has no CUDA support".into(),
    })
}

impl std::str::FromStr for DeviceChoice {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" | "flex" => Ok(Self::Flex),
            "ndarray" => Ok(Self::Ndarray),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(TrainError::Config(format!(
                "unknown device `{other}` (expected cpu, flex, ndarray, wgpu or cuda)"
            ))),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
