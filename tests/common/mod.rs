//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod recorded;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use polars::prelude::DataFrame;
use rankprobe::plan::{build_plan, Plan};
use rankprobe::spec::source::SourceText;
use rankprobe::spec::{parse_study, Diagnostics};

/// The repository root (tests run with it as the working directory too).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The tiny test study's text (quickstart shape, Muon base), a base for variations.
pub fn tiny_text() -> String {
    std::fs::read_to_string(root().join("tests/studies/tiny.ron")).unwrap()
}

/// The tiny study with its `sweep: [...]` replaced by `sweep`.
pub fn tiny_with_sweep(sweep: &str) -> String {
    let text = tiny_text();
    let start = text.find("    sweep: [").expect("quickstart has a sweep");
    format!("{}    sweep: [\n{sweep}\n    ],\n)\n", &text[..start])
}

/// Parses and plans study text.
pub fn plan_text(text: &str) -> Result<Plan, Diagnostics> {
    let loaded = parse_study(SourceText::new("inline.ron", text.to_owned()))?;
    build_plan(&loaded)
}

pub fn labels(plan: &Plan) -> Vec<&str> {
    plan.runs.iter().map(|r| r.label.as_str()).collect()
}

/// Every `.ron` file in a directory, sorted.
pub fn ron_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ron"))
        .collect();
    files.sort();
    files
}

/// A 4-way study with the quickstart model shape and a 20K-token budget.
pub const TINY: &str = "tests/studies/tiny.ron";

/// Runs the rankprobe binary from the repository root.
pub fn rankprobe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rankprobe"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

/// `runs/<label>-<id>` under a study's results directory, if it is there yet.
pub fn find_run_dir(study_dir: &Path, label: &str) -> Option<PathBuf> {
    std::fs::read_dir(study_dir.join("runs"))
        .ok()?
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            // `<label>-<12 hex digits>`: a label may itself contain '-'.
            name.rsplit_once('-').is_some_and(|(l, _)| l == label)
        })
}

/// The file of `table` of the run whose directory is `run_dir` (`<study>/runs/<name>`):
/// `<study>/<table>/<name>.parquet`.
pub fn table_of(run_dir: &Path, table: rankprobe::store::Table) -> PathBuf {
    let study = run_dir.parent().unwrap().parent().unwrap();
    let name = run_dir.file_name().unwrap().to_string_lossy();
    rankprobe::store::RunPaths::named(study, &name)
        .table(table)
        .to_owned()
}

/// `runs/<label>-<id>` under a study's results directory.
pub fn run_dir(study_dir: &Path, label: &str) -> PathBuf {
    find_run_dir(study_dir, label)
        .unwrap_or_else(|| panic!("no run directory for {label} in {}", study_dir.display()))
}

/// A command's stdout and stderr, for messages and assertions.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A column's values, by type.
pub fn column_f64(frame: &DataFrame, name: &str) -> Vec<f64> {
    frame
        .column(name)
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

pub fn column_u64(frame: &DataFrame, name: &str) -> Vec<u64> {
    frame
        .column(name)
        .unwrap()
        .u64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

pub fn column_str(frame: &DataFrame, name: &str) -> Vec<String> {
    let strings = frame.column(name).unwrap().str().unwrap();
    strings
        .downcast_iter()
        .flat_map(|a| a.iter().map(|v| v.unwrap().to_owned()).collect::<Vec<_>>())
        .collect()
}

/// Metrics rows without what depends on timing (elapsed_s, tokens_per_s), in file order:
/// (step, tokens, split, metric, value bits).
pub fn metric_rows(dir: &Path) -> Vec<(u64, u64, String, String, u64)> {
    let metrics = table_of(dir, rankprobe::store::Table::Metrics);
    let frame = rankprobe::store::frame::read_parquet(&metrics).unwrap();
    let (steps, tokens) = (column_u64(&frame, "step"), column_u64(&frame, "tokens"));
    let (splits, metrics) = (column_str(&frame, "split"), column_str(&frame, "metric"));
    let values = column_f64(&frame, "value");
    (0..frame.height())
        .filter(|&i| metrics[i] != "tokens_per_s")
        .map(|i| {
            (
                steps[i],
                tokens[i],
                splits[i].clone(),
                metrics[i].clone(),
                values[i].to_bits(),
            )
        })
        .collect()
}

/// Copies the directory tree `from` to `to` (created).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Writes `text` as `dir/<file_name>` and sweeps it into `dir/results` with `extra`
/// arguments; returns the results root and the sweep's output.
pub fn sweep_study(dir: &Path, file_name: &str, text: &str, extra: &[&str]) -> (PathBuf, Output) {
    let file = dir.join(file_name);
    std::fs::write(&file, text).unwrap();
    let results = dir.join("results");
    let args = [
        &[
            "sweep",
            file.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ][..],
        extra,
    ]
    .concat();
    let output = rankprobe(&args);
    (results, output)
}

/// The micro study (`tests/studies/v1_checkpoints.ron`: 2 layers, d_model 32, 20,480
/// tokens) named `name`, with `conditions` (what goes inside `Conditions([...])`) as its
/// only sweep axis.
pub fn micro_study(name: &str, conditions: &str) -> String {
    let text = std::fs::read_to_string(root().join("tests/studies/v1_checkpoints.ron")).unwrap();
    let start = text.find("    sweep: [").unwrap();
    format!(
        "{}    sweep: [Conditions([{conditions}])],\n)\n",
        &text[..start]
    )
    .replace("name: \"v1ckpt\"", &format!("name: \"{name}\""))
}
