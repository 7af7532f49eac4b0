//! The forward pass's building blocks composed of dfdx tensor ops: they run on any dfdx
//! device (the CUDA path uses them) and serve as the reference the CPU's fused operations
//! are tested against. Activations are rows [batch * seq, width].

use dfdx::prelude::*;

use super::constants::Constants;
use super::cpu_ops::AttentionShape;
use super::tape::ModelTape;

/// Activations [rows, W].
pub type Rows<const W: usize, D, T> = Tensor<(usize, Const<W>), f32, D, T>;

/// `x @ w^T` for a weight [OUT, IN]: one 2-D product.
pub fn linear<const IN: usize, const OUT: usize, D: Device<f32>, T: ModelTape<D>>(
    x: Rows<IN, D, T>,
    w: Tensor<Rank2<OUT, IN>, f32, D, T>,
) -> Rows<OUT, D, T> {
    x.matmul(w.permute())
}

/// The attention projections: three 2-D products of the same input.
#[allow(clippy::type_complexity)]
pub fn qkv<const M: usize, const QW: usize, const KVW: usize, D: Device<f32>, T: ModelTape<D>>(
    x: Rows<M, D, T>,
    wq: Tensor<Rank2<QW, M>, f32, D, T>,
    wk: Tensor<Rank2<KVW, M>, f32, D, T>,
    wv: Tensor<Rank2<KVW, M>, f32, D, T>,
) -> (Rows<QW, D, T>, Rows<KVW, D, T>, Rows<KVW, D, T>) {
    let q = linear(x.with_empty_tape(), wq);
    let k = linear(x.with_empty_tape(), wk);
    (q, k, linear(x, wv))
}

/// RMSNorm over consecutive groups of `G` values of each row, times `gain` if given.
pub fn rms_norm<const W: usize, const G: usize, D: Device<f32>, T: ModelTape<D>>(
    x: Rows<W, D, T>,
    gain: Option<Tensor<Rank1<G>, f32, D, T>>,
    eps: f32,
) -> Rows<W, D, T> {
    let (rows, _) = *x.shape();
    let x = x.reshape_like(&(rows * W / G, Const::<G>));
    let shape = *x.shape();
    let mean_square = x.with_empty_tape().square().mean::<_, Axis<1>>();
    let inv_rms = (mean_square + eps)
        .sqrt()
        .recip()
        .broadcast_like::<_, Axis<1>>(&shape);
    let normed = x * inv_rms;
    let y = match gain {
        Some(gain) => gain.broadcast_like::<_, Axis<0>>(&shape) * normed,
        None => normed,
    };
    y.reshape_like(&(rows, Const::<W>))
}

/// RoPE ("rotate half") on each head of rows [batch * seq, W]; the rotation is one
/// [rows * heads, HD] x [HD, HD] product.
pub fn rope<const W: usize, const HD: usize, D: Device<f32>, T: ModelTape<D>>(
    x: Rows<W, D, T>,
    consts: &Constants<HD, D>,
) -> Rows<W, D, T> {
    let (rows, _) = *x.shape();
    let (seq, heads) = (consts.seq, W / HD);
    let shape = (rows / seq, seq, heads, Const::<HD>);
    let rotated = x
        .with_empty_tape()
        .reshape_like(&(rows * heads, Const::<HD>))
        .matmul(consts.rotate.clone())
        .reshape_like(&shape);
    let cos = consts.cos.clone().broadcast_like::<_, Axes2<0, 2>>(&shape);
    let sin = consts.sin.clone().broadcast_like::<_, Axes2<0, 2>>(&shape);
    (x.reshape_like(&shape) * cos + rotated * sin).reshape_like(&(rows, Const::<W>))
}

/// Grouped-query causal attention of queries [rows, QW] on keys and values [rows, KVW].
pub fn causal_attention<
    const QW: usize,
    const KVW: usize,
    const HD: usize,
    D: Device<f32>,
    T: ModelTape<D>,
>(
    q: Rows<QW, D, T>,
    k: Rows<KVW, D, T>,
    v: Rows<KVW, D, T>,
    shape: AttentionShape,
    consts: &Constants<HD, D>,
) -> Rows<QW, D, T> {
    let AttentionShape {
        batch: b,
        seq: s,
        kv_heads: kv,
        ..
    } = shape;
    let g = shape.heads / kv;
    // Query head kv * g + j uses key/value head kv: group the queries of one kv head
    // into one [g * seq, HD] matrix so K and V are never repeated.
    let q = q
        .reshape_like(&(b, s, kv, g, Const::<HD>))
        .permute::<_, Axes5<0, 2, 3, 1, 4>>()
        .reshape_like(&(b, kv, g * s, Const::<HD>));
    let k = k
        .reshape_like(&(b, s, kv, Const::<HD>))
        .permute::<_, Axes4<0, 2, 3, 1>>();
    let v = v
        .reshape_like(&(b, s, kv, Const::<HD>))
        .permute::<_, Axes4<0, 2, 1, 3>>();
    let scale = 1.0 / (HD as f32).sqrt();
    let mask = consts
        .mask
        .clone()
        .broadcast_like::<_, Axes2<0, 1>>(&(b, kv, g * s, s));
    let probs = (q.matmul(k) * scale + mask).softmax::<Axis<3>>();
    probs
        .matmul(v)
        .reshape_like(&(b, kv, g, s, Const::<HD>))
        .permute::<_, Axes5<0, 3, 1, 2, 4>>()
        .reshape_like(&(b * s, Const::<QW>))
}

/// `relu(x)^2`.
pub fn squared_relu<const W: usize, D: Device<f32>, T: ModelTape<D>>(
    x: Rows<W, D, T>,
) -> Rows<W, D, T> {
    x.relu().square()
}

/// Mean cross-entropy of logits [rows, V] against target ids [rows].
pub fn cross_entropy<const V: usize, D: Device<f32>, T: ModelTape<D>>(
    logits: Rows<V, D, T>,
    targets: Tensor<(usize,), usize, D>,
) -> Tensor<Rank0, f32, D, T> {
    logits
        .log_softmax::<Axis<1>>()
        .select(targets)
        .mean()
        .negate()
}
