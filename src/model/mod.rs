//! The decoder-only transformer: compile-time-shaped parameters (dfdx), the forward pass
//! with probe taps, its building blocks per device, and initialisation.

pub mod arch;
// The dfdx compositions serve the CUDA device and, in tests, as the CPU's reference.
#[cfg_attr(not(any(test, feature = "cuda")), allow(dead_code))]
pub mod composed;
pub mod constants;
pub mod cpu_ops;
pub mod forward;
pub mod init;
pub mod ops;
pub mod params;
pub mod shapes;
pub mod snapshot;
pub mod tape;

pub use arch::{Architecture, Capture, Taps};
pub use constants::Constants;
pub use forward::cross_entropy;
pub use ops::ModelOps;
pub use params::{Block, Transformer};
pub use tape::ModelTape;

#[cfg(test)]
mod grad_tests;
