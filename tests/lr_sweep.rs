//! A learning-rate sweep end to end: a `LogGrid` over `schedule.lr_scale` whose top rate
//! diverges, in a study that expects divergence. The sweep exits 0, the diverged runs keep
//! their rows and are counted, `grad_norm` and `max_logit` are recorded every step of
//! every run, and the report's LR table equals a computation of its own from the parquet
//! files and manifests.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use rankprobe::store::frame::read_parquet;
use rankprobe::store::manifest::{Manifest, RunStatus};
use rankprobe::store::Table;

/// The micro study (2 layers, d_model 32, 40 steps) as an AdamW LR sweep: three rates
/// (x0.1, x10, x1000 of 0.006) and two seeds; divergence: above the step-0 loss at one
/// evaluation, or non-finite.
fn lr_study() -> String {
    let text =
        std::fs::read_to_string(common::root().join("tests/studies/v1_checkpoints.ron")).unwrap();
    let start = text.find("    sweep: [").unwrap();
    let sweep = r#"    sweep: [
        Conditions([(name: "adamw", description: "AdamW", set: {"optimizer": AdamW(lr: 0.006, betas: (0.9, 0.95), eps: 1e-8, weight_decay: 0.0)})]),
        LogGrid(path: "schedule.lr_scale", from: 0.1, to: 1000.0, points: 3, prefix: "lrx"),
        Seeds([1, 2]),
    ],
)
"#;
    let text = format!("{}{sweep}", &text[..start])
        .replace("name: \"v1ckpt\"", "name: \"lrsweep\"")
        .replace(
            "execution: (device: Cpu, checkpoint_every_tokens: 2_048),",
            "execution: (device: Cpu, divergence_expected: true),",
        )
        .replace(
            "eval_every_tokens: 4_096,",
            "eval_every_tokens: 4_096,\n            max_grad_norm: 1.0,\n            divergence: (margin: 0.0, evaluations: 1),",
        );
    assert!(text.contains("divergence_expected") && text.contains("max_grad_norm"));
    text
}

/// What this test reads of one run: (label, seed, status, step-0 loss, last val loss,
/// rows of `metric` by step).
struct Run {
    label: String,
    seed: u64,
    status: RunStatus,
    initial: f64,
    last: f64,
    steps: BTreeMap<String, Vec<u64>>,
}

fn read_run(dir: &Path) -> Run {
    let manifest = Manifest::read(dir).unwrap();
    let frame = read_parquet(&common::table_of(dir, Table::Metrics)).unwrap();
    let (steps, tokens) = (
        common::column_u64(&frame, "step"),
        common::column_u64(&frame, "tokens"),
    );
    let (splits, metrics) = (
        common::column_str(&frame, "split"),
        common::column_str(&frame, "metric"),
    );
    let values = common::column_f64(&frame, "value");
    let mut val: BTreeMap<u64, f64> = BTreeMap::new();
    let mut by_metric: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for i in 0..frame.height() {
        if splits[i] == "val" && metrics[i] == "loss" {
            val.insert(tokens[i], values[i]);
        }
        if splits[i] == "train" {
            by_metric
                .entry(metrics[i].clone())
                .or_default()
                .push(steps[i]);
        }
    }
    Run {
        label: manifest.label,
        seed: manifest.seed,
        status: manifest.status,
        initial: val[&0],
        last: *val.values().next_back().unwrap(),
        steps: by_metric,
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rankprobe-lr-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_diverging_lr_sweep_exits_0_and_its_table_equals_the_parquet_files() {
    let dir = scratch("expected");
    let (results, output) = common::sweep_study(&dir, "lrsweep.ron", &lr_study(), &[]);
    let text = common::text(&output);
    assert!(output.status.success(), "{text}");
    let study = results.join("lrsweep");
    let runs: Vec<Run> = ["0.1", "10", "1000"]
        .iter()
        .flat_map(|x| [1, 2].map(|s| format!("adamw_lrx{x}_s{s}")))
        .map(|label| read_run(&common::run_dir(&study, &label)))
        .collect();
    let diverged = runs
        .iter()
        .filter(|r| r.status == RunStatus::Diverged)
        .count();
    assert!(
        diverged >= 1,
        "x1000 of AdamW's rate should diverge: {text}"
    );
    assert!(
        runs.iter()
            .filter(|r| r.label.contains("lrx0.1"))
            .all(|r| r.status == RunStatus::Done),
        "{text}"
    );
    for run in &runs {
        // Every step the run took has its pre-clip gradient norm and largest logit,
        // diverged runs included.
        let taken = run.steps["loss"].clone();
        assert!(!taken.is_empty());
        for metric in [
            "grad_norm",
            "max_logit",
            "max_logit.layer0",
            "max_logit.layer1",
        ] {
            assert_eq!(
                run.steps.get(metric),
                Some(&taken),
                "{} {metric}",
                run.label
            );
        }
    }
    // The LR table, computed here from the files: scored loss = min(last, initial) for a
    // finished run, the initial loss for a diverged one; sensitivity per seed.
    let scored = |r: &Run| match r.status {
        RunStatus::Done => r.last.min(r.initial),
        _ => r.initial,
    };
    let per_seed: Vec<f64> = [1u64, 2]
        .iter()
        .map(|&seed| {
            let losses: Vec<f64> = runs.iter().filter(|r| r.seed == seed).map(scored).collect();
            assert_eq!(losses.len(), 3);
            let min = losses.iter().copied().fold(f64::INFINITY, f64::min);
            losses.iter().sum::<f64>() / 3.0 - min
        })
        .collect();
    let sensitivity = (per_seed[0] + per_seed[1]) / 2.0;
    let mean_at = |x: &str| {
        let at: Vec<f64> = runs
            .iter()
            .filter(|r| r.label.contains(&format!("lrx{x}_")))
            .map(scored)
            .collect();
        at.iter().sum::<f64>() / at.len() as f64
    };
    let (best_x, best_loss) = [("0.1", 0.1), ("10", 10.0), ("1000", 1000.0)]
        .iter()
        .map(|&(label, x)| (x, mean_at(label)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let csv = std::fs::read_to_string(study.join("report/lr_sensitivity.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert!(lines.next().is_none(), "{csv}");
    let field = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    let number = |name: &str| field(name).parse::<f64>().unwrap();
    assert_eq!(field("condition"), "adamw");
    assert_eq!(field("runs"), "6");
    assert_eq!(field("diverged"), diverged.to_string());
    assert_eq!(number("best_lr"), best_x);
    assert!(
        (number("loss_at_best_lr") - best_loss).abs() < 1e-9,
        "{csv}"
    );
    assert!(
        (number("lr_sensitivity") - sensitivity).abs() < 1e-9,
        "{csv} vs {sensitivity}"
    );
    assert_eq!(field("lr_sensitivity_seeds"), "2");
    // The summary and the page carry the section and the figure.
    let summary = std::fs::read_to_string(study.join("report/summary.md")).unwrap();
    assert!(
        summary.contains("## Learning-rate sweep (`schedule.lr_scale`)"),
        "{summary}"
    );
    assert!(summary.contains("diverged)"), "{summary}");
    assert!(study.join("report/lr_sweep.png").is_file());
    let page = std::fs::read_to_string(study.join("report/report.html")).unwrap();
    assert!(page.contains("\"x_axis\":\"schedule.lr_scale\""));
}

#[test]
fn without_expected_divergence_the_same_sweep_exits_1() {
    let dir = scratch("unexpected");
    let text = lr_study()
        .replace("divergence_expected: true", "divergence_expected: false")
        .replace("Seeds([1, 2]),", "Seeds([1]),")
        .replace(
            "from: 0.1, to: 1000.0, points: 3",
            "from: 100.0, to: 1000.0, points: 2",
        );
    let (_, output) = common::sweep_study(&dir, "lrsweep.ron", &text, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", common::text(&output));
    assert!(common::text(&output).contains("(diverged)"));
}

#[test]
fn z_loss_trains_and_log_z_is_recorded_at_every_evaluation() {
    let dir = scratch("zloss");
    // One AdamW run at the base rate, z-loss large enough (0.01) to matter in 40 steps,
    // and the same run without it.
    let text = lr_study().replace("Seeds([1, 2]),", "Seeds([1]),").replace(
        r#"LogGrid(path: "schedule.lr_scale", from: 0.1, to: 1000.0, points: 3, prefix: "lrx"),"#,
        r#"Grid(path: "schedule.z_loss", values: [None, 0.01], labels: ["plain", "z"]),"#,
    );
    let (results, output) = common::sweep_study(&dir, "zloss.ron", &text, &[]);
    assert!(output.status.success(), "{}", common::text(&output));
    let study = results.join("lrsweep");
    let log_z = |label: &str| -> Vec<f64> {
        let dir = common::run_dir(&study, label);
        let frame = read_parquet(&common::table_of(&dir, Table::Metrics)).unwrap();
        let (splits, metrics) = (
            common::column_str(&frame, "split"),
            common::column_str(&frame, "metric"),
        );
        let values = common::column_f64(&frame, "value");
        (0..frame.height())
            .filter(|&i| splits[i] == "val" && metrics[i] == "log_z")
            .map(|i| values[i])
            .collect()
    };
    let (plain, z) = (log_z("adamw_plain_s1"), log_z("adamw_z_s1"));
    // Step 0 and every 4,096 tokens of 20,480: 6 evaluations, the same at step 0.
    assert_eq!((plain.len(), z.len()), (6, 6), "{plain:?} {z:?}");
    assert!(plain.iter().chain(&z).all(|v| v.is_finite() && *v > 0.0));
    assert_eq!(plain[0], z[0]);
    // z-loss pulls log Z down (towards 0) against the plain run.
    assert!(
        z[5] < plain[5],
        "log Z at the end: z-loss {} vs plain {}",
        z[5],
        plain[5]
    );
}
