//! `rankprobe sweep FILE`: check everything, prepare the data, then train every run and
//! record its metrics and manifest under `results/<study>/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::atomic_file::remove_stale_temps;
use crate::plan::PlannedRun;
use crate::spec::Device;
use crate::store::frame::read_result;
use crate::store::lock::try_lock;
use crate::store::manifest::{Manifest, RunStatus};
use crate::store::metrics::METRICS_FILE;
use crate::store::probes::PROBES_FILE;
use crate::store::{recorded_status, run_dir_name, study_dir};

use super::one_run::{store_failure, train_one};
use super::preflight::{
    check_writable, data_key, prepare_datasets, prepare_results_dir, resolve_device, select_runs,
};
use super::progress::Progress;
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

pub fn sweep(file: &Path, options: &SweepOptions) -> Result<(), Failure> {
    let started = Instant::now();
    install_interrupt_handler();
    let plan = load_plan(file)?;
    let device = resolve_device(options.device.unwrap_or(plan.execution.device))?;
    let mut runs = select_runs(&plan, &options.only)?;
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
    let source = fs::read(&plan.source).map_err(|err| {
        Failure::RunFailed(format!("cannot re-read {}: {err}", plan.source.display()))
    })?;
    check_writable(&dir)?;
    // Resume: a finished run (done or diverged) with the same run id is kept as it is.
    let mut kept: Vec<(PlannedRun, RunStatus)> = Vec::new();
    let mut to_train = Vec::new();
    for run in runs {
        let status = if options.force {
            None
        } else {
            finished(&dir, &run)
        };
        match status {
            Some(status) => kept.push((run, status)),
            None => to_train.push(run),
        }
    }
    let runs = to_train;
    for (run, status) in &kept {
        println!(
            "keeping {} ({status}, run id {}; --force retrains it)",
            run.label, run.id
        );
    }
    let datasets = prepare_datasets(&runs, options.allow_repeat)?;
    prepare_results_dir(&dir, &source)?;
    let mut progress = Progress::new(runs.len());
    let mut results = Vec::new();
    let mut elsewhere = Vec::new();
    for run in &runs {
        let run_dir = dir.join(run_dir_name(run));
        fs::create_dir_all(&run_dir).map_err(|e| store_failure(&run_dir, e))?;
        let _lock = match try_lock(&run_dir).map_err(|e| store_failure(&run_dir, e))? {
            Ok(lock) => lock,
            Err(holder) => {
                progress.println(&format!(
                    "skipping {}: process {} on {} is training it",
                    run.label, holder.pid, holder.host
                ));
                elsewhere.push(run.label.clone());
                continue;
            }
        };
        // Another sweep may have finished it since this one started.
        if !options.force && finished(&dir, run).is_some() {
            progress.println(&format!(
                "keeping {} (finished by another sweep)",
                run.label
            ));
            elsewhere.push(run.label.clone());
            continue;
        }
        // Under the lock no one else writes here: temporary files are a killed writer's.
        remove_stale_temps(&run_dir).map_err(|e| store_failure(&run_dir, e))?;
        let dataset = &datasets[&data_key(run)];
        let (status, summary) = train_one(
            &plan,
            run,
            dataset,
            &run_dir,
            device,
            options.force,
            &mut progress,
        )?;
        results.push((run.label.clone(), status, summary));
        if status == RunStatus::Interrupted {
            progress.println("interrupted: stopping the sweep (run it again to resume)");
            break;
        }
        if options.fail_fast && status != RunStatus::Done {
            progress.println(&format!("--fail-fast: stopping after {}", run.label));
            break;
        }
    }
    progress.finish();
    println!("study {} in {}:", plan.study, dir.display());
    for (run, status) in &kept {
        println!("  {:<12} {status:<9} kept from an earlier sweep", run.label);
    }
    for (label, status, summary) in &results {
        println!("  {label:<12} {status:<9} {summary}");
    }
    match super::report::write_report(&dir) {
        Ok(markdown) => println!(
            "\n{markdown}(report written to {})\n",
            dir.join("report").display()
        ),
        Err(err) => eprintln!("no report: {err}"),
    }
    println!(
        "wall time {:.1} s for {} runs",
        started.elapsed().as_secs_f64(),
        runs.len()
    );
    let unfinished = runs.len() - results.len() - elsewhere.len();
    if unfinished > 0 {
        println!("{unfinished} runs not started");
    }
    // The exit code says whether every selected run is done, kept runs included.
    let kept_statuses = kept.iter().map(|(run, status)| (&run.label, *status));
    let trained = results.iter().map(|(label, status, _)| (label, *status));
    let not_done: Vec<String> = kept_statuses
        .chain(trained)
        .filter(|(_, status)| *status != RunStatus::Done)
        .map(|(label, status)| format!("{label} ({status})"))
        .collect();
    if not_done.is_empty() {
        Ok(())
    } else {
        Err(Failure::RunFailed(format!(
            "runs that did not finish: {}",
            not_done.join(", ")
        )))
    }
}

/// Ctrl-C or SIGTERM: the run in progress stops after its current step, writes what it
/// has and is marked interrupted. A second one exits at once; every file is written
/// atomically, so none is left half-written.
fn install_interrupt_handler() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static SEEN: AtomicBool = AtomicBool::new(false);
    let _ = ctrlc::set_handler(|| {
        if SEEN.swap(true, Ordering::SeqCst) {
            eprintln!("second interrupt: exiting now");
            std::process::exit(130);
        }
        eprintln!("interrupt: stopping after the current step (again to exit at once)");
        crate::train::interrupt::request_stop();
    });
}

/// The status of `run` in `dir` if it is finished: done or diverged under the same run
/// id, with results that can be read back. A done run whose files are damaged is
/// trained again.
fn finished(dir: &Path, run: &PlannedRun) -> Option<RunStatus> {
    let status = recorded_status(dir, run).filter(|s| s.is_final())?;
    let run_dir = dir.join(run_dir_name(run));
    let manifest = Manifest::read(&run_dir);
    for name in [METRICS_FILE, PROBES_FILE] {
        if let Err(err) = read_result(&run_dir, name, manifest.as_ref()) {
            println!(
                "{}: marked {status} but {name} cannot be read ({err}); training it again",
                run.label
            );
            return None;
        }
    }
    Some(status)
}
