//! Sweeps that are re-run, sharded or hit a diverging run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{rankprobe, text, TINY};
use polars::prelude::{ParquetReader, SerReader};
use rankprobe::store::manifest::{Manifest, RunStatus};
use rankprobe::train::checkpoint::Checkpoint;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rankprobe-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `rankprobe sweep STUDY --results RESULTS --only ONLY...`, started with its output piped.
fn spawn_sweep(study: &str, results: &Path, only: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_rankprobe"))
        .args([
            "sweep",
            study,
            "--results",
            results.to_str().unwrap(),
            "--only",
        ])
        .args(only)
        .current_dir(common::root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Polls `done` until it holds; panics with `what` after `seconds`.
fn wait_until(seconds: u64, what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whether a metrics table of `study_dir` whose name starts with `prefix` holds train
/// rows (more than the step-0 evaluation): the run has taken steps.
fn has_train_rows(study_dir: &Path, prefix: &str) -> bool {
    std::fs::read_dir(study_dir.join("metrics"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .any(|e| rankprobe::store::frame::read_parquet(&e.path()).is_ok_and(|f| f.height() > 1))
}

fn manifest(results: &Path, study: &str, label: &str) -> Manifest {
    Manifest::read(&common::run_dir(&results.join(study), label)).unwrap()
}

#[test]
fn resume_keeps_done_runs_force_retrains_and_missing_lists_the_rest() {
    let results = temp("keep");
    let r = results.to_str().unwrap();
    let first = rankprobe(&["sweep", TINY, "--results", r, "--only", "B1"]);
    assert!(first.status.success(), "{}", text(&first));
    let started = manifest(&results, "tiny", "B1").started_at;
    let again = rankprobe(&["sweep", TINY, "--results", r, "--only", "B1"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("keeping B1 (done"),
        "{}",
        text(&again)
    );
    assert_eq!(
        manifest(&results, "tiny", "B1").started_at,
        started,
        "a done run is not retrained"
    );
    let missing = rankprobe(&["missing", TINY, "--results", r]);
    assert!(missing.status.success());
    assert!(
        text(&missing).contains("3 of 4 runs not done; indices: 0-1,3"),
        "{}",
        text(&missing)
    );
    // A flipped bit in a finished run's file is caught by its checksum: retrained.
    let done = manifest(&results, "tiny", "B1");
    // The two tables and the final weights.
    assert_eq!(done.checksums.len(), 3, "{:?}", done.checksums);
    assert!(done.checksums.contains_key("final.safetensors"));
    let probes = common::table_of(
        &common::run_dir(&results.join("tiny"), "B1"),
        rankprobe::store::Table::Probes,
    );
    let mut bytes = std::fs::read(&probes).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x04;
    std::fs::write(&probes, &bytes).unwrap();
    let repaired = rankprobe(&["sweep", TINY, "--results", r, "--only", "B1"]);
    assert!(repaired.status.success(), "{}", text(&repaired));
    assert!(
        text(&repaired).contains("probes.parquet cannot be read (checksum mismatch"),
        "{}",
        text(&repaired)
    );
    assert_ne!(manifest(&results, "tiny", "B1").started_at, started);
    let started = manifest(&results, "tiny", "B1").started_at;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let forced = rankprobe(&["sweep", TINY, "--results", r, "--only", "B1", "--force"]);
    assert!(forced.status.success(), "{}", text(&forced));
    assert!(!text(&forced).contains("keeping"));
    assert_ne!(manifest(&results, "tiny", "B1").started_at, started);
    std::fs::remove_dir_all(&results).unwrap();
}

#[test]
fn shards_cover_every_selected_run_once() {
    let results = temp("shards");
    let r = results.to_str().unwrap();
    // B1 has matrix index 2, B2 index 3.
    let zero = rankprobe(&[
        "sweep",
        TINY,
        "--results",
        r,
        "--only",
        "B1",
        "B2",
        "--shard",
        "0/2",
    ]);
    let one = rankprobe(&[
        "sweep",
        TINY,
        "--results",
        r,
        "--only",
        "B1",
        "B2",
        "--shard",
        "1/2",
    ]);
    assert!(
        zero.status.success() && one.status.success(),
        "{}{}",
        text(&zero),
        text(&one)
    );
    assert!(
        text(&zero).contains("B1") && !text(&zero).contains("[B2]"),
        "{}",
        text(&zero)
    );
    assert_eq!(manifest(&results, "tiny", "B1").status, RunStatus::Done);
    assert_eq!(manifest(&results, "tiny", "B2").status, RunStatus::Done);
    let missing = rankprobe(&["missing", TINY, "--results", r]);
    assert!(
        text(&missing).contains("indices: 0-1"),
        "{}",
        text(&missing)
    );
    let bad = rankprobe(&["sweep", TINY, "--results", r, "--shard", "2/2"]);
    assert_eq!(bad.status.code(), Some(2));
    std::fs::remove_dir_all(&results).unwrap();
}

#[test]
fn a_diverging_run_is_marked_and_the_sweep_goes_on_unless_fail_fast() {
    let results = temp("diverge");
    let study = results.with_extension("ron");
    let adamw =
        |lr: &str| format!("AdamW(lr: {lr}, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0)");
    let sweep = format!(
        r#"Conditions([
            (name: "boom", set: {{"optimizer": {}}}),
            (name: "ok", set: {{"optimizer": {}}}),
        ]),"#,
        adamw("1e10"),
        adamw("0.006")
    );
    std::fs::write(&study, common::tiny_with_sweep(&sweep)).unwrap();
    let (s, r) = (study.to_str().unwrap(), results.to_str().unwrap());
    let fast = rankprobe(&["sweep", s, "--results", r, "--fail-fast"]);
    assert_eq!(fast.status.code(), Some(1), "{}", text(&fast));
    assert!(
        text(&fast).contains("1 runs not started"),
        "{}",
        text(&fast)
    );
    let boom = manifest(&results, "tiny", "boom");
    assert_eq!(boom.status, RunStatus::Diverged);
    let why = boom.error.unwrap();
    assert!(
        why.contains("diverged at step") && why.contains("became"),
        "{why}"
    );
    // A diverged run is finished: the next sweep keeps it (it would diverge again),
    // trains the rest, and its exit code still says that not every run is done.
    let all = rankprobe(&["sweep", s, "--results", r]);
    assert_eq!(all.status.code(), Some(1), "{}", text(&all));
    assert!(
        text(&all).contains("keeping boom (diverged"),
        "{}",
        text(&all)
    );
    assert!(
        text(&all).contains("runs that did not finish: boom (diverged)"),
        "{}",
        text(&all)
    );
    assert_eq!(manifest(&results, "tiny", "ok").status, RunStatus::Done);
    std::fs::remove_dir_all(&results).unwrap();
    std::fs::remove_file(&study).unwrap();
}

#[test]
fn run_takes_its_index_from_the_job_array_and_slurm_writes_the_array() {
    let results = temp("array");
    let r = results.to_str().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rankprobe"))
        .args(["run", TINY, "--results", r])
        .env("SLURM_ARRAY_TASK_ID", "3")
        .current_dir(common::root())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(manifest(&results, "tiny", "B2").status, RunStatus::Done);
    let by_flag = rankprobe(&["run", TINY, "--results", r, "--index", "3"]);
    assert!(text(&by_flag).contains("keeping B2"), "{}", text(&by_flag));
    let no_index = Command::new(env!("CARGO_BIN_EXE_rankprobe"))
        .args(["run", TINY, "--results", r])
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .current_dir(common::root())
        .output()
        .unwrap();
    assert_eq!(no_index.status.code(), Some(2));
    assert_eq!(
        rankprobe(&["run", TINY, "--results", r, "--index", "4"])
            .status
            .code(),
        Some(2)
    );
    let script = rankprobe(&["slurm", TINY, "--results", r, "--max-parallel", "2"]);
    let script = String::from_utf8_lossy(&script.stdout).into_owned();
    assert!(script.starts_with("#!/bin/bash\n"), "{script}");
    for line in [
        "#SBATCH --array=0-3%2",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --requeue",
        // Every path quoted for the shell, the study file absolute.
        &format!(
            "' run '{}' --results '{r}'",
            common::root().join(TINY).display()
        ),
    ] {
        assert!(script.contains(line), "{line} not in\n{script}");
    }
    std::fs::remove_dir_all(&results).unwrap();
}

#[test]
fn two_concurrent_sweeps_train_every_run_exactly_once() {
    let results = temp("concurrent");
    let spawn = || spawn_sweep(TINY, &results, &["B1", "B2"]);
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        text(&a),
        text(&b)
    );
    let both = text(&a) + &text(&b);
    for label in ["B1", "B2"] {
        let trained = both.matches(&format!("[{label}] training")).count();
        assert_eq!(trained, 1, "{label} trained {trained} times:\n{both}");
        assert_eq!(manifest(&results, "tiny", label).status, RunStatus::Done);
    }
    std::fs::remove_dir_all(&results).unwrap();
}

#[test]
fn sigterm_stops_after_the_current_step_and_marks_the_run_interrupted() {
    let results = temp("sigterm");
    let study = results.with_extension("ron");
    let text_of_study = common::tiny_text().replace("tokens: 20_480,", "tokens: 409_600,");
    std::fs::write(&study, text_of_study).unwrap();
    let child = spawn_sweep(study.to_str().unwrap(), &results, &["B1", "B2"]);
    // Wait until B1 has taken steps (its metrics hold train rows), then ask it to stop.
    let study_dir = results.join("tiny");
    wait_until(60, "training never started", || {
        has_train_rows(&study_dir, "")
    });
    // Slurm may send SIGTERM more than once: each is the same request, never "exit now".
    for _ in 0..3 {
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    // 3: interrupted with a checkpoint, nothing failed.
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let b1 = manifest(&results, "tiny", "B1");
    assert_eq!(b1.status, RunStatus::Interrupted, "{}", text(&output));
    assert!(
        text(&output).contains("1 runs not started"),
        "{}",
        text(&output)
    );
    // What it wrote before stopping is intact.
    let dir = study_dir.join("runs").join(format!("B1-{}", b1.run_id));
    let metrics_file = common::table_of(&dir, rankprobe::store::Table::Metrics);
    let frame = ParquetReader::new(std::fs::File::open(metrics_file).unwrap());
    assert!(frame.finish().unwrap().height() > 0);
    // It checkpointed where it stopped, so the next sweep resumes there.
    let checkpoint = Checkpoint::read(&dir.join("checkpoint.bin"))
        .unwrap()
        .expect("an interrupted run leaves a checkpoint");
    assert!(checkpoint.step > 0);
    assert_eq!(
        b1.error.as_deref(),
        Some(format!("interrupted after step {}", checkpoint.step).as_str())
    );
    // Running the sweep again trains the interrupted run.
    let missing = rankprobe(&[
        "missing",
        study.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]);
    assert!(text(&missing).contains("interrupted"), "{}", text(&missing));
    std::fs::remove_dir_all(&results).unwrap();
    std::fs::remove_file(&study).unwrap();
}

#[test]
fn three_shards_of_a_six_run_study_cover_it_once_and_report_merges_them() {
    let results = temp("six");
    let study = results.with_extension("ron");
    let adamw = "AdamW(lr: 0.006, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.2)";
    let sweep = format!(
        r#"Conditions([
            (name: "qk", set: {{"optimizer": {adamw}}}),
            (name: "noqk", set: {{"optimizer": {adamw}, "model.qk_norm": None}}),
        ]),
        Seeds([1, 2, 3]),"#
    );
    std::fs::write(&study, common::tiny_with_sweep(&sweep)).unwrap();
    let (s, r) = (study.to_str().unwrap(), results.to_str().unwrap());
    let mut trained = Vec::new();
    for shard in ["0/3", "1/3", "2/3"] {
        let output = rankprobe(&["sweep", s, "--results", r, "--shard", shard]);
        assert!(output.status.success(), "{}", text(&output));
        let out = text(&output);
        trained.extend(out.lines().filter_map(|l| {
            l.strip_prefix('[')?
                .split_once("] training")
                .map(|(label, _)| label.to_owned())
        }));
    }
    trained.sort();
    assert_eq!(
        trained,
        ["noqk_s1", "noqk_s2", "noqk_s3", "qk_s1", "qk_s2", "qk_s3"]
    );
    let missing = rankprobe(&["missing", s, "--results", r]);
    assert!(
        text(&missing).contains("all 6 runs of tiny are done"),
        "{}",
        text(&missing)
    );
    let report = rankprobe(&["report", &format!("{r}/tiny")]);
    let out = text(&report);
    // The seeds of each condition, merged from three shards.
    for condition in ["qk", "noqk"] {
        assert!(
            out.contains(&format!("| {condition} | 3/3 done | 3 |")),
            "{condition} missing from\n{out}"
        );
    }
    assert!(!out.contains("Not complete"), "{out}");
    std::fs::remove_dir_all(&results).unwrap();
    std::fs::remove_file(&study).unwrap();
}

/// A sweep that finds a selected run locked by another process waits for it: if that
/// process finishes the run, the sweep keeps it and exits 0; if the process dies, the
/// sweep trains the run itself. Either way exit 0 means every selected run is done.
#[test]
fn a_sweep_waits_for_a_run_another_process_trains_and_its_exit_code_tells_the_truth() {
    let results = temp("wait");
    let study = results.with_extension("ron");
    // About 10 s of training on 2 cores: time to start the second sweep meanwhile.
    std::fs::write(
        &study,
        common::tiny_text().replace("tokens: 20_480,", "tokens: 204_800,"),
    )
    .unwrap();
    let sweep = || spawn_sweep(study.to_str().unwrap(), &results, &["B1"]);
    let locked = || {
        let runs_dir = results.join("tiny").join("runs");
        wait_until(120, "the first sweep never took the lock", || {
            std::fs::read_dir(&runs_dir)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.path().join(".lock").exists())
        });
    };
    for kill_first in [false, true] {
        let mut first = sweep();
        locked();
        let second = sweep();
        if kill_first {
            std::thread::sleep(std::time::Duration::from_secs(2));
            first.kill().unwrap();
        }
        let first = first.wait_with_output().unwrap();
        let second = second.wait_with_output().unwrap();
        let out = text(&second);
        assert!(second.status.success(), "{out}");
        assert!(out.contains("waiting for B1: process"), "{out}");
        if kill_first {
            assert!(
                out.contains("[B1] training"),
                "the second sweep trains it: {out}"
            );
        } else {
            assert!(first.status.success(), "{}", text(&first));
            assert!(out.contains("finished by another sweep"), "{out}");
            assert!(!out.contains("[B1] training"), "{out}");
        }
        assert_eq!(manifest(&results, "tiny", "B1").status, RunStatus::Done);
        std::fs::remove_dir_all(&results).unwrap();
    }
    std::fs::remove_file(&study).unwrap();
}

/// Moves a study's results back into the layout of earlier versions: `run=<name>/`
/// holding the manifest, checkpoint and both tables, rows keyed by one `run` column.
fn to_earlier_layout(study_dir: &Path) {
    use polars::prelude::{Column, DataFrame};
    use rankprobe::store::frame::{read_parquet, write_parquet, KEY_COLUMNS};
    use rankprobe::store::Table;
    for entry in std::fs::read_dir(study_dir.join("runs")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let old = study_dir.join(format!("run={name}"));
        let tables: Vec<PathBuf> = Table::ALL
            .iter()
            .map(|&t| common::table_of(&study_dir.join("runs").join(&name), t))
            .collect();
        std::fs::rename(study_dir.join("runs").join(&name), &old).unwrap();
        let mut manifest = Manifest::read(&old).unwrap();
        for (table, path) in Table::ALL.iter().zip(&tables) {
            let frame = read_parquet(path).unwrap().drop_many(KEY_COLUMNS);
            let mut columns = vec![Column::new(
                "run".into(),
                vec![name.as_str(); frame.height()],
            )];
            columns.extend(frame.columns().iter().cloned());
            let mut earlier = DataFrame::new(frame.height(), columns).unwrap();
            let sum = write_parquet(&old.join(table.file_name()), &mut earlier).unwrap();
            manifest.checksums.insert(table.file_name().to_owned(), sum);
            std::fs::remove_file(path).unwrap();
        }
        manifest.condition = None;
        manifest.description = None;
        manifest.write(&old).unwrap();
    }
    std::fs::remove_dir(study_dir.join("runs")).unwrap();
}

/// Results of an earlier version: the next sweep moves them into today's layout, keeps
/// the finished run and resumes the interrupted one from its checkpoint, its earlier
/// rows kept once.
#[test]
fn results_in_the_earlier_layout_are_moved_kept_and_resumed() {
    let results = temp("earlier");
    let study = results.with_extension("ron");
    std::fs::write(
        &study,
        common::tiny_text().replace("tokens: 20_480,", "tokens: 204_800,"),
    )
    .unwrap();
    let s = study.to_str().unwrap();
    let r = results.to_str().unwrap();
    let done = rankprobe(&["sweep", s, "--results", r, "--only", "B2"]);
    assert!(done.status.success(), "{}", text(&done));
    let child = spawn_sweep(s, &results, &["B1"]);
    let study_dir = results.join("tiny");
    wait_until(120, "B1 never trained", || {
        has_train_rows(&study_dir, "B1-")
    });
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopped = child.wait_with_output().unwrap();
    assert_eq!(stopped.status.code(), Some(3), "{}", text(&stopped));
    let b2_rows = common::metric_rows(&common::run_dir(&study_dir, "B2"));
    to_earlier_layout(&study_dir);
    assert!(!study_dir.join("runs").exists());

    let again = rankprobe(&["sweep", s, "--results", r, "--only", "B1", "B2"]);
    let out = text(&again);
    assert!(again.status.success(), "{out}");
    assert!(
        out.contains("results of an earlier version moved: run=B1-"),
        "{out}"
    );
    assert!(out.contains("keeping B2 (done"), "{out}");
    assert!(
        out.contains("B1: resuming from its checkpoint at step"),
        "{out}"
    );
    // The finished run's rows are the same rows, now with the key columns.
    assert_eq!(
        common::metric_rows(&common::run_dir(&study_dir, "B2")),
        b2_rows
    );
    let b1 = common::metric_rows(&common::run_dir(&study_dir, "B1"));
    let train_steps: Vec<u64> = b1
        .iter()
        .filter(|row| row.2 == "train" && row.3 == "loss")
        .map(|row| row.0)
        .collect();
    assert_eq!(
        train_steps,
        (1..=100).collect::<Vec<u64>>(),
        "each step once"
    );
    assert_eq!(manifest(&results, "tiny", "B1").status, RunStatus::Done);
    assert_eq!(
        manifest(&results, "tiny", "B1").condition.as_deref(),
        Some("B1")
    );
    // Nothing of the earlier layout is left.
    let left: Vec<String> = std::fs::read_dir(&study_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("run="))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir_all(&results).unwrap();
    std::fs::remove_file(&study).unwrap();
}
