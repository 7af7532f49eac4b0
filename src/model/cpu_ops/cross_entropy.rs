//! The LM head and mean next-token cross-entropy, fused on the CPU: logits are computed
//! into a buffer this operation owns and turned into probabilities in place, so no
//! [rows, vocab] tensor, copy or zeroed gradient passes through dfdx, and the backward
//! pass turns the same buffer into the logits' gradient in place.

use rayon::prelude::*;

use super::linear;
use super::vector;

const ROWS_PER_TASK: usize = 16;

/// What the forward pass keeps: the softmax probabilities [rows, vocab].
pub struct Saved {
    probs: Vec<f32>,
}

/// Mean loss of the logits `x @ head^T` (x [rows, width], head [vocab, width]) against
/// `targets`, and what the backward pass needs.
pub fn forward(
    x: &[f32],
    head: &[f32],
    width: usize,
    vocab: usize,
    targets: &[usize],
) -> (f32, Saved) {
    let rows = targets.len();
    let mut probs = linear::forward((rows, width, vocab), x, head);
    let total: f64 = probs
        .par_chunks_mut(vocab * ROWS_PER_TASK)
        .enumerate()
        .map(|(chunk, rows)| {
            let mut total = 0.0f64;
            for (i, row) in rows.chunks_mut(vocab).enumerate() {
                let target_logit = row[targets[chunk * ROWS_PER_TASK + i]];
                let (max, sum) = vector::softmax(row);
                total += f64::from(max + sum.ln() - target_logit);
            }
            total
        })
        .sum();
    ((total / rows as f64) as f32, Saved { probs })
}

/// Adds the gradients of `x` and `head` for the loss gradient `d_loss`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    saved: Saved,
    x: &[f32],
    head: &[f32],
    width: usize,
    vocab: usize,
    targets: &[usize],
    d_loss: f32,
    dx: &mut [f32],
    d_head: &mut [f32],
) {
    let rows = targets.len();
    let scale = d_loss / rows as f32;
    // d logits = scale * (softmax - one_hot(target)), in place.
    let mut d_logits = saved.probs;
    d_logits
        .par_chunks_mut(vocab * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(chunk, rows)| {
            for (i, row) in rows.chunks_mut(vocab).enumerate() {
                row.iter_mut().for_each(|p| *p *= scale);
                row[targets[chunk * ROWS_PER_TASK + i]] -= scale;
            }
        });
    let dims = (rows, width, vocab);
    linear::backward(dims, &d_logits, (x, dx), (head, d_head));
}
