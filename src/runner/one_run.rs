//! Training one run of a sweep into its locked directory: resume from its checkpoint
//! when it has one, record metrics, probes and manifest, and say how it ended.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::data::Dataset;
use crate::plan::cost::{param_count, steps_and_tokens};
use crate::plan::{Plan, PlannedRun};
use crate::spec::diagnostic::one_line;
use crate::spec::{ron_options, Device};
use crate::store::manifest::{
    git_state, now, versions, DataSummary, EvalSetSummary, Manifest, RunStatus,
};
use crate::store::{write_atomic, RunPaths, Table};
use crate::train::checkpoint::{Checkpoint, CheckpointError, CHECKPOINT_FILE, FINAL_STATE_FILE};
use crate::train::device::uses_tf32;
use crate::train::{train_run, CheckpointPolicy, Outcome, TrainError, TrainOptions};

use super::continuation::{self, Offer};
use super::progress::Progress;
use super::recorder::RunRecorder;
use super::Failure;

/// Trains one run into its (locked) directory, from its checkpoint if it has one. A
/// failure or divergence of the run is recorded and reported; only a results store that
/// cannot be written stops the sweep.
pub(super) fn train_one(
    plan: &Plan,
    run: &PlannedRun,
    dataset: &Dataset,
    paths: &RunPaths,
    device: Device,
    force: bool,
    progress: &mut Progress,
) -> Result<(RunStatus, String), Failure> {
    let run_dir = paths.dir.as_path();
    write(
        &run_dir.join("run.ron"),
        resolved_run_ron(plan, run).as_bytes(),
    )?;
    let started = Instant::now();
    let meta = &dataset.splits.meta;
    let earlier = Manifest::read_for(run_dir, &run.id);
    let manifest = Manifest {
        condition: Some(run.condition.clone()),
        description: Some(run.description.clone()),
        overrides: run.overrides.clone(),
        device: device.to_string(),
        tf32: uses_tf32(plan.execution.tf32, device),
        git: git_state(),
        versions: versions(),
        data: Some(DataSummary {
            corpus: meta.corpus.clone(),
            tokenizer: meta.tokenizer.clone(),
            vocab_size: meta.vocab_size,
            train_tokens: meta.train_tokens,
            val_tokens: meta.val_tokens,
            eval_sets: (dataset.eval_sets.iter())
                .map(|set| EvalSetSummary {
                    name: set.name.clone(),
                    origin: set.origin.clone(),
                    tokens: set.tokens.len(),
                })
                .collect(),
        }),
        trained_params: Some(param_count(&run.config.model, meta.vocab_size as u64).total()),
        // The files on disk stay as they are until this session writes them: keep what a
        // read of them (resuming) must find.
        checksums: earlier
            .as_ref()
            .map(|earlier| earlier.checksums.clone())
            .unwrap_or_default(),
        ..Manifest::starting(
            &plan.study,
            &run.label,
            &run.id,
            run.index,
            run.config.clone(),
        )
    };
    manifest
        .write(run_dir)
        .map_err(|e| store_failure(run_dir, e))?;
    let (_, tokens) = steps_and_tokens(&run.config);
    progress.start_run(&run.label, tokens);
    let mut recorder = RunRecorder::new(paths.clone(), progress, manifest);
    let checkpoint_path = run_dir.join(CHECKPOINT_FILE);
    let resume = if force {
        remove_if_present(&checkpoint_path).map_err(|e| store_failure(run_dir, e))?;
        None
    } else {
        resume_point(run, paths, &mut recorder)
    };
    if let Some(checkpoint) = &resume {
        recorder.manifest.resumed_from_step = Some(checkpoint.step);
        // A run continued from another run's state still is, however often resumed.
        recorder.manifest.continued_from = earlier.and_then(|e| e.continued_from);
        recorder.note(&format!(
            "{}: resuming from its checkpoint at step {} ({} tokens)",
            run.label,
            checkpoint.step,
            checkpoint.step * run.config.data.tokens_per_step()
        ));
    }
    let resume = match resume {
        None if !force => continuation_point(run, paths, &mut recorder),
        resume => resume,
    };
    let execution = &plan.execution;
    let options = |resume| TrainOptions {
        device,
        tf32: uses_tf32(plan.execution.tf32, device),
        checkpoints: Some(CheckpointPolicy {
            path: checkpoint_path.clone(),
            run_id: run.id.clone(),
            every_tokens: execution.checkpoint_every_tokens,
            every: (execution.checkpoint_every_minutes > 0.0)
                .then(|| Duration::from_secs_f64(execution.checkpoint_every_minutes * 60.0)),
            final_state: execution
                .keep_final_state
                .then(|| run_dir.join(FINAL_STATE_FILE)),
        }),
        resume,
    };
    let train = |recorder: &mut RunRecorder, resume| {
        catch_unwind(AssertUnwindSafe(|| {
            train_run(&run.config, dataset, recorder, options(resume))
        }))
    };
    let resumed = resume.is_some();
    let mut result = train(&mut recorder, resume);
    if let Ok(Err(TrainError::UnusableCheckpoint(why))) = &result {
        // Checked before anything was trained: set it aside and start over.
        if resumed {
            let why = format!("it does not fit the run: {why}");
            set_aside(&checkpoint_path, run_dir, &why, run, &mut recorder);
            recorder.restart();
            recorder.manifest.resumed_from_step = None;
            recorder.manifest.continued_from = None;
            result = train(&mut recorder, None);
        }
    }
    let saved = recorder.save();
    let mut storage_error = None;
    let (status, summary) = match result {
        Ok(Ok(Outcome::Done {
            steps,
            tokens,
            final_val_loss,
            probe_seconds,
            checkpoint_seconds,
            elapsed_s,
        })) => {
            recorder.manifest.probe_seconds = Some(probe_seconds);
            recorder.manifest.probe_share = Some(probe_seconds / elapsed_s);
            recorder.manifest.checkpoint_seconds = Some(checkpoint_seconds);
            recorder.manifest.checkpoint_share = Some(checkpoint_seconds / elapsed_s);
            recorder.manifest.steps = Some(steps);
            recorder.manifest.tokens = Some(tokens);
            recorder.manifest.final_val_loss = Some(final_val_loss);
            // A kept final state is this run's only when its checksum says so: a run
            // extended from it later checks the file against this.
            let final_state = run_dir.join(FINAL_STATE_FILE);
            if plan.execution.keep_final_state {
                if let Ok(sum) = crate::store::manifest::sha256_file(&final_state) {
                    (recorder.manifest.checksums).insert(FINAL_STATE_FILE.to_owned(), sum);
                }
            }
            (
                RunStatus::Done,
                format!("val loss {final_val_loss:.4} after {tokens} tokens"),
            )
        }
        Ok(Ok(Outcome::Diverged { step, reason })) => {
            recorder.manifest.error = Some(format!("diverged at step {step}: {reason}"));
            (
                RunStatus::Diverged,
                format!("diverged at step {step} ({reason})"),
            )
        }
        Ok(Ok(Outcome::Interrupted { step })) => {
            recorder.manifest.error = Some(format!("interrupted after step {step}"));
            (
                RunStatus::Interrupted,
                format!("interrupted after step {step}"),
            )
        }
        Ok(Err(err)) => {
            if let TrainError::Storage(_) = err {
                storage_error = Some(err.to_string());
            }
            recorder.manifest.error = Some(err.to_string());
            (RunStatus::Failed, format!("failed: {err}"))
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".to_owned());
            recorder.manifest.error = Some(format!("panic: {message}"));
            (RunStatus::Failed, format!("failed: panic: {message}"))
        }
    };
    recorder.manifest.status = status;
    recorder.manifest.ended_at = Some(now());
    recorder.manifest.wall_seconds = Some(started.elapsed().as_secs_f64());
    let written = recorder.manifest.write(run_dir);
    if let Some(err) = storage_error {
        return Err(Failure::RunFailed(format!(
            "run {} stopped: {err}\nwhat was written before is kept; free space (or fix the \
             directory) and run the sweep again to resume from the last checkpoint",
            run.label
        )));
    }
    written.map_err(|e| store_failure(run_dir, e))?;
    saved.map_err(|e| store_failure(run_dir, e))?;
    // A finished run needs no checkpoint (a diverged one would diverge again).
    if status.is_final() {
        remove_if_present(&checkpoint_path).map_err(|e| store_failure(run_dir, e))?;
    }
    let summary = format!("{summary}, {:.1} s", started.elapsed().as_secs_f64());
    progress.finish_run(&summary);
    Ok((status, summary))
}

pub(super) fn store_failure(dir: &Path, err: std::io::Error) -> Failure {
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

/// The checkpoint to resume `run` from, with its recorder holding the rows up to it.
/// A damaged checkpoint or unreadable earlier results are set aside (renamed, never
/// deleted) and the run starts from step 0.
fn resume_point(
    run: &PlannedRun,
    paths: &RunPaths,
    recorder: &mut RunRecorder,
) -> Option<Checkpoint> {
    let path = paths.dir.join(CHECKPOINT_FILE);
    let checkpoint = match Checkpoint::read(&path) {
        Ok(None) => return None,
        Ok(Some(checkpoint)) if checkpoint.run_id == run.id => checkpoint,
        Ok(Some(checkpoint)) => {
            let why = format!("it belongs to run id {}", checkpoint.run_id);
            set_aside(&path, &paths.dir, &why, run, recorder);
            return None;
        }
        Err(err @ CheckpointError::Corrupt(_)) => {
            set_aside(&path, &paths.dir, &err.to_string(), run, recorder);
            return None;
        }
        Err(CheckpointError::Io(err)) => {
            recorder.note(&format!(
                "{}: cannot read {} ({err}); starting from step 0",
                run.label,
                path.display()
            ));
            return None;
        }
    };
    match recorder.resume_at(checkpoint.step) {
        Ok(()) => Some(checkpoint),
        Err(err) => {
            let why = format!("the results it continues are unreadable ({err})");
            set_aside(&path, &paths.dir, &why, run, recorder);
            for table in Table::ALL {
                let file = paths.table(table);
                if file.exists() {
                    let why = "unreadable or incomplete";
                    set_aside(file, &paths.dir, why, run, recorder);
                }
            }
            None
        }
    }
}

/// The final state of a finished run of this study that `run` extends (a raised
/// budget), with the recorder holding that run's rows; None (and why, when a candidate
/// is refused) otherwise.
fn continuation_point(
    run: &PlannedRun,
    paths: &RunPaths,
    recorder: &mut RunRecorder,
) -> Option<Checkpoint> {
    let source = match continuation::offer(paths.study_dir(), run) {
        Offer::Nothing => return None,
        Offer::Refused { name, why } => {
            recorder.note(&format!(
                "{}: not continuing from {name}: {}; training from step 0",
                run.label,
                one_line(&why)
            ));
            return None;
        }
        Offer::Continue(source) => source,
    };
    let unusable = |why: String, recorder: &mut RunRecorder| {
        recorder.note(&format!(
            "{}: not continuing from {}: {}; training from step 0",
            run.label,
            source.name,
            one_line(&why)
        ));
        None
    };
    // Only state proven to be the old run's own: its manifest's config must hash to the
    // run id it names, the file must hold that run id, and its checksum must be the one
    // the manifest recorded when the run finished.
    let manifest_path = source.paths.dir.join(crate::store::manifest::MANIFEST_FILE);
    let state_path = source.state.display().to_string();
    let named = &source.manifest.run_id;
    if &crate::plan::run_id::run_id(&source.manifest.config) != named {
        let why = format!(
            "{}: its config does not hash to the run id {named} it names (edited after the \
             run?)",
            manifest_path.display()
        );
        return unusable(why, recorder);
    }
    let Some(recorded) = source.manifest.checksums.get(FINAL_STATE_FILE) else {
        let why = format!(
            "{}: it records no checksum of {state_path} (finished by an earlier version), \
             so that file cannot be shown to be the run's own",
            manifest_path.display()
        );
        return unusable(why, recorder);
    };
    // Read once: checked against the recorded checksum, then decoded (a final state can
    // be gigabytes).
    let bytes = match crate::regular_file::read(&source.state) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return unusable(format!("{state_path} is gone"), recorder)
        }
        Err(err) => return unusable(format!("{state_path}: {err}"), recorder),
    };
    if &crate::digest::sha256_hex(&bytes) != recorded {
        let why = format!(
            "{state_path}: its SHA-256 is not the one {} recorded (replaced or damaged)",
            manifest_path.display()
        );
        return unusable(why, recorder);
    }
    let checkpoint = match Checkpoint::decode(&bytes) {
        Ok(checkpoint) if checkpoint.run_id != *named => {
            let why = format!(
                "{state_path} belongs to run {}, not to {named}",
                checkpoint.run_id
            );
            return unusable(why, recorder);
        }
        Ok(checkpoint) if checkpoint.step == source.steps => checkpoint,
        Ok(checkpoint) => {
            let why = format!(
                "{state_path} is at step {}, not {}",
                checkpoint.step, source.steps
            );
            return unusable(why, recorder);
        }
        Err(err) => return unusable(format!("{state_path} is unusable ({err})"), recorder),
    };
    if let Err(err) = recorder.continue_from(&source.paths, &source.manifest, source.steps) {
        return unusable(format!("its results are unreadable ({err})"), recorder);
    }
    recorder.manifest.resumed_from_step = Some(source.steps);
    recorder.manifest.continued_from = Some(source.manifest.run_id.clone());
    recorder.note(&format!(
        "{}: continuing from {} (its kept final state at step {}, {} tokens): only the new \
         tokens are trained",
        run.label, source.name, source.steps, source.tokens
    ));
    Some(checkpoint)
}

/// Moves `path` into `into` as `<its name>.unusable-<time>` and says why. Tables go to
/// the run's directory: a damaged file left among the others would break reading the
/// table's directory as one dataset.
fn set_aside(path: &Path, into: &Path, why: &str, run: &PlannedRun, recorder: &mut RunRecorder) {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let aside = into.join(format!("{name}.unusable-{stamp}"));
    let moved = fs::rename(path, &aside);
    recorder.note(&format!(
        "{}: not using {}: {why}; {}; the run starts from step 0",
        run.label,
        path.display(),
        match moved {
            Ok(()) => format!("kept as {}", aside.display()),
            Err(err) => format!("could not set it aside ({err})"),
        }
    ));
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

fn write(path: &Path, contents: &[u8]) -> Result<(), Failure> {
    write_atomic(path, contents)
        .map_err(|err| Failure::RunFailed(format!("cannot write {}: {err}", path.display())))
}
