//! A study's results read as one dataset: every row names its run, the new probes land
//! in probes.parquet with sane values, and the README's one-liners for duckdb, polars,
//! pyarrow and pandas read a whole study in one call. The Python tools are installed
//! with pip into a cache directory (`~/.cache/rankprobe/py-dataset`); where that is not
//! possible the Python part is skipped with a message.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{column_f64, column_str, text};
use polars::prelude::*;

/// The tiny study with every probe metric, two runs of one condition (two seeds) and
/// one of another, trained into a fresh results directory.
fn sweep_with_all_probes() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rankprobe-dataset-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let study = common::tiny_text()
        .replace(
            "metrics: [StudyPr, R90, ConditionNumber],",
            "metrics: [StudyPr, R90, DeadHeads(below_pr: 30.0), AttentionEntropy, MaxAttentionLogit, IclScore(early: (0, 16), late: (96, 128))],",
        )
        .replace("    sweep: [", "    sweep: [\n        Seeds([1, 2]),");
    assert!(study.contains("IclScore") && study.contains("Seeds"));
    let file = dir.join("tiny.ron");
    std::fs::write(&file, study).unwrap();
    let results = dir.join("results");
    let output = common::rankprobe(&[
        "sweep",
        file.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--only",
        "s1_A1",
        "s2_A1",
        "s1_B2",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    results.join("tiny")
}

fn read_all(dir: &Path) -> DataFrame {
    let mut frames = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| rankprobe::store::frame::read_parquet(&e.unwrap().path()).unwrap());
    let first = frames.next().unwrap();
    frames.fold(first, |all, f| all.vstack(&f).unwrap())
}

#[test]
fn a_study_is_one_dataset_with_every_probe() {
    let study = sweep_with_all_probes();
    // One file per run in each table's directory, nothing else there.
    for table in ["metrics", "probes"] {
        let names: Vec<String> = std::fs::read_dir(study.join(table))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.iter().all(|n| n.ends_with(".parquet")), "{names:?}");
    }
    let probes = read_all(&study.join("probes"));
    let (labels, conditions) = (
        column_str(&probes, "label"),
        column_str(&probes, "condition"),
    );
    for (label, condition) in labels.iter().zip(&conditions) {
        // `s1_A1` is a seed of condition `A1`.
        assert_eq!(label.split_once('_').unwrap().1, condition);
    }
    let (sites, metrics) = (column_str(&probes, "site"), column_str(&probes, "metric"));
    let values = column_f64(&probes, "value");
    let layers = probes.column("layer").unwrap().u32().unwrap();
    let heads = probes.column("head").unwrap().u32().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..probes.height() {
        let (site, metric, v) = (sites[i].as_str(), metrics[i].as_str(), values[i]);
        seen.insert(metric.to_owned());
        let (layer, head) = (layers.get(i), heads.get(i));
        match metric {
            // Causal attention over at most 128 keys: 0 <= H <= ln 128.
            "attention_entropy" => {
                assert_eq!(site, "attention");
                assert!((0.0..=128f64.ln()).contains(&v), "{v}");
                assert!(layer.is_some() && head.is_some_and(|h| h < 4));
            }
            "max_attention_logit" => assert!(v.is_finite() && site == "attention", "{v}"),
            "dead_head_fraction" => {
                // Per layer: 2 KV heads, so 0, 0.5 or 1.
                assert!([0.0, 0.5, 1.0].contains(&v), "{v}");
                assert!(layer.is_some() && head.is_none());
            }
            "icl_score" | "icl_loss_early" | "icl_loss_late" => {
                assert_eq!(site, "output");
                assert!(layer.is_none() && head.is_none() && v.is_finite());
            }
            "study_pr" | "r90" => assert!(head.is_some() && (1.0..=32.0).contains(&v)),
            other => panic!("unexpected metric {other}"),
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    // The report aggregates the two seeds of A1 and names the conditions.
    let report = std::fs::read_to_string(study.join("report/summary.md")).unwrap();
    assert!(
        report.contains("| A1 Muon + QK-norm | 2/2 done | 2 |"),
        "{report}"
    );
    assert!(report.contains("## Findings"), "{report}");
    for figure in ["trajectories.png", "layers.png", "probes.png"] {
        assert!(study.join("report").join(figure).is_file(), "{figure}");
    }
    python_one_liners(&study);
    std::fs::remove_dir_all(study.parent().unwrap().parent().unwrap()).unwrap();
}

/// The README's one-liners, each reading the whole study in one call.
const ONE_LINERS: [(&str, &str); 4] = [
    (
        "duckdb",
        "import duckdb; df = duckdb.sql(\"select * from 'STUDY/probes/*.parquet'\").df()",
    ),
    (
        "polars",
        "import polars as pl; df = pl.read_parquet('STUDY/probes/*.parquet').to_pandas()",
    ),
    (
        "pyarrow",
        "import pyarrow.parquet as pq; df = pq.read_table('STUDY/probes').to_pandas()",
    ),
    (
        "pandas",
        "import pandas as pd; df = pd.read_parquet('STUDY/probes')",
    ),
];

fn python_one_liners(study: &Path) {
    let Some(site) = python_packages() else {
        return;
    };
    let expected = read_all(&study.join("probes")).height();
    for (tool, line) in ONE_LINERS {
        let code = format!(
            "{}\nassert set(['study', 'condition', 'label', 'run_id', 'seed']) <= set(df.columns)\nprint(len(df), df['label'].nunique())",
            line.replace("STUDY", study.to_str().unwrap())
        );
        let output = run_python(&code, &site).unwrap();
        assert!(output.status.success(), "{tool}: {}", text(&output));
        let printed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert_eq!(printed, format!("{expected} 3"), "{tool}");
        // The metrics table reads the same way.
        let metrics = code.replace("probes", "metrics");
        let output = run_python(&metrics, &site).unwrap();
        assert!(output.status.success(), "{tool} metrics: {}", text(&output));
    }
}

/// Runs `code` with the Python packages installed in `site`.
fn run_python(code: &str, site: &Path) -> std::io::Result<std::process::Output> {
    Command::new(python())
        .args(["-c", code])
        .env("PYTHONPATH", site)
        .output()
}

fn python() -> String {
    std::env::var("RANKPROBE_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A directory holding duckdb, polars, pyarrow and pandas for `python()`, installed with
/// pip on first use; None (with a message) where that is not possible.
fn python_packages() -> Option<PathBuf> {
    let home = std::env::var("HOME").ok()?;
    let site = Path::new(&home).join(".cache/rankprobe/py-dataset");
    let check = "import duckdb, polars, pyarrow, pandas";
    let ready = |site: &Path| run_python(check, site).is_ok_and(|o| o.status.success());
    if ready(&site) {
        return Some(site);
    }
    let installed = Command::new(python())
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("--target")
        .arg(&site)
        .args(["duckdb", "polars", "pyarrow", "pandas"])
        .output();
    match installed {
        Ok(o) if o.status.success() && ready(&site) => Some(site),
        Ok(o) => {
            eprintln!(
                "skipping the Python one-liners: pip could not install duckdb, polars, pyarrow and pandas:\n{}",
                text(&o)
            );
            None
        }
        Err(err) => {
            eprintln!("skipping the Python one-liners: no {} ({err})", python());
            None
        }
    }
}
