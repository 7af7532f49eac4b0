//! Run ids are content hashes of resolved configs: stable, and sensitive to every field.

mod common;

use rankprobe::plan::run_id::{canonical_json, run_id};
use rankprobe::spec::{ron_options, RunConfig};
use serde_json::Value;

fn tiny_base() -> RunConfig {
    let plan = common::plan_text(&common::tiny_with_sweep("")).unwrap();
    plan.runs[0].config.clone()
}

/// A fixed config written out in full, so this test does not move when examples change.
const GOLDEN_CONFIG: &str = r#"(
    seed: 42,
    data: (corpus: Sotu, tokenizer: Bpe(vocab: 2048), seq_len: 128, batch_size: 16,
           val_fraction: 0.1, eval_sequences: 16),
    model: (n_layers: 4, d_model: 128, n_heads: 4, n_kv_heads: 2, head_dim: 32, d_ff: 512,
            activation: SquaredRelu, tied_embeddings: true, embedding_scale: SqrtDModel,
            rope_base: 10000.0, init_std: 0.02, qk_norm: RmsNorm(gain: Learnable), norm_eps: 1e-6),
    optimizer: Muon(variant: PolarExpress, lr: 0.024, momentum: 0.95, nesterov: true, ns_steps: 5,
            update_scale: AspectRatio, weight_decay: 0.0, precision: F32, matrices: MergedQkvo,
            adamw: (lr: 0.006, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.2)),
    schedule: (tokens: 1_000_000, lr: Constant, eval_every_tokens: 100_000),
    probes: (at_tokens: [0, 500_000, 1_000_000], sites: [(tensor: K, after: Rope)],
             metrics: [StudyPr, R90], eval_sequences: 16),
)"#;

#[test]
fn golden_run_id_is_stable() {
    let config: RunConfig = ron_options().from_str(GOLDEN_CONFIG).unwrap();
    // If this changes, every existing result directory is orphaned: only change it
    // together with a migration note in README.
    assert_eq!(run_id(&config), "d41100dccce8");
    assert_eq!(run_id(&config).len(), 12);
    // An option added later keeps the id when it is at its default.
    let explicit = GOLDEN_CONFIG.replacen(
        "eval_sequences: 16),",
        "eval_sequences: 16, eval_windows: First),",
        1,
    );
    let explicit: RunConfig = ron_options().from_str(&explicit).unwrap();
    assert_eq!(run_id(&explicit), "d41100dccce8");
}

#[test]
fn formatting_and_spelling_of_numbers_do_not_change_the_id() {
    let config: RunConfig = ron_options().from_str(GOLDEN_CONFIG).unwrap();
    let respelled = GOLDEN_CONFIG
        .replace("1_000_000, lr", "1000000, lr")
        .replace("norm_eps: 1e-6", "norm_eps: 0.000001")
        .replace("seed: 42,", "seed: 42, // the answer");
    let same: RunConfig = ron_options().from_str(&respelled).unwrap();
    assert_eq!(run_id(&config), run_id(&same));
}

/// Every leaf of the canonical JSON, as a path of keys / indices.
fn leaves(value: &Value, path: Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let mut p = path.clone();
                p.push(k.clone());
                leaves(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let mut p = path.clone();
                p.push(i.to_string());
                leaves(v, p, out);
            }
        }
        _ => out.push(path),
    }
}

fn leaf_mut<'a>(value: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(value, |v, key| match v {
        Value::Array(items) => &mut items[key.parse::<usize>().unwrap()],
        other => &mut other[key.as_str()],
    })
}

#[test]
fn changing_any_field_changes_the_id() {
    let base = tiny_base();
    let base_id = run_id(&base);
    let json: Value = serde_json::from_str(&canonical_json(&base)).unwrap();
    let mut paths = Vec::new();
    leaves(&json, Vec::new(), &mut paths);
    let mut changed_numbers_and_bools = 0;
    for path in &paths {
        let mut mutated = json.clone();
        let leaf = leaf_mut(&mut mutated, path);
        *leaf = match leaf.clone() {
            Value::Bool(b) => Value::Bool(!b),
            Value::Number(n) if n.is_u64() => Value::from(n.as_u64().unwrap() + 1),
            Value::Number(n) => Value::from(n.as_f64().unwrap() * 1.5 + 0.001),
            // An absent option gets a value.
            Value::Null => Value::from(1000u64),
            // Unit variants: covered by the explicit variant test below.
            Value::String(_) => continue,
            other => panic!("unexpected leaf {other:?} at {path:?}"),
        };
        let config: RunConfig = serde_json::from_value(mutated).unwrap();
        assert_ne!(
            run_id(&config),
            base_id,
            "changing {path:?} kept the run id"
        );
        changed_numbers_and_bools += 1;
    }
    assert!(
        changed_numbers_and_bools > 30,
        "only {changed_numbers_and_bools} leaves"
    );
}

#[test]
fn changing_any_variant_changes_the_id() {
    use rankprobe::spec::patch::Patch;
    let base = tiny_base();
    let overrides = [
        ("data.corpus", "Mix"),
        ("data.tokenizer", "Gpt2"),
        ("data.eval_windows", "Spread"),
        ("model.activation", "SwiGlu"),
        ("model.embedding_scale", "Unscaled"),
        ("model.qk_norm", "RmsNorm(gain: Frozen)"),
        ("model.qk_norm", "None"),
        ("optimizer.variant", "Ns5"),
        ("optimizer.update_scale", "AdamRms(0.2)"),
        ("optimizer.precision", "Bf16"),
        ("optimizer.matrices", "Separate"),
        (
            "schedule.lr",
            "WarmupCosine(warmup_tokens: 1000, min_lr_ratio: 0.1)",
        ),
        ("probes.sites", "[(tensor: K, after: QkNorm)]"),
        ("probes.metrics", "[StudyPr, CovariancePr]"),
        ("probes.spectra", "true"),
    ];
    for (path, value) in overrides {
        let mut config = base.clone();
        let segments: Vec<&str> = path.split('.').collect();
        config.patch(&segments, 0, value).unwrap();
        assert_ne!(config, base, "{path} = {value} changed nothing");
        assert_ne!(
            run_id(&config),
            run_id(&base),
            "{path} = {value} kept the run id"
        );
    }
}
