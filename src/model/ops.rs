//! The forward pass's building blocks per device: fused kernels on the CPU
//! (`cpu_ops`), compositions of dfdx ops elsewhere (`composed`). Both compute the same
//! functions; tests hold the fused ones to the composed ones.

use dfdx::prelude::*;

use super::arch::AttentionShape;
use super::composed::{self, Rows};
use super::constants::Constants;
use super::cpu_ops;
use super::tape::ModelTape;

/// Default methods compose dfdx ops (`composed`), so a device gets a working forward
/// pass by implementing nothing; the CPU overrides every one with a fused operation.
pub trait ModelOps: composed::AddConstant {
    /// The attention projections of `x` by `wq`, `wk` and `wv` (each [out, M]).
    #[allow(clippy::type_complexity)]
    fn qkv<const M: usize, const QW: usize, const KVW: usize, T: ModelTape<Self>>(
        x: Rows<M, Self, T>,
        wq: Tensor<Rank2<QW, M>, f32, Self, T>,
        wk: Tensor<Rank2<KVW, M>, f32, Self, T>,
        wv: Tensor<Rank2<KVW, M>, f32, Self, T>,
    ) -> (Rows<QW, Self, T>, Rows<KVW, Self, T>, Rows<KVW, Self, T>) {
        composed::qkv(x, wq, wk, wv)
    }

    /// `x @ w^T` for a weight [OUT, IN].
    fn linear<const IN: usize, const OUT: usize, T: ModelTape<Self>>(
        x: Rows<IN, Self, T>,
        w: Tensor<Rank2<OUT, IN>, f32, Self, T>,
    ) -> Rows<OUT, Self, T> {
        composed::linear(x, w)
    }

    /// RMSNorm over consecutive groups of `G` values of each row, times `gain` if given.
    fn rms_norm<const W: usize, const G: usize, T: ModelTape<Self>>(
        x: Rows<W, Self, T>,
        gain: Option<Tensor<Rank1<G>, f32, Self, T>>,
        eps: f32,
    ) -> Rows<W, Self, T> {
        composed::rms_norm(x, gain, eps)
    }

    /// RoPE on each head of rows [batch * seq, W].
    fn rope<const W: usize, const HD: usize, T: ModelTape<Self>>(
        x: Rows<W, Self, T>,
        consts: &Constants<HD, Self>,
    ) -> Rows<W, Self, T> {
        composed::rope(x, consts)
    }

    /// Grouped-query causal attention. Given `max_logits`, also sets it to the largest
    /// attention logit (q . k / sqrt(HD), masked entries excluded) of each query head
    /// over the batch.
    fn causal_attention<const QW: usize, const KVW: usize, const HD: usize, T: ModelTape<Self>>(
        q: Rows<QW, Self, T>,
        k: Rows<KVW, Self, T>,
        v: Rows<KVW, Self, T>,
        shape: AttentionShape,
        consts: &Constants<HD, Self>,
        max_logits: Option<&mut Vec<f32>>,
    ) -> Rows<QW, Self, T> {
        composed::causal_attention(q, k, v, shape, consts, max_logits)
    }

    /// The squared-ReLU feed-forward block `relu(x @ up^T)^2 @ down^T`.
    fn squared_relu_mlp<const M: usize, const F: usize, T: ModelTape<Self>>(
        x: Rows<M, Self, T>,
        up: Tensor<Rank2<F, M>, f32, Self, T>,
        down: Tensor<Rank2<M, F>, f32, Self, T>,
    ) -> Rows<M, Self, T> {
        composed::squared_relu_mlp(x, up, down)
    }

    /// The LM head `x @ head^T` and the mean cross-entropy of its logits against target
    /// ids [rows], plus `z_loss` times the mean of log^2 Z (Z: each row's softmax
    /// normaliser; PaLM's z-loss) when `z_loss` is not 0. `mean_log_z`, when given, gets
    /// the mean of log Z over the rows.
    fn lm_head_loss<const M: usize, const V: usize, T: ModelTape<Self>>(
        x: Rows<M, Self, T>,
        head: Tensor<Rank2<V, M>, f32, Self, T>,
        targets: Tensor<(usize,), usize, Self>,
        z_loss: f32,
        mean_log_z: Option<&mut f32>,
    ) -> Tensor<Rank0, f32, Self, T> {
        composed::cross_entropy_z(composed::linear(x, head), targets, z_loss, mean_log_z)
    }

    /// `x + y`: a block's output added to the residual stream.
    fn add<const W: usize, T: ModelTape<Self>>(
        x: Rows<W, Self, T>,
        y: Rows<W, Self, T>,
    ) -> Rows<W, Self, T> {
        x + y
    }
}

impl ModelOps for Cpu {
    fn qkv<const M: usize, const QW: usize, const KVW: usize, T: ModelTape<Self>>(
        x: Rows<M, Self, T>,
        wq: Tensor<Rank2<QW, M>, f32, Self, T>,
        wk: Tensor<Rank2<KVW, M>, f32, Self, T>,
        wv: Tensor<Rank2<KVW, M>, f32, Self, T>,
    ) -> (Rows<QW, Self, T>, Rows<KVW, Self, T>, Rows<KVW, Self, T>) {
        cpu_ops::qkv(x, wq, wk, wv)
    }

    fn linear<const IN: usize, const OUT: usize, T: ModelTape<Self>>(
        x: Rows<IN, Self, T>,
        w: Tensor<Rank2<OUT, IN>, f32, Self, T>,
    ) -> Rows<OUT, Self, T> {
        cpu_ops::linear(x, w)
    }

    fn rms_norm<const W: usize, const G: usize, T: ModelTape<Self>>(
        x: Rows<W, Self, T>,
        gain: Option<Tensor<Rank1<G>, f32, Self, T>>,
        eps: f32,
    ) -> Rows<W, Self, T> {
        cpu_ops::rms_norm(x, gain, eps)
    }

    fn rope<const W: usize, const HD: usize, T: ModelTape<Self>>(
        x: Rows<W, Self, T>,
        consts: &Constants<HD, Self>,
    ) -> Rows<W, Self, T> {
        cpu_ops::rope(x, &consts.rope_table)
    }

    fn causal_attention<const QW: usize, const KVW: usize, const HD: usize, T: ModelTape<Self>>(
        q: Rows<QW, Self, T>,
        k: Rows<KVW, Self, T>,
        v: Rows<KVW, Self, T>,
        shape: AttentionShape,
        _consts: &Constants<HD, Self>,
        max_logits: Option<&mut Vec<f32>>,
    ) -> Rows<QW, Self, T> {
        cpu_ops::causal_attention(q, k, v, shape, max_logits)
    }

    fn squared_relu_mlp<const M: usize, const F: usize, T: ModelTape<Self>>(
        x: Rows<M, Self, T>,
        up: Tensor<Rank2<F, M>, f32, Self, T>,
        down: Tensor<Rank2<M, F>, f32, Self, T>,
    ) -> Rows<M, Self, T> {
        cpu_ops::squared_relu_mlp(x, up, down)
    }

    fn lm_head_loss<const M: usize, const V: usize, T: ModelTape<Self>>(
        x: Rows<M, Self, T>,
        head: Tensor<Rank2<V, M>, f32, Self, T>,
        targets: Tensor<(usize,), usize, Self>,
        z_loss: f32,
        mean_log_z: Option<&mut f32>,
    ) -> Tensor<Rank0, f32, Self, T> {
        cpu_ops::lm_head_loss(x, head, targets, z_loss, mean_log_z)
    }

    fn add<const W: usize, T: ModelTape<Self>>(
        x: Rows<W, Self, T>,
        y: Rows<W, Self, T>,
    ) -> Rows<W, Self, T> {
        cpu_ops::add(x, y)
    }
}

#[cfg(feature = "cuda")]
impl ModelOps for Cuda {}
