//! Training end to end through the CLI: metrics parquet readable by polars with the
//! documented schema, manifests, token accounting, determinism.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use polars::prelude::*;
use rankprobe::store::manifest::{Manifest, RunStatus};
use rankprobe::store::Table;

use common::TINY;

fn sweep_tiny(name: &str, only: &[&str]) -> PathBuf {
    let results =
        std::env::temp_dir().join(format!("rankprobe-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&results);
    let mut args = vec![
        "sweep",
        TINY,
        "--results",
        results.to_str().unwrap(),
        "--only",
    ];
    args.extend(only);
    let output = Command::new(env!("CARGO_BIN_EXE_rankprobe"))
        .args(&args)
        .current_dir(common::root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("wall time"));
    results
}

fn run_dir(results: &Path, label: &str) -> PathBuf {
    common::run_dir(&results.join("tiny"), label)
}

fn read_metrics(dir: &Path) -> DataFrame {
    let file = std::fs::File::open(common::table_of(dir, Table::Metrics)).unwrap();
    ParquetReader::new(file).finish().unwrap()
}

/// The frame has exactly these columns, in this order, with these types.
fn assert_schema(frame: &DataFrame, expected: &[(&str, DataType)]) {
    let schema = frame.schema();
    let names: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
    assert_eq!(names, expected.iter().map(|(n, _)| *n).collect::<Vec<_>>());
    for (name, dtype) in expected {
        assert_eq!(schema.get(name).unwrap(), dtype, "{name}");
    }
}

#[test]
fn sweep_writes_tidy_metrics_and_manifests_and_is_deterministic() {
    let first = sweep_tiny("a", &["A1", "B1", "B2"]);
    let second = sweep_tiny("b", &["A1", "B1"]);
    for label in ["A1", "B1", "B2"] {
        let dir = run_dir(&first, label);
        let frame = read_metrics(&dir);
        let expected = [
            ("study", DataType::String),
            ("condition", DataType::String),
            ("label", DataType::String),
            ("run_id", DataType::String),
            ("seed", DataType::UInt64),
            ("step", DataType::UInt64),
            ("tokens", DataType::UInt64),
            ("split", DataType::String),
            ("metric", DataType::String),
            ("value", DataType::Float64),
            ("elapsed_s", DataType::Float64),
        ];
        assert_schema(&frame, &expected);
        let manifest = Manifest::read(&dir).expect("manifest.json");
        assert_eq!(manifest.status, RunStatus::Done);
        assert_eq!(manifest.label, label);
        let dir_name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(dir_name, format!("{label}-{}", manifest.run_id));
        // Every row names its run: the tables of a study read as one dataset.
        assert!(common::column_str(&frame, "study")
            .iter()
            .all(|s| s == "tiny"));
        assert!(common::column_str(&frame, "condition")
            .iter()
            .all(|c| c == label));
        assert!(common::column_str(&frame, "label")
            .iter()
            .all(|l| l == label));
        assert!(common::column_str(&frame, "run_id")
            .iter()
            .all(|i| *i == manifest.run_id));
        assert!(common::column_u64(&frame, "seed")
            .iter()
            .all(|&s| s == manifest.seed));
        assert_eq!(manifest.condition.as_deref(), Some(label));
        // Exact token accounting: 10 steps of 16 x 128 tokens.
        assert_eq!(manifest.tokens, Some(20_480));
        // Trained parameters: 4 x (attention 128 x (128 + 64 + 64 + 128) + squared-ReLU
        // feed-forward 2 x 128 x 512) + the tied embedding 2048 x 128 + norm gains
        // 4 x 2 x 128 + 128, and QK gains 4 x 2 x 32 where QK-norm is on.
        let qk_gains = if label == "B2" { 0 } else { 4 * 2 * 32 };
        let expected = 4 * (128 * 384 + 2 * 128 * 512) + 2048 * 128 + 4 * 2 * 128 + 128;
        assert_eq!(
            manifest.trained_params,
            Some(expected + qk_gains),
            "{label}"
        );
        assert_eq!(
            common::column_u64(&frame, "tokens").into_iter().max(),
            Some(20_480)
        );
        // Validation loss at 0, 4096 (step 2), 10240 (step 5) and the end, decreasing.
        let splits = common::column_str(&frame, "split");
        let metrics = common::column_str(&frame, "metric");
        let steps = common::column_u64(&frame, "step");
        let values = common::column_f64(&frame, "value");
        let val: Vec<(u64, f64)> = (0..frame.height())
            .filter(|&i| splits[i] == "val" && metrics[i] == "loss")
            .map(|i| (steps[i], values[i]))
            .collect();
        assert_eq!(val.iter().map(|v| v.0).collect::<Vec<_>>(), [0, 2, 5, 10]);
        assert!(val[0].1 > 7.0 && val[3].1 < val[0].1 - 0.5, "{val:?}");
        assert!(manifest.final_val_loss.unwrap() < val[0].1);
    }
    // A Muon run also records the learning rate of its AdamW group.
    let muon_metrics = common::column_str(&read_metrics(&run_dir(&first, "A1")), "metric");
    assert!(muon_metrics.iter().any(|m| m == "adamw_lr"));
    // Same spec and seed on the CPU: identical losses and learning rates, Muon and AdamW.
    let deterministic = |frame: &DataFrame| -> Vec<(String, String, u64, f64)> {
        let (splits, metrics, steps, values) = (
            common::column_str(frame, "split"),
            common::column_str(frame, "metric"),
            common::column_u64(frame, "step"),
            common::column_f64(frame, "value"),
        );
        (0..frame.height())
            .filter(|&i| metrics[i] != "tokens_per_s")
            .map(|i| (splits[i].clone(), metrics[i].clone(), steps[i], values[i]))
            .collect()
    };
    for label in ["A1", "B1"] {
        let a = read_metrics(&run_dir(&first, label));
        let b = read_metrics(&run_dir(&second, label));
        assert_eq!(deterministic(&a), deterministic(&b), "{label}");
    }
    std::fs::remove_dir_all(&first).unwrap();
    std::fs::remove_dir_all(&second).unwrap();
}

#[test]
fn probes_parquet_has_the_documented_schema_and_sane_ranks() {
    let results = sweep_tiny("probes", &["A1"]);
    let dir = run_dir(&results, "A1");
    let file = std::fs::File::open(common::table_of(&dir, Table::Probes)).unwrap();
    let frame = ParquetReader::new(file).finish().unwrap();
    let expected = [
        ("study", DataType::String),
        ("condition", DataType::String),
        ("label", DataType::String),
        ("run_id", DataType::String),
        ("seed", DataType::UInt64),
        ("step", DataType::UInt64),
        ("tokens", DataType::UInt64),
        ("layer", DataType::UInt32),
        ("head", DataType::UInt32),
        ("site", DataType::String),
        ("metric", DataType::String),
        ("value", DataType::Float64),
    ];
    assert_schema(&frame, &expected);
    // Probe points 0, 4096 (step 2) and 20480 (step 10); 4 layers x 2 KV heads x 3 metrics.
    assert_eq!(frame.height(), 3 * 4 * 2 * 3);
    let metrics = common::column_str(&frame, "metric");
    let values = common::column_f64(&frame, "value");
    let steps = common::column_u64(&frame, "step");
    assert_eq!(
        steps
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>(),
        [0, 2, 10]
    );
    assert!(common::column_str(&frame, "site")
        .iter()
        .all(|s| s == "k_rope"));
    for (metric, value) in metrics.iter().zip(&values) {
        match metric.as_str() {
            "study_pr" => assert!(*value > 1.0 && *value <= 32.0, "{value}"),
            "r90" => assert!(*value >= 1.0 && *value <= 32.0, "{value}"),
            "condition_number" => assert!(*value >= 1.0, "{value}"),
            other => panic!("unexpected metric {other}"),
        }
    }
    let manifest = Manifest::read(&dir).unwrap();
    assert!(
        manifest.probe_share.unwrap() < 0.05,
        "{:?}",
        manifest.probe_share
    );
    std::fs::remove_dir_all(&results).unwrap();
}
