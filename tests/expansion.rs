//! Sweep axes expand into the expected run matrix: counts, order, labels, values.

mod common;

use common::{labels, plan_text, tiny_with_sweep};

fn plan(sweep: &str) -> rankprobe::plan::Plan {
    plan_text(&tiny_with_sweep(sweep)).unwrap_or_else(|d| panic!("{d}"))
}

#[test]
fn no_axes_is_one_base_run() {
    let plan = plan("");
    assert_eq!(labels(&plan), ["base"]);
}

#[test]
fn grid_axis_with_generated_and_given_labels() {
    let generated = plan(r#"Grid(path: "optimizer.lr", values: [0.01, 0.02, 0.04]),"#);
    assert_eq!(labels(&generated), ["lr0.01", "lr0.02", "lr0.04"]);
    let lrs: Vec<f64> = generated
        .runs
        .iter()
        .map(|r| match &r.config.optimizer {
            rankprobe::spec::run_config::OptimizerConfig::Muon(m) => m.lr,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(lrs, [0.01, 0.02, 0.04]);
    let given =
        plan(r#"Grid(path: "model.n_layers", values: [2, 4], labels: ["shallow", "deep"]),"#);
    assert_eq!(labels(&given), ["shallow", "deep"]);
    assert_eq!(given.runs[1].config.model.n_layers, 4);
}

#[test]
fn grids_multiply_first_axis_outermost() {
    let plan = plan(
        r#"Grid(path: "optimizer.lr", values: [0.01, 0.02]),
        Grid(path: "model.n_layers", values: [1, 2, 3]),"#,
    );
    assert_eq!(
        labels(&plan),
        [
            "lr0.01_n_layers1",
            "lr0.01_n_layers2",
            "lr0.01_n_layers3",
            "lr0.02_n_layers1",
            "lr0.02_n_layers2",
            "lr0.02_n_layers3"
        ]
    );
    let indices: Vec<usize> = plan.runs.iter().map(|r| r.index).collect();
    assert_eq!(indices, [0, 1, 2, 3, 4, 5]);
}

#[test]
fn named_conditions_apply_whole_values_then_fields() {
    let plan = plan(
        r#"Conditions([
            (name: "muon"),
            (name: "adamw_fast", set: {
                "optimizer.lr": 0.01,
                "optimizer": AdamW(lr: 0.006, betas: (0.9, 0.95), eps: 1e-8, weight_decay: 0.1),
            }),
            (name: "noqk", set: {"model.qk_norm": None, "model.norm_eps": 1e-5}),
        ]),"#,
    );
    assert_eq!(labels(&plan), ["muon", "adamw_fast", "noqk"]);
    match &plan.runs[1].config.optimizer {
        rankprobe::spec::run_config::OptimizerConfig::AdamW(a) => {
            // "optimizer" is applied before "optimizer.lr", whatever the written order.
            assert_eq!(a.lr, 0.01);
            assert_eq!(a.betas, (0.9, 0.95));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        plan.runs[2].config.model.qk_norm,
        rankprobe::spec::run_config::QkNorm::None
    );
    assert_eq!(plan.runs[2].config.model.norm_eps, 1e-5);
}

#[test]
fn zip_advances_paths_together() {
    let plan = plan(
        r#"Zip([
            (path: "optimizer.lr", values: [0.01, 0.02, 0.04]),
            (path: "model.init_std", values: [0.04, 0.02, 0.01], labels: ["a", "b", "c"]),
        ]),"#,
    );
    assert_eq!(labels(&plan), ["lr0.01_a", "lr0.02_b", "lr0.04_c"]);
    assert_eq!(plan.runs[2].config.model.init_std, 0.01);
}

#[test]
fn seeds_axis_sets_the_seed() {
    let plan = plan("Seeds([1, 2, 3]),");
    assert_eq!(labels(&plan), ["s1", "s2", "s3"]);
    let seeds: Vec<u64> = plan.runs.iter().map(|r| r.config.seed).collect();
    assert_eq!(seeds, [1, 2, 3]);
}

#[test]
fn all_axis_kinds_combine() {
    let plan = plan(
        r#"Conditions([(name: "A"), (name: "B", set: {"model.qk_norm": None})]),
        Grid(path: "optimizer.lr", values: [0.01, 0.02]),
        Zip([
            (path: "model.d_ff", values: [256, 512], labels: ["narrow", "wide"]),
            (path: "data.batch_size", values: [8, 16], labels: ["", ""]),
        ]),
        Seeds([7, 8]),"#,
    );
    assert_eq!(plan.runs.len(), 2 * 2 * 2 * 2);
    assert_eq!(plan.runs[0].label, "A_lr0.01_narrow_s7");
    assert_eq!(plan.runs[15].label, "B_lr0.02_wide_s8");
    let last = &plan.runs[15].config;
    assert_eq!(
        (last.model.d_ff, last.data.batch_size, last.seed),
        (512, 16, 8)
    );
}

#[test]
fn expansion_is_deterministic() {
    let sweep = r#"Grid(path: "optimizer.lr", values: [0.01, 0.02]), Seeds([1, 2]),"#;
    let first = plan(sweep);
    let second = plan(sweep);
    assert_eq!(first.runs, second.runs);
}

#[test]
fn a_run_specific_error_names_the_run() {
    let text = tiny_with_sweep(r#"Grid(path: "model.n_kv_heads", values: [2, 3]),"#);
    let shown = plan_text(&text).unwrap_err().to_string();
    assert!(
        shown.contains("n_heads (4) must be divisible by n_kv_heads (3)"),
        "{shown}"
    );
    assert!(shown.contains("in run: n_kv_heads3"), "{shown}");
    assert!(!shown.contains("n_kv_heads2"), "{shown}");
}

#[test]
fn conditions_are_labels_without_their_seeds() {
    let plan = common::plan_text(&common::tiny_with_sweep(
        r#"Conditions([(name: "A", description: "first"), (name: "B", set: {"optimizer.lr": 0.01})]), Seeds([1, 2])"#,
    ))
    .unwrap();
    let got: Vec<(&str, &str, &str)> = plan
        .runs
        .iter()
        .map(|r| {
            (
                r.label.as_str(),
                r.condition.as_str(),
                r.description.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("A_s1", "A", "first"),
            ("A_s2", "A", "first"),
            ("B_s1", "B", ""),
            ("B_s2", "B", ""),
        ]
    );
    // A grid over `seed` repeats the conditions as `Seeds` does.
    let plan = common::plan_text(&common::tiny_with_sweep(
        r#"Grid(path: "seed", values: [7, 8]), Grid(path: "optimizer.lr", values: [0.01, 0.02])"#,
    ))
    .unwrap();
    let conditions: Vec<&str> = plan.runs.iter().map(|r| r.condition.as_str()).collect();
    assert_eq!(conditions, ["lr0.01", "lr0.02", "lr0.01", "lr0.02"]);
    let plan = common::plan_text(&common::tiny_with_sweep("Seeds([1, 2])")).unwrap();
    assert!(plan.runs.iter().all(|r| r.condition == "base"));
}
