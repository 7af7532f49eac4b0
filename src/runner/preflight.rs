//! Checks before a sweep starts any work: the device, the runs selected, a writable
//! results directory, and every run's data prepared and able to train.

use std::collections::HashMap;
use std::path::Path;

use crate::data::{prepare_dataset, Dataset};
use crate::plan::cost::steps_and_tokens;
use crate::plan::{Plan, PlannedRun};
use crate::spec::suggest::help_for;
use crate::spec::Device;
use crate::store::write_atomic;
use crate::train::run::check_trainable;

use super::Failure;

/// Fails unless `dir` exists as a writable directory or can be created, and leaves no
/// trace: an unwritable results directory is reported before any work starts.
pub(super) fn check_writable(dir: &Path) -> Result<(), Failure> {
    let unwritable = |why: String| {
        Failure::BadInput(format!(
            "cannot write results in {}: {why}; choose a writable directory with --results",
            dir.display()
        ))
    };
    // A relative path's last ancestor is "", which does not exist: then it is ".".
    let existing = dir
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("."));
    if !existing.is_dir() {
        return Err(unwritable(format!(
            "{} is not a directory",
            existing.display()
        )));
    }
    let probe = existing.join(format!(".rankprobe-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|err| unwritable(format!("{} is not writable ({err})", existing.display())))
}

/// Creates `dir` and writes the study file there as `study.ron`.
pub(super) fn prepare_results_dir(dir: &Path, study_source: &[u8]) -> Result<(), Failure> {
    let failed = |err: std::io::Error| {
        Failure::RunFailed(format!("cannot write results in {}: {err}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
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
