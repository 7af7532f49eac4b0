//! Semantic checks of one resolved run config: shapes that cannot be built, values out
//! of range, probe points outside the budget. Each problem names its field and a fix.
//! Each section checks its own fields, beside its types (`data_config`, ...); here they
//! all run, in field order.

pub use super::problems::{
    Problem, MAX_ABLATION_RANK, MAX_LAYERS, MAX_NS_STEPS, MAX_SEQUENCES, MAX_WIDTH,
    POLAR_EXPRESS_STEPS,
};

use super::data_config::check_data;
use super::model_config::check_model;
use super::optimizer_config::{check_adamw, check_lion, check_muon};
use super::probe_config::{check_probes, Sections};
use super::problems::Problems;
use super::run_config::{OptimizerConfig, RunConfig};
use super::schedule_config::check_schedule;

/// Every problem of `config`, in field order.
pub fn check_run(config: &RunConfig) -> Vec<Problem> {
    let mut problems = Problems::default();
    check_data(&config.data, &mut problems);
    check_model(&config.model, &mut problems);
    match &config.optimizer {
        OptimizerConfig::AdamW(adamw) => check_adamw(adamw, "optimizer", &mut problems),
        OptimizerConfig::Muon(muon) => check_muon(muon, &mut problems),
        OptimizerConfig::Lion(lion) => check_lion(lion, &mut problems),
    }
    // 0 (no budget check) when the sizes are out of range already.
    let tokens_per_step = (config.data.batch_size as u64)
        .checked_mul(config.data.seq_len as u64)
        .unwrap_or(0);
    check_schedule(&config.schedule, tokens_per_step, &mut problems);
    let sections = Sections {
        probes: &config.probes,
        data: &config.data,
        model: &config.model,
        schedule: &config.schedule,
    };
    check_probes(sections, &mut problems);
    problems.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::patch::Patch;

    use crate::spec::test_fixtures::tiny;

    fn problems_after(path: &str, value: &str) -> Vec<Problem> {
        let mut config = tiny();
        let segments: Vec<&str> = path.split('.').collect();
        config.patch(&segments, 0, value).unwrap();
        check_run(&config)
    }

    #[test]
    fn tiny_base_has_no_problems() {
        assert_eq!(check_run(&tiny()), vec![]);
    }

    #[test]
    fn each_bad_value_is_reported_on_its_field() {
        let cases = [
            ("data.val_fraction", "1.0", "data.val_fraction"),
            ("data.tokenizer", "Bpe(vocab: 100)", "data.tokenizer"),
            ("model.init_std", "-0.02", "model.init_std"),
            ("model.rope_base", "1.0", "model.rope_base"),
            ("optimizer.momentum", "1.0", "optimizer.momentum"),
            (
                "optimizer.adamw.betas",
                "(0.9, 1.5)",
                "optimizer.adamw.betas",
            ),
            (
                "optimizer.update_scale",
                "AdamRms(0.0)",
                "optimizer.update_scale",
            ),
            ("schedule.tokens", "100", "schedule.tokens"),
            (
                "schedule.eval_every_tokens",
                "0",
                "schedule.eval_every_tokens",
            ),
            ("probes.eval_sequences", "17", "probes.eval_sequences"),
            ("probes.metrics", "[StudyPr, StudyPr]", "probes.metrics"),
            ("probes.every_tokens", "0", "probes.every_tokens"),
            ("probes.key_ablation", "[0]", "probes.key_ablation"),
            ("probes.key_ablation", "[33]", "probes.key_ablation"),
        ];
        for (path, value, field) in cases {
            let problems = problems_after(path, value);
            assert!(
                problems.iter().any(|p| p.field == field),
                "{path} = {value}: {problems:?}"
            );
        }
    }

    #[test]
    fn key_ablation_ranks_past_the_named_metrics_are_refused() {
        let mut config = tiny();
        config.model.head_dim = 2 * MAX_ABLATION_RANK;
        config.probes.key_ablation = vec![MAX_ABLATION_RANK + 1];
        let problems = check_run(&config);
        assert!(
            problems.iter().any(|p| p.field == "probes.key_ablation"
                && p.message.contains(&format!("at most {MAX_ABLATION_RANK}"))),
            "{problems:?}"
        );
    }

    #[test]
    fn probe_at_exactly_the_budget_is_allowed() {
        assert_eq!(problems_after("probes.at_tokens", "[0, 20_480]"), vec![]);
    }
}
