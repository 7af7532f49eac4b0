//! Checks before a sweep starts any work: the device, the runs selected, a writable
//! results directory, and every run's data prepared and able to train.

use std::collections::HashMap;
use std::path::Path;

use crate::atomic_file::is_real_dir;
use crate::data::{prepare_dataset, Dataset};
use crate::plan::cost::steps_and_tokens;
use crate::plan::{Plan, PlannedRun};
use crate::spec::suggest::help_for;
use crate::spec::Device;
use crate::store::{create_dir_below, write_atomic, RunPaths};
use crate::train::run::check_trainable;

use super::notices::{Notice, Notices};
use super::Failure;

/// The longest file name a system takes (Linux's NAME_MAX), and the longest path.
const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4096;

/// The most bytes a path below the study directory adds to it: `/runs/` + a run name (a
/// label of at most 64 characters, `-`, a 12-character id) + `/.checkpoint.bin.tmp-` and a
/// pid, with room to spare.
const DEEPEST_BELOW_STUDY: usize = 160;

/// Fails unless `dir` exists as a writable directory or can be created, and leaves no
/// trace: an unwritable results directory is reported before any work starts.
pub(super) fn check_writable(dir: &Path) -> Result<(), Failure> {
    let unwritable = |why: String| {
        Failure::BadInput(format!(
            "cannot write results in {}: {why}; choose a writable directory with --results",
            dir.display()
        ))
    };
    // Names the system cannot hold fail at the first write deep inside a run; say so now.
    if let Some(long) = dir.components().find(|c| c.as_os_str().len() > NAME_MAX) {
        return Err(unwritable(format!(
            "the name `{}` is longer than the system's {NAME_MAX} bytes",
            long.as_os_str().to_string_lossy()
        )));
    }
    if dir.as_os_str().len() + DEEPEST_BELOW_STUDY > PATH_MAX {
        return Err(unwritable(format!(
            "the path is {} bytes long; with the files under it that passes the system's \
             {PATH_MAX}-byte limit",
            dir.as_os_str().len()
        )));
    }
    // The deepest ancestor that is there. One that cannot be looked up (a symbolic link
    // loop, a link to nowhere, no permission) is refused: creating below it would fail.
    let mut existing = Path::new(".");
    for ancestor in dir.ancestors() {
        // A relative path's last ancestor is "": then it is ".".
        let ancestor = if ancestor.as_os_str().is_empty() {
            Path::new(".")
        } else {
            ancestor
        };
        match std::fs::symlink_metadata(ancestor) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(unwritable(format!("{}: {err}", ancestor.display()))),
            Ok(_) => {
                if let Err(err) = std::fs::metadata(ancestor) {
                    return Err(unwritable(format!(
                        "{} is a symbolic link that leads nowhere usable ({err})",
                        ancestor.display()
                    )));
                }
                existing = ancestor;
                break;
            }
        }
    }
    let probe = existing.join(format!(".rankprobe-write-check-{}", std::process::id()));
    let _ = std::fs::remove_file(&probe);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|err| unwritable(format!("{} is not writable ({err})", existing.display())))
}

/// Fails if a directory of the study's results tree that rankprobe writes into (the study
/// directory, its table and report directories, the selected runs' directories) is a
/// symbolic link or not a directory: caught here, before any data is prepared, instead
/// of when the first file would be written.
pub(super) fn check_tree(dir: &Path, runs: &[PlannedRun]) -> Result<(), Failure> {
    let fixed = ["runs", "metrics", "probes", "report"].map(|d| dir.join(d));
    let run_dirs = runs.iter().map(|run| RunPaths::of(dir, run).dir);
    for path in std::iter::once(dir.to_path_buf())
        .chain(fixed)
        .chain(run_dirs)
    {
        is_real_dir(&path).map_err(|err| {
            Failure::BadInput(format!("cannot write results in {}: {err}", dir.display()))
        })?;
    }
    Ok(())
}

/// Creates `dir` and writes the study file there as `study.ron`.
pub(super) fn prepare_results_dir(dir: &Path, study_source: &[u8]) -> Result<(), Failure> {
    let failed = |err: std::io::Error| {
        Failure::RunFailed(format!("cannot write results in {}: {err}", dir.display()))
    };
    create_dir_below(dir.parent().unwrap_or(Path::new(".")), dir).map_err(failed)?;
    write_atomic(&dir.join("study.ron"), study_source).map_err(failed)
}

/// The device runs will use (`auto`: CUDA when this build and machine have it).
pub(super) fn resolve_device(requested: Device) -> Result<Device, Failure> {
    crate::train::device::resolve(requested).map_err(|err| Failure::BadInput(err.to_string()))
}

/// The runs named by `--only`, in plan order; an unknown label is an error.
pub(super) fn select_runs(plan: &Plan, only: &[String]) -> Result<Vec<PlannedRun>, Failure> {
    if only.is_empty() {
        return Ok(plan.runs.clone());
    }
    let labels: Vec<&str> = plan.runs.iter().map(|r| r.label.as_str()).collect();
    if let Some(unknown) = only.iter().find(|label| !labels.contains(&label.as_str())) {
        return Err(Failure::BadInput(format!(
            "--only {unknown}: study {} has no run labelled `{unknown}`; {}",
            plan.study,
            help_for(unknown, &labels, "label")
        )));
    }
    Ok(plan
        .runs
        .iter()
        .filter(|run| only.contains(&run.label))
        .cloned()
        .collect())
}

/// Runs with equal data configs share one prepared dataset.
pub(super) fn data_key(run: &PlannedRun) -> String {
    serde_json::to_string(&run.config.data).expect("data configs serialise")
}

/// Prepares the data of every selected run and checks that each can train, before any
/// training starts: bad input must not surface after hours of work.
pub(super) fn prepare_datasets(
    runs: &[PlannedRun],
    allow_repeat: bool,
) -> Result<HashMap<String, Dataset>, Failure> {
    let mut datasets = HashMap::new();
    let mut problems = Vec::new();
    for run in runs {
        let key = data_key(run);
        if !datasets.contains_key(&key) {
            match prepare_dataset(&run.config.data) {
                Ok(dataset) => {
                    datasets.insert(key.clone(), dataset);
                }
                Err(err) => {
                    problems.push(format!("run {}: data: {err}", run.label));
                    continue;
                }
            }
        }
        let dataset = &datasets[&key];
        if let Err(err) = check_trainable(&run.config, dataset.tokenizer.vocab_size) {
            problems.push(format!("run {}: {err}", run.label));
        }
        let eval_tokens = run.config.data.eval_sequences * run.config.data.seq_len + 1;
        if dataset.splits.val.len() < eval_tokens {
            problems.push(format!(
                "run {}: the validation split has {} tokens; the eval batch needs {eval_tokens}",
                run.label,
                dataset.splits.val.len()
            ));
        }
        for set in &dataset.eval_sets {
            if set.tokens.len() < eval_tokens {
                problems.push(format!(
                    "run {}: eval set `{}` ({}) has {} tokens; its windows need {eval_tokens} \
                     (data.eval_sequences x seq_len + 1): give it more text, or lower \
                     eval_sequences",
                    run.label,
                    set.name,
                    set.origin,
                    set.tokens.len()
                ));
            } else if set.real_tokens * 2 < eval_tokens {
                problems.push(format!(
                    "run {}: eval set `{}` ({}) has {} tokens but only {} that are not \
                     whitespace, fewer than half of the {eval_tokens} its windows read: \
                     give it real text",
                    run.label,
                    set.name,
                    set.origin,
                    set.tokens.len(),
                    set.real_tokens
                ));
            }
        }
        let (_, budget) = steps_and_tokens(&run.config);
        let train = dataset.splits.train.len() as u64;
        if budget > train && !allow_repeat {
            problems.push(format!(
                "run {}: the corpus is too small for the budget: {budget} training tokens, \
                 but the training split has {train} ({:.1} epochs); use a larger corpus, \
                 lower schedule.tokens, or pass --allow-repeat to train on repeated data",
                run.label,
                budget as f64 / train.max(1) as f64
            ));
        }
    }
    if problems.is_empty() {
        Ok(datasets)
    } else {
        Err(Failure::BadInput(format!(
            "nothing was trained:\n  {}",
            problems.join("\n  ")
        )))
    }
}

/// Moves runs an earlier version wrote into today's layout, keeping their results, and
/// says so in `notices`; `plan` (the study as it is now, if it still plans) names their conditions.
pub fn upgrade_results(
    dir: &Path,
    plan: Option<&Plan>,
    notices: &mut dyn Notices,
) -> Result<(), Failure> {
    let moved =
        crate::store::layout_upgrade::upgrade_results(dir, plan).map_err(Failure::RunFailed)?;
    for what in moved {
        notices.notice(Notice::ResultsMoved { what });
    }
    Ok(())
}
