//! The fully described configuration of one training run: what the run id hashes.
//!
//! Everything that changes what a run computes lives here; how and where it runs
//! (device, results directory) lives in `Execution` so that moving a study to another
//! machine keeps its run ids. Each section's types live in their own module
//! (`data_config`, `model_config`, `optimizer_config`, `schedule_config`,
//! `probe_config`), re-exported here.
//!
//! Adding a field: two rules no compiler enforces. A run id is the hash of the
//! serialised config, so a new field must be left out of it while it has its default
//! (`#[serde(default, skip_serializing_if = ...)]`), or every earlier run id changes
//! (the `plan` golden tests notice). And `build.rs` compiles `spec` and `plan` alone
//! (to find the model shapes to compile), so these modules may import nothing from the
//! rest of the crate and no crate `Cargo.toml` does not give `build.rs` too.

pub use super::data_config::*;
pub use super::model_config::*;
pub use super::optimizer_config::*;
pub use super::probe_config::*;
pub use super::schedule_config::*;

use super::patch::spec_struct;

spec_struct! {
    /// One run: seed, data, model, optimizer, schedule and probes.
    pub struct RunConfig {
        /// Fixes initialisation, data order and every other random choice.
        pub seed: u64,
        pub data: DataConfig,
        pub model: ModelConfig,
        pub optimizer: OptimizerConfig,
        pub schedule: ScheduleConfig,
        pub probes: ProbeConfig,
    }
}
