//! Fused CPU operations of the forward pass, recorded on dfdx's tape as custom
//! operations: RMSNorm, RoPE, causal attention, linear layers, the squared-ReLU feed-forward block and
//! the LM head with cross-entropy each run as
//! one parallel pass forward and one backward, instead of a chain of single-threaded dfdx
//! ops that each allocate their output (and, for RoPE and attention, many tiny matrix
//! products). The slice kernels live in the submodules; this file connects them to
//! tensors and gradients.

pub mod attention;
mod cross_entropy;
mod elementwise;
mod exp;
mod head_products;
mod linear;
mod norm;
mod rope;
mod vector;

use std::sync::Arc;

use dfdx::prelude::*;

use crate::profile;

use super::arch::AttentionShape;
use super::snapshot::host;
use super::tape::ModelTape;
use crate::bf16_matmul::on_thread::{bf16_here, product_new_then};
use crate::matmul::Strided;

/// Activations [rows, W] on the CPU.
pub type Rows<const W: usize, T> = Tensor<(usize, Const<W>), f32, Cpu, T>;

/// Finds (allocating on first use) a gradient buffer: its address and length.
type Slot = dyn Fn(&mut Gradients<f32, Cpu>) -> Result<(*mut f32, usize), CpuError>;

/// The gradient slot of `t`, for a backward operation (holds no reference to its data).
fn slot_of<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>) -> Box<Slot> {
    let ghost = t.ghost();
    Box::new(move |grads| {
        let slot = grads.get_or_alloc_mut(&ghost)?;
        Ok((slot.as_mut_ptr(), slot.len()))
    })
}

/// The gradient of an operation's output (to read) and those of its `N` inputs (to add
/// to), borrowed together.
fn slots<'a, const N: usize>(
    grads: &'a mut Gradients<f32, Cpu>,
    out: &Slot,
    inputs: [&Slot; N],
) -> Result<(&'a [f32], [&'a mut [f32]; N]), CpuError> {
    let ([d_out], d_inputs) = slots_of_many(grads, [out], inputs)?;
    Ok((d_out, d_inputs))
}

/// The output gradients (read) and input gradients (written) of a backward step.
type GradViews<'a, const O: usize, const N: usize> = ([&'a [f32]; O], [&'a mut [f32]; N]);

/// `slots` for an operation with `O` outputs.
fn slots_of_many<'a, const O: usize, const N: usize>(
    grads: &'a mut Gradients<f32, Cpu>,
    outs: [&Slot; O],
    inputs: [&Slot; N],
) -> Result<GradViews<'a, O, N>, CpuError> {
    // Allocate every slot first, then take views: a slot's buffer is its own heap
    // allocation, which later look-ups in the map neither move nor free.
    let mut raw = Vec::with_capacity(N + O);
    for s in inputs.iter().chain(&outs) {
        raw.push(s(grads)?);
    }
    let mut starts: Vec<usize> = raw.iter().map(|&(ptr, _)| ptr as usize).collect();
    starts.sort_unstable();
    starts.dedup();
    assert_eq!(
        starts.len(),
        N + O,
        "an operation's tensors must be distinct"
    );
    // SAFETY: the buffers are distinct allocations (checked above) owned by `grads`,
    // which stays mutably borrowed for 'a.
    let view = |(ptr, len): (*mut f32, usize)| unsafe { std::slice::from_raw_parts_mut(ptr, len) };
    let d_outs = std::array::from_fn(|i| &*view(raw[N + i]));
    let d_inputs = std::array::from_fn(|i| view(raw[i]));
    Ok((d_outs, d_inputs))
}

/// Two inputs without their tapes, and the tapes merged into one.
type Untaped<S1, S2, T> = (Tensor<S1, f32, Cpu>, Option<Tensor<S2, f32, Cpu>>, T);

/// Splits the tapes off `x` and an optional second input, merged into one.
fn split2<S1: Shape, S2: Shape, T: ModelTape<Cpu>>(
    x: Tensor<S1, f32, Cpu, T>,
    y: Option<Tensor<S2, f32, Cpu, T>>,
) -> Untaped<S1, S2, T> {
    let (x, tape) = x.split_tape();
    match y {
        Some(y) => {
            let (y, other) = y.split_tape();
            (x, Some(y), tape.merge(other))
        }
        None => (x, None, tape),
    }
}

/// `x @ w^T`: rows [rows, IN] through a weight [OUT, IN] (dfdx's `Linear` layout), one
/// threaded product each way.
pub fn linear<const IN: usize, const OUT: usize, T: ModelTape<Cpu>>(
    x: Rows<IN, T>,
    w: Tensor<Rank2<OUT, IN>, f32, Cpu, T>,
) -> Rows<OUT, T> {
    let _span = profile::span("linear forward");
    let (x, w, mut tape) = split2(x, Some(w));
    let w = w.expect("a weight was given");
    let (xs, ws) = (host(&x), host(&w));
    let rows = xs.len() / IN;
    let y = linear::forward((rows, IN, OUT), &xs, &ws);
    let out = x.device().tensor_from_vec(y, (rows, Const::<OUT>));
    if T::OWNS_TAPE {
        let (out_slot, x_slot, w_slot) = (slot_of(&out), slot_of(&x), slot_of(&w));
        tape.add_backward_op(move |grads| {
            let _span = profile::span("linear backward");
            let (dy, [dx, dw]) = slots(grads, &*out_slot, [&*x_slot, &*w_slot])?;
            linear::backward((rows, IN, OUT), dy, (&xs, dx), (&ws, dw));
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// The squared-ReLU feed-forward block `relu(x @ up^T)^2 @ down^T` in one operation: the
/// [rows, F] hidden activations are this operation's own buffer, never a tensor (no
/// copies, no zeroed gradients of them), and the only one kept for the backward pass.
pub fn squared_relu_mlp<const M: usize, const F: usize, T: ModelTape<Cpu>>(
    x: Rows<M, T>,
    up: Tensor<Rank2<F, M>, f32, Cpu, T>,
    down: Tensor<Rank2<M, F>, f32, Cpu, T>,
) -> Rows<M, T> {
    let _span = profile::span("mlp forward");
    let (x, up, tape) = split2(x, Some(up));
    let (down, down_tape) = down.split_tape();
    let mut tape = tape.merge(down_tape);
    let up = up.expect("a weight was given");
    let (xs, ups, downs) = (host(&x), host(&up), host(&down));
    let rows = xs.len() / M;
    // The activation applied as the product writes its values (still in cache).
    let activation = |_: usize, _: usize, h: &mut [f32]| elementwise::squared_relu(h);
    let hidden = linear::forward_then((rows, M, F), &xs, &ups, &activation);
    let y = linear::forward((rows, F, M), &hidden, &downs);
    let out = x.device().tensor_from_vec(y, (rows, Const::<M>));
    if T::OWNS_TAPE {
        let out_slot = slot_of(&out);
        let (x_slot, up_slot, down_slot) = (slot_of(&x), slot_of(&up), slot_of(&down));
        tape.add_backward_op(move |grads| {
            let _span = profile::span("mlp backward");
            let (dy, [dx, d_up, d_down]) =
                slots(grads, &*out_slot, [&*x_slot, &*up_slot, &*down_slot])?;
            // Through the down projection and the activation (applied as the product
            // writes): d hidden = (dy @ down) * 2 sqrt(hidden); d down += dy^T @ hidden.
            let through_activation = |row: usize, col: usize, d: &mut [f32]| {
                elementwise::squared_relu_grad(&hidden[row * F + col..][..d.len()], d)
            };
            let d_hidden = product_new_then(
                (rows, M, F),
                (dy, Strided::rows(0, M)),
                (&downs, Strided::rows(0, F)),
                &through_activation,
            );
            linear::weight_grad((rows, F, M), dy, &hidden, d_down);
            // Then the up projection.
            linear::backward((rows, M, F), &d_hidden, (&xs, dx), (&ups, d_up));
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// The attention projections `x @ wq^T`, `x @ wk^T`, `x @ wv^T` in one operation: the
/// normed input is read once and its gradient gathered in one place.
pub fn qkv<const M: usize, const QW: usize, const KVW: usize, T: ModelTape<Cpu>>(
    x: Rows<M, T>,
    wq: Tensor<Rank2<QW, M>, f32, Cpu, T>,
    wk: Tensor<Rank2<KVW, M>, f32, Cpu, T>,
    wv: Tensor<Rank2<KVW, M>, f32, Cpu, T>,
) -> (Rows<QW, T>, Rows<KVW, T>, Rows<KVW, T>) {
    let _span = profile::span("qkv forward");
    let (x, wq, tape) = split2(x, Some(wq));
    let (wk, wk_tape) = wk.split_tape();
    let (wv, wv_tape) = wv.split_tape();
    let mut tape = tape.merge(wk_tape).merge(wv_tape);
    let wq = wq.expect("a weight was given");
    let xs = host(&x);
    let weights = [host(&wq), host(&wk), host(&wv)];
    let rows = xs.len() / M;
    let [q, k, v]: [Vec<f32>; 3] =
        linear::forward_each(rows, M, &xs, &weights.each_ref().map(|w| &w[..]))
            .try_into()
            .expect("three projections");
    let dev = x.device().clone();
    let q = dev.tensor_from_vec(q, (rows, Const::<QW>));
    let k = dev.tensor_from_vec(k, (rows, Const::<KVW>));
    let v = dev.tensor_from_vec(v, (rows, Const::<KVW>));
    if T::OWNS_TAPE {
        let outs = [slot_of(&q), slot_of(&k), slot_of(&v)];
        let ins = [slot_of(&x), slot_of(&wq), slot_of(&wk), slot_of(&wv)];
        tape.add_backward_op(move |grads| {
            let _span = profile::span("qkv backward");
            let (d_outs, [dx, dwq, dwk, dwv]) = slots_of_many(
                grads,
                [&*outs[0], &*outs[1], &*outs[2]],
                [&*ins[0], &*ins[1], &*ins[2], &*ins[3]],
            )?;
            let parts = [dwq, dwk, dwv]
                .into_iter()
                .enumerate()
                .map(|(i, dw)| (d_outs[i], &weights[i][..], dw))
                .collect();
            linear::backward_each(rows, M, (&xs, dx), parts);
            Ok(())
        });
    }
    // The tape travels with v; q and k carry empty ones (attention merges all three).
    (
        q.put_tape(T::default()),
        k.put_tape(T::default()),
        v.put_tape(tape),
    )
}

/// RMSNorm over consecutive groups of `G` values of each row (G = W for a layer norm,
/// G = head_dim for QK-norm), times `gain` when there is one.
pub fn rms_norm<const W: usize, const G: usize, T: ModelTape<Cpu>>(
    x: Rows<W, T>,
    gain: Option<Tensor<Rank1<G>, f32, Cpu, T>>,
    eps: f32,
) -> Rows<W, T> {
    let _span = profile::span("rms_norm forward");
    let (x, gain, mut tape) = split2(x, gain);
    let (xs, gs) = (host(&x), gain.as_ref().map(host));
    let mut y = vec![0.0f32; xs.len()];
    let inv_rms = norm::forward(&xs, G, gs.as_deref(), eps, &mut y);
    let out = x.device().tensor_from_vec(y, *x.shape());
    if T::OWNS_TAPE {
        let (out_slot, x_slot) = (slot_of(&out), slot_of(&x));
        let gain_slot = gain.as_ref().map(slot_of);
        tape.add_backward_op(move |grads| {
            let _span = profile::span("rms_norm backward");
            match gain_slot {
                Some(gain_slot) => {
                    let (dy, [dx, dg]) = slots(grads, &*out_slot, [&*x_slot, &*gain_slot])?;
                    norm::backward(&xs, G, gs.as_deref(), &inv_rms, dy, dx, Some(dg));
                }
                None => {
                    let (dy, [dx]) = slots(grads, &*out_slot, [&*x_slot])?;
                    norm::backward(&xs, G, None, &inv_rms, dy, dx, None);
                }
            }
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// `x + y` (the residual stream): one parallel pass each way, where dfdx's add walks
/// both operands' indices element by element on one thread (measured: 4 ms of a
/// quickstart step's backward pass for its 8 adds).
pub fn add<const W: usize, T: ModelTape<Cpu>>(x: Rows<W, T>, y: Rows<W, T>) -> Rows<W, T> {
    let _span = profile::span("add forward");
    let (x, y, mut tape) = split2(x, Some(y));
    let y = y.expect("a second operand was given");
    let mut sum = host(&x);
    elementwise::add_scaled(&mut sum, &host(&y), 1.0);
    let out = x.device().tensor_from_vec(sum, *x.shape());
    if T::OWNS_TAPE {
        let (out_slot, x_slot, y_slot) = (slot_of(&out), slot_of(&x), slot_of(&y));
        tape.add_backward_op(move |grads| {
            let _span = profile::span("add backward");
            let (d_out, [dx, dy]) = slots(grads, &*out_slot, [&*x_slot, &*y_slot])?;
            elementwise::add_scaled(dx, d_out, 1.0);
            elementwise::add_scaled(dy, d_out, 1.0);
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// RoPE tables on the host, shared with the backward pass.
#[derive(Clone)]
pub struct RopeTable {
    pub cos: Arc<[f32]>,
    pub sin: Arc<[f32]>,
    pub head_dim: usize,
    pub seq: usize,
}

impl RopeTable {
    fn tables(&self) -> rope::RopeTables<'_> {
        rope::RopeTables {
            cos: &self.cos,
            sin: &self.sin,
            head_dim: self.head_dim,
            seq: self.seq,
        }
    }
}

/// RoPE on each head of rows [batch * seq, W] (row r at position r % seq).
pub fn rope<const W: usize, T: ModelTape<Cpu>>(x: Rows<W, T>, table: &RopeTable) -> Rows<W, T> {
    let _span = profile::span("rope forward");
    let (x, mut tape) = x.split_tape();
    let mut y = vec![0.0f32; x.shape().num_elements()];
    rope::forward(&table.tables(), &host(&x), W, &mut y);
    let out = x.device().tensor_from_vec(y, *x.shape());
    if T::OWNS_TAPE {
        let (out_slot, x_slot, table) = (slot_of(&out), slot_of(&x), table.clone());
        tape.add_backward_op(move |grads| {
            let _span = profile::span("rope backward");
            let (dy, [dx]) = slots(grads, &*out_slot, [&*x_slot])?;
            rope::backward(&table.tables(), dy, W, dx);
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// Causal grouped-query attention: queries [rows, QW], keys and values [rows, KVW] to
/// outputs [rows, QW].
pub fn causal_attention<const QW: usize, const KVW: usize, T: ModelTape<Cpu>>(
    q: Rows<QW, T>,
    k: Rows<KVW, T>,
    v: Rows<KVW, T>,
    shape: AttentionShape,
    max_logits: Option<&mut Vec<f32>>,
) -> Rows<QW, T> {
    let _span = profile::span("attention forward");
    let (q, k, tape) = split2(q, Some(k));
    let (v, v_tape) = v.split_tape();
    let mut tape = tape.merge(v_tape);
    let k = k.expect("keys were given");
    let (qs, ks, vs) = (host(&q), host(&k), host(&v));
    let attention::Forward {
        out: o,
        probs,
        max_logits: maxes,
    } = attention::forward(shape, &qs, &ks, &vs);
    if let Some(sink) = max_logits {
        *sink = maxes;
    }
    let out = q.device().tensor_from_vec(o, *q.shape());
    if T::OWNS_TAPE {
        let out_slot = slot_of(&out);
        let (q_slot, k_slot, v_slot) = (slot_of(&q), slot_of(&k), slot_of(&v));
        tape.add_backward_op(move |grads| {
            let _span = profile::span("attention backward");
            let saved = attention::Saved {
                q: &qs,
                k: &ks,
                v: &vs,
                probs: &probs,
            };
            let (d_out, [dq, dk, dv]) = slots(grads, &*out_slot, [&*q_slot, &*k_slot, &*v_slot])?;
            attention::backward(shape, &saved, d_out, dq, dk, dv);
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// The LM head `x @ head^T` and the mean cross-entropy of its logits [rows, V] against
/// target ids [rows], fused: the logits never become a tensor, and with a tape the
/// gradients are computed in the forward pass, block by block (`cross_entropy`), and
/// scaled by the loss's gradient in the backward pass.
pub fn lm_head_loss<const M: usize, const V: usize, T: ModelTape<Cpu>>(
    x: Rows<M, T>,
    head: Tensor<Rank2<V, M>, f32, Cpu, T>,
    targets: Tensor<(usize,), usize, Cpu>,
    z_loss: f32,
    mean_log_z: Option<&mut f32>,
) -> Tensor<Rank0, f32, Cpu, T> {
    let _span = profile::span("lm_head_loss forward");
    let (x, head, mut tape) = split2(x, Some(head));
    let head = head.expect("a head was given");
    let targets = targets.as_vec();
    let (xs, hs) = (host(&x), host(&head));
    let (loss, unit_grads, log_z) = cross_entropy::forward(
        &xs,
        &hs,
        (M, V),
        &targets,
        z_loss,
        (T::OWNS_TAPE, bf16_here()),
    );
    if let Some(sink) = mean_log_z {
        *sink = log_z;
    }
    let out = x.device().tensor_from_vec(vec![loss], ());
    if let Some(unit_grads) = unit_grads {
        let (out_slot, x_slot, head_slot) = (slot_of(&out), slot_of(&x), slot_of(&head));
        tape.add_backward_op(move |grads| {
            let _span = profile::span("lm_head_loss backward");
            let (d_loss, [dx, d_head]) = slots(grads, &*out_slot, [&*x_slot, &*head_slot])?;
            cross_entropy::backward(&unit_grads, d_loss[0], dx, d_head);
            Ok(())
        });
    }
    out.put_tape(tape)
}

#[cfg(test)]
mod tests;
