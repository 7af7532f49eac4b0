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
    /// The run's value on a `LogGrid` axis (path, number): the report's x-axis.
    pub x: Option<(String, f64)>,
    /// The label without seed and `LogGrid` pieces: the curve the run belongs to.
    pub family: String,
    /// The overrides that made this run, as (path, RON value), in the order applied.
    pub overrides: Vec<(String, String)>,
}
