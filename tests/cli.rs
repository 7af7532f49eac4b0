//! The command line as a user runs it: plan, sweep, validate, exit codes.

mod common;

use std::path::Path;
use std::process::Output;

use common::{rankprobe, TINY};

use rankprobe::plan::run_id::run_id;
use rankprobe::spec::{ron_options, RunConfig};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `rankprobe sweep STUDY --results RESULTS ARGS...`
fn sweep(study: &str, results: &Path, args: &[&str]) -> Output {
    let mut all = vec!["sweep", study, "--results", results.to_str().unwrap()];
    all.extend(args);
    rankprobe(&all)
}

fn temp_results(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rankprobe-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn plan_lists_the_four_seed_runs_with_differing_fields() {
    let output = rankprobe(&["plan", "experiments/qk_study.ron"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let header = text
        .lines()
        .find(|l| l.starts_with("#  label"))
        .expect(&text);
    for column in [
        "run id",
        "model.qk_norm",
        "optimizer",
        "tokens",
        "train FLOPs",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("-  "))
        .skip(1)
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    for (row, label) in rows.iter().zip(["A1", "A2", "B1", "B2"]) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1], label, "{row}");
        assert_eq!(cells[2].len(), 12, "{row}");
    }
    assert!(rows[0].contains("RmsNorm(gain: Learnable)") && rows[0].contains("Muon"));
    assert!(rows[1].contains("None") && rows[1].contains("Muon"));
    assert!(rows[3].contains("None") && rows[3].contains("AdamW"));
}

#[test]
fn sweep_writes_resolved_run_configs_that_read_back_to_the_same_ids() {
    let results = temp_results("sweep");
    let output = sweep(TINY, &results, &["--device", "cpu", "--only", "B1", "B2"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let study_dir = results.join("tiny");
    assert!(study_dir.join("study.ron").is_file());
    let mut run_dirs: Vec<_> = std::fs::read_dir(study_dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    run_dirs.sort();
    assert_eq!(run_dirs.len(), 2);
    for dir in &run_dirs {
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let (label, id) = name.rsplit_once('-').unwrap();
        assert!(["B1", "B2"].contains(&label), "{name}");
        let text = std::fs::read_to_string(dir.join("run.ron")).unwrap();
        let config: RunConfig = ron_options()
            .from_str(&text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            run_id(&config),
            id,
            "run.ron of {name} hashes to another id"
        );
    }
    // Nothing half-written is left behind.
    assert!(!walk_names(&study_dir).iter().any(|n| n.contains(".tmp-")));
    std::fs::remove_dir_all(&results).unwrap();
}

fn walk_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|e| {
            let path = e.unwrap().path();
            let mut names = vec![path.file_name().unwrap().to_string_lossy().into_owned()];
            if path.is_dir() {
                names.extend(walk_names(&path));
            }
            names
        })
        .collect()
}

#[test]
fn sweep_only_selects_runs_and_rejects_unknown_labels() {
    let results = temp_results("only");
    let output = sweep(TINY, &results, &["--only", "B2"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let count = std::fs::read_dir(results.join("tiny").join("runs"))
        .unwrap()
        .count();
    assert_eq!(count, 1);
    let output = sweep(TINY, &results, &["--only", "b1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("did you mean `B1`?"),
        "{}",
        stderr(&output)
    );
    std::fs::remove_dir_all(&results).unwrap();
}

#[test]
fn asking_for_cuda_without_cuda_support_is_bad_input() {
    let results = temp_results("cuda");
    let output = sweep(
        "experiments/quickstart.ron",
        &results,
        &["--device", "cuda:0"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no CUDA support"),
        "{}",
        stderr(&output)
    );
    assert!(!results.exists(), "nothing may be written for bad input");
    let output = rankprobe(&["sweep", "experiments/quickstart.ron", "--device", "tpu"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn validate_checks_many_files_and_fails_if_any_is_bad() {
    let good = rankprobe(&[
        "validate",
        "experiments/qk_study.ron",
        "experiments/quickstart.ron",
    ]);
    assert!(good.status.success(), "{}", stderr(&good));
    assert_eq!(stdout(&good).matches("ok ").count(), 2);
    let mixed = rankprobe(&[
        "validate",
        "experiments/qk_study.ron",
        "tests/bad/impossible_shape.ron",
    ]);
    assert_eq!(mixed.status.code(), Some(2));
    assert!(stdout(&mixed).contains("FAIL  tests/bad/impossible_shape.ron"));
    assert!(stderr(&mixed).contains("1 of 2 study files have errors"));
}

#[test]
fn a_shape_not_compiled_in_is_refused_before_any_work() {
    let results = temp_results("shape");
    let study = results.with_extension("ron");
    let text = common::tiny_text()
        .replace("d_model: 128,", "d_model: 96,")
        .replace("n_heads: 4,", "n_heads: 3,")
        .replace("n_kv_heads: 2,", "n_kv_heads: 1,");
    std::fs::write(&study, text).unwrap();
    let output = sweep(study.to_str().unwrap(), &results, &["--only", "B1"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("run B1: the model shape (vocab 2048, d_model 96"),
        "{message}"
    );
    assert!(
        message.contains("put the study file there and rebuild"),
        "{message}"
    );
    assert!(
        !results.exists(),
        "nothing may be written when a run cannot train"
    );
    std::fs::remove_file(&study).unwrap();
}

/// `execution.tf32` where the run lands on the CPU (`Auto` without a GPU): the sweep says
/// it does not apply, trains in f32, and the manifest records that TF32 was not used.
#[test]
fn tf32_on_a_cpu_run_is_noted_and_recorded_as_not_used() {
    let results = temp_results("tf32");
    let study = results.with_extension("ron");
    let text = common::tiny_text().replace(
        "execution: (device: Cpu),",
        "execution: (device: Auto, tf32: true),",
    );
    assert!(text.contains("tf32: true"));
    std::fs::write(&study, text).unwrap();
    let plan = rankprobe(&["plan", study.to_str().unwrap()]);
    assert!(
        stdout(&plan).contains("device auto (TF32 products on CUDA)"),
        "{}",
        stdout(&plan)
    );
    let output = sweep(
        study.to_str().unwrap(),
        &results,
        &["--device", "cpu", "--only", "B2"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output)
            .contains("note: `execution.tf32` applies to CUDA only; on cpu products are f32"),
        "{}",
        stdout(&output)
    );
    let runs = results.join("tiny").join("runs");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["tf32"],
        serde_json::Value::Bool(false),
        "{manifest}"
    );
    assert_eq!(manifest["device"], "cpu", "{manifest}");
    std::fs::remove_dir_all(&results).unwrap();
    std::fs::remove_file(&study).unwrap();
}

#[test]
fn muon_bench_times_every_matrix_shape_of_the_study() {
    let output = rankprobe(&["muon-bench", TINY]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for shape in ["128 x 512", "384 x 128", "512 x 128"] {
        assert!(text.contains(shape), "{shape} missing from\n{text}");
    }
    assert!(text.contains("per optimizer step:"), "{text}");
    let adamw_only = rankprobe(&["muon-bench", "experiments/cpu_20m.ron"]);
    assert_eq!(adamw_only.status.code(), Some(2));
}

#[test]
fn bench_times_training_on_the_chosen_device_against_a_same_device_peak() {
    let output = rankprobe(&[
        "bench",
        TINY,
        "--steps",
        "3",
        "--run",
        "B1",
        "--device",
        "cpu",
        "--profile",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("training throughput on cpu") && text.contains("steps 2-3 timed"),
        "{text}"
    );
    let header = text
        .lines()
        .find(|l| l.starts_with("study"))
        .unwrap_or_else(|| panic!("no table in\n{text}"));
    let row = text
        .lines()
        .find(|l| l.contains("tiny") && l.contains("B1"))
        .unwrap_or_else(|| panic!("no row for tiny B1 in\n{text}"));
    let column = |name: &str| -> f64 {
        let index = header
            .split("  ")
            .filter(|c| !c.trim().is_empty())
            .position(|c| c.trim() == name)
            .unwrap_or_else(|| panic!("no column {name} in {header}"));
        row.split_whitespace().nth(index).unwrap().parse().unwrap()
    };
    for name in ["tokens/s", "of peak", "peak mem MiB"] {
        let value = column(name);
        assert!(
            value > 0.0 && value.is_finite(),
            "{name} = {value} in {row}"
        );
    }
    // The profile: the step's phases and the fused operations inside them.
    for phase in [
        "step: forward + loss",
        "step: backward",
        "attention backward",
    ] {
        assert!(text.contains(phase), "{phase} missing from\n{text}");
    }
    if !cfg!(feature = "cuda") {
        let cuda = rankprobe(&["bench", TINY, "--steps", "2", "--device", "cuda"]);
        assert_eq!(cuda.status.code(), Some(2));
        assert!(
            stderr(&cuda).contains("no CUDA support"),
            "{}",
            stderr(&cuda)
        );
    }
}

#[test]
fn bench_says_why_the_pytorch_reference_was_skipped() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rankprobe"))
        .args(["bench", TINY, "--steps", "2", "--run", "B1", "--torch"])
        .env("RANKPROBE_PYTHON", "/nonexistent/python3")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("PyTorch reference skipped") && text.contains("RANKPROBE_PYTHON"),
        "{text}"
    );
}

/// A speed cache entry of this host's CPU.
fn speed_entry(shape: &str, params: u64, flops: f64, by: &str) -> serde_json::Value {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    serde_json::json!({
        "host": host, "device": "cpu", "shape": shape, "params": params,
        "flops_per_s": flops, "measured_at": 1_700_000_000u64, "by": by,
    })
}

/// `plan STUDY`'s standard output with a speed cache (in a directory named `name`)
/// holding `entries`.
fn plan_with_speeds(name: &str, entries: &[serde_json::Value], study: &str) -> String {
    let cache = temp_results(name);
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(
        cache.join("speed.json"),
        serde_json::json!(entries).to_string(),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rankprobe"))
        .args(["plan", study])
        .env("RANKPROBE_CACHE", &cache)
        .current_dir(common::root())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    std::fs::remove_dir_all(&cache).unwrap();
    stdout(&output)
}

#[test]
fn impossible_remembered_speeds_are_ignored_with_a_note() {
    // 1e-300 FLOP/s would print billions of days, 1e308 "about 0 s", both "measured here".
    let entries = [1e-300, 1e308].map(|flops| speed_entry("any", 984_448, flops, "sweep"));
    let text = plan_with_speeds("speed-cache", &entries, "experiments/quickstart.ron");
    assert!(
        text.contains("2 speed(s) remembered in the cache lie outside"),
        "{text}"
    );
    assert!(
        !text.contains("estimate:"),
        "no estimate from impossible speeds: {text}"
    );
}

/// The seed study's shape was never measured: a small model's FLOP/s alone would say
/// 26 days where the seed shape runs several times faster. The estimate is a range
/// bounded by the small model and the remembered matmul peak, and says so.
#[test]
fn a_shape_never_measured_is_estimated_as_a_range_with_its_bounds() {
    let entries = [
        speed_entry("small", 984_448, 3e10, "sweep"),
        speed_entry("f32 matmul peak", 0, 4.3e11, "peak"),
    ];
    let text = plan_with_speeds("speed-range", &entries, "experiments/qk_study.ron");
    let line = text
        .lines()
        .find(|l| l.starts_with("estimate:"))
        .unwrap_or_else(|| panic!("no estimate: {text}"));
    for part in [
        "(between 43.5 h and 26.0 days)",
        "about 6.9 days",
        "smaller measured shape (984.4K params)",
        "f32 matmul peak (430 GFLOP/s)",
    ] {
        assert!(line.contains(part), "{part:?} missing: {line}");
    }
}

#[test]
fn bench_believes_only_figures_that_can_be_true_and_escapes_what_python_prints() {
    let dir = temp_results("fake-python");
    std::fs::create_dir_all(&dir).unwrap();
    // A "python" that reports a zero speed (an infinite ratio), a negative memory, and a
    // version holding an escape sequence.
    let fake = dir.join("python3");
    std::fs::write(
        &fake,
        "#!/bin/sh\ncat > /dev/null\nprintf '%s' '{\"tokens_per_s\": 0, \"step_ms\": 1, \
         \"peak_rss_mib\": -5, \"peak_gflops\": 100, \"torch\": \"2.0\\u001b[2J\"}'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rankprobe"))
        .args(["bench", TINY, "--steps", "2", "--run", "B1", "--torch"])
        .env("RANKPROBE_PYTHON", &fake)
        .current_dir(common::root())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        !text.contains('\u{1b}'),
        "a raw escape reached the terminal: {text:?}"
    );
    assert!(text.contains(r"PyTorch 2.0\u{1b}[2J"), "{text}");
    assert!(!text.contains("inf") && !text.contains(" -5"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
