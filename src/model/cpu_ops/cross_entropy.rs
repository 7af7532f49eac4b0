//! The LM head and mean next-token cross-entropy, fused on the CPU and taken in blocks
//! of rows. A block's logits [BLOCK, vocab] are computed, turned into probabilities, and
//! (when gradients are wanted) into the logits' gradient in place, which goes straight
//! into the gradients of `x` and the head. The [rows, vocab] logits never exist at once
//! (16 MB on the quickstart, written and read back five times per step); a block's stay
//! in the core's cache. The gradients are those of a loss gradient of 1; the backward
//! pass scales them by the one it receives (the loss is the graph's last operation).

use rayon::prelude::*;

use crate::matmul::Strided;

use super::elementwise::add_scaled;
use super::head_products::HeadProducts;
use super::vector;

/// Logit elements per block: a block's logits (1 MiB) stay in a core's L2 cache.
const BLOCK_LOGITS: usize = 1 << 18;

/// Each block adds into its part's head gradient [vocab, width], reading and writing all
/// of it. Past this many elements (1 MiB) that gradient lives outside L2, and blocks get
/// at least `MIN_ROWS_LARGE_HEAD` rows so each pass over it carries enough products
/// (cpu_20m, head 4096 x 512: LM head 167 ms per step with 64-row blocks, 133-141 with
/// 256, 134 before blocking; the quickstart's 1 MiB head is fastest with 128).
const CACHED_HEAD: usize = 1 << 18;
const MIN_ROWS_LARGE_HEAD: usize = 256;

/// The gradients of the mean loss with respect to `x` [rows, width] and the head
/// [vocab, width], for a loss gradient of 1.
pub struct Grads {
    pub dx: Vec<f32>,
    pub d_head: Vec<f32>,
}

/// The rows of one block: `BLOCK_LOGITS / vocab`, at least 1, and at least
/// `MIN_ROWS_LARGE_HEAD` for a head larger than `CACHED_HEAD`.
fn block_rows(vocab: usize, width: usize) -> usize {
    let fewest = if vocab * width > CACHED_HEAD {
        MIN_ROWS_LARGE_HEAD
    } else {
        1
    };
    (BLOCK_LOGITS / vocab).max(fewest)
}

/// Mean loss of the logits `x @ head^T` (x [rows, width], head [vocab, width]) against
/// `targets`, plus `z_loss` x the mean of log^2 Z (Z: each row's softmax normaliser) when
/// `z_loss` is not 0; with `want_grads` its gradients (for a loss gradient of 1); and the
/// mean of log Z over the rows. `bf16`: the products take bf16 operands.
///
/// The rows are split into one contiguous part per thread; each part runs its blocks in
/// order into its own head gradient, and the parts' sums are added in part order, so the
/// result does not depend on which thread ran what.
pub fn forward(
    x: &[f32],
    head: &[f32],
    (width, vocab): (usize, usize),
    targets: &[usize],
    z_loss: f32,
    (want_grads, bf16): (bool, bool),
) -> (f32, Option<Grads>, f32) {
    let rows = targets.len();
    assert_eq!(x.len(), rows * width, "LM head input");
    assert_eq!(head.len(), vocab * width, "LM head weight");
    if rows == 0 {
        // The mean of no losses; no row has a gradient.
        let grads = want_grads.then(|| Grads {
            dx: Vec::new(),
            d_head: vec![0.0; vocab * width],
        });
        return (f32::NAN, grads, f32::NAN);
    }
    let block = block_rows(vocab, width);
    let blocks = rows.div_ceil(block);
    let parts = rayon::current_num_threads().clamp(1, blocks);
    let rows_per_part = blocks.div_ceil(parts) * block;
    let mut dx = vec![0.0f32; if want_grads { rows * width } else { 0 }];
    let part_rows = (0..rows).step_by(rows_per_part);
    let dx_parts: Vec<&mut [f32]> = if want_grads {
        dx.chunks_mut(rows_per_part * width).collect()
    } else {
        part_rows.clone().map(|_| &mut [][..]).collect()
    };
    let part = Part {
        x,
        products: HeadProducts::new(head, (width, vocab), bf16, want_grads),
        width,
        vocab,
        targets,
        block,
        inv_rows: 1.0 / rows as f32,
        z_loss,
    };
    let results: Vec<(f64, f64, Vec<f32>)> = part_rows
        .zip(dx_parts)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|(r0, dx)| {
            // Each part's products on its own thread, as the f32 ones are.
            let rows = r0..(r0 + rows_per_part).min(rows);
            crate::matmul::one_per_thread(|| part.run(rows, want_grads, dx))
        })
        .collect();
    let total: f64 = results.iter().map(|(loss, _, _)| loss).sum();
    let loss = (total / rows as f64) as f32;
    let log_z: f64 = results.iter().map(|(_, log_z, _)| log_z).sum();
    let mean_log_z = (log_z / rows as f64) as f32;
    if !want_grads {
        return (loss, None, mean_log_z);
    }
    let mut partials = results.into_iter().map(|(_, _, d_head)| d_head);
    let mut d_head = partials.next().expect("at least one part");
    for partial in partials {
        add_scaled(&mut d_head, &partial, 1.0);
    }
    (loss, Some(Grads { dx, d_head }), mean_log_z)
}

/// What every part reads.
struct Part<'a> {
    x: &'a [f32],
    products: HeadProducts<'a>,
    width: usize,
    vocab: usize,
    targets: &'a [usize],
    block: usize,
    inv_rows: f32,
    z_loss: f32,
}

impl Part<'_> {
    /// Rows `rows` block by block: the sum of their losses, the sum of their log Z and,
    /// with `want_grads`, their head gradient (their rows of `dx`, which starts at the
    /// first of them, are written).
    fn run(
        &self,
        rows: std::ops::Range<usize>,
        want_grads: bool,
        dx: &mut [f32],
    ) -> (f64, f64, Vec<f32>) {
        let (width, vocab) = (self.width, self.vocab);
        let mut logits = vec![0.0f32; self.block * vocab];
        let mut d_head = vec![0.0f32; if want_grads { vocab * width } else { 0 }];
        let mut total = 0.0f64;
        let mut total_log_z = 0.0f64;
        let z = self.z_loss;
        for r0 in rows.clone().step_by(self.block) {
            let n = self.block.min(rows.end - r0);
            let logits = &mut logits[..n * vocab];
            let x_block = Strided::rows(r0 * width, width);
            (self.products).logits((n, width, vocab), (self.x, x_block), logits);
            for (row, &target) in logits.chunks_mut(vocab).zip(&self.targets[r0..r0 + n]) {
                let target_logit = row[target];
                let (max, sum) = vector::softmax(row);
                let log_z = max + sum.ln();
                total += f64::from(log_z - target_logit);
                total_log_z += f64::from(log_z);
                if z != 0.0 {
                    total += f64::from(z * log_z * log_z);
                }
                if want_grads {
                    // d logits = (softmax - one_hot(target)) / rows, and z-loss adds
                    // 2 z log Z softmax / rows (d log Z / d logit_j = softmax_j).
                    let scale = if z != 0.0 {
                        self.inv_rows * (1.0 + 2.0 * z * log_z)
                    } else {
                        self.inv_rows
                    };
                    row.iter_mut().for_each(|p| *p *= scale);
                    row[target] -= self.inv_rows;
                }
            }
            if want_grads {
                // dx = d logits @ head; d head += d logits^T @ x.
                let dx_rows = Strided::rows((r0 - rows.start) * width, width);
                (self.products).dx((n, vocab, width), logits, (&mut *dx, dx_rows));
                let x_rows = (self.x, x_block);
                (self.products).d_head((vocab, n, width), logits, x_rows, &mut d_head);
            }
        }
        (total, total_log_z, d_head)
    }
}

/// Adds `d_loss` times the gradients of a loss gradient of 1 to `dx` and `d_head`.
pub fn backward(grads: &Grads, d_loss: f32, dx: &mut [f32], d_head: &mut [f32]) {
    add_scaled(dx, &grads.dx, d_loss);
    add_scaled(d_head, &grads.d_head, d_loss);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loss and gradients computed directly in f64: logits, log-softmax, softmax - one-hot,
    /// with z-loss z log^2 Z (gradient 2 z log Z softmax); and the mean log Z.
    fn reference(
        x: &[f32],
        head: &[f32],
        (width, vocab): (usize, usize),
        targets: &[usize],
        z: f64,
    ) -> (f64, Vec<f64>, Vec<f64>, f64) {
        let rows = targets.len();
        let (mut loss, mut dx, mut d_head) =
            (0.0, vec![0.0; rows * width], vec![0.0; vocab * width]);
        let mut log_z = 0.0;
        for (r, &t) in targets.iter().enumerate() {
            let xr = &x[r * width..(r + 1) * width];
            let logits: Vec<f64> = (0..vocab)
                .map(|v| {
                    (0..width)
                        .map(|c| f64::from(xr[c]) * f64::from(head[v * width + c]))
                        .sum()
                })
                .collect();
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
            let lz = max + sum.ln();
            loss += lz - logits[t] + z * lz * lz;
            log_z += lz;
            for (v, l) in logits.iter().enumerate() {
                let p = (l - max).exp() / sum;
                let d = (p * (1.0 + 2.0 * z * lz) - f64::from(u8::from(v == t))) / rows as f64;
                for c in 0..width {
                    dx[r * width + c] += d * f64::from(head[v * width + c]);
                    d_head[v * width + c] += d * f64::from(xr[c]);
                }
            }
        }
        (loss / rows as f64, dx, d_head, log_z / rows as f64)
    }

    /// Equal to float32 rounding of sums over a 131,072-word vocabulary.
    fn close(got: &[f32], want: &[f64], what: &str) {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(*g) - w).abs() < 5e-5 + 1e-4 * w.abs(),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    #[test]
    fn blocks_keep_logits_cached_and_large_heads_get_larger_blocks() {
        assert_eq!(block_rows(2048, 128), 128, "quickstart: 1 MiB of logits");
        assert_eq!(
            block_rows(4096, 512),
            256,
            "cpu_20m: an 8 MiB head gradient"
        );
        assert_eq!(block_rows(50_257, 768), 256, "GPT-2's vocabulary");
        assert_eq!(block_rows(1 << 20, 0), 1, "at least one row");
    }

    #[test]
    fn blocks_and_parts_give_the_loss_and_gradients_of_the_whole() {
        // A vocabulary this large makes blocks of 2 rows: 7 rows are 4 blocks (the last
        // one short), split over the threads' parts.
        let (width, vocab) = (2, BLOCK_LOGITS / 2);
        assert_eq!(block_rows(vocab, width), 2);
        let targets = [0, 5, vocab - 1, 17, 3, 3, 1000];
        let rows = targets.len();
        let value = |i: usize, salt: usize| (((i * 7919 + salt) % 211) as f32 - 105.0) / 80.0;
        let x: Vec<f32> = (0..rows * width).map(|i| value(i, 1)).collect();
        let head: Vec<f32> = (0..vocab * width).map(|i| value(i, 2)).collect();
        // z = 0, PaLM's 1e-4, and 0.01 where the z term is a tenth of the loss.
        for z in [0.0f32, 1e-4, 1e-2] {
            let (loss, grads, log_z) =
                forward(&x, &head, (width, vocab), &targets, z, (true, false));
            let (want_loss, want_dx, want_head, want_log_z) =
                reference(&x, &head, (width, vocab), &targets, f64::from(z));
            assert!(
                (f64::from(loss) - want_loss).abs() < 1e-5 * want_loss,
                "z {z}: {loss} vs {want_loss}"
            );
            assert!((f64::from(log_z) - want_log_z).abs() < 1e-5 * want_log_z);
            let grads = grads.expect("gradients were asked for");
            close(&grads.dx, &want_dx, "dx");
            close(&grads.d_head, &want_head, "d_head");
            assert_eq!(
                forward(&x, &head, (width, vocab), &targets, z, (false, false)).0,
                loss
            );
        }
        let (loss, grads, _) = forward(&x, &head, (width, vocab), &targets, 0.0, (true, false));
        let (_, want_dx, _, _) = reference(&x, &head, (width, vocab), &targets, 0.0);
        let grads = grads.expect("gradients were asked for");
        // Without gradients: the same loss; the backward pass scales by the loss gradient.
        assert_eq!(
            forward(&x, &head, (width, vocab), &targets, 0.0, (false, false)).0,
            loss
        );
        let (mut dx, mut d_head) = (vec![1.0f32; rows * width], vec![0.0f32; vocab * width]);
        backward(&grads, 2.0, &mut dx, &mut d_head);
        let doubled: Vec<f64> = want_dx.iter().map(|d| 1.0 + 2.0 * d).collect();
        close(&dx, &doubled, "accumulated dx");
    }

    /// In bf16 the logits are products of the bf16-rounded input and head (exact up to
    /// accumulation), so the loss is the f64 loss of the rounded operands; the gradients
    /// also round the logits' gradient to bf16 before their products: within 2^-8 of
    /// the rounded operands' gradients, relative to each row's largest.
    #[test]
    fn in_bf16_the_head_multiplies_rounded_operands() {
        let (width, vocab, rows) = (48, 300, 70);
        let value = |i: usize, salt: usize| (((i * 7919 + salt) % 211) as f32 - 105.0) / 80.0;
        let x: Vec<f32> = (0..rows * width).map(|i| value(i, 1)).collect();
        let head: Vec<f32> = (0..vocab * width).map(|i| value(i, 2) * 0.3).collect();
        let targets: Vec<usize> = (0..rows).map(|r| (r * 37) % vocab).collect();
        let round = |v: &[f32]| -> Vec<f32> {
            v.iter()
                .map(|&x| crate::optim::newton_schulz::round_bf16(x))
                .collect()
        };
        let (rx, rhead) = (round(&x), round(&head));
        let (want_loss, want_dx, want_head, _) =
            reference(&rx, &rhead, (width, vocab), &targets, 1e-4);
        let (loss, grads, _) = forward(&x, &head, (width, vocab), &targets, 1e-4, (true, true));
        assert!(
            (f64::from(loss) - want_loss).abs() < 1e-5 * want_loss,
            "{loss} vs {want_loss}"
        );
        let grads = grads.expect("gradients were asked for");
        for (got, want, row, what) in [
            (&grads.dx, &want_dx, width, "dx"),
            (&grads.d_head, &want_head, width, "d_head"),
        ] {
            for (r, (got, want)) in got.chunks(row).zip(want.chunks(row)).enumerate() {
                let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
                for (g, w) in got.iter().zip(want) {
                    let error = (f64::from(*g) - w).abs();
                    assert!(error <= scale / 256.0 + 1e-9, "{what} row {r}: {g} vs {w}");
                }
            }
        }
        // And it is not the f32 loss: the rounding is there.
        let (f32_loss, _, _) = forward(&x, &head, (width, vocab), &targets, 1e-4, (false, false));
        assert_ne!(loss, f32_loss);
    }
}
