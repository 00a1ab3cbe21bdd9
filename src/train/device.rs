//! The burn device for each [`BackendKind`], with a clear error when a backend is not compiled in or its
//! device cannot start.

use burn::tensor::Device;

use crate::config::BackendKind;
use crate::train::error::TrainError;

/// The autodiff device for `backend`.
pub fn autodiff_device(backend: BackendKind) -> Result<Device, TrainError> {
    match backend {
        BackendKind::Flex => Ok(Device::flex().autodiff()),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)] // burn-ndarray is deprecated upstream; kept as the slower alternative
        BackendKind::Ndarray => Ok(Device::ndarray().autodiff()),
        #[cfg(not(feature = "ndarray"))]
        BackendKind::Ndarray => Err(TrainError::BackendMissing("ndarray")),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => {
            let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
            // wgpu sets itself up lazily and panics when no adapter answers: try it once here, so a machine
            // without a usable GPU gets a message instead.
            let probe = device.clone();
            crate::train::error::catch_panic("the GPU probe", move || {
                Ok(burn::tensor::Tensor::<1>::zeros([1], &probe).into_data())
            })
            .map_err(|error| TrainError::DeviceUnavailable { backend: "wgpu", detail: error.to_string() })?;
            Ok(device.autodiff())
        }
        #[cfg(not(feature = "wgpu"))]
        BackendKind::Wgpu => Err(TrainError::BackendMissing("wgpu")),
    }
}
