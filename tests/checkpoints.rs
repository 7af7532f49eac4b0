//! Sweeps in a hostile world: killed with SIGKILL at random points, out of disk space,
//! pointed at an unwritable directory, or finding damaged files of an earlier crash.
//! Every resumed result must equal an uninterrupted sweep's, row for row.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{copy_tree, rankprobe, run_dir, text};
use rankprobe::store::frame::read_parquet;
use rankprobe::store::manifest::{Manifest, RunStatus};

/// Two runs (Muon A1, AdamW B1) of 15 steps each, checkpointing every 2 steps.
fn study_text() -> String {
    common::tiny_with_sweep(
        r#"Conditions([
            (name: "A1"),
            (name: "B1", set: {"optimizer": AdamW(lr: 0.006, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.2)}),
        ]),"#,
    )
    .replace("name: \"tiny\"", "name: \"ckpt\"")
    .replace(
        "execution: (device: Cpu)",
        "execution: (device: Cpu, checkpoint_every_tokens: 4_096)",
    )
    .replace("tokens: 20_480,", "tokens: 30_720,")
    .replace("at_tokens: [0, 4_096, 20_480]", "at_tokens: [0, 4_096, 30_720]")
}

/// A fresh scratch directory holding the study file; results go to `<dir>/results`.
fn scratch(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("rankprobe-ckpt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let study = dir.join("ckpt.ron");
    std::fs::write(&study, study_text()).unwrap();
    (study, dir.join("results"))
}

fn sweep_args<'a>(study: &'a Path, results: &'a Path) -> Vec<&'a str> {
    vec![
        "sweep",
        study.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]
}

/// A sweep running in the background, to be killed; its output goes to `log`.
fn spawn_sweep(study: &Path, results: &Path, extra: &[&str], log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_rankprobe"))
        .args(sweep_args(study, results))
        .args(extra)
        .current_dir(common::root())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The results of one uninterrupted sweep, shared by the tests of this file.
fn reference() -> &'static Path {
    &reference_and_seconds().0
}

/// The uninterrupted sweep's results and how long it took (kills are timed against it,
/// so the test keeps killing mid-run however fast training gets).
fn reference_and_seconds() -> &'static (PathBuf, f64) {
    static RESULTS: OnceLock<(PathBuf, f64)> = OnceLock::new();
    RESULTS.get_or_init(|| {
        let (study, results) = scratch("reference");
        let started = Instant::now();
        let output = rankprobe(&sweep_args(&study, &results));
        let seconds = started.elapsed().as_secs_f64();
        assert!(output.status.success(), "{}", text(&output));
        (results, seconds)
    })
}

/// Every probe row, rendered, in file order.
fn probe_rows(dir: &Path) -> Vec<String> {
    let probes = common::table_of(dir, rankprobe::store::Table::Probes);
    let frame = read_parquet(&probes).unwrap();
    let columns = frame.columns();
    (0..frame.height())
        .map(|i| {
            columns
                .iter()
                .map(|c| c.get(i).unwrap().to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// Asserts that `results` holds the same finished runs as the reference, with no
/// duplicate rows and nothing left over from interrupted writes.
fn assert_same_as_reference(results: &Path) {
    for label in ["A1", "B1"] {
        let ours = run_dir(&results.join("ckpt"), label);
        let theirs = run_dir(&reference().join("ckpt"), label);
        assert_eq!(ours.file_name(), theirs.file_name(), "same run ids");
        let manifest = Manifest::read(&ours).unwrap();
        assert_eq!(manifest.status, RunStatus::Done, "{label}: {manifest:?}");
        let rows = common::metric_rows(&ours);
        let mut keys: Vec<_> = rows
            .iter()
            .map(|r| (r.0, r.2.clone(), r.3.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), rows.len(), "{label}: duplicate metric rows");
        assert_eq!(
            rows,
            common::metric_rows(&theirs),
            "{label}: metrics differ"
        );
        assert_eq!(
            probe_rows(&ours),
            probe_rows(&theirs),
            "{label}: probes differ"
        );
        let leftovers: Vec<String> = std::fs::read_dir(&ours)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-") || n == "checkpoint.bin" || n == ".lock")
            .collect();
        assert!(leftovers.is_empty(), "{label}: left over {leftovers:?}");
    }
}

/// A small deterministic generator, so that each seed kills at its own moments: up to 40%
/// of an uninterrupted sweep's `total` seconds after the state the kill waits for.
fn delays(seed: u64, total: f64) -> impl Iterator<Item = Duration> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    std::iter::repeat_with(move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let fraction = 0.4 * ((state >> 33) % 1000) as f64 / 1000.0;
        Duration::from_secs_f64(total * fraction)
    })
}

/// Waits until `ready` holds or `child` has exited, failing after two minutes.
fn wait_for(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() && child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sleeps for `delay`, or until `child` exits.
fn sleep_while_running(child: &mut Child, delay: Duration) {
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether any run of `results` has a checkpoint on disk.
fn a_checkpoint_exists(results: &Path) -> bool {
    std::fs::read_dir(results.join("ckpt").join("runs"))
        .into_iter()
        .flatten()
        .any(|e| e.is_ok_and(|e| e.path().join("checkpoint.bin").exists()))
}

#[test]
fn sweeps_killed_at_random_points_resume_to_the_uninterrupted_results() {
    // Each kill waits for the state it needs, never for a wall-clock fraction of a run
    // (which depends on the machine's speed and load): the first comes at a random moment
    // after a checkpoint exists, once one exists (again), and is repeated on fresh results
    // in the rare case that no checkpoint outlived it (a run ended in between); the second
    // at a random moment after the next sweep has resumed from it. Every seed therefore
    // tests resuming, on any machine.
    let (reference, total) = reference_and_seconds();
    for seed in [1, 2, 3] {
        let (study, results) = scratch(&format!("kill{seed}"));
        let mut delays = delays(seed, *total);
        let logs = [0, 1].map(|i| study.with_file_name(format!("sweep{i}.log")));
        for attempt in 0.. {
            assert!(attempt < 5, "seed {seed}: no kill left a checkpoint behind");
            let _ = std::fs::remove_dir_all(&results);
            let mut child = spawn_sweep(&study, &results, &[], &logs[0]);
            wait_for(&mut child, "a checkpoint", || a_checkpoint_exists(&results));
            sleep_while_running(&mut child, delays.next().unwrap());
            wait_for(&mut child, "a checkpoint", || a_checkpoint_exists(&results));
            child.kill().unwrap(); // SIGKILL: no handler runs, no file is closed cleanly
            child.wait().unwrap();
            if a_checkpoint_exists(&results) {
                break;
            }
        }
        let mut child = spawn_sweep(&study, &results, &[], &logs[1]);
        wait_for(&mut child, "the sweep to resume", || {
            std::fs::read_to_string(&logs[1]).is_ok_and(|t| t.contains(RESUMED))
        });
        sleep_while_running(&mut child, delays.next().unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
        let last = rankprobe(&sweep_args(&study, &results));
        assert!(last.status.success(), "seed {seed}: {}", text(&last));
        let second = std::fs::read_to_string(&logs[1]).unwrap();
        assert!(
            second.contains(RESUMED),
            "seed {seed}: the sweep after the first kill did not resume:\n{second}"
        );
        assert_same_as_reference(&results);
        std::fs::remove_dir_all(study.parent().unwrap()).unwrap();
    }
    assert!(reference.exists());
}

/// What a sweep prints when it resumes a run from its checkpoint.
const RESUMED: &str = "resuming from its checkpoint at step";

#[test]
fn a_full_disk_stops_the_sweep_and_freed_space_resumes_it() {
    if !Command::new("unshare")
        .args(["-rm", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!(
            "skipped: this machine cannot make a mount namespace (unshare -rm) for a small tmpfs"
        );
        return;
    }
    let (study, results) = scratch("full");
    let outside = results.with_file_name("copied");
    let bin = env!("CARGO_BIN_EXE_rankprobe");
    // In a private mount namespace: results on an 20 MiB tmpfs, which holds one checkpoint
    // of A1 (about 13 MB) but not a second beside it; then grow it and sweep again.
    let script = format!(
        r#"set -u
mkdir -p {r} && mount -t tmpfs -o size=20m tmpfs {r} || exit 90
{bin} sweep {s} --results {r} --only A1; echo "first exit $?"
mount -o remount,size=200m {r} || exit 91
{bin} sweep {s} --results {r}; echo "second exit $?"
cp -a {r} {o}"#,
        r = results.display(),
        s = study.display(),
        o = outside.display(),
    );
    let output = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .current_dir(common::root())
        .output()
        .unwrap();
    let log = text(&output);
    assert!(log.contains("first exit 1"), "{log}");
    assert!(log.contains("No space left on device"), "{log}");
    assert!(log.contains("run the sweep again to resume"), "{log}");
    assert!(
        log.contains("resuming from its checkpoint at step 2"),
        "{log}"
    );
    assert!(log.contains("second exit 0"), "{log}");
    assert_same_as_reference(&outside);
    std::fs::remove_dir_all(study.parent().unwrap()).unwrap();
}

#[test]
fn an_unwritable_results_directory_is_refused_before_any_work() {
    let (study, results) = scratch("unwritable");
    let file = results.with_file_name("a-file");
    std::fs::write(&file, b"").unwrap();
    for place in [
        file.join("results"),
        PathBuf::from("/proc/rankprobe-results"),
    ] {
        let output = rankprobe(&sweep_args(&study, &place));
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        let message = text(&output);
        assert!(message.contains("cannot write results in"), "{message}");
        assert!(message.contains("--results"), "{message}");
        assert!(
            !message.contains("preparing"),
            "no work may start: {message}"
        );
    }
    std::fs::remove_dir_all(study.parent().unwrap()).unwrap();
}

#[test]
fn damaged_files_of_an_earlier_crash_are_set_aside_and_the_runs_trained_again() {
    let (study, results) = scratch("damaged");
    // A1 killed once a checkpoint exists; B1 finished.
    let log = study.with_file_name("sweep.log");
    let mut child = spawn_sweep(&study, &results, &["--only", "A1"], &log);
    let checkpoint = loop {
        let found = common::find_run_dir(&results.join("ckpt"), "A1");
        if let Some(path) = found.map(|dir| dir.join("checkpoint.bin")) {
            if path.exists() {
                break path;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "A1 ended before a checkpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let done = rankprobe(&[&sweep_args(&study, &results)[..], &["--only", "B1"]].concat());
    assert!(done.status.success(), "{}", text(&done));
    // The damage: a truncated checkpoint, a truncated parquet of a finished run.
    let bytes = std::fs::read(&checkpoint).unwrap();
    std::fs::write(&checkpoint, &bytes[..bytes.len() / 2]).unwrap();
    let b1 = common::table_of(
        &run_dir(&results.join("ckpt"), "B1"),
        rankprobe::store::Table::Metrics,
    );
    let bytes = std::fs::read(&b1).unwrap();
    std::fs::write(&b1, &bytes[..bytes.len() / 2]).unwrap();
    let report = rankprobe(&["report", results.join("ckpt").to_str().unwrap()]);
    assert!(
        text(&report).contains("B1: cannot read metrics.parquet"),
        "{}",
        text(&report)
    );
    let again = rankprobe(&sweep_args(&study, &results));
    let log = text(&again);
    assert!(again.status.success(), "{log}");
    assert!(log.contains("corrupt checkpoint"), "{log}");
    assert!(log.contains("kept as"), "{log}");
    assert!(log.contains("metrics.parquet cannot be read"), "{log}");
    assert!(log.contains("training it again"), "{log}");
    let aside: Vec<String> = std::fs::read_dir(checkpoint.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint.bin.unusable-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged checkpoint is kept aside");
    std::fs::remove_file(checkpoint.parent().unwrap().join(&aside[0])).unwrap();
    assert_same_as_reference(&results);
    std::fs::remove_dir_all(study.parent().unwrap()).unwrap();
}

#[test]
fn a_corpus_too_small_for_the_budget_is_refused_unless_repeats_are_allowed() {
    let (study, results) = scratch("small");
    let text_ = study_text()
        .replace("tokens: 30_720,", "tokens: 40_960_000,")
        .replace(
            "eval_every_tokens: 10_240,",
            "eval_every_tokens: 10_240_000,",
        )
        .replace("at_tokens: [0, 4_096, 30_720]", "at_tokens: [0]");
    std::fs::write(&study, text_).unwrap();
    let output = rankprobe(&sweep_args(&study, &results));
    let message = text(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(
        message.contains("the corpus is too small for the budget"),
        "{message}"
    );
    assert!(message.contains("--allow-repeat"), "{message}");
    assert!(!results.exists(), "nothing is written");
    std::fs::remove_dir_all(study.parent().unwrap()).unwrap();
}

/// Copies the directory tree `from` to `to` (regular files and directories only).
/// `bytes` (a checkpoint) with its JSON header changed by `change`, its header length
/// fixed and its SHA-256 made valid again: damage that only a check of what the
/// checkpoint holds against the run can catch.
fn with_header(bytes: &[u8], change: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let len = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[24..24 + len]).unwrap();
    change(&mut header);
    let header = serde_json::to_vec(&header).unwrap();
    let mut out = bytes[..16].to_vec();
    out.extend((header.len() as u64).to_le_bytes());
    out.extend(&header);
    out.extend(&bytes[24 + len..bytes.len() - 32]);
    let digest = Sha256::digest(&out);
    out.extend(digest);
    out
}

#[test]
fn checkpoints_that_do_not_fit_their_run_are_set_aside_never_resumed_or_panicking() {
    use rankprobe::optim::adamw::moment_names;
    use rankprobe::optim::muon_adamw::momentum_name;
    use rankprobe::train::checkpoint::Checkpoint;
    let (study, results) = scratch("fuzz");
    // A checkpoint of the Muon run A1 (AdamW moments and Muon momentum), from a sweep
    // killed once it exists.
    let log = study.with_file_name("sweep.log");
    let mut child = spawn_sweep(&study, &results, &["--only", "A1"], &log);
    wait_for(&mut child, "a checkpoint", || a_checkpoint_exists(&results));
    child.kill().unwrap();
    child.wait().unwrap();
    let run = run_dir(&results.join("ckpt"), "A1");
    let bytes = std::fs::read(run.join("checkpoint.bin")).expect("killed with a checkpoint");
    let good = Checkpoint::decode(&bytes).unwrap();
    let resign = |change: &dyn Fn(&mut Checkpoint)| {
        let mut ckpt = good.clone();
        change(&mut ckpt);
        ckpt.encode()
    };
    let last = good.model.len() - 1;
    assert_eq!(good.optimizer.counters[0].0, "adamw.step");
    assert!(good.optimizer.buffers[0].0.starts_with("adamw.m."));
    assert!(good.optimizer.buffers[1].0.starts_with("adamw.v."));
    fn muon(c: &mut Checkpoint) -> &mut [(String, Vec<f32>)] {
        let at = (c.optimizer.buffers.iter())
            .position(|(n, _)| n.starts_with("muon."))
            .unwrap();
        &mut c.optimizer.buffers[at..]
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmodified", bytes.clone()),
        ("step beyond the budget", resign(&|c| c.step = 1_000)),
        ("step 0", resign(&|c| c.step = 0)),
        ("AdamW's step", resign(&|c| c.optimizer.counters[0].1 += 1)),
        (
            "negative elapsed time",
            resign(&|c| c.counters.elapsed_s = -5.0),
        ),
        (
            "NaN train seconds",
            resign(&|c| c.counters.train_seconds = f64::NAN),
        ),
        (
            "a model tensor short",
            resign(&|c| {
                c.model[0].pop();
            }),
        ),
        ("a model tensor long", resign(&|c| c.model[last].push(0.5))),
        ("a model tensor missing", resign(&|c| drop(c.model.pop()))),
        (
            "AdamW moments missing",
            resign(&|c| {
                c.optimizer
                    .buffers
                    .retain(|(n, _)| !n.starts_with("adamw."))
            }),
        ),
        (
            "AdamW moments short",
            resign(&|c| {
                for (_, values) in c.optimizer.buffers.iter_mut().take(2) {
                    values.pop();
                }
            }),
        ),
        (
            "AdamW moments of too many tensors",
            resign(&|c| {
                let (m, v) = moment_names(c.model.len() + 3);
                c.optimizer.buffer(m, vec![0.0; 4]);
                c.optimizer.buffer(v, vec![0.0; 4]);
            }),
        ),
        (
            "a negative second moment",
            resign(&|c| c.optimizer.buffers[1].1[0] = -1.0),
        ),
        (
            "a Muon buffer missing",
            resign(&|c| drop(c.optimizer.buffers.pop())),
        ),
        (
            "a Muon buffer long",
            resign(&|c| muon(c)[0].1.extend([0.0; 8])),
        ),
        (
            "Muon buffers in an extra matrix",
            resign(&|c| c.optimizer.buffer(momentum_name(999), vec![0.0; 64])),
        ),
        (
            "no Muon buffers",
            resign(&|c| c.optimizer.buffers.retain(|(n, _)| !n.starts_with("muon."))),
        ),
        (
            "a buffer named twice",
            resign(&|c| {
                let first = c.optimizer.buffers[0].clone();
                c.optimizer.buffers.push(first);
            }),
        ),
        (
            "an optimizer counter missing",
            resign(&|c| c.optimizer.counters.clear()),
        ),
        ("a NaN weight", resign(&|c| c.model[0][0] = f32::NAN)),
        (
            "another run's id",
            resign(&|c| c.run_id = "0123456789ab".to_owned()),
        ),
        (
            "model lengths swapped in the header",
            with_header(&bytes, |h| {
                let lens = h["model"].as_array_mut().unwrap();
                let (a, b) = (0, lens.iter().position(|l| l != &lens[0]).unwrap());
                lens.swap(a, b);
            }),
        ),
        (
            "a header length beyond the file",
            with_header(&bytes, |h| {
                h["optimizer_buffers"][0][1] = serde_json::json!(u64::MAX / 8);
            }),
        ),
        (
            "a header of the wrong type",
            with_header(&bytes, |h| {
                h["step"] = serde_json::json!("seven");
            }),
        ),
    ];
    let base = study.with_file_name("base");
    copy_tree(&results, &base);
    for (name, checkpoint) in cases {
        let results = study.with_file_name("case");
        let _ = std::fs::remove_dir_all(&results);
        copy_tree(&base, &results);
        let run = run_dir(&results.join("ckpt"), "A1");
        std::fs::write(run.join("checkpoint.bin"), &checkpoint).unwrap();
        let output = rankprobe(&[&sweep_args(&study, &results)[..], &["--only", "A1"]].concat());
        let said = text(&output);
        assert!(output.status.success(), "{name}: {said}");
        assert!(!said.contains("panic"), "{name}: {said}");
        let set_aside: Vec<String> = std::fs::read_dir(&run)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("checkpoint.bin.unusable-"))
            .collect();
        if name == "unmodified" {
            assert!(
                said.contains(RESUMED) && set_aside.is_empty(),
                "{name}: {said}"
            );
        } else {
            assert!(
                said.contains("not using") && set_aside.len() == 1,
                "{name}: not set aside: {said}"
            );
        }
        let manifest = Manifest::read(&run).unwrap();
        assert_eq!(manifest.status, RunStatus::Done, "{name}: {said}");
        let rows = common::metric_rows(&run);
        let reference_rows = common::metric_rows(&run_dir(&reference().join("ckpt"), "A1"));
        assert_eq!(rows, reference_rows, "{name}: the results differ");
    }
    std::fs::remove_dir_all(study.parent().unwrap()).unwrap();
}
