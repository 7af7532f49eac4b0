//! A sweep: check everything, prepare the data, then train every selected run that is
//! not finished and record its metrics and manifest under `results/<study>/`. Runs that
//! another process holds are waited for at the end.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::atomic_file::{remove_stale_temps, remove_stale_temps_of};
use crate::plan::{Plan, PlannedRun};
use crate::spec::Device;
use crate::store::finished::{finished_status, recorded, Recorded};
use crate::store::lock::try_lock;
use crate::store::manifest::RunStatus;
use crate::store::{study_dir, RunPaths, Table};

use super::estimate::run_cost;
use super::notices::{Notice, Notices};
use super::one_run::{store_failure, train_one};
use super::preflight::{
    check_tree, check_writable, data_key, prepare_datasets, prepare_results_dir, resolve_device,
    select_runs,
};
use super::progress::Progress;
pub use super::sweep_outcome::SweepOutcome;
use super::{load_plan, Failure};

/// Options of `sweep`.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Results root; the study writes to `<results>/<study>/`.
    pub results: PathBuf,
    /// Only these run labels (all runs when empty).
    pub only: Vec<String>,
    /// Overrides the study's `execution.device`.
    pub device: Option<Device>,
    /// Retrain runs that are done already.
    pub force: bool,
    /// Stop at the first run that fails or diverges.
    pub fail_fast: bool,
    /// Only the runs of this shard (`index % count == shard index`).
    pub shard: Option<Shard>,
    /// Only the run with this matrix index (`run --index`).
    pub index: Option<usize>,
    /// Allow a budget larger than the training split (more than one epoch).
    pub allow_repeat: bool,
    /// Without a terminal, a progress line at least this often.
    pub log_every: std::time::Duration,
}

/// Shard `index` of `count` (`--shard 1/3`): the runs whose matrix index modulo `count`
/// is `index`, so that `count` processes cover the study once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parsed = text.split_once('/').and_then(|(i, n)| {
            Some(Shard {
                index: i.parse().ok()?,
                count: n.parse().ok()?,
            })
        });
        match parsed {
            Some(shard) if shard.count > 0 && shard.index < shard.count => Ok(shard),
            _ => Err(format!(
                "`{text}` is not a shard; write INDEX/COUNT with INDEX < COUNT, e.g. 0/3"
            )),
        }
    }
}

/// Trains the selected runs of the study in `file` that are not finished yet, under
/// `<results>/<study>/`, saying what it keeps or redoes in `notices`; the caller reports
/// the outcome.
pub fn sweep(
    file: &Path,
    options: &SweepOptions,
    notices: &mut dyn Notices,
) -> Result<SweepOutcome, Failure> {
    let started = Instant::now();
    super::signals::install_interrupt_handler();
    let plan = load_plan(file)?;
    let device = resolve_device(options.device.unwrap_or(plan.execution.device))?;
    if plan.execution.tf32 && !crate::train::device::uses_tf32(true, device) {
        let device = device.to_string();
        notices.notice(Notice::Tf32Ignored { device });
    }
    let mut runs = select_runs(&plan, &options.only)?;
    if let Some(why) = runs
        .iter()
        .find_map(|run| crate::train::device::precision_error(&run.config, device))
    {
        return Err(Failure::BadInput(why));
    }
    if let Some(shard) = options.shard {
        runs.retain(|run| run.index % shard.count == shard.index);
    }
    if let Some(index) = options.index {
        if index >= plan.runs.len() {
            return Err(Failure::BadInput(format!(
                "run index {index} is out of range: study {} has runs 0 to {}",
                plan.study,
                plan.runs.len() - 1
            )));
        }
        runs.retain(|run| run.index == index);
    }
    let dir = study_dir(&options.results, &plan.study);
    let source = crate::regular_file::read(&plan.source).map_err(|err| {
        Failure::RunFailed(format!("cannot re-read {}: {err}", plan.source.display()))
    })?;
    check_writable(&dir)?;
    check_tree(&dir, &runs)?;
    super::preflight::upgrade_results(&dir, Some(&plan), notices)?;
    // Resume: a finished run (done or diverged) with the same run id is kept as it is.
    let mut kept: Vec<(PlannedRun, RunStatus)> = Vec::new();
    let mut to_train = Vec::new();
    for run in runs {
        let status = match options.force {
            true => None,
            false => finished_status(&dir, &run).unwrap_or_else(|why| {
                let run = run.label.clone();
                notices.notice(Notice::Retraining { run, why });
                None
            }),
        };
        match status {
            Some(status) => kept.push((run, status)),
            None => to_train.push(run),
        }
    }
    let runs = to_train;
    for (run, status) in &kept {
        notices.notice(Notice::Kept {
            run: run.label.clone(),
            status: status.to_string(),
            run_id: run.id.clone(),
        });
    }
    let datasets = prepare_datasets(&runs, options.allow_repeat)?;
    prepare_results_dir(&dir, &source)?;
    let costs = runs
        .iter()
        .map(|run| {
            run_cost(
                run,
                datasets
                    .get(&data_key(run))
                    .map(|d| d.splits.meta.vocab_size),
            )
        })
        .collect();
    let mut progress = Progress::new(costs, &device.to_string(), options.log_every);
    progress.remembered_estimate();
    let mut results = Vec::new();
    // Runs another process was training when this sweep came to them: waited for after
    // the others, so that the exit code can say whether they ended done.
    let mut deferred = Vec::new();
    let mut busy = Vec::new();
    let mut stopped = false;
    let context = Context {
        plan: &plan,
        dir: &dir,
        device,
        options,
    };
    for run in &runs {
        match attempt(&context, run, &datasets[&data_key(run)], &mut progress)? {
            Attempt::Busy(holder) => {
                progress.println(&format!(
                    "{}: process {} on {} is training it; coming back to it at the end",
                    run.label, holder.pid, holder.host
                ));
                deferred.push(run);
            }
            Attempt::Ended(label, status, summary) => {
                results.push((label, status, summary));
                if stop_after(status, &plan, options, &mut progress, &run.label) {
                    stopped = true;
                    break;
                }
            }
        }
    }
    for run in deferred.into_iter().filter(|_| !stopped) {
        match wait_for(&context, run, &datasets[&data_key(run)], &mut progress)? {
            None => busy.push(run.label.clone()),
            Some((label, status, summary)) => {
                results.push((label, status, summary));
                if stop_after(status, &plan, options, &mut progress, &run.label) {
                    break;
                }
            }
        }
    }
    progress.finish();
    Ok(SweepOutcome {
        dir,
        kept: kept
            .into_iter()
            .map(|(run, status)| (run.label, status))
            .collect(),
        trained: results,
        busy,
        selected: runs.len(),
        wall: started.elapsed(),
        plan,
    })
}

/// What a sweep's runs share.
struct Context<'a> {
    plan: &'a crate::plan::Plan,
    dir: &'a Path,
    device: Device,
    options: &'a SweepOptions,
}

enum Attempt {
    /// Another process holds the run's lock.
    Busy(crate::store::lock::Holder),
    /// (label, status, summary): trained here, or found finished by another process.
    Ended(String, RunStatus, String),
}

/// Trains `run` unless another process holds it or has finished it meanwhile.
fn attempt(
    context: &Context,
    run: &PlannedRun,
    dataset: &crate::data::Dataset,
    progress: &mut Progress,
) -> Result<Attempt, Failure> {
    let paths = RunPaths::of(context.dir, run);
    let run_dir = paths.dir.clone();
    paths
        .create_dirs()
        .map_err(|e| store_failure(context.dir, e))?;
    let _lock = match try_lock(&run_dir).map_err(|e| store_failure(&run_dir, e))? {
        Ok(lock) => lock,
        Err(holder) => return Ok(Attempt::Busy(holder)),
    };
    // Another sweep may have finished it since this one started.
    if !context.options.force {
        if let Recorded::Finished(manifest) = recorded(context.dir, run) {
            let status = manifest.status;
            progress.println(&format!(
                "keeping {} (finished by another sweep)",
                run.label
            ));
            let summary = "finished by another sweep".to_owned();
            return Ok(Attempt::Ended(run.label.clone(), status, summary));
        }
    }
    // Under the lock no one else writes here: temporary files are a killed writer's.
    remove_stale_temps(&run_dir).map_err(|e| store_failure(&run_dir, e))?;
    for table in Table::ALL {
        let path = paths.table(table);
        remove_stale_temps_of(path).map_err(|e| store_failure(path, e))?;
    }
    let (status, summary) = train_one(
        context.plan,
        run,
        dataset,
        &paths,
        context.device,
        context.options.force,
        progress,
    )?;
    Ok(Attempt::Ended(run.label.clone(), status, summary))
}

/// Waits until no other process holds `run`, then takes it as `attempt` does (keeping it
/// if the other process finished it, training it if not). None if an interrupt ends the
/// wait first.
fn wait_for(
    context: &Context,
    run: &PlannedRun,
    dataset: &crate::data::Dataset,
    progress: &mut Progress,
) -> Result<Option<(String, RunStatus, String)>, Failure> {
    let mut said = false;
    loop {
        match attempt(context, run, dataset, progress)? {
            Attempt::Ended(label, status, summary) => return Ok(Some((label, status, summary))),
            Attempt::Busy(holder) => {
                if crate::train::interrupt::stop_requested() {
                    return Ok(None);
                }
                if !said {
                    progress.println(&format!(
                        "waiting for {}: process {} on {} is still training it (Ctrl-C stops waiting)",
                        run.label, holder.pid, holder.host
                    ));
                    said = true;
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
}

/// Whether the sweep stops after a run that ended with `status`.
fn stop_after(
    status: RunStatus,
    plan: &Plan,
    options: &SweepOptions,
    progress: &mut Progress,
    label: &str,
) -> bool {
    if status == RunStatus::Interrupted {
        progress.println("interrupted: stopping the sweep (run it again to resume)");
        return true;
    }
    let expected = status == RunStatus::Diverged && plan.execution.divergence_expected;
    if options.fail_fast && status != RunStatus::Done && !expected {
        progress.println(&format!("--fail-fast: stopping after {label}"));
        return true;
    }
    false
}
