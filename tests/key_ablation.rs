//! The causal key-ablation probe (`probes.key_ablation`): projecting a layer's keys onto
//! all head_dim directions changes nothing; the loss increases it records equal an
//! independent PyTorch computation on the exported run (keys after RoPE projected per KV
//! head onto the top-r eigenvectors of K^T K over the probe's rows), where torch is
//! importable (`RANKPROBE_PYTHON`, else `python3`); without it that half is skipped.

mod common;

use std::process::Command;

use rankprobe::store::frame::read_parquet;
use rankprobe::store::Table;

fn study() -> String {
    common::micro_study("ablate", "(name: \"ablate\")").replace(
        "eval_sequences: 8,\n        ),\n    ),",
        "eval_sequences: 4,\n            key_ablation: [1, 4, 16],\n        ),\n    ),",
    )
}

/// The PyTorch side: per rank, the eval loss increase with layer `layer`'s keys projected.
const REFERENCE: &str = r#"
import json, sys, torch
run, layer, ranks, sequences = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, run)
import rankprobe_model as rm
model = rm.load(run)
captured = {}
def capture(k):
    captured["k"] = k
    return k
model.blocks[layer].key_hook = capture
base = rm.eval_loss(model, run)
keys = captured["k"][:sequences]
out = {}
for r in ranks:
    matrices = []
    for h in range(keys.shape[1]):
        rows = keys[:, h].reshape(-1, keys.shape[-1]).double()
        _, vectors = torch.linalg.eigh(rows.T @ rows)
        top = vectors[:, -r:]
        matrices.append((top @ top.T).float())
    model.blocks[layer].key_hook = lambda k: torch.stack([k[:, h] @ matrices[h] for h in range(k.shape[1])], dim=1)
    out[str(r)] = rm.eval_loss(model, run) - base
print(json.dumps(out))
"#;

#[test]
fn key_ablation_increases_match_pytorch_and_full_rank_changes_nothing() {
    let dir = std::env::temp_dir().join(format!("rankprobe-ablate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = study();
    assert!(text.contains("key_ablation"), "{text}");
    let (results, sweep) = common::sweep_study(&dir, "ablate.ron", &text, &[]);
    assert!(sweep.status.success(), "{}", common::text(&sweep));
    let run = common::run_dir(&results.join("ablate"), "ablate");
    let frame = read_parquet(&common::table_of(&run, Table::Probes)).unwrap();
    let (metrics, values) = (
        common::column_str(&frame, "metric"),
        common::column_f64(&frame, "value"),
    );
    let tokens = common::column_u64(&frame, "tokens");
    let layers = frame.column("layer").unwrap().u32().unwrap().clone();
    let last = *tokens.iter().max().unwrap();
    let probe = |layer: u32, metric: &str| -> f64 {
        let i = (0..values.len())
            .find(|&i| tokens[i] == last && metrics[i] == metric && layers.get(i) == Some(layer))
            .unwrap_or_else(|| panic!("no {metric} for layer {layer}"));
        values[i]
    };
    for layer in 0..2 {
        // All 16 directions: the keys are unchanged up to rounding.
        let full = probe(layer, "loss_increase_r16");
        assert!(
            full.abs() < 1e-4,
            "layer {layer}: full rank changed the loss by {full}"
        );
        let rank = probe(layer, "ablation_rank_at_pr");
        assert!((1.0..=16.0).contains(&rank), "{rank}");
        probe(layer, "loss_increase_at_pr");
    }
    let python = std::env::var("RANKPROBE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    // The report's comparison shows each rank's increase and the one at the PR, each as
    // the mean over layers and as its worst layer.
    let summary = std::fs::read_to_string(results.join("ablate/report/summary.md")).unwrap();
    let column = "| loss increase r1 | loss increase r1 worst layer | loss increase r4 | \
                  loss increase r4 worst layer | loss increase r16 | loss increase r16 worst \
                  layer | loss increase at pr | loss increase at pr worst layer |";
    assert!(summary.contains(column), "no `{column}` in\n{summary}");
    let comparison = std::fs::read_to_string(results.join("ablate/report/comparison.csv")).unwrap();
    let mut lines = comparison.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let worst: f64 = row[at("loss increase r1 worst layer")].parse().unwrap();
    let want = probe(0, "loss_increase_r1").max(probe(1, "loss_increase_r1"));
    assert!(
        (worst - want).abs() < 1e-4,
        "worst layer {worst}, layers' max {want}"
    );
    let has_torch = Command::new(&python)
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        eprintln!("skipped the PyTorch half: torch is not importable (set RANKPROBE_PYTHON)");
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    }
    let out = dir.join("exported");
    let export = common::rankprobe(&[
        "export",
        results.join("ablate").to_str().unwrap(),
        "--to",
        out.to_str().unwrap(),
    ]);
    assert!(export.status.success(), "{}", common::text(&export));
    let exported = out.join(run.file_name().unwrap());
    for layer in 0..2u32 {
        let output = Command::new(&python)
            .args([
                "-c",
                REFERENCE,
                exported.to_str().unwrap(),
                &layer.to_string(),
                "[1, 4, 16]",
                "4",
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", common::text(&output));
        let reference: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        for r in [1, 4, 16] {
            let (ours, theirs) = (
                probe(layer, &format!("loss_increase_r{r}")),
                reference[r.to_string()].as_f64().unwrap(),
            );
            assert!(
                (ours - theirs).abs() <= 1e-4 + 1e-3 * theirs.abs(),
                "layer {layer} r {r}: rankprobe {ours}, PyTorch {theirs}"
            );
            eprintln!("layer {layer} r {r}: rankprobe {ours:.6}, PyTorch {theirs:.6}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
