//! The decoder-only transformer: compile-time-shaped parameters (dfdx), the forward pass
//! with probe taps, its building blocks per device, and initialisation.

pub mod arch;
// The dfdx compositions: `ModelOps`' defaults (the CUDA device) and the CPU's reference.
pub mod composed;
pub mod constants;
pub mod cpu_ops;
#[cfg(feature = "cuda")]
mod cuda_ops;
pub mod forward;
pub mod init;
pub mod ops;
pub mod params;
pub mod shapes;
pub mod snapshot;
pub mod tape;
pub mod weights_file;

pub use arch::{Architecture, Capture, Taps};
pub use constants::Constants;
pub use forward::cross_entropy;
pub use ops::ModelOps;
pub use params::{Block, Transformer};
pub use tape::ModelTape;

#[cfg(test)]
mod grad_tests;
