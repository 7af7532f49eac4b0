//! Model size and training compute of a run, from its shape alone.

use crate::spec::run_config::{Activation, Gain, ModelConfig, QkNorm, RunConfig};

/// Parameter counts of a model, split the way the optimizers split them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCount {
    /// 2-D matrices inside the blocks (attention and feed-forward): Muon's share.
    pub block_matrices: u64,
    /// Token embedding, plus the LM head when it is not tied.
    pub embeddings: u64,
    /// Norm gains (learnable ones only).
    pub gains: u64,
}

impl ParamCount {
    pub fn total(&self) -> u64 {
        self.block_matrices + self.embeddings + self.gains
    }
}

/// Parameters of `model` with a vocabulary of `vocab` tokens.
pub fn param_count(model: &ModelConfig, vocab: u64) -> ParamCount {
    let d = model.d_model as u64;
    let q = (model.n_heads * model.head_dim) as u64;
    let kv = (model.n_kv_heads * model.head_dim) as u64;
    let attention = d * q + 2 * d * kv + q * d;
    let ffn_matrices = match model.activation {
        Activation::SquaredRelu | Activation::Gelu => 2,
        Activation::SwiGlu => 3,
    };
    let ffn = ffn_matrices * d * model.d_ff as u64;
    let layers = model.n_layers as u64;
    let qk_gains = match model.qk_norm {
        QkNorm::RmsNorm {
            gain: Gain::Learnable,
        } => 2 * model.head_dim as u64,
        QkNorm::RmsNorm { gain: Gain::Frozen } | QkNorm::None => 0,
    };
    let embedding_tables = if model.tied_embeddings { 1 } else { 2 };
    ParamCount {
        block_matrices: layers * (attention + ffn),
        embeddings: embedding_tables * vocab * d,
        // Two pre-norms per block, QK gains per block, one final norm.
        gains: layers * (2 * d + qk_gains) + d,
    }
}

/// Estimated training FLOPs of a run: forward + backward (3x forward) of every matmul,
/// the LM head included, and of causal attention scores, for every trained token.
/// `None` when the vocabulary is only known after reading a tokenizer file.
pub fn training_flops(config: &RunConfig, trained_tokens: u64) -> Option<f64> {
    let vocab = config.data.tokenizer.known_vocab()?;
    Some(training_flops_at(config, vocab, trained_tokens))
}

/// `training_flops` with a vocabulary of `vocab` tokens (as read from a tokenizer file).
pub fn training_flops_at(config: &RunConfig, vocab: usize, trained_tokens: u64) -> f64 {
    let vocab = vocab as f64;
    let model = &config.model;
    let params = param_count(model, 0);
    let matmul_params = params.block_matrices as f64 + vocab * model.d_model as f64;
    // Scores and weighted values: 2 matmuls of 2 * seq * q_width FLOPs per token,
    // halved by the causal mask.
    let q_width = (model.n_heads * model.head_dim) as f64;
    let attention = 2.0 * model.n_layers as f64 * config.data.seq_len as f64 * q_width;
    let forward_per_token = 2.0 * matmul_params + attention;
    3.0 * forward_per_token * trained_tokens as f64
}

/// Optimizer steps and the tokens they consume: the budget rounded down to whole steps.
pub fn steps_and_tokens(config: &RunConfig) -> (u64, u64) {
    let per_step = config.data.tokens_per_step();
    if per_step == 0 {
        return (0, 0);
    }
    let steps = config.schedule.tokens / per_step;
    (steps, steps * per_step)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::spec::test_fixtures::tiny;

    #[test]
    fn swiglu_has_three_ffn_matrices_and_untied_head_doubles_embeddings() {
        let mut model = tiny().model;
        let squared = param_count(&model, 1000);
        model.activation = Activation::SwiGlu;
        model.tied_embeddings = false;
        let swiglu = param_count(&model, 1000);
        let ffn_matrix = (model.d_model * model.d_ff * model.n_layers) as u64;
        assert_eq!(swiglu.block_matrices - squared.block_matrices, ffn_matrix);
        assert_eq!(swiglu.embeddings, 2 * squared.embeddings);
    }

    #[test]
    fn flops_are_about_six_per_parameter_per_token() {
        let config = tiny();
        let (_, tokens) = steps_and_tokens(&config);
        let flops = training_flops(&config, tokens).unwrap();
        let params = param_count(&config.model, 2048);
        let six_nd = 6.0 * (params.block_matrices + params.embeddings) as f64 * tokens as f64;
        // Attention scores add a little on top of 6ND.
        assert!(
            flops > six_nd && flops < 1.3 * six_nd,
            "{flops} vs {six_nd}"
        );
    }

    #[test]
    fn budget_rounds_down_to_whole_steps() {
        let mut config = tiny();
        config.schedule.tokens = 10_000;
        assert_eq!(steps_and_tokens(&config), (4, 8192));
    }
}
