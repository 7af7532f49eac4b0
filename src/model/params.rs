//! The transformer's parameters with compile-time shapes, visible to dfdx optimizers.
//!
//! Const generics: `V` vocabulary, `M` d_model (= n_heads * head_dim), `HD` head_dim,
//! `KVW` the key/value width (n_kv_heads * head_dim), `F` the feed-forward width, `L` the
//! number of blocks (dfdx visitors walk a model without an instance, so the count must be
//! a type parameter). Head counts follow from them at run time. Matrices are [out, in] as in dfdx's `Linear`.
//!
//! Every variant's tensors are allocated (e.g. the SwiGLU gate, QK-norm gains, an untied
//! LM head); the forward pass uses only those of its architecture, and parameters without
//! gradients are left alone by the optimizer.

use dfdx::prelude::*;

/// One pre-norm transformer block.
#[derive(Debug, Clone)]
pub struct Block<
    const M: usize,
    const HD: usize,
    const KVW: usize,
    const F: usize,
    E: Dtype,
    D: Device<E>,
> {
    pub attn_norm: Tensor<Rank1<M>, E, D>,
    pub wq: Tensor<Rank2<M, M>, E, D>,
    pub wk: Tensor<Rank2<KVW, M>, E, D>,
    pub wv: Tensor<Rank2<KVW, M>, E, D>,
    pub wo: Tensor<Rank2<M, M>, E, D>,
    /// QK-norm gains, one vector shared by all heads of Q (and one of K).
    pub q_gain: Tensor<Rank1<HD>, E, D>,
    pub k_gain: Tensor<Rank1<HD>, E, D>,
    pub ffn_norm: Tensor<Rank1<M>, E, D>,
    pub w_up: Tensor<Rank2<F, M>, E, D>,
    /// SwiGLU's gate (unused by two-matrix activations).
    pub w_gate: Tensor<Rank2<F, M>, E, D>,
    pub w_down: Tensor<Rank2<M, F>, E, D>,
}

/// The whole model.
#[derive(Debug, Clone)]
pub struct Transformer<
    const V: usize,
    const M: usize,
    const HD: usize,
    const KVW: usize,
    const F: usize,
    const L: usize,
    E: Dtype,
    D: Device<E>,
> {
    pub embed: Tensor<Rank2<V, M>, E, D>,
    /// Used only when embeddings are not tied.
    pub lm_head: Tensor<Rank2<V, M>, E, D>,
    pub blocks: Vec<Block<M, HD, KVW, F, E, D>>,
    pub final_norm: Tensor<Rank1<M>, E, D>,
}

fn ones<S: ConstShape, E: Dtype, D: Device<E>>() -> TensorOptions<S, E, D> {
    TensorOptions::reset_to_ones()
}

fn zeros<S: ConstShape, E: Dtype, D: Device<E>>() -> TensorOptions<S, E, D> {
    // Matrices are initialised by `init_normal` with the spec's std; zeros until then.
    TensorOptions::reset_to_zeros()
}

impl<const M: usize, const HD: usize, const KVW: usize, const F: usize, E: Dtype, D: Device<E>>
    TensorCollection<E, D> for Block<M, HD, KVW, F, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = Block<M, HD, KVW, F, E2, D2>;

    fn iter_tensors<Vis: ModuleVisitor<Self, E, D>>(
        visitor: &mut Vis,
    ) -> Result<Option<Self::To<Vis::E2, Vis::D2>>, Vis::Err> {
        visitor.visit_fields(
            (
                (
                    Self::tensor("attn_norm", |s| &s.attn_norm, |s| &mut s.attn_norm, ones()),
                    Self::tensor("wq", |s| &s.wq, |s| &mut s.wq, zeros()),
                    Self::tensor("wk", |s| &s.wk, |s| &mut s.wk, zeros()),
                    Self::tensor("wv", |s| &s.wv, |s| &mut s.wv, zeros()),
                    Self::tensor("wo", |s| &s.wo, |s| &mut s.wo, zeros()),
                    Self::tensor("q_gain", |s| &s.q_gain, |s| &mut s.q_gain, ones()),
                ),
                (
                    Self::tensor("k_gain", |s| &s.k_gain, |s| &mut s.k_gain, ones()),
                    Self::tensor("ffn_norm", |s| &s.ffn_norm, |s| &mut s.ffn_norm, ones()),
                    Self::tensor("w_up", |s| &s.w_up, |s| &mut s.w_up, zeros()),
                    Self::tensor("w_gate", |s| &s.w_gate, |s| &mut s.w_gate, zeros()),
                    Self::tensor("w_down", |s| &s.w_down, |s| &mut s.w_down, zeros()),
                ),
            ),
            |((attn_norm, wq, wk, wv, wo, q_gain), (k_gain, ffn_norm, w_up, w_gate, w_down))| {
                Block {
                    attn_norm,
                    wq,
                    wk,
                    wv,
                    wo,
                    q_gain,
                    k_gain,
                    ffn_norm,
                    w_up,
                    w_gate,
                    w_down,
                }
            },
        )
    }
}

impl<
        const V: usize,
        const M: usize,
        const HD: usize,
        const KVW: usize,
        const F: usize,
        const L: usize,
        E: Dtype,
        D: Device<E>,
    > TensorCollection<E, D> for Transformer<V, M, HD, KVW, F, L, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = Transformer<V, M, HD, KVW, F, L, E2, D2>;

    fn iter_tensors<Vis: ModuleVisitor<Self, E, D>>(
        visitor: &mut Vis,
    ) -> Result<Option<Self::To<Vis::E2, Vis::D2>>, Vis::Err> {
        let names: Vec<String> = (0..L).map(|i| format!("blocks.{i}")).collect();
        visitor.visit_fields(
            (
                Self::tensor("embed", |s| &s.embed, |s| &mut s.embed, zeros()),
                Self::tensor("lm_head", |s| &s.lm_head, |s| &mut s.lm_head, zeros()),
                names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        Self::module(name, move |s| &s.blocks[i], move |s| &mut s.blocks[i])
                    })
                    .collect::<Vec<_>>(),
                Self::tensor(
                    "final_norm",
                    |s| &s.final_norm,
                    |s| &mut s.final_norm,
                    ones(),
                ),
            ),
            |(embed, lm_head, blocks, final_norm)| Transformer {
                embed,
                lm_head,
                blocks,
                final_norm,
            },
        )
    }
}
