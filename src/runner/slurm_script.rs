//! The sbatch job-array script of a study: one array task per run, all writing to one
//! results directory. Every path in shell code is quoted; values Slurm parses itself in
//! `#SBATCH` lines are refused where Slurm could misread them. Pure text: `commands::slurm`
//! resolves the paths and prints it.

use std::path::{Path, PathBuf};

use crate::shell_text;
use crate::spec::diagnostic::one_line;

/// Options of the generated script.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub results: PathBuf,
    /// At most this many array tasks at once (`%K`).
    pub max_parallel: usize,
    pub gpus_per_task: usize,
    pub time: String,
    pub partition: Option<String>,
}

/// Seconds before the time limit at which Slurm is asked to send SIGTERM: enough for a
/// step and a checkpoint, plus the up to 60 s by which Slurm may send it early or late.
pub const WARNING_SECONDS: u32 = 180;

/// Where the generated script runs things and writes its logs.
#[derive(Debug, Clone)]
pub struct ScriptPaths {
    /// The directory the tasks start in (where `sbatch` was run).
    pub cwd: PathBuf,
    /// The rankprobe binary the tasks run.
    pub exe: PathBuf,
    /// The study file, absolute.
    pub file: PathBuf,
    /// The results root, absolute.
    pub results: PathBuf,
    /// The directory of the tasks' logs (Slurm opens them itself).
    pub logs: PathBuf,
}

/// How often the script asks Slurm whether its task is being preempted.
pub const PREEMPT_POLL_SECONDS: u32 = 5;

/// The script's text. Every value in shell code is quoted (`shell_text::quote`); values
/// in `#SBATCH` lines, which Slurm parses itself without a shell, are refused where Slurm
/// could misread them.
pub fn render(
    study: &str,
    runs: usize,
    paths: &ScriptPaths,
    options: &SlurmOptions,
) -> Result<String, String> {
    let logs = sbatch_path(&paths.logs)?;
    check_sbatch_value(&options.time, "--time", |c| {
        c.is_ascii_alphanumeric() || matches!(c, ':' | '-')
    })?;
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
         # At the time limit Slurm sends the batch shell SIGTERM {warning} s ahead (up to 60 s\n\
         # early or late); at preemption the script below passes SIGTERM on itself. Either way\n\
         # rankprobe finishes its step, writes a checkpoint and exits 3, and the task goes\n\
         # back into the queue; the next attempt resumes from that checkpoint.\n\
         #SBATCH --requeue\n\
         #SBATCH --signal=B:TERM@{warning}\n",
        file = one_line(&paths.file.display().to_string()),
        last = runs.saturating_sub(1),
        parallel = options.max_parallel.max(1),
        time = options.time,
        warning = WARNING_SECONDS,
    );
    if options.gpus_per_task > 0 {
        text += &format!("#SBATCH --gpus-per-task={}\n", options.gpus_per_task);
    }
    if let Some(partition) = &options.partition {
        check_sbatch_value(partition, "--partition", |c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ',')
        })?;
        text += &format!("#SBATCH --partition={partition}\n");
    }
    text += &format!(
        r#"set -uo pipefail
cd -- {cwd} || exit 1
echo "== $(date -Is) task ${{SLURM_ARRAY_TASK_ID}} of job ${{SLURM_ARRAY_JOB_ID}}, attempt $(( ${{SLURM_RESTART_COUNT:-0}} + 1 )) on $(hostname)"
# rankprobe runs as a child of this shell, not under srun (srun kills its task outright on
# SIGTERM); the trap passes SIGTERM on, and a repeated SIGTERM changes nothing.
trap 'kill -TERM "$child" 2>/dev/null' TERM
# `run` reads its matrix index from SLURM_ARRAY_TASK_ID.
{exe} run {file} --results {results} &
child=$!
# Preemption: Slurm signals a preempted job's steps (it has none) at once, but its batch
# shell only when the partition's GraceTime has run out, leaving KillWait (30 s by
# default) for the step and the checkpoint. So the script watches the job's PreemptTime
# (one `scontrol` call every {poll} s) and passes SIGTERM on as soon as it is set.
(
    while kill -0 "$child" 2>/dev/null; do
        sleep {poll} </dev/null >/dev/null 2>&1
        if scontrol show job "${{SLURM_JOB_ID:-}}" -o 2>/dev/null | grep -q ' PreemptTime=[0-9]'; then
            echo "== $(date -Is) preempted: passing SIGTERM on"
            kill -TERM "$child" 2>/dev/null
            break
        fi
    done
) &
watcher=$!
# `wait` returns early when the trap runs: wait until rankprobe itself has exited.
while wait "$child"; code=$?; kill -0 "$child" 2>/dev/null; do :; done
kill "$watcher" 2>/dev/null
echo "== $(date -Is) rankprobe exited with $code"
if [ "$code" = 3 ]; then
    # Interrupted with a checkpoint. Still RUNNING means the time-limit warning, a
    # preemption in its grace time, or a signal by hand (`scancel --batch --signal=TERM`):
    # back into the queue (which also frees the node for a preempting job at once).
    # `scontrol requeue` requeues the task itself; `scancel` cancels it (CANCELLED): then
    # nothing is requeued.
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
        cwd = shell_text::quote_path(&paths.cwd, "working directory")?,
        exe = shell_text::quote_path(&paths.exe, "rankprobe binary")?,
        file = shell_text::quote_path(&paths.file, "study file")?,
        results = shell_text::quote_path(&paths.results, "results directory")?,
        poll = PREEMPT_POLL_SECONDS,
    );
    Ok(text)
}

/// `path` for an `#SBATCH` line. Slurm reads these lines itself: it splits them at
/// whitespace, treats quotes and `\` specially and expands `%` patterns in file names, so
/// a path holding any of those (or a control character) cannot be written there.
fn sbatch_path(path: &Path) -> Result<String, String> {
    let text = path.to_str().ok_or_else(|| {
        format!(
            "the log directory {} is not valid UTF-8: use a results path of UTF-8 characters",
            path.display()
        )
    })?;
    match text
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || matches!(c, '%' | '"' | '\'' | '\\'))
    {
        Some(c) => Err(format!(
            "the log directory {:?} holds {}, which Slurm cannot take in `#SBATCH --output`: \
             use a --results path without spaces, quotes, backslashes, `%` or control characters",
            text,
            describe(c)
        )),
        None => Ok(text.to_owned()),
    }
}

fn describe(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        c if c.is_whitespace() || c.is_control() => format!("the character {}", c.escape_unicode()),
        c => format!("`{c}`"),
    }
}

/// Refuses an option value for an `#SBATCH` line with a character outside `allowed`.
fn check_sbatch_value(
    value: &str,
    option: &str,
    allowed: impl Fn(char) -> bool,
) -> Result<(), String> {
    match value.chars().find(|&c| !allowed(c)) {
        _ if value.is_empty() => Err(format!("{option} is empty")),
        Some(c) => Err(format!(
            "{option} {:?} holds {}, which is not part of a Slurm {option} value",
            value,
            describe(c)
        )),
        None => Ok(()),
    }
}
