//! The run's model: its shape, normalisation, QK-Clip and the precision of its products
//! (`model`).

use serde::{Deserialize, Serialize};

use super::problems::*;

use super::optimizer_config::Precision;
use super::patch::{patch_as_leaf, spec_struct};

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

patch_as_leaf!(Activation, EmbeddingScale, QkNorm, Gain,);

// What this section must hold (`check::check_run` runs every section's checks).

pub(super) fn check_model(model: &ModelConfig, p: &mut Problems) {
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
