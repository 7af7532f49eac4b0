//! `probes.weights`: the weight-space probes written by a real run equal an independent
//! computation from the run's final weights (a direct SVD of W_K's head block and of the
//! full d_model x d_model bilinear form, where the probe uses head_dim-sized Gram
//! matrices), and cost a small share of the run.

mod common;

use nalgebra::DMatrix;
use rankprobe::model::weights_file::decode;
use rankprobe::store::manifest::Manifest;

fn study() -> String {
    common::micro_study("wprobe", "(name: \"weights\")").replace(
        "eval_sequences: 8,\n        ),\n    ),",
        "eval_sequences: 8,\n            weights: true,\n        ),\n    ),",
    )
}

/// PR and stable rank of singular values.
fn pr_and_stable_rank(mut s: Vec<f64>) -> (f64, f64) {
    s.sort_by(|a, b| b.total_cmp(a));
    let sum: f64 = s.iter().sum();
    let sum_sq: f64 = s.iter().map(|v| v * v).sum();
    (sum * sum / sum_sq, sum_sq / (s[0] * s[0]))
}

fn singular_values(m: DMatrix<f64>) -> Vec<f64> {
    m.svd(false, false)
        .singular_values
        .iter()
        .copied()
        .collect()
}

#[test]
fn weight_probes_equal_a_direct_svd_of_the_final_weights() {
    let dir = std::env::temp_dir().join(format!("rankprobe-wprobe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = study();
    assert!(text.contains("weights: true"), "{text}");
    let (results, output) = common::sweep_study(&dir, "wprobe.ron", &text, &[]);
    assert!(output.status.success(), "{}", common::text(&output));
    let run = common::run_dir(&results.join("wprobe"), "weights");
    let tensors = decode(&std::fs::read(run.join("final.safetensors")).unwrap()).unwrap();
    let get = |name: &str| tensors.iter().find(|t| t.name == name).unwrap();
    let probes = rankprobe::store::frame::read_parquet(&common::table_of(
        &run,
        rankprobe::store::Table::Probes,
    ))
    .unwrap();
    let (sites, metrics) = (
        common::column_str(&probes, "site"),
        common::column_str(&probes, "metric"),
    );
    let (tokens, values) = (
        common::column_u64(&probes, "tokens"),
        common::column_f64(&probes, "value"),
    );
    let layers = probes.column("layer").unwrap().u32().unwrap().clone();
    let heads = probes.column("head").unwrap().u32().unwrap().clone();
    let last = *tokens.iter().max().unwrap();
    let probe = |site: &str, layer: u32, head: Option<u32>, metric: &str| -> f64 {
        let i = (0..values.len())
            .find(|&i| {
                tokens[i] == last
                    && sites[i] == site
                    && metrics[i] == metric
                    && layers.get(i) == Some(layer)
                    && heads.get(i) == head
            })
            .unwrap_or_else(|| panic!("no {site} {metric} for layer {layer} head {head:?}"));
        values[i]
    };
    // The micro model: d_model 32, 2 heads of 16 over 1 key/value head, learned gains.
    let (d, hd) = (32, 16);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs();
    let mut checked = 0;
    for layer in 0..2u32 {
        let wq = get(&format!("blocks.{layer}.wq"));
        let wk = get(&format!("blocks.{layer}.wk"));
        let qg = &get(&format!("blocks.{layer}.q_gain")).values;
        let kg = &get(&format!("blocks.{layer}.k_gain")).values;
        let k = DMatrix::from_fn(hd, d, |r, c| f64::from(wk.values[r * d + c]));
        let (pr, stable) = pr_and_stable_rank(singular_values(k));
        assert!(
            close(probe("w_k", layer, Some(0), "study_pr"), pr),
            "layer {layer} W_K PR"
        );
        assert!(close(probe("w_k", layer, Some(0), "stable_rank"), stable));
        for head in 0..2usize {
            let a = DMatrix::from_fn(hd, d, |r, c| {
                f64::from(qg[r]) * f64::from(wq.values[(head * hd + r) * d + c])
            });
            let c = DMatrix::from_fn(hd, d, |r, col| {
                f64::from(kg[r]) * f64::from(wk.values[r * d + col])
            });
            let (pr, stable) = pr_and_stable_rank(singular_values(a.transpose() * c));
            let head = Some(head as u32);
            assert!(
                close(probe("w_qk", layer, head, "study_pr"), pr),
                "layer {layer} W_QK PR"
            );
            assert!(close(probe("w_qk", layer, head, "stable_rank"), stable));
            checked += 1;
        }
        let mean = qg.iter().map(|&g| f64::from(g)).sum::<f64>() / hd as f64;
        assert!(close(probe("qk_gain", layer, None, "q_gain_mean"), mean));
    }
    assert_eq!(checked, 4);
    let summary = std::fs::read_to_string(results.join("wprobe/report/summary.md")).unwrap();
    assert!(summary.contains("| w k pr | w qk pr |"), "{summary}");
    let manifest = Manifest::read(&run).unwrap();
    eprintln!("probe share with weight probes: {:?}", manifest.probe_share);
    std::fs::remove_dir_all(&dir).unwrap();
}
