//! One run of a study's matrix.

use crate::spec::RunConfig;

/// One run of the matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    /// Position in the matrix, from 0 (stable for a given study file).
    pub index: usize,
    pub label: String,
    /// The label without its seed (see `expand::run_condition`): runs of one condition
    /// are repeats that differ only in their seed.
    pub condition: String,
    /// What the run's named conditions are ("Muon + QK-norm"); may be empty.
    pub description: String,
    pub id: String,
    pub config: RunConfig,
    /// The overrides that made this run, as (path, RON value), in the order applied.
    pub overrides: Vec<(String, String)>,
}
