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

/// Seconds before the time limit at which Slurm is asked to send SIGTERM: enough for a
/// step and a checkpoint, plus the up to 60 s by which Slurm may send it early or late.
pub const WARNING_SECONDS: u32 = 180;

/// The sbatch script. Creates the directory its logs go to: Slurm opens a task's output
/// file before the task starts, so it must exist at submission.
pub fn script(file: &Path, options: &SlurmOptions) -> Result<String, Failure> {
    let plan = load_plan(file)?;
    let last = plan.runs.len() - 1;
    let cwd = std::env::current_dir().map_err(|e| Failure::RunFailed(e.to_string()))?;
    let exe = std::env::current_exe().map_err(|e| Failure::RunFailed(e.to_string()))?;
    let logs = options.results.join(&plan.study).join("slurm-logs");
    std::fs::create_dir_all(&logs).map_err(|e| {
        Failure::RunFailed(format!(
            "cannot create the log directory {}: {e}",
            logs.display()
        ))
    })?;
    let logs = std::fs::canonicalize(&logs).unwrap_or(logs);
    let mut text = format!(
        "#!/bin/bash\n\
         # rankprobe study `{study}` ({runs} runs) as a Slurm job array: one task per run.\n\
         # Submit with `sbatch`; see what is left with `rankprobe missing {file}`.\n\
         #SBATCH --job-name=rankprobe-{study}\n\
         #SBATCH --array=0-{last}%{parallel}\n\
         #SBATCH --time={time}\n\
         # One log per task; a requeued task appends to it (each attempt starts with a `==` line).\n\
         #SBATCH --output={logs}/task-%a.out\n\
         #SBATCH --open-mode=append\n\
         # At the time limit Slurm sends SIGTERM {warning} s ahead (up to 60 s early or late);\n\
         # preemption sends it at once and kills after the partition's GraceTime. Either way\n\
         # rankprobe finishes its step, writes a checkpoint and exits 3, and the task goes\n\
         # back into the queue; the next attempt resumes from that checkpoint.\n\
         #SBATCH --requeue\n\
         #SBATCH --signal=B:TERM@{warning}\n",
        study = plan.study,
        runs = plan.runs.len(),
        file = file.display(),
        parallel = options.max_parallel.max(1),
        time = options.time,
        logs = logs.display(),
        warning = WARNING_SECONDS,
    );
    if options.gpus_per_task > 0 {
        text += &format!("#SBATCH --gpus-per-task={}\n", options.gpus_per_task);
    }
    if let Some(partition) = &options.partition {
        text += &format!("#SBATCH --partition={partition}\n");
    }
    text += &format!(
        r#"set -uo pipefail
cd {cwd}
echo "== $(date -Is) task ${{SLURM_ARRAY_TASK_ID}} of job ${{SLURM_ARRAY_JOB_ID}}, attempt $(( ${{SLURM_RESTART_COUNT:-0}} + 1 )) on $(hostname)"
# rankprobe runs as a child of this shell, not under srun (srun kills its task outright on
# SIGTERM); the trap passes SIGTERM on, and a repeated SIGTERM changes nothing.
trap 'kill -TERM "$child" 2>/dev/null' TERM
# `run` reads its matrix index from SLURM_ARRAY_TASK_ID.
{exe} run {file} --results {results} &
child=$!
# `wait` returns early when the trap runs: wait until rankprobe itself has exited.
while wait "$child"; code=$?; kill -0 "$child" 2>/dev/null; do :; done
echo "== $(date -Is) rankprobe exited with $code"
if [ "$code" = 3 ]; then
    # Interrupted with a checkpoint. Still RUNNING means the time-limit warning or a
    # signal by hand (`scancel --batch --signal=TERM`): back into the queue. Preemption
    # and `scontrol requeue` requeue the task themselves; `scancel` cancels it (CANCELLED):
    # then nothing is requeued.
    task="${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
    state=$(scontrol show job "$task" -o 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n 1)
    echo "== task state $state"
    if [ "$state" = RUNNING ]; then
        scontrol requeue "$task" || true
    fi
    exit 0
fi
exit "$code"
"#,
        cwd = cwd.display(),
        exe = exe.display(),
        file = file.display(),
        results = options.results.display(),
    );
    Ok(text)
}

pub fn slurm(file: &Path, options: &SlurmOptions) -> Result<(), Failure> {
    print!("{}", script(file, options)?);
    Ok(())
}
