//! The model shapes compiled into this binary (see build.rs) and dispatch to them.

use crate::spec::run_config::RunConfig;

/// The compile-time dimensions of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelShape {
    pub vocab: usize,
    pub d_model: usize,
    pub head_dim: usize,
    /// n_kv_heads * head_dim.
    pub kv_width: usize,
    pub d_ff: usize,
    pub n_layers: usize,
}

impl ModelShape {
    /// The shape of a run's model with a vocabulary of `vocab` tokens.
    pub fn of(config: &RunConfig, vocab: usize) -> Self {
        let model = &config.model;
        ModelShape {
            vocab,
            d_model: model.d_model,
            head_dim: model.head_dim,
            kv_width: model.n_kv_heads * model.head_dim,
            d_ff: model.d_ff,
            n_layers: model.n_layers,
        }
    }

    pub fn is_compiled(&self) -> bool {
        COMPILED_SHAPES.contains(self)
    }
}

impl std::fmt::Display for ModelShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "vocab {}, d_model {}, head_dim {}, kv width {}, d_ff {}, {} layers",
            self.vocab, self.d_model, self.head_dim, self.kv_width, self.d_ff, self.n_layers
        )
    }
}

/// Something to run with a concrete model type.
pub trait ShapeRunner {
    type Output;
    fn run<
        const V: usize,
        const M: usize,
        const HD: usize,
        const KVW: usize,
        const F: usize,
        const L: usize,
    >(
        self,
    ) -> Self::Output;
}

include!(concat!(env!("OUT_DIR"), "/compiled_shapes.rs"));

/// How to get a shape compiled in.
pub fn not_compiled_help() -> &'static str {
    "model shapes are compiled into rankprobe from the studies in experiments/: put the study \
     file there and rebuild (`cargo build --release`, or just `cargo run --release -- ...`)"
}
