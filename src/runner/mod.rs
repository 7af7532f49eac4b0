//! Running a study: the checks before any work, training one run into its directory
//! (recording, checkpoints, locks), the sweep over a study's runs, and the progress
//! display. A library user calls `sweep::sweep`; `commands` turns arguments into these
//! calls and their outcomes into text and exit codes.

pub mod continuation;
pub mod estimate;
pub mod notices;
pub mod one_run;
pub mod preflight;
pub mod progress;
pub mod recorder;
pub mod remembered;
pub mod signals;
pub mod slurm_script;
pub mod speed_range;
pub mod sweep;
pub mod sweep_outcome;

use std::fmt;
use std::path::Path;

use crate::plan::{build_plan, Plan};
use crate::spec::load_study;

/// Why a command did not succeed; decides the process exit code.
#[derive(Debug)]
pub enum Failure {
    /// The input (study file, arguments) is wrong; nothing was started. Exit code 2.
    BadInput(String),
    /// A run or the results store failed. Exit code 1.
    RunFailed(String),
    /// Stopped by SIGTERM or Ctrl-C with a checkpoint written, nothing failed: running
    /// the same command again resumes. Exit code 3 (job scripts requeue on it).
    Interrupted(String),
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::BadInput(_) => 2,
            Failure::RunFailed(_) => 1,
            Failure::Interrupted(_) => 3,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::BadInput(message)
            | Failure::RunFailed(message)
            | Failure::Interrupted(message) => f.write_str(message),
        }
    }
}

/// Loads, validates and expands a study file; the diagnostics are the failure's text.
pub fn load_plan(path: &Path) -> Result<Plan, Failure> {
    let loaded = load_study(path).map_err(|d| Failure::BadInput(d.to_string()))?;
    build_plan(&loaded).map_err(|d| Failure::BadInput(d.to_string()))
}
