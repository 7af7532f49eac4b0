//! rankprobe: training studies as data.
//!
//! Data flows one way: `spec` (RON -> validated study) -> `plan` (run matrix, run ids)
//! -> `store` (results layout) -> `commands` (what the CLI does). Each module reads only
//! from the ones before it.

pub mod atomic_file;
pub mod commands;
pub mod data;
pub mod glob_files;
pub mod matmul;
pub mod model;
pub mod optim;
pub mod plan;
pub mod probe;
pub mod profile;
pub mod report;
pub mod spec;
pub mod store;
pub mod text_table;
pub mod train;
