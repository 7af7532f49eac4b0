//! `rankprobe sweep FILE`: check everything, prepare the data, then train every run and
//! record its metrics and manifest under `results/<study>/`.

use std::collections::HashMap;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::data::{prepare_dataset, Dataset};
use crate::plan::cost::steps_and_tokens;
use crate::plan::{Plan, PlannedRun};
use crate::spec::suggest::help_for;
use crate::spec::{ron_options, Device};
use crate::store::lock::try_lock;
use crate::store::manifest::{git_state, now, versions, DataSummary, Manifest, RunStatus};
use crate::store::{recorded_status, run_dir_name, study_dir, write_atomic};
use crate::train::run::check_trainable;
use crate::train::{train_run, Outcome};

use super::progress::Progress;
use super::recorder::RunRecorder;
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
    // Resume: a run whose manifest says done for the same run id is kept as it is.
    let (kept, runs): (Vec<PlannedRun>, Vec<PlannedRun>) = runs
        .into_iter()
        .partition(|run| !options.force && recorded_status(&dir, run) == Some(RunStatus::Done));
    for run in &kept {
        println!(
            "keeping {} (done, run id {}; --force retrains it)",
            run.label, run.id
        );
    }
    let datasets = prepare_datasets(&runs)?;
    let source = fs::read(&plan.source).map_err(|err| {
        Failure::RunFailed(format!("cannot re-read {}: {err}", plan.source.display()))
    })?;
    create_dir(&dir)?;
    write(&dir.join("study.ron"), &source)?;
    let mut progress = Progress::new(runs.len());
    let mut results = Vec::new();
    let mut elsewhere = Vec::new();
    for run in &runs {
        let run_dir = dir.join(run_dir_name(run));
        create_dir(&run_dir)?;
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
        if !options.force && recorded_status(&dir, run) == Some(RunStatus::Done) {
            progress.println(&format!(
                "keeping {} (finished by another sweep)",
                run.label
            ));
            elsewhere.push(run.label.clone());
            continue;
        }
        let dataset = &datasets[&data_key(run)];
        let (status, summary) = train_one(&plan, run, dataset, &run_dir, device, &mut progress)?;
        results.push((run.label.clone(), status, summary));
        if status == RunStatus::Interrupted {
            progress.println("interrupted: stopping the sweep (run it again to continue)");
            break;
        }
        if options.fail_fast && status != RunStatus::Done {
            progress.println(&format!("--fail-fast: stopping after {}", run.label));
            break;
        }
    }
    progress.finish();
    println!("study {} in {}:", plan.study, dir.display());
    for run in &kept {
        println!(
            "  {:<12} {:<9} kept from an earlier sweep",
            run.label, "done"
        );
    }
    for (label, status, summary) in &results {
        println!(
            "  {label:<12} {:<9} {summary}",
            format!("{status:?}").to_lowercase()
        );
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
    let failed: Vec<&str> = results
        .iter()
        .filter(|(_, status, _)| *status != RunStatus::Done)
        .map(|(label, _, _)| label.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::RunFailed(format!(
            "runs that did not finish: {}",
            failed.join(", ")
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

/// The device runs will use. This build trains on the CPU only.
fn resolve_device(requested: Device) -> Result<Device, Failure> {
    match requested {
        Device::Auto | Device::Cpu => Ok(Device::Cpu),
        Device::Cuda(_) => Err(Failure::BadInput(format!(
            "device {requested} requested, but this build of rankprobe has no CUDA support; \
             use --device cpu (CUDA builds arrive with the Muon/CUDA work, see README)"
        ))),
    }
}

/// The runs named by `--only`, in plan order; an unknown label is an error.
fn select_runs(plan: &Plan, only: &[String]) -> Result<Vec<PlannedRun>, Failure> {
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
fn data_key(run: &PlannedRun) -> String {
    serde_json::to_string(&run.config.data).expect("data configs serialise")
}

/// Prepares the data of every selected run and checks that each can train, before any
/// training starts: bad input must not surface after hours of work.
fn prepare_datasets(runs: &[PlannedRun]) -> Result<HashMap<String, Dataset>, Failure> {
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

/// Trains one run into its (locked) directory. A failure or divergence of the run is recorded
/// and reported; only a results store that cannot be written stops the sweep.
fn train_one(
    plan: &Plan,
    run: &PlannedRun,
    dataset: &Dataset,
    run_dir: &Path,
    device: Device,
    progress: &mut Progress,
) -> Result<(RunStatus, String), Failure> {
    write(
        &run_dir.join("run.ron"),
        resolved_run_ron(plan, run).as_bytes(),
    )?;
    let started = Instant::now();
    let meta = &dataset.splits.meta;
    let mut manifest = Manifest {
        study: plan.study.clone(),
        label: run.label.clone(),
        run_id: run.id.clone(),
        index: run.index,
        seed: run.config.seed,
        status: RunStatus::Running,
        error: None,
        config: run.config.clone(),
        overrides: run.overrides.clone(),
        device: device.to_string(),
        git: git_state(),
        versions: versions(),
        data: Some(DataSummary {
            corpus: meta.corpus.clone(),
            tokenizer: meta.tokenizer.clone(),
            vocab_size: meta.vocab_size,
            train_tokens: meta.train_tokens,
            val_tokens: meta.val_tokens,
        }),
        started_at: now(),
        ended_at: None,
        wall_seconds: None,
        steps: None,
        tokens: None,
        final_val_loss: None,
        probe_seconds: None,
        probe_share: None,
    };
    manifest
        .write(run_dir)
        .map_err(|e| store_failure(run_dir, e))?;
    let (_, tokens) = steps_and_tokens(&run.config);
    progress.start_run(&run.label, tokens);
    let mut recorder = RunRecorder::new(format!("{}-{}", run.label, run.id), run_dir, progress);
    let result = catch_unwind(AssertUnwindSafe(|| {
        train_run(&run.config, dataset, &mut recorder)
    }));
    let saved = recorder.save();
    let (status, summary) = match result {
        Ok(Ok(Outcome::Done {
            steps,
            tokens,
            final_val_loss,
            probe_seconds,
        })) => {
            manifest.probe_seconds = Some(probe_seconds);
            manifest.probe_share = Some(probe_seconds / started.elapsed().as_secs_f64());
            manifest.steps = Some(steps);
            manifest.tokens = Some(tokens);
            manifest.final_val_loss = Some(final_val_loss);
            (
                RunStatus::Done,
                format!("val loss {final_val_loss:.4} after {tokens} tokens"),
            )
        }
        Ok(Ok(Outcome::Diverged { step, loss })) => {
            manifest.error = Some(format!("loss became {loss} at step {step}"));
            (
                RunStatus::Diverged,
                format!("diverged at step {step} (loss {loss})"),
            )
        }
        Ok(Ok(Outcome::Interrupted { step })) => {
            manifest.error = Some(format!("interrupted after step {step}"));
            (
                RunStatus::Interrupted,
                format!("interrupted after step {step}"),
            )
        }
        Ok(Err(err)) => {
            manifest.error = Some(err.to_string());
            (RunStatus::Failed, format!("failed: {err}"))
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".to_owned());
            manifest.error = Some(format!("panic: {message}"));
            (RunStatus::Failed, format!("failed: panic: {message}"))
        }
    };
    manifest.status = status;
    manifest.ended_at = Some(now());
    manifest.wall_seconds = Some(started.elapsed().as_secs_f64());
    manifest
        .write(run_dir)
        .map_err(|e| store_failure(run_dir, e))?;
    saved.map_err(|e| store_failure(run_dir, e))?;
    let summary = format!("{summary}, {:.1} s", started.elapsed().as_secs_f64());
    progress.finish_run(&summary);
    Ok((status, summary))
}

fn store_failure(dir: &Path, err: std::io::Error) -> Failure {
    Failure::RunFailed(format!("cannot write results in {}: {err}", dir.display()))
}

/// `run.ron`: the fully resolved config, readable as a `RunConfig`, with a header saying
/// where it came from.
pub fn resolved_run_ron(plan: &Plan, run: &PlannedRun) -> String {
    let pretty = ron::ser::PrettyConfig::new().indentor("  ".to_owned());
    let body = ron_options()
        .to_string_pretty(&run.config, pretty)
        .expect("a run config always serialises to RON");
    let mut header = format!(
        "// Run `{}` (#{}) of study `{}` ({}), run id {}.\n",
        run.label,
        run.index,
        plan.study,
        plan.source.display(),
        run.id
    );
    for (path, value) in &run.overrides {
        header += &format!("// override {path} = {value}\n");
    }
    header + &body + "\n"
}

fn create_dir(dir: &Path) -> Result<(), Failure> {
    fs::create_dir_all(dir)
        .map_err(|err| Failure::RunFailed(format!("cannot create {}: {err}", dir.display())))
}

fn write(path: &Path, contents: &[u8]) -> Result<(), Failure> {
    write_atomic(path, contents)
        .map_err(|err| Failure::RunFailed(format!("cannot write {}: {err}", path.display())))
}
