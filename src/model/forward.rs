//! The forward pass: embedding, pre-norm blocks (RMSNorm, QK-norm, RoPE, grouped-query
//! causal attention, feed-forward), final norm and LM head. Written once for any device
//! with `ModelOps` and any tape: with an `OwnedTape` it records the backward pass, with
//! `NoneTape` it evaluates. Activations are rows [batch * seq, width]: every projection is
//! one 2-D matrix product.

use dfdx::prelude::*;

use crate::spec::run_config::{Activation, Gain, Site, Stage, Tensor as TensorKind};

use super::arch::AttentionShape;
use super::arch::{Architecture, Capture, Taps};
use super::composed::Rows;
use super::constants::Constants;
use super::ops::ModelOps;
use super::params::{Block, Transformer};
use super::tape::ModelTape;

/// Token ids of a batch: inputs [batch, seq] and next-token targets [batch * seq].
pub type TokenBatch<D> = (Tensor<(usize, usize), usize, D>, Tensor<(usize,), usize, D>);

/// Records `x` ([batch * seq, heads * HD]) if `taps` asks for this site.
fn tap<const W: usize, const HD: usize, D: ModelOps, T: ModelTape<D>>(
    taps: &mut Option<&mut Taps>,
    layer: usize,
    tensor: TensorKind,
    after: Stage,
    x: &Rows<W, D, T>,
) {
    let Some(taps) = taps else { return };
    let site = Site { tensor, after };
    if taps.sites.contains(&site) {
        let (rows, _) = *x.shape();
        taps.captured.push(Capture {
            layer,
            site,
            rows,
            heads: W / HD,
            head_dim: HD,
            values: x.as_vec(),
        });
    }
}

/// `keys` ([rows, KVW]) with each KV head's block multiplied by its matrix, if `taps`
/// asks to project this layer's keys at this stage (a causal probe); else unchanged.
fn project_keys<const W: usize, const HD: usize, D: ModelOps, T: ModelTape<D>>(
    taps: &Option<&mut Taps>,
    layer: usize,
    after: Stage,
    keys: Rows<W, D, T>,
) -> Rows<W, D, T> {
    let wanted = taps.as_ref().and_then(|t| t.project_keys.as_ref());
    let Some(projection) = wanted.filter(|p| p.layer == layer && p.after == after) else {
        return keys;
    };
    let (rows, _) = *keys.shape();
    let values = keys.as_vec();
    let mut delta = vec![0.0f32; values.len()];
    for (row, out) in values.chunks_exact(W).zip(delta.chunks_exact_mut(W)) {
        for (head, matrix) in projection.matrices.iter().enumerate() {
            let k = &row[head * HD..(head + 1) * HD];
            for j in 0..HD {
                let projected: f32 = (0..HD).map(|i| k[i] * matrix[i * HD + j]).sum();
                out[head * HD + j] = projected - k[j];
            }
        }
    }
    let delta = keys.device().tensor_from_vec(delta, (rows, Const::<W>));
    keys + delta
}

impl<const M: usize, const HD: usize, const KVW: usize, const F: usize, D: ModelOps>
    Block<M, HD, KVW, F, f32, D>
{
    /// Grouped-query causal self-attention on a normed input [rows, M].
    fn attention<T: ModelTape<D>>(
        &self,
        x: Rows<M, D, T>,
        arch: &Architecture,
        consts: &Constants<HD, D>,
        layer: usize,
        taps: &mut Option<&mut Taps>,
    ) -> Rows<M, D, T> {
        let (rows, _) = *x.shape();
        let (q, k, v) = D::qkv(
            x,
            self.wq.retaped::<T>(),
            self.wk.retaped::<T>(),
            self.wv.retaped::<T>(),
        );
        tap::<M, HD, D, T>(taps, layer, TensorKind::Q, Stage::Projection, &q);
        tap::<KVW, HD, D, T>(taps, layer, TensorKind::K, Stage::Projection, &k);
        tap::<KVW, HD, D, T>(taps, layer, TensorKind::V, Stage::Projection, &v);
        let k = project_keys::<KVW, HD, D, T>(taps, layer, Stage::Projection, k);
        let (q, k) = match arch.qk_norm {
            None => (q, k),
            Some(gain) => {
                let learned = |t: &Tensor<Rank1<HD>, f32, D>| {
                    (gain == Gain::Learnable).then(|| t.retaped::<T>())
                };
                (
                    D::rms_norm(q, learned(&self.q_gain), arch.norm_eps),
                    D::rms_norm(k, learned(&self.k_gain), arch.norm_eps),
                )
            }
        };
        tap::<M, HD, D, T>(taps, layer, TensorKind::Q, Stage::QkNorm, &q);
        tap::<KVW, HD, D, T>(taps, layer, TensorKind::K, Stage::QkNorm, &k);
        let k = project_keys::<KVW, HD, D, T>(taps, layer, Stage::QkNorm, k);
        let (q, k) = (D::rope(q, consts), D::rope(k, consts));
        tap::<M, HD, D, T>(taps, layer, TensorKind::Q, Stage::Rope, &q);
        tap::<KVW, HD, D, T>(taps, layer, TensorKind::K, Stage::Rope, &k);
        let k = project_keys::<KVW, HD, D, T>(taps, layer, Stage::Rope, k);
        let shape = AttentionShape {
            batch: rows / consts.seq,
            seq: consts.seq,
            heads: arch.n_heads,
            kv_heads: arch.n_kv_heads,
            head_dim: HD,
        };
        let collected = taps.as_deref_mut().and_then(|t| t.max_logits.as_mut());
        let mut maxes = Vec::new();
        let wanted = collected.is_some().then_some(&mut maxes);
        let out = D::causal_attention(q, k, v, shape, consts, wanted);
        if let Some(collected) = collected {
            collected.push(maxes);
        }
        D::linear(out, self.wo.retaped::<T>())
    }

    /// The feed-forward block on a normed input.
    fn feed_forward<T: ModelTape<D>>(
        &self,
        x: Rows<M, D, T>,
        activation: Activation,
    ) -> Rows<M, D, T> {
        let down = self.w_down.retaped::<T>();
        match activation {
            Activation::SquaredRelu => D::squared_relu_mlp(x, self.w_up.retaped::<T>(), down),
            Activation::Gelu => D::linear(D::linear(x, self.w_up.retaped::<T>()).fast_gelu(), down),
            Activation::SwiGlu => {
                // The tape travels with the tensor used last: the gate's input.
                let up = D::linear(x.with_empty_tape(), self.w_up.retaped::<T>());
                let gate = D::linear(x, self.w_gate.retaped::<T>());
                D::linear(gate.with_empty_tape().sigmoid() * gate * up, down)
            }
        }
    }
}

impl<
        const V: usize,
        const M: usize,
        const HD: usize,
        const KVW: usize,
        const F: usize,
        const L: usize,
        D: ModelOps,
    > Transformer<V, M, HD, KVW, F, L, f32, D>
{
    /// The final normed hidden states [batch * seq, M] for `tokens` [batch, seq].
    /// `embed` is this model's embedding table carrying the tape to record on
    /// (`model.embed.clone().traced(grads)` to train, `model.embed.clone()` to evaluate).
    pub fn hidden<T: ModelTape<D>>(
        &self,
        arch: &Architecture,
        consts: &Constants<HD, D>,
        tokens: Tensor<(usize, usize), usize, D>,
        embed: Tensor<Rank2<V, M>, f32, D, T>,
        mut taps: Option<&mut Taps>,
    ) -> Rows<M, D, T> {
        let (b, s) = *tokens.shape();
        assert_eq!(
            s, consts.seq,
            "the constants are for another sequence length"
        );
        let mut x: Rows<M, D, T> =
            (embed.gather(tokens) * arch.embedding_scale).reshape_like(&(b * s, Const::<M>));
        for (layer, block) in self.blocks.iter().enumerate() {
            let gain = Some(block.attn_norm.retaped::<T>());
            let normed = D::rms_norm(x.with_empty_tape(), gain, arch.norm_eps);
            x = D::add(x, block.attention(normed, arch, consts, layer, &mut taps));
            let gain = Some(block.ffn_norm.retaped::<T>());
            let normed = D::rms_norm(x.with_empty_tape(), gain, arch.norm_eps);
            x = D::add(x, block.feed_forward(normed, arch.activation));
        }
        D::rms_norm(x, Some(self.final_norm.retaped::<T>()), arch.norm_eps)
    }

    /// The LM head's matrix: the embedding table when tied.
    fn head(&self, arch: &Architecture) -> &Tensor<Rank2<V, M>, f32, D> {
        if arch.tied_embeddings {
            &self.embed
        } else {
            &self.lm_head
        }
    }

    /// Logits [batch * seq, V] for `tokens` [batch, seq] (see `hidden`).
    pub fn forward<T: ModelTape<D>>(
        &self,
        arch: &Architecture,
        consts: &Constants<HD, D>,
        tokens: Tensor<(usize, usize), usize, D>,
        embed: Tensor<Rank2<V, M>, f32, D, T>,
        taps: Option<&mut Taps>,
    ) -> Rows<V, D, T> {
        let x = self.hidden(arch, consts, tokens, embed, taps);
        D::linear(x, self.head(arch).retaped::<T>())
    }

    /// Mean next-token cross-entropy for `tokens` [batch, seq] against `targets`
    /// [batch * seq] (see `hidden`); the logits are not kept.
    pub fn loss<T: ModelTape<D>>(
        &self,
        arch: &Architecture,
        consts: &Constants<HD, D>,
        batch: TokenBatch<D>,
        embed: Tensor<Rank2<V, M>, f32, D, T>,
        taps: Option<&mut Taps>,
    ) -> Tensor<Rank0, f32, D, T> {
        self.training_loss(arch, consts, batch, embed, taps, 0.0)
    }

    /// The training objective: `loss` plus `z_loss` x the mean of log^2 Z over the rows
    /// (Z: the output softmax's normaliser). `taps.mean_log_z`, when asked for, gets the
    /// mean of log Z.
    pub fn training_loss<T: ModelTape<D>>(
        &self,
        arch: &Architecture,
        consts: &Constants<HD, D>,
        (tokens, targets): TokenBatch<D>,
        embed: Tensor<Rank2<V, M>, f32, D, T>,
        mut taps: Option<&mut Taps>,
        z_loss: f32,
    ) -> Tensor<Rank0, f32, D, T> {
        let x = self.hidden(arch, consts, tokens, embed, taps.as_deref_mut());
        let log_z = taps.and_then(|t| t.mean_log_z.as_mut());
        D::lm_head_loss(x, self.head(arch).retaped::<T>(), targets, z_loss, log_z)
    }

    /// For evaluation: the mean next-token cross-entropy (the number `loss` gives) and
    /// the loss of every token [batch * seq]. The LM head runs over at most 2^24 logits
    /// at a time, so a large vocabulary's logits never exist whole.
    pub fn loss_and_token_losses(
        &self,
        arch: &Architecture,
        consts: &Constants<HD, D>,
        (tokens, targets): TokenBatch<D>,
        mut taps: Option<&mut Taps>,
    ) -> (f32, Vec<f32>) {
        let x = self.hidden(
            arch,
            consts,
            tokens,
            self.embed.clone(),
            taps.as_deref_mut(),
        );
        let head = self.head(arch);
        let ids = targets.as_vec();
        let log_z = taps.and_then(|t| t.mean_log_z.as_mut());
        let mean = D::lm_head_loss(x.clone(), head.clone(), targets, 0.0, log_z).as_vec()[0];
        let rows = x.shape().0;
        let chunk = ((1usize << 24) / V).max(1);
        let mut losses = Vec::with_capacity(rows);
        for start in (0..rows).step_by(chunk) {
            let end = (start + chunk).min(rows);
            let part: Rows<M, D, NoneTape> = x.clone().slice((start..end, ..)).realize();
            let part_ids = x
                .device()
                .tensor_from_vec(ids[start..end].to_vec(), (end - start,));
            let logits = D::linear(part, head.clone());
            let nll = logits.log_softmax::<Axis<1>>().select(part_ids).negate();
            losses.extend(nll.as_vec());
        }
        (mean, losses)
    }
}

/// Mean next-token cross-entropy of logits [batch * seq, V] against targets
/// [batch * seq].
pub fn cross_entropy<const V: usize, D: Device<f32>, T: ModelTape<D>>(
    logits: Rows<V, D, T>,
    targets: Tensor<(usize,), usize, D>,
) -> Tensor<Rank0, f32, D, T> {
    super::composed::cross_entropy(logits, targets)
}
