//! Semantic checks of one resolved run config: shapes that cannot be built, values out
//! of range, probe points outside the budget. Each problem names its field and a fix.

use super::run_config::{
    AdamWConfig, Corpus, DataConfig, EmbeddingScale, EvalSet, LionConfig, LrSchedule, ModelConfig,
    MuonConfig, MuonVariant, OptimizerConfig, ProbeConfig, ProbeMetric, QkNorm, RunConfig,
    ScheduleConfig, Stage, Tensor, Tokenizer, UpdateScale,
};

/// Polar Express has coefficients for this many Newton-Schulz steps.
pub const POLAR_EXPRESS_STEPS: usize = 5;

/// Upper bounds of the sizes in a run config. Far beyond any model this tool can train,
/// they keep every product of sizes (widths x widths x layers, batch x sequence) well
/// inside 64 bits, so no shape or budget arithmetic can overflow; a value past them is
/// a typo, reported as such.
pub const MAX_WIDTH: usize = 1 << 20;
pub const MAX_LAYERS: usize = 1 << 12;
pub const MAX_SEQUENCES: usize = 1 << 24;
pub const MAX_NS_STEPS: usize = 1 << 10;
/// The largest rank of `probes.key_ablation` (each rank is a metric name of its own).
pub const MAX_ABLATION_RANK: usize = 4096;

/// One thing wrong with a run config.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Dotted path of the field at fault, relative to the run config (`model.d_model`).
    pub field: String,
    pub message: String,
    pub help: String,
}

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
    check_probes(config, &mut problems);
    problems.0
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, field: &str, message: String, help: impl Into<String>) {
        self.0.push(Problem {
            field: field.to_owned(),
            message,
            help: help.into(),
        });
    }

    fn positive(&mut self, field: &str, value: usize) {
        if value == 0 {
            self.push(
                field,
                format!("`{field}` must be at least 1"),
                "use a positive size",
            );
        }
    }

    /// A size in 1..=max; returns whether it is one.
    fn size(&mut self, field: &str, value: usize, max: usize) -> bool {
        if value == 0 {
            self.positive(field, value);
            false
        } else if value > max {
            self.push(
                field,
                format!("`{field}` is {value}, more than the largest supported, {max}"),
                format!("use a size between 1 and {max}"),
            );
            false
        } else {
            true
        }
    }

    fn positive_finite(&mut self, field: &str, value: f64) {
        if !(value.is_finite() && value > 0.0) {
            self.push(
                field,
                format!("`{field}` must be a positive finite number, got {value}"),
                "use a value > 0",
            );
        }
    }

    fn in_unit_interval(&mut self, field: &str, value: f64, open_top: bool) {
        let ok = value >= 0.0 && if open_top { value < 1.0 } else { value <= 1.0 };
        if !ok {
            let range = if open_top { "[0, 1)" } else { "[0, 1]" };
            self.push(
                field,
                format!("`{field}` must be in {range}, got {value}"),
                format!("use a value in {range}"),
            );
        }
    }

    fn non_empty(&mut self, field: &str, text: &str, example: &str) {
        if text.trim().is_empty() {
            self.push(
                field,
                format!("`{field}` is empty"),
                format!("e.g. {example}"),
            );
        }
    }
}

fn check_data(data: &DataConfig, p: &mut Problems) {
    p.size("data.seq_len", data.seq_len, MAX_SEQUENCES);
    p.size("data.batch_size", data.batch_size, MAX_SEQUENCES);
    p.size("data.eval_sequences", data.eval_sequences, MAX_SEQUENCES);
    if !(data.val_fraction > 0.0 && data.val_fraction < 1.0) {
        p.push(
            "data.val_fraction",
            format!(
                "`data.val_fraction` must be in (0, 1), got {}",
                data.val_fraction
            ),
            "the seed study holds out 0.1",
        );
    }
    check_corpus("data.corpus", &data.corpus, p);
    check_eval_sets(&data.eval_sets, p);
    match &data.tokenizer {
        Tokenizer::Bpe { vocab } if !(257..=1 << 20).contains(vocab) => p.push(
            "data.tokenizer",
            format!("a byte-level BPE needs 257 to 1048576 tokens, got {vocab}"),
            "use e.g. Bpe(vocab: 4096) (256 byte tokens + merges + <|endoftext|>)",
        ),
        Tokenizer::File(path) => p.non_empty("data.tokenizer", path, "File(\"tokenizer.json\")"),
        _ => {}
    }
    if matches!(data.corpus, Corpus::LlmcBin(_)) && matches!(data.tokenizer, Tokenizer::Bpe { .. })
    {
        p.push(
            "data.tokenizer",
            "llm.c `.bin` shards are already tokenized; a BPE cannot be trained on them".to_owned(),
            "use tokenizer: Gpt2 (llm.c shards hold GPT-2 tokens) or the File their tokens come from",
        );
    }
}

/// The fields of a corpus at `field` (the training corpus or an eval set's).
fn check_corpus(field: &str, corpus: &Corpus, p: &mut Problems) {
    match corpus {
        Corpus::Sotu | Corpus::Mix => {}
        Corpus::MixSource(name) => p.non_empty(field, name, "MixSource(\"shakespeare\")"),
        Corpus::Text(glob) | Corpus::LlmcBin(glob) => {
            p.non_empty(field, glob, "Text(\"data/*.txt\")");
        }
        Corpus::Jsonl { glob, field: text } => {
            let example = "Jsonl(glob: \"data/*.jsonl\", field: \"text\")";
            p.non_empty(field, glob, example);
            p.non_empty(field, text, example);
        }
        Corpus::Parquet { glob, column } => {
            let example = "Parquet(glob: \"data/*.parquet\", column: \"text\")";
            p.non_empty(field, glob, example);
            p.non_empty(field, column, example);
        }
    }
}

/// At most this many extra evaluation sets (each costs a forward pass per evaluation).
pub const MAX_EVAL_SETS: usize = 8;

/// Eval-set names: distinct, short, and safe in a metric name.
fn check_eval_sets(sets: &[EvalSet], p: &mut Problems) {
    let field = "data.eval_sets";
    if sets.len() > MAX_EVAL_SETS {
        p.push(
            field,
            format!(
                "{} eval sets; at most {MAX_EVAL_SETS} are allowed",
                sets.len()
            ),
            "keep the sets that answer the study's question",
        );
    }
    for (i, set) in sets.iter().enumerate() {
        let name = &set.name;
        let valid = !name.is_empty()
            && name.len() <= 32
            && (name.bytes()).all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            p.push(
                field,
                format!("eval set name `{name}` must be 1 to 32 lowercase letters, digits or `_`"),
                "e.g. name: \"shakespeare\" (the metric is loss.<name>)",
            );
        }
        if sets[..i].iter().any(|other| &other.name == name) {
            p.push(
                field,
                format!("two eval sets are named `{name}`"),
                "give each set its own name",
            );
        }
        check_corpus(field, &set.corpus, p);
        if matches!(set.corpus, Corpus::LlmcBin(_)) {
            p.push(
                field,
                format!("eval set `{name}`: llm.c shards hold GPT-2 token ids, not text for the study's tokenizer"),
                "use a text corpus (Text, Jsonl, Parquet, MixSource, Sotu)",
            );
        }
    }
}

fn check_model(model: &ModelConfig, p: &mut Problems) {
    let sizes = [
        p.size("model.n_layers", model.n_layers, MAX_LAYERS),
        p.size("model.d_model", model.d_model, MAX_WIDTH),
        p.size("model.n_heads", model.n_heads, MAX_WIDTH),
        p.size("model.n_kv_heads", model.n_kv_heads, MAX_WIDTH),
        p.size("model.head_dim", model.head_dim, MAX_WIDTH),
        p.size("model.d_ff", model.d_ff, MAX_WIDTH),
    ];
    if sizes.contains(&false) {
        // The relations below multiply sizes: only meaningful (and safe) within bounds.
        check_model_values(model, p);
        return;
    }
    if model.d_model != model.n_heads * model.head_dim {
        p.push(
            "model.d_model",
            format!(
                "d_model ({}) must equal n_heads * head_dim ({} * {} = {})",
                model.d_model,
                model.n_heads,
                model.head_dim,
                model.n_heads * model.head_dim
            ),
            format!(
                "set d_model: {}, or change n_heads / head_dim so that they multiply to {}",
                model.n_heads * model.head_dim,
                model.d_model
            ),
        );
    }
    if !model.n_heads.is_multiple_of(model.n_kv_heads) {
        let divisors: Vec<String> = (1..=model.n_heads)
            .filter(|d| model.n_heads.is_multiple_of(*d))
            .map(|d| d.to_string())
            .collect();
        p.push(
            "model.n_kv_heads",
            format!(
                "n_heads ({}) must be divisible by n_kv_heads ({})",
                model.n_heads, model.n_kv_heads
            ),
            format!("n_kv_heads can be one of {}", divisors.join(", ")),
        );
    }
    if model.head_dim % 2 == 1 {
        p.push(
            "model.head_dim",
            format!(
                "head_dim ({}) must be even: RoPE rotates pairs of dimensions",
                model.head_dim
            ),
            format!("use head_dim: {}", model.head_dim + 1),
        );
    }
    check_model_values(model, p);
}

/// The model's values that are not sizes.
fn check_model_values(model: &ModelConfig, p: &mut Problems) {
    if !(model.rope_base.is_finite() && model.rope_base > 1.0) {
        p.push(
            "model.rope_base",
            format!(
                "rope_base must be a finite number > 1, got {}",
                model.rope_base
            ),
            "the seed study uses 10000.0",
        );
    }
    p.positive_finite("model.init_std", model.init_std);
    p.positive_finite("model.norm_eps", model.norm_eps);
    if let EmbeddingScale::Factor(factor) = model.embedding_scale {
        p.positive_finite("model.embedding_scale", factor);
    }
    if let Some(clip) = model.qk_clip {
        p.positive_finite("model.qk_clip", clip.tau);
        if model.qk_norm != QkNorm::None {
            p.push(
                "model.qk_clip",
                "QK-Clip scales the query and key projections down, and QK-norm's RMS \
                 normalisation undoes any such scaling: with both, the clip could never \
                 bound a logit"
                    .into(),
                "use one of them: set model.qk_norm: None for QK-Clip, or qk_clip: None",
            );
        }
    }
}

fn check_adamw(adamw: &AdamWConfig, at: &str, p: &mut Problems) {
    p.positive_finite(&format!("{at}.lr"), adamw.lr);
    p.in_unit_interval(&format!("{at}.betas"), adamw.betas.0, true);
    p.in_unit_interval(&format!("{at}.betas"), adamw.betas.1, true);
    p.positive_finite(&format!("{at}.eps"), adamw.eps);
    check_weight_decay(&format!("{at}.weight_decay"), adamw.weight_decay, p);
    check_independent(
        &format!("{at}.weight_decay"),
        adamw.weight_decay,
        adamw.independent_weight_decay,
        p,
    );
}

/// An independent decay multiplies the weights by 1 - weight_decay at the schedule's peak:
/// it must stay below 1.
fn check_independent(field: &str, weight_decay: f64, independent: bool, p: &mut Problems) {
    if independent && weight_decay >= 1.0 {
        p.push(
            field,
            format!(
                "an independent weight decay of {weight_decay} would zero the weights in one step"
            ),
            "use a value below 1 (Wortsman et al. use 1e-4)",
        );
    }
}

fn check_lion(lion: &LionConfig, p: &mut Problems) {
    p.positive_finite("optimizer.lr", lion.lr);
    p.in_unit_interval("optimizer.betas", lion.betas.0, true);
    p.in_unit_interval("optimizer.betas", lion.betas.1, true);
    check_weight_decay("optimizer.weight_decay", lion.weight_decay, p);
    let independent = lion.independent_weight_decay;
    check_independent("optimizer.weight_decay", lion.weight_decay, independent, p);
    if !independent && lion.lr * lion.weight_decay >= 1.0 {
        p.push(
            "optimizer.weight_decay",
            format!(
                "lr * weight_decay is {}: each step would scale the weights by {} (<= 0)",
                lion.lr * lion.weight_decay,
                1.0 - lion.lr * lion.weight_decay
            ),
            "Lion's weight decay is typically 3-10x AdamW's, with lr 3-10x smaller (e.g. lr: 3e-4, weight_decay: 1.0)",
        );
    }
}

fn check_weight_decay(field: &str, value: f64, p: &mut Problems) {
    if !(value.is_finite() && value >= 0.0) {
        p.push(
            field,
            format!("`{field}` must be >= 0, got {value}"),
            "use 0.0 for none",
        );
    }
}

fn check_muon(muon: &MuonConfig, p: &mut Problems) {
    p.positive_finite("optimizer.lr", muon.lr);
    p.in_unit_interval("optimizer.momentum", muon.momentum, true);
    p.size("optimizer.ns_steps", muon.ns_steps, MAX_NS_STEPS);
    if muon.variant == MuonVariant::PolarExpress && muon.ns_steps > POLAR_EXPRESS_STEPS {
        p.push(
            "optimizer.ns_steps",
            format!(
                "Polar Express has coefficients for {POLAR_EXPRESS_STEPS} steps, ns_steps is {}",
                muon.ns_steps
            ),
            format!("use ns_steps: {POLAR_EXPRESS_STEPS} or fewer, or variant: Ns5"),
        );
    }
    if let UpdateScale::AdamRms(factor) = muon.update_scale {
        p.positive_finite("optimizer.update_scale", factor);
    }
    check_weight_decay("optimizer.weight_decay", muon.weight_decay, p);
    let independent = muon.independent_weight_decay;
    check_independent("optimizer.weight_decay", muon.weight_decay, independent, p);
    check_adamw(&muon.adamw, "optimizer.adamw", p);
}

fn check_schedule(schedule: &ScheduleConfig, tokens_per_step: u64, p: &mut Problems) {
    if tokens_per_step > 0 && schedule.tokens < tokens_per_step {
        p.push(
            "schedule.tokens",
            format!(
                "the budget of {} tokens is less than one step ({} tokens = batch_size * seq_len)",
                schedule.tokens, tokens_per_step
            ),
            format!("use tokens: {tokens_per_step} or more"),
        );
    }
    let warmup = match schedule.lr {
        LrSchedule::Constant => None,
        LrSchedule::WarmupCosine {
            warmup_tokens,
            min_lr_ratio,
        } => {
            p.in_unit_interval("schedule.lr", min_lr_ratio, false);
            Some(warmup_tokens)
        }
        LrSchedule::Wsd {
            warmup_tokens,
            decay_fraction,
            min_lr_ratio,
        } => {
            p.in_unit_interval("schedule.lr", min_lr_ratio, false);
            if !(decay_fraction > 0.0 && decay_fraction <= 1.0) {
                p.push(
                    "schedule.lr",
                    format!("decay_fraction must be in (0, 1], got {decay_fraction}"),
                    "e.g. decay_fraction: 0.2 decays over the last 20% of the budget",
                );
            }
            let decay_tokens = (decay_fraction * schedule.tokens as f64) as u64;
            if warmup_tokens.saturating_add(decay_tokens) > schedule.tokens {
                p.push(
                    "schedule.lr",
                    "warmup and decay together are longer than the budget".to_owned(),
                    "shorten warmup_tokens or decay_fraction",
                );
            }
            Some(warmup_tokens)
        }
    };
    if let Some(warmup) = warmup.filter(|&w| w >= schedule.tokens) {
        p.push(
            "schedule.lr",
            format!(
                "warmup_tokens ({warmup}) must be less than the budget ({})",
                schedule.tokens
            ),
            "shorten the warmup",
        );
    }
    p.positive_finite("schedule.lr_scale", schedule.lr_scale);
    if let Some(max) = schedule.max_grad_norm {
        p.positive_finite("schedule.max_grad_norm", max);
    }
    if let Some(z) = schedule.z_loss {
        p.positive_finite("schedule.z_loss", z);
    }
    if let Some(rule) = schedule.divergence {
        if !(rule.margin.is_finite() && rule.margin >= 0.0) {
            p.push(
                "schedule.divergence",
                format!("margin must be a finite number >= 0, got {}", rule.margin),
                "e.g. divergence: (margin: 0.5, evaluations: 2)",
            );
        }
        p.positive("schedule.divergence", rule.evaluations);
    }
    if schedule.eval_every_tokens == Some(0) {
        p.push(
            "schedule.eval_every_tokens",
            "eval_every_tokens must be at least 1".to_owned(),
            "use None to evaluate at probe points only",
        );
    }
}

fn check_probes(config: &RunConfig, p: &mut Problems) {
    let probes: &ProbeConfig = &config.probes;
    let budget = config.schedule.tokens;
    for &point in probes.at_tokens.iter().filter(|&&point| point > budget) {
        p.push(
            "probes.at_tokens",
            format!("probe point {point} is beyond the budget of {budget} tokens"),
            format!("remove it or raise schedule.tokens to at least {point}"),
        );
    }
    if probes.every_tokens == Some(0) {
        p.push(
            "probes.every_tokens",
            "every_tokens must be at least 1".to_owned(),
            "use None to probe at `at_tokens` only",
        );
    }
    if !probes.key_ablation.is_empty() {
        let largest = config.model.head_dim.min(MAX_ABLATION_RANK);
        if let Some(&r) = probes.key_ablation.iter().find(|&&r| r == 0 || r > largest) {
            p.push(
                "probes.key_ablation",
                format!(
                    "rank {r} is outside 1..={largest} (head_dim, at most {MAX_ABLATION_RANK})"
                ),
                "list ranks between 1 and head_dim, e.g. key_ablation: [1, 4, 16]",
            );
        }
        if !probes.sites.iter().any(|s| s.tensor == Tensor::K) {
            p.push(
                "probes.key_ablation",
                "the key ablation projects the keys at a K site, and `sites` has none".to_owned(),
                "add one, e.g. sites: [(tensor: K, after: Rope)]",
            );
        }
    }
    if probes.sites.is_empty() {
        p.push(
            "probes.sites",
            "no probe sites".to_owned(),
            "e.g. sites: [(tensor: K, after: Rope)]",
        );
    }
    if probes.metrics.is_empty() {
        p.push(
            "probes.metrics",
            "no rank metrics".to_owned(),
            "e.g. metrics: [StudyPr]",
        );
    }
    for site in &probes.sites {
        if site.tensor == Tensor::V && site.after != Stage::Projection {
            p.push(
                "probes.sites",
                format!(
                    "V has no {:?} stage: values are neither QK-normed nor rotated",
                    site.after
                ),
                "use (tensor: V, after: Projection)",
            );
        }
    }
    for (i, site) in probes.sites.iter().enumerate() {
        if probes.sites[..i].contains(site) {
            p.push(
                "probes.sites",
                format!("site {site:?} is listed twice"),
                "list each site once",
            );
        }
    }
    for (i, metric) in probes.metrics.iter().enumerate() {
        let name = metric.name();
        if probes.metrics[..i].iter().any(|m| m.name() == name) {
            p.push(
                "probes.metrics",
                format!("metric {metric:?} is listed twice"),
                "list each metric once (one DeadHeads and one IclScore at most)",
            );
        }
        probe_metric_checks(p, metric, config.data.seq_len);
    }
    p.size(
        "probes.eval_sequences",
        probes.eval_sequences,
        MAX_SEQUENCES,
    );
    if probes.eval_sequences > config.data.eval_sequences {
        p.push(
            "probes.eval_sequences",
            format!(
                "probes use {} eval sequences but the eval batch has {} (data.eval_sequences)",
                probes.eval_sequences, config.data.eval_sequences
            ),
            format!(
                "use at most {} or raise data.eval_sequences",
                config.data.eval_sequences
            ),
        );
    }
}

/// The settings of `DeadHeads` and `IclScore`.
fn probe_metric_checks(p: &mut Problems, metric: &ProbeMetric, seq_len: usize) {
    match *metric {
        ProbeMetric::DeadHeads { below_pr } if !(below_pr.is_finite() && below_pr > 0.0) => {
            p.push(
                "probes.metrics",
                format!("DeadHeads(below_pr: {below_pr}) needs a positive, finite threshold"),
                "a participation ratio is at least 1; e.g. DeadHeads(below_pr: 2.0)",
            );
        }
        ProbeMetric::IclScore { early, late } => {
            for (which, (from, to)) in [("early", early), ("late", late)] {
                if from >= to || to > seq_len {
                    p.push(
                        "probes.metrics",
                        format!(
                            "IclScore {which}: ({from}, {to}) is not a range of positions \
                             [from, to) within the sequence of {seq_len} tokens"
                        ),
                        format!("give from < to <= {seq_len}, e.g. early: (0, 16), late: ({}, {seq_len})", seq_len - seq_len / 8),
                    );
                }
            }
            if early.1 > late.0 && early.0 < late.1 && early.0 < early.1 && late.0 < late.1 {
                p.push(
                    "probes.metrics",
                    format!(
                        "IclScore: early ({}, {}) and late ({}, {}) overlap",
                        early.0, early.1, late.0, late.1
                    ),
                    "give early positions that end where or before the late ones start",
                );
            }
        }
        _ => {}
    }
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
