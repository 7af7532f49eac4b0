//! What an optimizer needs of a device beyond dfdx's `Device`: its buffers on the host
//! (`host_buffers`) and its own Muon.

use dfdx::prelude::*;

use crate::spec::run_config::MuonConfig;

use super::host_buffers::HostBuffers;
use super::MuonStep;

/// A device every optimizer can run on.
pub trait OptimDevice: HostBuffers + 'static {
    /// Muon on this device: the CPU reference or the CUDA kernels.
    type Muon: MuonStep<Self> + 'static;

    fn muon(config: &MuonConfig) -> Self::Muon;
}

impl OptimDevice for Cpu {
    type Muon = super::muon::Muon;

    fn muon(config: &MuonConfig) -> Self::Muon {
        super::muon::Muon::new(config)
    }
}

#[cfg(feature = "cuda")]
impl OptimDevice for Cuda {
    type Muon = super::cuda_muon::CudaMuon;

    fn muon(config: &MuonConfig) -> Self::Muon {
        super::cuda_muon::CudaMuon::new(config)
    }
}
