//! rankprobe: training studies as data.
//!
//! Data flows one way: `spec` (RON -> validated study) -> `plan` (run matrix, run ids)
//! -> `train` (one run: model, optimizers, probes) -> `store` (results layout, atomic
//! files, manifests) -> `runner` (checks before work, sweeps, recording, locks, progress:
//! callable without the CLI) -> `report` and `commands` (what the CLI does: arguments
//! into calls, outcomes into text and exit codes). Each module reads only from the ones
//! before it.

pub mod atomic_file;
pub mod bench;
pub mod commands;
#[cfg(feature = "cuda")]
pub mod cuda_kernels;
pub mod data;
pub mod digest;
pub mod glob_files;
pub mod matmul;
pub mod model;
pub mod optim;
pub mod plan;
pub mod probe;
pub mod profile;
pub mod quiet_panic;
pub mod regular_file;
pub mod report;
pub mod runner;
pub mod shell_text;
pub mod spec;
pub mod store;
pub mod text_table;
pub mod train;
