//! `rankprobe run FILE --index K`: one run of a study, for job arrays.

use std::path::Path;

use super::sweep::{sweep, SweepOptions};
use super::Failure;

/// `run`: a sweep of the one run at `index` (or the scheduler's task index).
pub fn run(
    file: &Path,
    index: Option<usize>,
    results: &Path,
    force: bool,
    allow_repeat: bool,
    log_every: std::time::Duration,
) -> Result<(), Failure> {
    let index = match index {
        Some(index) => index,
        None => super::slurm::index_from_environment()?.ok_or_else(|| {
            Failure::BadInput(
                "give --index K, or run inside a job array (SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX)"
                    .to_owned(),
            )
        })?,
    };
    sweep(
        file,
        &SweepOptions {
            results: results.to_owned(),
            only: Vec::new(),
            device: None,
            force,
            fail_fast: false,
            shard: None,
            index: Some(index),
            allow_repeat,
            log_every,
        },
    )
}
