//! rankprobe: training studies as data.
//!
//! Data flows one way, in the order the modules are declared below: `spec` (RON ->
//! validated study) -> `plan` (run matrix, run ids) -> `data` (corpora, tokens, batches)
//! -> `model` (the transformer) -> `optim` (optimizers, their named state) -> `probe`
//! (rank metrics) -> `train` (one run: the loop, checkpoints) -> `store` (results layout,
//! manifests, tables) -> `report` (comparison tables and figures) -> `export` (finished runs for PyTorch) -> `runner` (checks
//! before work, sweeps, recording, locks, progress: callable without the CLI) -> `bench`
//! (throughput against the machine's limit) -> `commands` (what the CLI does: arguments
//! into calls, outcomes into text and exit codes). Each module reads only from the ones
//! declared before it (`tests/module_order.rs` checks it); the helpers come first.

// Helpers, each with one job, used along the flow.
pub mod atomic_file;
#[cfg(feature = "cuda")]
pub mod cuda_kernels;
pub mod digest;
// Before `glob_files`, which names what a non-regular file is through it.
pub mod regular_file;
pub mod glob_files;
pub mod matmul;
pub mod profile;
// After `profile`, which times its packing.
pub mod bf16_matmul;
pub mod quiet_panic;
pub mod shell_text;
pub mod text_table;

// The flow.
pub mod spec;
pub mod plan;
pub mod data;
pub mod model;
pub mod optim;
pub mod probe;
pub mod train;
pub mod store;
pub mod report;
pub mod export;
pub mod runner;
pub mod bench;
pub mod commands;
