//! What each CLI subcommand does. `main.rs` only parses arguments and calls these.

pub mod bench;
pub mod export;
pub mod missing;
pub mod plan;
pub mod report;
pub mod run;
pub mod slurm;
pub mod sweep;
pub mod validate;

pub use crate::runner::{load_plan, Failure};
