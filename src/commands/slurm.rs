//! `rankprobe slurm FILE`: an sbatch job-array script that spreads a study over a cluster,
//! one array task per run, all writing to one results directory that `report` merges.

use std::path::Path;

use super::{load_plan, Failure};

/// Options of the generated script.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub results: std::path::PathBuf,
    /// At most this many array tasks at once (`%K`).
    pub max_parallel: usize,
    pub gpus_per_task: usize,
    pub time: String,
    pub partition: Option<String>,
}

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

pub fn script(file: &Path, options: &SlurmOptions) -> Result<String, Failure> {
    let plan = load_plan(file)?;
    let last = plan.runs.len() - 1;
    let cwd = std::env::current_dir().map_err(|e| Failure::RunFailed(e.to_string()))?;
    let study_dir = options.results.join(&plan.study);
    let mut text = format!(
        "#!/bin/bash\n\
         # rankprobe study `{study}` ({runs} runs) as a Slurm job array: one task per run.\n\
         # Submit with `sbatch`; see what is left with `rankprobe missing {file}`.\n\
         #SBATCH --job-name=rankprobe-{study}\n\
         #SBATCH --array=0-{last}%{parallel}\n\
         #SBATCH --gpus-per-task={gpus}\n\
         #SBATCH --time={time}\n\
         #SBATCH --output={dir}/slurm-%A_%a.out\n\
         # Preemption: Slurm signals the batch shell 120 s ahead; it passes SIGTERM on to\n\
         # rankprobe, which checkpoints the run, then requeues the task. A requeued task\n\
         # keeps a finished run and resumes an unfinished one from its last checkpoint.\n\
         #SBATCH --requeue\n\
         #SBATCH --signal=B:TERM@120\n",
        study = plan.study,
        runs = plan.runs.len(),
        file = file.display(),
        parallel = options.max_parallel.max(1),
        gpus = options.gpus_per_task,
        time = options.time,
        dir = study_dir.display(),
    );
    if let Some(partition) = &options.partition {
        text += &format!("#SBATCH --partition={partition}\n");
    }
    text += &format!(
        "set -euo pipefail\n\
         mkdir -p {dir}\n\
         cd {cwd}\n\
         trap 'kill -TERM \"$child\" 2>/dev/null; wait \"$child\" || true; \
         scontrol requeue \"$SLURM_ARRAY_JOB_ID\"_\"$SLURM_ARRAY_TASK_ID\"' TERM\n\
         # `run` reads its matrix index from SLURM_ARRAY_TASK_ID.\n\
         srun ./target/release/rankprobe run {file} --results {results} &\n\
         child=$!\n\
         wait \"$child\"\n",
        dir = study_dir.display(),
        cwd = cwd.display(),
        file = file.display(),
        results = options.results.display(),
    );
    Ok(text)
}

pub fn slurm(file: &Path, options: &SlurmOptions) -> Result<(), Failure> {
    print!("{}", script(file, options)?);
    Ok(())
}
