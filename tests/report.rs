//! `report` on a fixture results directory with known values.

mod common;

use std::path::Path;

use rankprobe::probe::ProbeRow;
use rankprobe::report::{build_report, ReportSettings};
use rankprobe::spec::RunConfig;
use rankprobe::store::frame::RunKeys;
use rankprobe::store::manifest::{Manifest, RunStatus};
use rankprobe::store::metrics::{metrics_frame, write_parquet};
use rankprobe::store::probes::probes_frame;
use rankprobe::store::{RunPaths, Table};
use rankprobe::train::{MetricRow, Split};

fn base_config() -> RunConfig {
    common::plan_text(&common::tiny_text()).unwrap().runs[0]
        .config
        .clone()
}

/// One fixture run.
struct Fixture<'a> {
    label: &'a str,
    condition: &'a str,
    seed: u64,
    index: usize,
    status: RunStatus,
    /// Added to the val loss 5 - tokens/1000.
    loss_offset: f64,
    /// Per-layer PRs at `tokens`, on 2 heads (head values pr - 1 and pr + 1, so the head
    /// mean is pr).
    layer_prs: &'a dyn Fn(u64) -> Vec<f64>,
}

fn write_run(study: &Path, run: Fixture) -> RunPaths {
    let mut config = base_config();
    config.schedule.tokens = 3000;
    config.seed = run.seed;
    let run_id = format!("0000000000{:02}", run.index);
    let paths = RunPaths::named(study, &format!("{}-{run_id}", run.label));
    paths.create_dirs().unwrap();
    let manifest = Manifest {
        condition: Some(run.condition.into()),
        description: Some(format!("{} described", run.condition)),
        status: run.status,
        ..Manifest::starting("fixture", run.label, &run_id, run.index, config)
    };
    manifest.write(&paths.dir).unwrap();
    let keys = RunKeys::of(&manifest);
    let points = [0u64, 1000, 2000, 3000];
    let metrics: Vec<MetricRow> = points
        .iter()
        .map(|&t| MetricRow {
            step: t / 100,
            tokens: t,
            split: Split::Val,
            metric: "loss",
            value: 5.0 - t as f64 / 1000.0 + run.loss_offset,
            elapsed_s: 0.0,
        })
        .collect();
    write_parquet(
        paths.table(Table::Metrics),
        &mut metrics_frame(&keys, &metrics).unwrap(),
    )
    .unwrap();
    let mut probes = Vec::new();
    for &t in &points {
        for (layer, pr) in (run.layer_prs)(t).into_iter().enumerate() {
            for (head, value) in [(0, pr - 1.0), (1, pr + 1.0)] {
                probes.push(ProbeRow {
                    step: t / 100,
                    tokens: t,
                    layer: Some(layer as u32),
                    head: Some(head),
                    site: "k_rope",
                    metric: "study_pr",
                    value,
                });
            }
        }
    }
    write_parquet(
        paths.table(Table::Probes),
        &mut probes_frame(&keys, &probes).unwrap(),
    )
    .unwrap();
    paths
}

fn csv<'a>(report: &'a rankprobe::report::Report, name: &str) -> &'a str {
    &report.csv.iter().find(|(n, _)| n == name).unwrap().1
}

fn fresh_dir(name: &str) -> std::path::PathBuf {
    let study = std::env::temp_dir().join(format!("rankprobe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&study);
    std::fs::create_dir_all(&study).unwrap();
    study
}

#[test]
fn report_tables_show_the_fixture_values_and_missing_runs() {
    let study = fresh_dir("report");
    let qk = |t: u64| vec![30.0 - t as f64 / 200.0, 20.0];
    write_run(
        &study,
        Fixture {
            label: "QK",
            condition: "QK",
            seed: 1,
            index: 0,
            status: RunStatus::Done,
            loss_offset: 0.0,
            layer_prs: &qk,
        },
    );
    write_run(
        &study,
        Fixture {
            label: "noQK",
            condition: "noQK",
            seed: 1,
            index: 1,
            status: RunStatus::Running,
            loss_offset: 0.0,
            layer_prs: &|_| vec![40.0, 50.0],
        },
    );
    let report = build_report(&study, &ReportSettings::default()).unwrap();
    let lines: Vec<&str> = csv(&report, "comparison.csv").lines().collect();
    // Points: 2000 (nearest 2/3 of 3000) and the last probe, 3000. One seed: plain values.
    assert_eq!(lines[0], "condition,status,val loss @2K,study_pr @2K,val loss @3K,study_pr @3K,layer min,layer mean,layer max,layers < 10");
    // QK at 2000: layers 20 and 20 -> 20; at 3000: layers 15 and 20 -> 17.5.
    assert_eq!(
        lines[1],
        "QK QK described,done,3.0000,20.00,2.0000,17.50,15.00,17.50,20.00,0.0"
    );
    assert_eq!(
        lines[2],
        "noQK noQK described,running,3.0000,45.00,2.0000,45.00,40.00,45.00,50.00,0.0"
    );
    assert_eq!(
        csv(&report, "layers.csv"),
        "layer,QK QK described,noQK noQK described\n0,15.00,40.00\n1,20.00,50.00\n"
    );
    let trajectories = csv(&report, "trajectories.csv");
    assert!(
        trajectories.starts_with(
            "tokens,QK QK described,noQK noQK described\n0,25.00,45.00\n1000,22.50,45.00\n"
        ),
        "{trajectories}"
    );
    let md = &report.markdown;
    assert!(md.contains("| QK QK described | done |"), "{md}");
    assert!(md.contains("noQK: running, shown as far as it got"), "{md}");
    // One seed: the findings say what can and cannot be concluded.
    assert!(
        md.contains(
            "is highest for noQK (noQK described): 45.00, and lowest for QK (QK described): 17.50"
        ),
        "{md}"
    );
    assert!(
        md.contains("With one seed per condition, no difference can be told from seed noise"),
        "{md}"
    );
    std::fs::remove_dir_all(&study).unwrap();
}

/// Three seeds per condition with hand-computable spreads: the comparison shows mean ±
/// the 95% half-width, the paired differences are by seed, and the findings name the
/// differences whose interval excludes zero.
#[test]
fn seeds_give_intervals_and_paired_differences() {
    let study = fresh_dir("report-seeds");
    for seed in 1..=3u64 {
        let s = seed as f64;
        let qk = move |_: u64| vec![20.0 + s, 20.0 + s];
        let no_qk = move |_: u64| vec![40.0 + 3.0 * s, 40.0 + 3.0 * s];
        let (qk_label, no_label) = (format!("QK_s{seed}"), format!("noQK_s{seed}"));
        write_run(
            &study,
            Fixture {
                label: &qk_label,
                condition: "QK",
                seed,
                index: seed as usize - 1,
                status: RunStatus::Done,
                loss_offset: 0.1 * s,
                layer_prs: &qk,
            },
        );
        write_run(
            &study,
            Fixture {
                label: &no_label,
                condition: "noQK",
                seed,
                index: 2 + seed as usize,
                status: RunStatus::Done,
                loss_offset: 0.3 * s + 0.2,
                layer_prs: &no_qk,
            },
        );
    }
    let report = build_report(&study, &ReportSettings::default()).unwrap();
    let md = &report.markdown;
    // QK's PR over seeds: 21, 22, 23: mean 22, sd 1, half-width 4.303 / sqrt(3) = 2.48.
    assert!(md.contains("| QK QK described | 3/3 done | 3 |"), "{md}");
    assert!(md.contains("22.00 ± 2.48"), "{md}");
    let long = csv(&report, "comparison_long.csv");
    assert!(long.starts_with("condition,description,quantity,mean,sd,n,ci_low,ci_high\n"));
    let row = long
        .lines()
        .find(|l| l.starts_with("QK,QK described,study_pr@3000,"))
        .unwrap();
    let fields: Vec<f64> = row.split(',').skip(3).map(|f| f.parse().unwrap()).collect();
    let half = 4.303 / 3f64.sqrt();
    assert!((fields[0] - 22.0).abs() < 1e-9 && (fields[1] - 1.0).abs() < 1e-9 && fields[2] == 3.0);
    assert!((fields[3] - (22.0 - half)).abs() < 1e-9 && (fields[4] - (22.0 + half)).abs() < 1e-9);
    // QK - noQK by seed: PR -20 - 2s = -22, -24, -26 (mean -24, sd 2); val loss
    // -0.2 - 0.2s = -0.4, -0.6, -0.8 (mean -0.6, sd 0.2).
    // Paired t by hand: PR t = -24 / (2 / sqrt 3) = -20.8, df 2, p = 0.0023; val loss
    // t = -0.6 / (0.2 / sqrt 3) = -5.20, p = 0.0351. Holm over the 2: 2 x 0.0023 = 0.0046
    // and max(0.0046, 0.0351) = 0.0351.
    let differences = csv(&report, "differences.csv");
    let row = differences.lines().nth(1).unwrap();
    assert!(row.starts_with("QK − noQK,primary,3,"), "{differences}");
    let pr_half = 4.303 * 2.0 / 3f64.sqrt();
    assert!(
        row.contains(&format!(
            "-24.00 [{:+.2}, {:+.2}] p=0.002 p_Holm=0.005 *",
            -24.0 - pr_half,
            -24.0 + pr_half
        )),
        "{row}"
    );
    assert!(
        row.contains("-0.6000 [-1.0969, -0.1031] p=0.035 p_Holm=0.035 *"),
        "{row}"
    );
    assert!(
        md.contains("family of 2 tests (every difference in the table)"),
        "{md}"
    );
    assert!(md.contains("Paired differences (a − b, by seed) the Holm-corrected test shows at 5%: QK − noQK (n = 3): val loss @3K -0.6000 ["), "{md}");
    assert!(
        md.contains(
            "Validation loss at 3K tokens, best to worst: QK 2.200 ± 0.248, noQK 2.800 ± 0.745."
        ),
        "{md}"
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

    let study = fresh_dir("flips");
    let paths = write_run(
        &study,
        Fixture {
            label: "QK",
            condition: "QK",
            seed: 1,
            index: 0,
            status: RunStatus::Done,
            loss_offset: 0.0,
            layer_prs: &|_| vec![30.0, 20.0],
        },
    );
    let mut manifest = Manifest::read(&paths.dir).unwrap();
    for table in Table::ALL {
        let sum = sha256_file(paths.table(table)).unwrap();
        manifest.checksums.insert(table.file_name().to_owned(), sum);
    }
    manifest.write(&paths.dir).unwrap();
    let intact = load_run(&paths, "k_rope", "study_pr").unwrap();
    assert!(intact.unreadable.is_empty(), "{:?}", intact.unreadable);
    let mut flips = 0;
    for table in Table::ALL {
        let (name, path) = (table.file_name(), paths.table(table));
        let original = std::fs::read(path).unwrap();
        for byte in 0..original.len() {
            let mut damaged = original.clone();
            damaged[byte] ^= 1 << (byte % 8);
            std::fs::write(path, &damaged).unwrap();
            let run = load_run(&paths, "k_rope", "study_pr").unwrap();
            assert!(
                run.unreadable.iter().any(|u| u.starts_with(name)),
                "{name}: a flip of byte {byte} went unnoticed"
            );
            flips += 1;
        }
        std::fs::write(path, &original).unwrap();
    }
    assert!(flips > 500, "{flips}");
    // The report still renders, listing the damaged file.
    let path = paths.table(Table::Metrics);
    let original = std::fs::read(path).unwrap();
    let mut damaged = original.clone();
    damaged[original.len() / 2] ^= 0x10;
    std::fs::write(path, &damaged).unwrap();
    let report = build_report(&study, &ReportSettings::default()).unwrap();
    assert!(
        report.markdown.contains("checksum mismatch"),
        "{}",
        report.markdown
    );
    std::fs::remove_dir_all(&study).unwrap();
}
