//! Causal grouped-query attention on the CPU, forward and backward, on row-major
//! activations: queries [batch * seq, heads * HD], keys and values
//! [batch * seq, kv_heads * HD]. Query rows are taken in blocks; a block attends only to
//! the keys up to its last row, so the masked upper triangle is neither computed nor
//! multiplied. Batches run in parallel; each owns its rows of every output, so no two
//! threads write the same memory.

use rayon::prelude::*;

use crate::matmul::{matmul, Strided};
use crate::model::arch::AttentionShape;

use super::vector;
use crate::bf16_matmul::{matmul_bf16_masked, on_thread, Kernel, Mask};

/// Query rows per block: small blocks skip more of the masked triangle, large ones make
/// better matrix products.
const BLOCK: usize = 32;

impl AttentionShape {
    fn q_width(&self) -> usize {
        self.heads * self.head_dim
    }

    fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Query heads per key/value head: query head `h` reads key/value head `h / group`.
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    /// Panics unless the buffers hold [batch * seq] rows of query and key/value width and
    /// the heads group evenly.
    fn check(&self, q: &[f32], k: &[f32], v: &[f32]) {
        let rows = self.batch * self.seq;
        assert!(
            self.kv_heads > 0 && self.heads.is_multiple_of(self.kv_heads),
            "{} query heads do not group over {} key/value heads",
            self.heads,
            self.kv_heads
        );
        assert_eq!(q.len(), rows * self.q_width(), "queries for {self:?}");
        assert_eq!(k.len(), rows * self.kv_width(), "keys for {self:?}");
        assert_eq!(v.len(), rows * self.kv_width(), "values for {self:?}");
    }

    /// Elements of the attention probabilities [batch, heads, seq, seq].
    pub fn probs_len(&self) -> usize {
        self.batch * self.heads * self.seq * self.seq
    }

    /// The row blocks of one sequence: (first row, one past the last row).
    fn blocks(&self) -> impl Iterator<Item = (usize, usize)> {
        let seq = self.seq;
        (0..seq)
            .step_by(BLOCK)
            .map(move |r0| (r0, (r0 + BLOCK).min(seq)))
    }
}

/// Softmax over row `i`'s first `i + 1` entries (the keys it may see); zeros after them.
/// Returns the largest score it saw.
fn causal_softmax(row: &mut [f32], i: usize) -> f32 {
    let (seen, masked) = row.split_at_mut(i + 1);
    let (max, _) = vector::softmax(seen);
    masked.fill(0.0);
    max
}

/// What the forward pass computes.
pub struct Forward {
    /// [batch * seq, heads * HD].
    pub out: Vec<f32>,
    /// The attention probabilities [batch, heads, seq, seq] (kept for the backward pass).
    pub probs: Vec<f32>,
    /// The largest logit (scaled score, masked entries excluded) of each query head over
    /// the batch: the softmax finds it anyway, and QK-Clip reads it.
    pub max_logits: Vec<f32>,
}

/// Attention of queries `q` on keys `k` and values `v`.
pub fn forward(shape: AttentionShape, q: &[f32], k: &[f32], v: &[f32]) -> Forward {
    let AttentionShape {
        seq,
        heads,
        head_dim: hd,
        ..
    } = shape;
    let (qw, kvw, scale) = (shape.q_width(), shape.kv_width(), shape.scale());
    shape.check(q, k, v);
    let mut out = vec![0.0f32; shape.batch * seq * qw];
    let mut probs = vec![0.0f32; shape.probs_len()];
    let mut maxes = vec![f32::NEG_INFINITY; shape.batch * heads];
    // The setting lives on the training thread; the batches run on the pool's threads.
    let bf16 = on_thread::bf16_here();
    out.par_chunks_mut(seq * qw)
        .zip(probs.par_chunks_mut(heads * seq * seq))
        .zip(maxes.par_chunks_mut(heads))
        .enumerate()
        .for_each(|(b, ((out, probs), maxes))| {
            let (q, k, v) = (
                rows_of(q, b, seq, qw),
                rows_of(k, b, seq, kvw),
                rows_of(v, b, seq, kvw),
            );
            if bf16 {
                return in_bf16(|| forward_bf16(shape, [q, k, v], (out, probs), maxes));
            }
            for (h, head_max) in maxes.iter_mut().enumerate() {
                let kv = h / shape.group();
                let p0 = h * seq * seq;
                for (r0, r1) in shape.blocks() {
                    let rows = r1 - r0;
                    // Scores of rows r0..r1 against keys 0..r1.
                    matmul(
                        (rows, hd, r1),
                        probs,
                        Strided::rows(p0 + r0 * seq, seq),
                        false,
                        q,
                        Strided::rows(r0 * qw + h * hd, qw),
                        k,
                        Strided::rows(kv * hd, kvw).t(),
                        scale,
                    );
                    for i in r0..r1 {
                        let top = causal_softmax(&mut probs[p0 + i * seq..p0 + (i + 1) * seq], i);
                        *head_max = head_max.max(top);
                    }
                    matmul(
                        (rows, r1, hd),
                        out,
                        Strided::rows(r0 * qw + h * hd, qw),
                        false,
                        probs,
                        Strided::rows(p0 + r0 * seq, seq),
                        v,
                        Strided::rows(kv * hd, kvw),
                        1.0,
                    );
                }
            }
        });
    let max_logits = (0..heads)
        .map(|h| (maxes.iter().skip(h).step_by(heads)).fold(f32::NEG_INFINITY, |a, &m| a.max(m)))
        .collect();
    Forward {
        out,
        probs,
        max_logits,
    }
}

/// `work` on this pool thread with bf16 products, made on this thread alone.
fn in_bf16<R>(work: impl FnOnce() -> R) -> R {
    let _bf16 = on_thread::Bf16Products::set(true);
    crate::matmul::one_per_thread(work)
}

/// One sequence's attention in bf16 products, each head's as whole-sequence products
/// whose masked blocks the tiled kernels skip (`head_product`).
fn forward_bf16(
    shape: AttentionShape,
    [q, k, v]: [&[f32]; 3],
    (out, probs): (&mut [f32], &mut [f32]),
    maxes: &mut [f32],
) {
    let AttentionShape {
        seq, head_dim: hd, ..
    } = shape;
    let (qw, kvw, scale) = (shape.q_width(), shape.kv_width(), shape.scale());
    for (h, head_max) in maxes.iter_mut().enumerate() {
        let (kv, p0) = (h / shape.group(), h * seq * seq);
        let (head, kv_head) = (Strided::rows(h * hd, qw), Strided::rows(kv * hd, kvw));
        let scores = (&mut *probs, Strided::rows(p0, seq), false);
        let mask = Mask::ResultAboveDiagonal;
        head_product((seq, hd, seq), scores, (q, head), (k, kv_head.t()), mask);
        for (i, row) in probs[p0..p0 + seq * seq].chunks_exact_mut(seq).enumerate() {
            row[..=i].iter_mut().for_each(|s| *s *= scale);
            *head_max = head_max.max(causal_softmax(row, i));
        }
        let p = (&*probs, Strided::rows(p0, seq));
        let mask = Mask::LeftAboveDiagonal;
        head_product(
            (seq, seq, hd),
            (&mut *out, head, false),
            p,
            (v, kv_head),
            mask,
        );
    }
}

/// `dst (+)= a @ b` in bf16 on this thread, skipping the blocks `mask` names.
fn head_product(
    dims: (usize, usize, usize),
    dst: (&mut [f32], Strided, bool),
    a: (&[f32], Strided),
    b: (&[f32], Strided),
    mask: Mask,
) {
    matmul_bf16_masked(Kernel::chosen(), dims, dst, a, b, mask);
}

/// Row `i` of the scores' gradient from the probabilities' gradient `d_row` (in place)
/// and the probabilities `p_row`: the softmax's backward over the keys row `i` sees,
/// zeros after them, times the scores' scale.
fn softmax_backward_row(d_row: &mut [f32], p_row: &[f32], i: usize, scale: f32) {
    let (seen, masked) = d_row.split_at_mut(i + 1);
    let dot = vector::dot(seen, &p_row[..=i]);
    for (ds, &p) in seen.iter_mut().zip(p_row) {
        *ds = p * (*ds - dot) * scale;
    }
    masked.fill(0.0);
}

/// What the backward pass reads: the forward's inputs and probabilities.
pub struct Saved<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub probs: &'a [f32],
}

/// Batch `b`'s rows of a [batch * seq, width] matrix.
fn rows_of(x: &[f32], b: usize, seq: usize, width: usize) -> &[f32] {
    &x[b * seq * width..(b + 1) * seq * width]
}

/// Adds the gradients of q, k and v for the output gradient `d_out` to `dq`, `dk`, `dv`.
pub fn backward(
    shape: AttentionShape,
    saved: &Saved,
    d_out: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let AttentionShape {
        seq,
        heads,
        head_dim: hd,
        ..
    } = shape;
    let (qw, kvw, scale) = (shape.q_width(), shape.kv_width(), shape.scale());
    shape.check(saved.q, saved.k, saved.v);
    assert_eq!(
        saved.probs.len(),
        shape.probs_len(),
        "attention probabilities"
    );
    assert!(
        d_out.len() == saved.q.len() && dq.len() == saved.q.len(),
        "attention gradients: query-shaped buffers"
    );
    assert!(
        dk.len() == saved.k.len() && dv.len() == saved.v.len(),
        "attention gradients: key-shaped buffers"
    );
    let bf16 = on_thread::bf16_here();
    dq.par_chunks_mut(seq * qw)
        .zip(dk.par_chunks_mut(seq * kvw))
        .zip(dv.par_chunks_mut(seq * kvw))
        .enumerate()
        .for_each(|(b, ((dq, dk), dv))| {
            let (q, k, v) = (
                rows_of(saved.q, b, seq, qw),
                rows_of(saved.k, b, seq, kvw),
                rows_of(saved.v, b, seq, kvw),
            );
            let d_out = rows_of(d_out, b, seq, qw);
            let probs = &saved.probs[b * heads * seq * seq..(b + 1) * heads * seq * seq];
            if bf16 {
                let grads = (dq, dk, dv);
                return in_bf16(|| backward_bf16(shape, (q, k, v, probs), d_out, grads));
            }
            // Gradient of the scores of one row block against keys 0..r1.
            let mut d_scores = vec![0.0f32; BLOCK * seq];
            for h in 0..heads {
                let kv = h / shape.group();
                let p0 = h * seq * seq;
                let col = h * hd;
                for (r0, r1) in shape.blocks() {
                    let rows = r1 - r0;
                    matmul(
                        (rows, hd, r1),
                        &mut d_scores,
                        Strided::rows(0, seq),
                        false,
                        d_out,
                        Strided::rows(r0 * qw + col, qw),
                        v,
                        Strided::rows(kv * hd, kvw).t(),
                        1.0,
                    );
                    // softmax backward: d_s = p * (d_p - sum_j p_j d_p_j), scaled.
                    for i in r0..r1 {
                        let d_row = &mut d_scores[(i - r0) * seq..(i - r0) * seq + r1];
                        let p_row = &probs[p0 + i * seq..p0 + i * seq + r1];
                        softmax_backward_row(d_row, p_row, i, scale);
                    }
                    matmul(
                        (rows, r1, hd),
                        dq,
                        Strided::rows(r0 * qw + col, qw),
                        true,
                        &d_scores,
                        Strided::rows(0, seq),
                        k,
                        Strided::rows(kv * hd, kvw),
                        1.0,
                    );
                    matmul(
                        (r1, rows, hd),
                        dk,
                        Strided::rows(kv * hd, kvw),
                        true,
                        &d_scores,
                        Strided::rows(0, seq).t(),
                        q,
                        Strided::rows(r0 * qw + col, qw),
                        1.0,
                    );
                    matmul(
                        (r1, rows, hd),
                        dv,
                        Strided::rows(kv * hd, kvw),
                        true,
                        probs,
                        Strided::rows(p0 + r0 * seq, seq).t(),
                        d_out,
                        Strided::rows(r0 * qw + col, qw),
                        1.0,
                    );
                }
            }
        });
}

/// One sequence's attention gradients in bf16 products, each head's as whole-sequence
/// products (as `forward_bf16`); the gradients of `q`, `k` and `v` added to `dq`, `dk`,
/// `dv`.
fn backward_bf16(
    shape: AttentionShape,
    (q, k, v, probs): (&[f32], &[f32], &[f32], &[f32]),
    d_out: &[f32],
    (dq, dk, dv): (&mut [f32], &mut [f32], &mut [f32]),
) {
    let AttentionShape {
        seq, head_dim: hd, ..
    } = shape;
    let (qw, kvw, scale) = (shape.q_width(), shape.kv_width(), shape.scale());
    let mut d_scores = vec![0.0f32; seq * seq];
    let square = Strided::rows(0, seq);
    let (lower, upper) = (Mask::LeftAboveDiagonal, Mask::LeftBelowDiagonal);
    for h in 0..shape.heads {
        let (kv, p0) = (h / shape.group(), h * seq * seq);
        let (head, kv_head) = (Strided::rows(h * hd, qw), Strided::rows(kv * hd, kvw));
        let d_probs = (&mut d_scores[..], square, false);
        let mask = Mask::ResultAboveDiagonal;
        head_product(
            (seq, hd, seq),
            d_probs,
            (d_out, head),
            (v, kv_head.t()),
            mask,
        );
        for (i, d_row) in d_scores.chunks_exact_mut(seq).enumerate() {
            softmax_backward_row(d_row, &probs[p0 + i * seq..][..seq], i, scale);
        }
        let (dims, ds) = ((seq, seq, hd), &d_scores[..]);
        head_product(
            dims,
            (&mut *dq, head, true),
            (ds, square),
            (k, kv_head),
            lower,
        );
        head_product(
            dims,
            (&mut *dk, kv_head, true),
            (ds, square.t()),
            (q, head),
            upper,
        );
        let p = (probs, Strided::rows(p0, seq).t());
        head_product(dims, (&mut *dv, kv_head, true), p, (d_out, head), upper);
    }
}
