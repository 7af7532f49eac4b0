//! Mean next-token cross-entropy over the vocabulary on the CPU, one parallel pass per
//! direction: no log-softmax tensor of [rows, vocab] is materialised.

use rayon::prelude::*;

const ROWS_PER_TASK: usize = 16;

/// The mean loss over rows of `logits` [rows, vocab] and each row's log-sum-exp.
pub fn forward(logits: &[f32], vocab: usize, targets: &[usize]) -> (f32, Vec<f32>) {
    let mut lse = vec![0.0f32; targets.len()];
    let total: f64 = lse
        .par_chunks_mut(ROWS_PER_TASK)
        .enumerate()
        .map(|(chunk, lse)| {
            let mut total = 0.0f64;
            for (i, lse) in lse.iter_mut().enumerate() {
                let r = chunk * ROWS_PER_TASK + i;
                let row = &logits[r * vocab..][..vocab];
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
                *lse = max + sum.ln();
                total += f64::from(*lse - row[targets[r]]);
            }
            total
        })
        .sum();
    ((total / targets.len() as f64) as f32, lse)
}

/// Adds `d_loss / rows * (softmax(logits) - one_hot(target))` to `d_logits`.
pub fn backward(
    logits: &[f32],
    vocab: usize,
    targets: &[usize],
    lse: &[f32],
    d_loss: f32,
    d_logits: &mut [f32],
) {
    let scale = d_loss / targets.len() as f32;
    d_logits
        .par_chunks_mut(vocab * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(chunk, d_rows)| {
            for (i, d_row) in d_rows.chunks_mut(vocab).enumerate() {
                let r = chunk * ROWS_PER_TASK + i;
                let row = &logits[r * vocab..][..vocab];
                for (d, &x) in d_row.iter_mut().zip(row) {
                    *d += scale * (x - lse[r]).exp();
                }
                d_row[targets[r]] -= scale;
            }
        });
}
