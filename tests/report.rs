//! `report` on a fixture results directory with known values.

mod common;

use std::path::Path;

use rankprobe::probe::ProbeRow;
use rankprobe::report::{build_report, ReportSettings};
use rankprobe::spec::RunConfig;
use rankprobe::store::manifest::{Manifest, RunStatus};
use rankprobe::store::metrics::{metrics_frame, write_parquet, METRICS_FILE};
use rankprobe::store::probes::{probes_frame, PROBES_FILE};
use rankprobe::train::{MetricRow, Split};

fn base_config() -> RunConfig {
    common::plan_text(&common::tiny_text()).unwrap().runs[0]
        .config
        .clone()
}

/// A run with val loss 5 - tokens/1000 and per-layer PRs `layer_prs(tokens)` on 2 heads
/// (head values pr - 1 and pr + 1, so the head mean is pr).
fn write_run(
    study: &Path,
    label: &str,
    index: usize,
    status: RunStatus,
    layer_prs: &dyn Fn(u64) -> Vec<f64>,
) {
    let mut config = base_config();
    config.schedule.tokens = 3000;
    let dir = study.join(format!("run={label}-0000000000{index:02}"));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = Manifest {
        study: "fixture".into(),
        label: label.into(),
        run_id: format!("0000000000{index:02}"),
        index,
        seed: 1,
        status,
        error: None,
        config,
        overrides: vec![],
        device: "cpu".into(),
        git: None,
        versions: vec![],
        data: None,
        trained_params: None,
        started_at: "2026-01-01T00:00:00Z".into(),
        ended_at: None,
        wall_seconds: None,
        steps: None,
        tokens: None,
        final_val_loss: None,
        probe_seconds: None,
        probe_share: None,
        resumed_from_step: None,
        checkpoint_seconds: None,
        checkpoint_share: None,
        checksums: Default::default(),
    };
    manifest.write(&dir).unwrap();
    let points = [0u64, 1000, 2000, 3000];
    let metrics: Vec<MetricRow> = points
        .iter()
        .map(|&t| MetricRow {
            step: t / 100,
            tokens: t,
            split: Split::Val,
            metric: "loss",
            value: 5.0 - t as f64 / 1000.0,
            elapsed_s: 0.0,
        })
        .collect();
    write_parquet(
        &dir.join(METRICS_FILE),
        &mut metrics_frame(label, &metrics).unwrap(),
    )
    .unwrap();
    let mut probes = Vec::new();
    for &t in &points {
        for (layer, pr) in layer_prs(t).into_iter().enumerate() {
            for (head, value) in [(0, pr - 1.0), (1, pr + 1.0)] {
                probes.push(ProbeRow {
                    step: t / 100,
                    tokens: t,
                    layer: layer as u32,
                    head,
                    site: "k_rope",
                    metric: "study_pr",
                    value,
                });
            }
        }
    }
    write_parquet(
        &dir.join(PROBES_FILE),
        &mut probes_frame(label, &probes).unwrap(),
    )
    .unwrap();
}

#[test]
fn report_tables_show_the_fixture_values_and_missing_runs() {
    let study = std::env::temp_dir().join(format!("rankprobe-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&study);
    std::fs::create_dir_all(&study).unwrap();
    write_run(&study, "QK", 0, RunStatus::Done, &|t| {
        vec![30.0 - t as f64 / 200.0, 20.0]
    });
    write_run(&study, "noQK", 1, RunStatus::Running, &|_| vec![40.0, 50.0]);
    let report = build_report(&study, &ReportSettings::default()).unwrap();
    let comparison = &report
        .csv
        .iter()
        .find(|(n, _)| n == "comparison.csv")
        .unwrap()
        .1;
    let lines: Vec<&str> = comparison.lines().collect();
    // Points: 2000 (nearest 2/3 of 3000) and the last probe, 3000.
    assert_eq!(lines[0], "condition,status,val loss @2000,study_pr @2000,val loss @3000,study_pr @3000,layer min,layer mean,layer max,layers < 10");
    // QK at 2000: layers 20 and 20 -> 20; at 3000: layers 15 and 20 -> 17.5.
    assert_eq!(
        lines[1],
        "QK,done,3.0000,20.00,2.0000,17.50,15.00,17.50,20.00,0"
    );
    assert_eq!(
        lines[2],
        "noQK,running,3.0000,45.00,2.0000,45.00,40.00,45.00,50.00,0"
    );
    let layers = &report
        .csv
        .iter()
        .find(|(n, _)| n == "layers.csv")
        .unwrap()
        .1;
    assert_eq!(layers, "layer,QK,noQK\n0,15.00,40.00\n1,20.00,50.00\n");
    let trajectories = &report
        .csv
        .iter()
        .find(|(n, _)| n == "trajectories.csv")
        .unwrap()
        .1;
    assert!(
        trajectories.starts_with("tokens,QK,noQK\n0,25.00,45.00\n1000,22.50,45.00\n"),
        "{trajectories}"
    );
    assert!(report.markdown.contains("| QK | done |"));
    assert!(
        report
            .markdown
            .contains("noQK: running, shown as far as it got"),
        "{}",
        report.markdown
    );
    std::fs::remove_dir_all(&study).unwrap();
}

/// Every single-bit flip in a finished run's result files is reported as unreadable (the
/// manifest's SHA-256 catches the flips a parquet reader would accept), and none makes a
/// reader panic, with or without the checksum.
#[test]
fn every_bit_flip_in_a_result_file_is_caught_without_a_panic() {
    use rankprobe::report::load::load_run;
    use rankprobe::store::manifest::sha256_file;

    let study = std::env::temp_dir().join(format!("rankprobe-flips-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&study);
    std::fs::create_dir_all(&study).unwrap();
    write_run(&study, "QK", 0, RunStatus::Done, &|_| vec![30.0, 20.0]);
    let dir = study.join("run=QK-000000000000");
    let mut manifest = Manifest::read(&dir).unwrap();
    for name in [METRICS_FILE, PROBES_FILE] {
        let sum = sha256_file(&dir.join(name)).unwrap();
        manifest.checksums.insert(name.to_owned(), sum);
    }
    manifest.write(&dir).unwrap();
    let intact = load_run(&dir, "k_rope", "study_pr").unwrap();
    assert!(intact.unreadable.is_empty(), "{:?}", intact.unreadable);
    let mut flips = 0;
    for name in [METRICS_FILE, PROBES_FILE] {
        let path = dir.join(name);
        let original = std::fs::read(&path).unwrap();
        for byte in 0..original.len() {
            let mut damaged = original.clone();
            damaged[byte] ^= 1 << (byte % 8);
            std::fs::write(&path, &damaged).unwrap();
            let run = load_run(&dir, "k_rope", "study_pr").unwrap();
            assert!(
                run.unreadable.iter().any(|u| u.starts_with(name)),
                "{name}: a flip of byte {byte} went unnoticed"
            );
            flips += 1;
        }
        std::fs::write(&path, &original).unwrap();
    }
    assert!(flips > 500, "{flips}");
    // The report still renders, listing the damaged file.
    let path = dir.join(METRICS_FILE);
    let original = std::fs::read(&path).unwrap();
    let mut damaged = original.clone();
    damaged[original.len() / 2] ^= 0x10;
    std::fs::write(&path, &damaged).unwrap();
    let report = build_report(&study, &ReportSettings::default()).unwrap();
    assert!(
        report.markdown.contains("checksum mismatch"),
        "{}",
        report.markdown
    );
    std::fs::remove_dir_all(&study).unwrap();
}
