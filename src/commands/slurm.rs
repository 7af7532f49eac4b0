//! `rankprobe slurm FILE`: an sbatch job-array script that spreads a study over a cluster
//! (`runner::slurm_script`), one array task per run, all writing to one results directory
//! that `report` merges; and `run`'s task index from the scheduler's environment.

use std::path::Path;

pub use crate::runner::slurm_script::{render, ScriptPaths, SlurmOptions};

use super::{load_plan, Failure};

/// The environment variable a job array sets to the task's index, in the order `run`
/// reads them.
pub const INDEX_VARIABLES: [&str; 2] = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"];

/// The task index from a job scheduler's environment, if any is set.
pub fn index_from_environment() -> Result<Option<usize>, Failure> {
    for name in INDEX_VARIABLES {
        if let Ok(value) = std::env::var(name) {
            return value
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Failure::BadInput(format!("{name}={value} is not a run index")));
        }
    }
    Ok(None)
}

/// The sbatch script. Creates the directory its logs go to: Slurm opens a task's output
/// file before the task starts, so it must exist at submission.
pub fn script(file: &Path, options: &SlurmOptions) -> Result<String, Failure> {
    let plan = load_plan(file)?;
    let absolute = |path: &Path, what: &str| {
        std::path::absolute(path).map_err(|e| {
            Failure::BadInput(format!("cannot resolve the {what} {}: {e}", path.display()))
        })
    };
    let cwd = std::env::current_dir().map_err(|e| Failure::RunFailed(e.to_string()))?;
    let exe = std::env::current_exe().map_err(|e| Failure::RunFailed(e.to_string()))?;
    let results = absolute(&options.results, "results directory")?;
    let logs = results.join(&plan.study).join("slurm-logs");
    crate::atomic_file::create_dir_below(&results, &logs).map_err(|e| {
        Failure::RunFailed(format!(
            "cannot create the log directory {}: {e}",
            logs.display()
        ))
    })?;
    let logs = std::fs::canonicalize(&logs).unwrap_or(logs);
    let paths = ScriptPaths {
        cwd,
        exe,
        file: absolute(file, "study file")?,
        results,
        logs,
    };
    render(&plan.study, plan.runs.len(), &paths, options).map_err(Failure::BadInput)
}

pub fn slurm(file: &Path, options: &SlurmOptions) -> Result<(), Failure> {
    print!("{}", script(file, options)?);
    Ok(())
}
