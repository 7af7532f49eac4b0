//! Every study in experiments/ is valid, and the seed studies have the seed's shape.

mod common;

use rankprobe::plan::build_plan;
use rankprobe::plan::cost::param_count;
use rankprobe::plan::diff::differing_fields;
use rankprobe::spec::load_study;

#[test]
fn every_experiment_parses_validates_and_plans() {
    let files = common::ron_files(&common::root().join("experiments"));
    assert!(
        files.len() >= 3,
        "expected at least 3 studies, found {files:?}"
    );
    for file in files {
        let loaded = load_study(&file).unwrap_or_else(|d| panic!("{}:\n{d}", file.display()));
        let plan = build_plan(&loaded).unwrap_or_else(|d| panic!("{}:\n{d}", file.display()));
        assert!(!plan.runs.is_empty(), "{}", file.display());
    }
}

#[test]
fn qk_study_has_the_four_seed_conditions() {
    let loaded = load_study(&common::root().join("experiments/qk_study.ron")).unwrap();
    let plan = build_plan(&loaded).unwrap();
    assert_eq!(common::labels(&plan), ["A1", "A2", "B1", "B2"]);
    let mut ids: Vec<&str> = plan.runs.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "run ids must be distinct");
    let configs: Vec<_> = plan.runs.iter().map(|r| &r.config).collect();
    let differing = differing_fields(&configs);
    assert!(differing.contains(&"optimizer".to_owned()), "{differing:?}");
    assert!(
        differing.contains(&"model.qk_norm".to_owned()),
        "{differing:?}"
    );
    let base = &loaded.study.base;
    assert_eq!(base.seed, 42);
    assert_eq!(base.schedule.tokens, 25_000_000);
    assert_eq!(base.data.batch_size * base.data.seq_len, 4096);
}

#[test]
fn seed_model_has_the_published_parameter_split() {
    let loaded = load_study(&common::root().join("experiments/qk_study.ron")).unwrap();
    let model = &loaded.study.base.model;
    // With the seed's SmolLM2 vocabulary (49,152): Muon ~63.4M, AdamW ~25.2M, 88.6M in all.
    let seed = param_count(model, 49_152);
    assert_eq!(seed.block_matrices, 63_438_848);
    assert_eq!(seed.embeddings + seed.gains, 25_191_680);
    assert_eq!(seed.total(), 88_630_528);
    // With GPT-2's vocabulary, which this study uses.
    let gpt2 = param_count(model, 50_257);
    assert_eq!(gpt2.embeddings, 50_257 * 512);
}

#[test]
fn qk_study_20m_is_two_muon_runs() {
    let loaded = load_study(&common::root().join("experiments/qk_study_20m.ron")).unwrap();
    let plan = build_plan(&loaded).unwrap();
    assert_eq!(common::labels(&plan), ["QK", "noQK"]);
    for run in &plan.runs {
        assert_eq!(run.config.optimizer.name(), "Muon");
        assert_eq!(run.config.data.batch_size * run.config.data.seq_len, 8192);
        assert_eq!(run.config.schedule.tokens, 20_000_000);
        assert!(run.config.probes.at_tokens.contains(&16_000_000));
    }
}

#[test]
fn qk_clip_study_names_every_condition_and_each_differing_field() {
    let loaded = load_study(&common::root().join("experiments/qk_clip_cpu.ron")).unwrap();
    let plan = build_plan(&loaded).unwrap();
    assert_eq!(plan.runs.len(), 21);
    let configs: Vec<_> = plan.runs.iter().map(|r| &r.config).collect();
    let differing = differing_fields(&configs);
    // `optimizer.matrices` exists only in the Muon runs, but it tells A4 from A1.
    for field in [
        "optimizer",
        "model.qk_norm",
        "model.qk_clip",
        "optimizer.matrices",
    ] {
        assert!(
            differing.contains(&field.to_owned()),
            "{field}: {differing:?}"
        );
    }
    // Muon's momentum is the same in every Muon run: not a column.
    assert!(
        !differing.contains(&"optimizer.momentum".to_owned()),
        "{differing:?}"
    );
    let mut ids: Vec<&str> = plan.runs.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 21, "run ids must be distinct");
}
