//! The forward pass: embedding, pre-norm blocks (RMSNorm, QK-norm, RoPE, grouped-query
//! causal attention, feed-forward), final norm and LM head. Written once for any dfdx
//! device and tape: with an `OwnedTape` it records the backward pass, with `NoneTape`
//! it evaluates.

use dfdx::prelude::*;

use crate::spec::run_config::{Activation, Gain, Site, Stage, Tensor as TensorKind};

use super::arch::{Architecture, Capture, Taps};
use super::params::{Block, Transformer};

/// Large negative score for masked (future) positions: exp underflows to 0 without the
/// NaNs that -inf can produce in the backward pass.
const MASKED: f32 = -1e30;

/// The tapes the forward pass works with: recording (`OwnedTape`) or not (`NoneTape`).
pub trait ModelTape<D: Device<f32>>: Tape<f32, D> + Merge<NoneTape> + Merge<Self> {}
impl<D: Device<f32>, T: Tape<f32, D> + Merge<NoneTape> + Merge<T>> ModelTape<D> for T {}

/// Sequence-length-dependent constants: RoPE tables and the causal mask.
pub struct Constants<const HD: usize, D: Device<f32>> {
    /// [seq, HD] cos and sin of position * frequency, in "rotate half" layout.
    cos: Tensor<(usize, Const<HD>), f32, D>,
    sin: Tensor<(usize, Const<HD>), f32, D>,
    /// [HD, HD]: x @ rotate = (-x2, x1).
    rotate: Tensor<Rank2<HD, HD>, f32, D>,
    /// [group * seq, seq]: 0 where a query may attend, MASKED after it.
    mask: Tensor<(usize, usize), f32, D>,
}

impl<const HD: usize, D: Device<f32>> Constants<HD, D> {
    pub fn new(dev: &D, arch: &Architecture, seq_len: usize) -> Self {
        let half = HD / 2;
        let mut cos = Vec::with_capacity(seq_len * HD);
        let mut sin = Vec::with_capacity(seq_len * HD);
        for pos in 0..seq_len {
            for i in 0..HD {
                let freq = arch.rope_base.powf(-2.0 * (i % half) as f64 / HD as f64);
                let angle = pos as f64 * freq;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let mut rotate = vec![0.0f32; HD * HD];
        for j in 0..half {
            rotate[(j + half) * HD + j] = -1.0;
            rotate[j * HD + j + half] = 1.0;
        }
        let group = arch.group();
        let mut mask = Vec::with_capacity(group * seq_len * seq_len);
        for _ in 0..group {
            for query in 0..seq_len {
                mask.extend((0..seq_len).map(|key| if key <= query { 0.0 } else { MASKED }));
            }
        }
        Constants {
            cos: dev.tensor_from_vec(cos, (seq_len, Const::<HD>)),
            sin: dev.tensor_from_vec(sin, (seq_len, Const::<HD>)),
            rotate: dev.tensor_from_vec(rotate, (Const::<HD>, Const::<HD>)),
            mask: dev.tensor_from_vec(mask, (group * seq_len, seq_len)),
        }
    }
}

type Act3<const M: usize, D, T> = Tensor<(usize, usize, Const<M>), f32, D, T>;
type Heads<const HD: usize, D, T> = Tensor<(usize, usize, usize, Const<HD>), f32, D, T>;

/// RMSNorm over the last axis of [batch, seq, M].
pub fn rms_norm<const M: usize, D: Device<f32>, T: ModelTape<D>>(
    x: Act3<M, D, T>,
    gain: Tensor<Rank1<M>, f32, D, T>,
    eps: f32,
) -> Act3<M, D, T> {
    let shape = *x.shape();
    let mean_square = x.with_empty_tape().square().mean::<_, Axis<2>>();
    let inv_rms = (mean_square + eps)
        .sqrt()
        .recip()
        .broadcast_like::<_, Axis<2>>(&shape);
    gain.broadcast_like::<_, Axes2<0, 1>>(&shape) * (x * inv_rms)
}

/// RMSNorm over head_dim of [batch, seq, heads, HD]; no gain = gain frozen at 1.
pub fn head_rms_norm<const HD: usize, D: Device<f32>, T: ModelTape<D>>(
    x: Heads<HD, D, T>,
    gain: Option<Tensor<Rank1<HD>, f32, D, T>>,
    eps: f32,
) -> Heads<HD, D, T> {
    let shape = *x.shape();
    let mean_square = x.with_empty_tape().square().mean::<_, Axis<3>>();
    let inv_rms = (mean_square + eps)
        .sqrt()
        .recip()
        .broadcast_like::<_, Axis<3>>(&shape);
    let normed = x * inv_rms;
    match gain {
        Some(gain) => gain.broadcast_like::<_, Axes3<0, 1, 2>>(&shape) * normed,
        None => normed,
    }
}

/// RoPE ("rotate half") on [batch, seq, heads, HD].
pub fn rope<const HD: usize, D: Device<f32>, T: ModelTape<D>>(
    x: Heads<HD, D, T>,
    consts: &Constants<HD, D>,
) -> Heads<HD, D, T> {
    let shape = *x.shape();
    let (b, s, h, _) = shape;
    let rotated = x
        .with_empty_tape()
        .reshape_like(&(b * s, h, Const::<HD>))
        .matmul(consts.rotate.clone())
        .reshape_like(&shape);
    let cos = consts.cos.clone().broadcast_like::<_, Axes2<0, 2>>(&shape);
    let sin = consts.sin.clone().broadcast_like::<_, Axes2<0, 2>>(&shape);
    x * cos + rotated * sin
}

/// Records `x` ([batch, seq, heads, HD]) if `taps` asks for this site.
fn tap<const HD: usize, D: Device<f32>, T: ModelTape<D>>(
    taps: &mut Option<&mut Taps>,
    layer: usize,
    tensor: TensorKind,
    after: Stage,
    x: &Heads<HD, D, T>,
) {
    let Some(taps) = taps else { return };
    let site = Site { tensor, after };
    if taps.sites.contains(&site) {
        let (b, s, heads, _) = *x.shape();
        taps.captured.push(Capture {
            layer,
            site,
            rows: b * s,
            heads,
            head_dim: HD,
            values: x.as_vec(),
        });
    }
}

impl<const M: usize, const HD: usize, const KVW: usize, const F: usize, D: Device<f32>>
    Block<M, HD, KVW, F, f32, D>
{
    /// Grouped-query causal self-attention on a normed input [batch, seq, M].
    #[allow(clippy::too_many_arguments)]
    fn attention<T: ModelTape<D>>(
        &self,
        x: Act3<M, D, T>,
        arch: &Architecture,
        consts: &Constants<HD, D>,
        layer: usize,
        taps: &mut Option<&mut Taps>,
    ) -> Act3<M, D, T> {
        let (b, s, _) = *x.shape();
        let (h, kv, g) = (arch.n_heads, arch.n_kv_heads, arch.group());
        let q = (x.with_empty_tape().matmul(self.wq.retaped::<T>().permute())).reshape_like(&(
            b,
            s,
            h,
            Const::<HD>,
        ));
        let k = (x.with_empty_tape().matmul(self.wk.retaped::<T>().permute())).reshape_like(&(
            b,
            s,
            kv,
            Const::<HD>,
        ));
        let v = (x.matmul(self.wv.retaped::<T>().permute())).reshape_like(&(b, s, kv, Const::<HD>));
        tap(taps, layer, TensorKind::Q, Stage::Projection, &q);
        tap(taps, layer, TensorKind::K, Stage::Projection, &k);
        tap(taps, layer, TensorKind::V, Stage::Projection, &v);
        let (q, k) = match arch.qk_norm {
            None => (q, k),
            Some(gain) => {
                let learned = |t: &Tensor<Rank1<HD>, f32, D>| {
                    (gain == Gain::Learnable).then(|| t.retaped::<T>())
                };
                (
                    head_rms_norm(q, learned(&self.q_gain), arch.norm_eps),
                    head_rms_norm(k, learned(&self.k_gain), arch.norm_eps),
                )
            }
        };
        tap(taps, layer, TensorKind::Q, Stage::QkNorm, &q);
        tap(taps, layer, TensorKind::K, Stage::QkNorm, &k);
        let (q, k) = (rope(q, consts), rope(k, consts));
        tap(taps, layer, TensorKind::Q, Stage::Rope, &q);
        tap(taps, layer, TensorKind::K, Stage::Rope, &k);
        // Query head kv * g + j uses key/value head kv: group the queries of one kv head
        // into one [g * seq, HD] matrix so K and V are never repeated.
        let q = q
            .reshape_like(&(b, s, kv, g, Const::<HD>))
            .permute::<_, Axes5<0, 2, 3, 1, 4>>()
            .reshape_like(&(b, kv, g * s, Const::<HD>));
        let k = k.permute::<_, Axes4<0, 2, 3, 1>>();
        let v = v.permute::<_, Axes4<0, 2, 1, 3>>();
        let scale = 1.0 / (HD as f32).sqrt();
        let mask = consts
            .mask
            .clone()
            .broadcast_like::<_, Axes2<0, 1>>(&(b, kv, g * s, s));
        let probs = (q.matmul(k) * scale + mask).softmax::<Axis<3>>();
        let out = probs
            .matmul(v)
            .reshape_like(&(b, kv, g, s, Const::<HD>))
            .permute::<_, Axes5<0, 3, 1, 2, 4>>()
            .reshape_like(&(b, s, Const::<M>));
        out.matmul(self.wo.retaped::<T>().permute())
    }

    /// The feed-forward block on a normed input.
    fn feed_forward<T: ModelTape<D>>(
        &self,
        x: Act3<M, D, T>,
        activation: Activation,
    ) -> Act3<M, D, T> {
        // The tape travels with the tensor used last: for SwiGLU that is the gate's input.
        let hidden = match activation {
            Activation::SquaredRelu => x.matmul(self.w_up.retaped::<T>().permute()).relu().square(),
            Activation::Gelu => x.matmul(self.w_up.retaped::<T>().permute()).fast_gelu(),
            Activation::SwiGlu => {
                let up = x
                    .with_empty_tape()
                    .matmul(self.w_up.retaped::<T>().permute());
                let gate = x.matmul(self.w_gate.retaped::<T>().permute());
                gate.with_empty_tape().sigmoid() * gate * up
            }
        };
        hidden.matmul(self.w_down.retaped::<T>().permute())
    }
}

impl<
        const V: usize,
        const M: usize,
        const HD: usize,
        const KVW: usize,
        const F: usize,
        const L: usize,
        D: Device<f32>,
    > Transformer<V, M, HD, KVW, F, L, f32, D>
{
    /// Logits [batch, seq, V] for `tokens` [batch, seq]. `embed` is this model's
    /// embedding table carrying the tape to record on (`model.embed.clone().traced(grads)`
    /// to train, `model.embed.clone()` to evaluate).
    pub fn forward<T: ModelTape<D>>(
        &self,
        arch: &Architecture,
        consts: &Constants<HD, D>,
        tokens: Tensor<(usize, usize), usize, D>,
        embed: Tensor<Rank2<V, M>, f32, D, T>,
        mut taps: Option<&mut Taps>,
    ) -> Tensor<(usize, usize, Const<V>), f32, D, T> {
        let mut x: Act3<M, D, T> = embed.gather(tokens) * arch.embedding_scale;
        for (layer, block) in self.blocks.iter().enumerate() {
            let normed = rms_norm(
                x.with_empty_tape(),
                block.attn_norm.retaped::<T>(),
                arch.norm_eps,
            );
            x = x + block.attention(normed, arch, consts, layer, &mut taps);
            let normed = rms_norm(
                x.with_empty_tape(),
                block.ffn_norm.retaped::<T>(),
                arch.norm_eps,
            );
            x = x + block.feed_forward(normed, arch.activation);
        }
        let x = rms_norm(x, self.final_norm.retaped::<T>(), arch.norm_eps);
        let head = if arch.tied_embeddings {
            &self.embed
        } else {
            &self.lm_head
        };
        x.matmul(head.retaped::<T>().permute())
    }
}

/// Mean next-token cross-entropy of logits [batch, seq, V] against targets [batch, seq].
pub fn cross_entropy<const V: usize, D: Device<f32>, T: ModelTape<D>>(
    logits: Tensor<(usize, usize, Const<V>), f32, D, T>,
    targets: Tensor<(usize,), usize, D>,
) -> Tensor<Rank0, f32, D, T> {
    let (b, s, _) = *logits.shape();
    let log_probs = logits
        .reshape_like(&(b * s, Const::<V>))
        .log_softmax::<Axis<1>>();
    log_probs.select(targets).mean().negate()
}
