//! The forward pass's building blocks composed of dfdx tensor ops: they run on any dfdx
//! device (the CUDA path uses them) and serve as the reference the CPU's fused operations
//! are tested against. Activations are rows [batch * seq, width].

use dfdx::prelude::*;

use super::arch::AttentionShape;
use super::constants::Constants;
use super::tape::ModelTape;

/// `x + constant` where nothing needs the constant's gradient (the causal mask). dfdx's
/// add computes it anyway; a device may override this to skip it (CUDA: `cuda_ops`).
pub trait AddConstant: Device<f32> {
    fn add_constant<S: Shape, T: ModelTape<Self>>(
        x: Tensor<S, f32, Self, T>,
        constant: Tensor<S, f32, Self>,
    ) -> Tensor<S, f32, Self, T> {
        x + constant
    }
}

impl AddConstant for Cpu {}

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
///
/// Only contiguous reshapes, slices, products and elementwise ops: a reshape of a
/// permuted tensor would make dfdx compile a CUDA kernel with NVRTC at run time, with
/// include paths of the build machine, which fails on another machine. Each query head is
/// sliced out ([batch, seq, HD]), attends to its key/value head (the key's transpose is a
/// strided view the batched product reads directly), and is put back in place by a
/// product with a constant 0/1 matrix [HD, QW].
pub fn causal_attention<
    const QW: usize,
    const KVW: usize,
    const HD: usize,
    D: AddConstant,
    T: ModelTape<D>,
>(
    q: Rows<QW, D, T>,
    k: Rows<KVW, D, T>,
    v: Rows<KVW, D, T>,
    shape: AttentionShape,
    consts: &Constants<HD, D>,
    mut max_logits: Option<&mut Vec<f32>>,
) -> Rows<QW, D, T> {
    if let Some(sink) = max_logits.as_deref_mut() {
        *sink = vec![f32::NEG_INFINITY; shape.heads];
    }
    let AttentionShape {
        batch: b,
        seq: s,
        heads,
        kv_heads,
        ..
    } = shape;
    let group = heads / kv_heads;
    let head_of = |x: &Tensor<(usize, usize, usize, Const<HD>), f32, D, T>, i: usize| {
        x.with_empty_tape()
            .slice((.., .., i..i + 1, ..))
            .reshape_like(&(b, s, Const::<HD>))
    };
    let q = q.reshape_like(&(b, s, heads, Const::<HD>));
    let k = k.reshape_like(&(b, s, kv_heads, Const::<HD>));
    let v = v.reshape_like(&(b, s, kv_heads, Const::<HD>));
    let scale = 1.0 / (HD as f32).sqrt();
    let mask = consts.mask.clone().broadcast_like::<_, Axis<0>>(&(b, s, s));
    let mut out: Option<Rows<QW, D, T>> = None;
    let mut slice_tapes = Vec::new();
    for kv in 0..kv_heads {
        // The slices' own tapes (their backward ops) join the output once, at the end;
        // the products read them through empty tapes (gradients meet by tensor id).
        let (k_kv, k_tape) = head_of(&k, kv).split_tape();
        let (v_kv, v_tape) = head_of(&v, kv).split_tape();
        slice_tapes.extend([k_tape, v_tape]);
        for j in 0..group {
            let h = kv * group + j;
            let keys_t = k_kv.retaped::<T>().permute::<_, Axes3<0, 2, 1>>();
            let scores = D::add_constant(head_of(&q, h).matmul(keys_t) * scale, mask.clone());
            if let Some(sink) = max_logits.as_deref_mut() {
                // Masked scores are `MASKED` (far below any logit); the diagonal never is.
                sink[h] = scores.retaped::<NoneTape>().max::<Rank0, _>().as_vec()[0];
            }
            let probs = scores.softmax::<Axis<2>>();
            let head_out = probs
                .matmul(v_kv.retaped::<T>())
                .reshape_like(&(b * s, Const::<HD>))
                .matmul(consts.placements[h].clone())
                .reshape_like(&(b * s, Const::<QW>));
            out = Some(match out {
                None => head_out,
                Some(sum) => sum + head_out,
            });
        }
    }
    let (out, mut tape) = out.expect("at least one head").split_tape();
    // The inputs' own tapes (everything before attention) join too.
    for input_tape in [q.split_tape().1, k.split_tape().1, v.split_tape().1] {
        tape = tape.merge(input_tape);
    }
    for slice_tape in slice_tapes {
        tape = tape.merge(slice_tape);
    }
    out.put_tape(tape)
}

/// The squared-ReLU feed-forward block `relu(x @ up^T)^2 @ down^T`.
pub fn squared_relu_mlp<const M: usize, const F: usize, D: Device<f32>, T: ModelTape<D>>(
    x: Rows<M, D, T>,
    up: Tensor<Rank2<F, M>, f32, D, T>,
    down: Tensor<Rank2<M, F>, f32, D, T>,
) -> Rows<M, D, T> {
    linear(linear(x, up).relu().square(), down)
}

/// Mean cross-entropy of logits [rows, V] against target ids [rows], plus `z_loss` x
/// the mean of log^2 Z when `z_loss` is not 0; `mean_log_z` gets the mean of log Z.
pub fn cross_entropy_z<const V: usize, D: Device<f32>, T: ModelTape<D>>(
    logits: Rows<V, D, T>,
    targets: Tensor<(usize,), usize, D>,
    z_loss: f32,
    mean_log_z: Option<&mut f32>,
) -> Tensor<Rank0, f32, D, T> {
    if let Some(sink) = mean_log_z {
        let log_z = logits.with_empty_tape().logsumexp::<(usize,), Axis<1>>();
        *sink = log_z.mean().as_vec()[0];
    }
    if z_loss == 0.0 {
        return cross_entropy(logits, targets);
    }
    let log_z = logits.with_empty_tape().logsumexp::<(usize,), Axis<1>>();
    cross_entropy(logits, targets) + log_z.square().mean() * z_loss
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
