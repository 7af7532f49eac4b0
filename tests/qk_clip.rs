//! `model.qk_clip`: a real sweep of the micro model without QK-norm, with and without
//! the clip, under Muon and AdamW. The clipped runs keep their largest attention logit
//! near tau where the same runs without the clip go past it; each run records, per head,
//! how often and how hard it was clipped; a clip beside QK-norm is refused before any
//! work. (Resuming a clipped run exactly is in tests/optimizers.rs; the rule itself,
//! heads ending at tau on the batch they were clipped on, in `optim::qk_clip`'s tests.)

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use rankprobe::store::frame::read_parquet;
use rankprobe::store::Table;

const TAU: f64 = 0.3;

fn study(conditions: &str) -> String {
    common::micro_study("qkclip", conditions)
        .replace("qk_norm: RmsNorm(gain: Learnable)", "qk_norm: None")
        .replace(
            "metrics: [StudyPr, R90]",
            "metrics: [StudyPr, MaxAttentionLogit]",
        )
        .replace(
            "at_tokens: [0, 8_192, 20_480]",
            "at_tokens: [0, 4_096, 8_192, 12_288, 16_384, 20_480]",
        )
}

const ADAMW: &str = "AdamW(lr: 0.006, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.2)";

/// (metric, step, layer, head) -> value of one run's probes table.
type Probes = BTreeMap<(String, u64, Option<u32>, Option<u32>), f64>;

fn probes(run: &Path) -> Probes {
    let frame = read_parquet(&common::table_of(run, Table::Probes)).unwrap();
    let metrics = common::column_str(&frame, "metric");
    let steps = common::column_u64(&frame, "step");
    let values = common::column_f64(&frame, "value");
    let layers = frame.column("layer").unwrap().u32().unwrap().clone();
    let heads = frame.column("head").unwrap().u32().unwrap().clone();
    (0..values.len())
        .map(|i| {
            let key = (metrics[i].clone(), steps[i], layers.get(i), heads.get(i));
            (key, values[i])
        })
        .collect()
}

/// The largest `max_attention_logit` of any head at `step`.
fn max_logit(probes: &Probes, step: u64) -> f64 {
    (probes.iter())
        .filter(|((metric, s, _, _), _)| metric == "max_attention_logit" && *s == step)
        .map(|(_, v)| *v)
        .fold(f64::NEG_INFINITY, f64::max)
}

#[test]
fn the_clip_bounds_the_largest_logit_and_counts_its_clips() {
    let dir = std::env::temp_dir().join(format!("rankprobe-qkclip-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let clip = format!("\"model.qk_clip\": (tau: {TAU})");
    let conditions = format!(
        "(name: \"muon\"), (name: \"muon_clip\", set: {{{clip}}}),
         (name: \"adamw\", set: {{\"optimizer\": {ADAMW}}}),
         (name: \"adamw_clip\", set: {{\"optimizer\": {ADAMW}, {clip}}})"
    );
    let (results, output) = common::sweep_study(&dir, "qkclip.ron", &study(&conditions), &[]);
    assert!(output.status.success(), "{}", common::text(&output));
    let study_dir = results.join("qkclip");
    let run = |label: &str| probes(&common::run_dir(&study_dir, label));
    let (last, steps_per_probe) = (40u64, [0u64, 8, 16, 24, 32, 40]);

    // Muon: the unclipped run's logits grow past tau; the clipped run's stay within a
    // step's overshoot of it.
    let (muon, muon_clip) = (run("muon"), run("muon_clip"));
    assert!(
        max_logit(&muon, last) > 1.5 * TAU,
        "{}",
        max_logit(&muon, last)
    );
    let clipped_max = steps_per_probe.iter().map(|&s| max_logit(&muon_clip, s));
    let clipped_max = clipped_max.fold(f64::NEG_INFINITY, f64::max);
    assert!(clipped_max < 1.25 * TAU, "{clipped_max} at tau {TAU}");
    // AdamW's steps move these tiny logits by more than tau: the clip lowers the
    // largest logit seen, with larger overshoots.
    let (adamw, adamw_clip) = (run("adamw"), run("adamw_clip"));
    let highest = |p: &Probes| {
        (steps_per_probe.iter())
            .map(|&s| max_logit(p, s))
            .fold(f64::NEG_INFINITY, f64::max)
    };
    assert!(
        highest(&adamw_clip) < 0.75 * highest(&adamw),
        "{} vs {}",
        highest(&adamw_clip),
        highest(&adamw)
    );

    // Every (layer, query head) has its statistics at every probe point: counts that
    // never fall and never pass the steps taken, factors in (0, 1] that never rise.
    for (label, probes) in [("muon_clip", &muon_clip), ("adamw_clip", &adamw_clip)] {
        let mut clipped_somewhere = false;
        for (layer, head) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let at = |metric: &str, step: u64| {
                let key = (metric.to_owned(), step, Some(layer), Some(head));
                *probes
                    .get(&key)
                    .unwrap_or_else(|| panic!("{label}: no {key:?}"))
            };
            let counts: Vec<f64> = steps_per_probe
                .iter()
                .map(|&s| at("qk_clip_steps", s))
                .collect();
            let factors: Vec<f64> = (steps_per_probe.iter())
                .map(|&s| at("qk_clip_min_factor", s))
                .collect();
            assert_eq!(counts[0], 0.0);
            assert!(
                counts.windows(2).all(|w| w[0] <= w[1]),
                "{label}: {counts:?}"
            );
            assert!(counts
                .iter()
                .zip(steps_per_probe)
                .all(|(&c, s)| c <= s as f64));
            assert!(factors.iter().all(|&g| g > 0.0 && g <= 1.0), "{factors:?}");
            assert!(
                factors.windows(2).all(|w| w[0] >= w[1]),
                "{label}: {factors:?}"
            );
            assert!(at("train_max_logit", last) > 0.0);
            clipped_somewhere |= counts[5] > 0.0;
        }
        assert!(clipped_somewhere, "{label}: no head was ever clipped");
    }
    // The report compares the clipped steps (mean over heads) of the clipped runs.
    let summary = std::fs::read_to_string(study_dir.join("report/summary.md")).unwrap();
    assert!(summary.contains("| qk clip steps |"), "{summary}");
    assert!(summary.contains("qk clip steps: steps after which QK-Clip clipped a head"));
    // The unclipped runs write no clip statistics.
    assert!(!muon.keys().any(|(m, ..)| m.starts_with("qk_clip")));

    // Per training step: heads clipped, the smallest factor and the largest logit.
    let metrics = common::metric_rows(&common::run_dir(&study_dir, "muon_clip"));
    for metric in ["qk_clip_heads", "qk_clip_min_factor", "max_logit"] {
        let steps: Vec<u64> = (metrics.iter())
            .filter(|(_, _, split, m, _)| split == "train" && m == metric)
            .map(|(step, ..)| *step)
            .collect();
        assert_eq!(steps, (1..=last).collect::<Vec<_>>(), "{metric}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_clip_beside_qk_norm_or_without_a_positive_tau_is_refused_before_any_work() {
    let dir = std::env::temp_dir().join(format!("rankprobe-qkclip-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let with_norm = study("(name: \"both\", set: {\"model.qk_norm\": RmsNorm(gain: Frozen), \"model.qk_clip\": (tau: 10.0)})");
    let (results, output) = common::sweep_study(&dir, "both.ron", &with_norm, &[]);
    let said = common::text(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(
        said.contains("QK-norm's RMS normalisation undoes"),
        "{said}"
    );
    assert!(said.contains("both.ron:"), "no file:line:col in {said}");
    assert!(!results.join("qkclip").join("runs").exists());
    let negative = study("(name: \"neg\", set: {\"model.qk_clip\": (tau: -1.0)})");
    let (_, output) = common::sweep_study(&dir, "neg.ron", &negative, &[]);
    let said = common::text(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(
        said.contains("`model.qk_clip` must be a positive finite number"),
        "{said}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
