//! The decoder-only transformer: compile-time-shaped parameters (dfdx), the forward pass
//! with probe taps, and initialisation.

pub mod arch;
pub mod forward;
pub mod init;
pub mod params;
pub mod shapes;
pub mod snapshot;

pub use arch::{Architecture, Capture, Taps};
pub use forward::{cross_entropy, Constants, ModelTape};
pub use params::{Block, Transformer};

#[cfg(test)]
mod grad_tests;
