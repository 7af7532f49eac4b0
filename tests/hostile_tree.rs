//! What lies around a study, made hostile: a foreign table under a finished run's name
//! (with a manifest forged to match it), escape sequences in a manifest, another host's
//! expired lock, a FIFO as the study, unusable results paths, a tokenizer file that does
//! not parse, and command-line values below what a command can do.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{rankprobe, run_dir, text};
use rankprobe::store::manifest::{sha256_file, Manifest};
use rankprobe::store::Table;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rankprobe-hostile-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A one-run study (tiny's A1) in `dir`.
fn one_run_study(dir: &Path) -> PathBuf {
    let study = dir.join("one.ron");
    let text = common::tiny_with_sweep(r#"Conditions([(name: "A1")]),"#)
        .replace("name: \"tiny\"", "name: \"one\"");
    fs::write(&study, text).unwrap();
    study
}

fn args<'a>(command: &'a str, study: &'a Path, results: &'a Path) -> [&'a str; 4] {
    [
        command,
        study.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]
}

#[test]
fn a_foreign_table_under_a_finished_runs_name_is_not_done_anywhere() {
    let dir = scratch("foreign");
    let study = one_run_study(&dir);
    let results = dir.join("results");
    let first = rankprobe(&args("sweep", &study, &results));
    assert!(first.status.success(), "{}", text(&first));
    let run = run_dir(&results.join("one"), "A1");
    // Someone's parquet (the probes table, a valid parquet of another schema) under the
    // metrics name, and the manifest's checksum forged to match it.
    let metrics = common::table_of(&run, Table::Metrics);
    fs::copy(common::table_of(&run, Table::Probes), &metrics).unwrap();
    let mut manifest = Manifest::read(&run).unwrap();
    let forged = sha256_file(&metrics).unwrap();
    manifest
        .checksums
        .insert("metrics.parquet".to_owned(), forged);
    // An escape sequence in a text the report prints.
    manifest.description = Some("clears the screen \u{1b}[2J here".to_owned());
    manifest.write(&run).unwrap();

    let missing = rankprobe(&args("missing", &study, &results));
    let said = text(&missing);
    assert!(said.contains("marked done, but metrics.parquet"), "{said}");
    assert!(said.contains("1 of 1 runs not done"), "{said}");
    let report = rankprobe(&["report", results.join("one").to_str().unwrap()]);
    let said = text(&report);
    assert!(
        said.contains("A1: marked done, but metrics.parquet"),
        "{said}"
    );
    assert!(
        !said.contains('\u{1b}'),
        "a raw escape reached the terminal: {said}"
    );
    assert!(said.contains("clears the screen \\u{1b}[2J here"), "{said}");
    let again = rankprobe(&args("sweep", &study, &results));
    let said = text(&again);
    assert!(again.status.success(), "{said}");
    assert!(
        said.contains("training it again") && !said.contains("keeping A1"),
        "{said}"
    );
    let missing = rankprobe(&args("missing", &study, &results));
    assert!(
        text(&missing).contains("all 1 runs of one are done"),
        "{}",
        text(&missing)
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn another_hosts_expired_lock_is_taken_over() {
    let dir = scratch("lock");
    let study = one_run_study(&dir);
    let results = dir.join("results");
    // The run's directory with a lock left by a node that crashed 10 minutes ago.
    let plan = common::plan_text(&fs::read_to_string(&study).unwrap()).unwrap();
    let name = format!("A1-{}", plan.runs[0].id);
    let run = results.join("one/runs").join(&name);
    fs::create_dir_all(&run).unwrap();
    let lock = run.join(".lock");
    fs::write(&lock, "crashed-node.cluster 4242\n").unwrap();
    let old = SystemTime::now() - Duration::from_secs(600);
    fs::File::options()
        .append(true)
        .open(&lock)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let sweep = rankprobe(&args("sweep", &study, &results));
    assert!(sweep.status.success(), "{}", text(&sweep));
    assert_eq!(
        Manifest::read(&run).unwrap().status,
        rankprobe::store::manifest::RunStatus::Done
    );
    assert!(!lock.exists(), "the lock was released");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unusable_inputs_and_results_paths_are_refused_before_any_work() {
    let dir = scratch("inputs");
    let study = one_run_study(&dir);
    // A FIFO given as the study: refused at once, not read forever.
    let fifo = dir.join("study.ron");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = rankprobe(&["validate", fifo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("FIFO"), "{}", text(&out));
    // A results path through a symbolic-link loop, and one with a name too long.
    let looped = dir.join("loop");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let long = dir.join("x".repeat(300));
    for results in [looped.join("results"), long] {
        let out = rankprobe(&args("sweep", &study, &results));
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{said}");
        assert!(said.contains("cannot write results"), "{said}");
        assert!(
            !said.contains("tokenizing"),
            "data was prepared first: {said}"
        );
    }
    // A tokenizer file that exists but does not parse: `validate` says so, as `sweep` would.
    let tokenizer = dir.join("tokenizer.json");
    fs::write(&tokenizer, "{ not a tokenizer").unwrap();
    let with_file = dir.join("file.ron");
    let text_with_file = fs::read_to_string(&study).unwrap().replace(
        "tokenizer: Bpe(vocab: 2048)",
        &format!("tokenizer: File({:?})", tokenizer.to_str().unwrap()),
    );
    fs::write(&with_file, text_with_file).unwrap();
    let out = rankprobe(&["validate", with_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("not a Hugging Face tokenizer.json"),
        "{}",
        text(&out)
    );
    // `bench` cannot time fewer than two steps: refused with the reason.
    let out = rankprobe(&["bench", study.to_str().unwrap(), "--steps", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("step 1 warms up"), "{}", text(&out));
    fs::remove_dir_all(&dir).unwrap();
}
