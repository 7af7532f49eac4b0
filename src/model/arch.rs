//! What the forward pass needs beyond the weights: the run-time choices of the model spec.

use crate::spec::run_config::{Activation, EmbeddingScale, Gain, ModelConfig, QkNorm, Site, Stage};

/// Run-time architecture switches of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Architecture {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub activation: Activation,
    /// QK-norm on, and whether its gains are trained.
    pub qk_norm: Option<Gain>,
    pub tied_embeddings: bool,
    pub embedding_scale: f32,
    pub rope_base: f64,
    pub norm_eps: f32,
}

impl Architecture {
    pub fn from_config(model: &ModelConfig) -> Self {
        Architecture {
            n_heads: model.n_heads,
            n_kv_heads: model.n_kv_heads,
            head_dim: model.head_dim,
            activation: model.activation,
            qk_norm: match model.qk_norm {
                QkNorm::None => None,
                QkNorm::RmsNorm { gain } => Some(gain),
            },
            tied_embeddings: model.tied_embeddings,
            embedding_scale: match model.embedding_scale {
                EmbeddingScale::SqrtDModel => (model.d_model as f32).sqrt(),
                EmbeddingScale::Unscaled => 1.0,
                EmbeddingScale::Factor(f) => f as f32,
            },
            rope_base: model.rope_base,
            norm_eps: model.norm_eps as f32,
        }
    }

    /// Query heads per key/value head.
    pub fn group(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    /// Whether the forward pass reads the parameter at `path` (a tensor's name in the
    /// model's visiting order, e.g. `blocks.3.q_gain`). Every variant's tensors are
    /// allocated; only those read are trained, decayed and counted.
    pub fn reads(&self, path: &str) -> bool {
        let field = path.rsplit('.').next().unwrap_or(path);
        match field {
            "lm_head" => !self.tied_embeddings,
            "w_gate" => self.activation == Activation::SwiGlu,
            "q_gain" | "k_gain" => self.qk_norm == Some(Gain::Learnable),
            _ => true,
        }
    }
}

/// Activations captured during a forward pass, for rank probes.
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    pub layer: usize,
    pub site: Site,
    /// [batch * seq, heads, head_dim], row-major.
    pub rows: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub values: Vec<f32>,
}

/// Which sites to capture, and what was captured.
#[derive(Debug, Clone, Default)]
pub struct Taps {
    pub sites: Vec<Site>,
    pub captured: Vec<Capture>,
    /// An intervention: keys replaced during the pass (a causal probe).
    pub project_keys: Option<KeyProjection>,
    /// When Some, each layer's attention appends the largest logit of each of its query
    /// heads over the batch (what QK-Clip reads after a training step).
    pub max_logits: Option<Vec<Vec<f32>>>,
    /// When Some, the LM head sets it to the mean over the batch's rows of log Z, the
    /// log of the output softmax's normaliser (the scale z-loss holds down).
    pub mean_log_z: Option<f32>,
}

/// Replaces the keys of one layer at one stage, per KV head, by their product with a
/// [head_dim x head_dim] symmetric matrix (a projection onto some directions).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyProjection {
    pub layer: usize,
    pub after: Stage,
    /// Per KV head, row-major.
    pub matrices: Vec<Vec<f32>>,
}

/// The dimensions of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}
