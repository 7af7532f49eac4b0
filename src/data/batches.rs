//! Training batches and the fixed eval batch, as token windows of `seq_len + 1`.
//!
//! The train stream is cut into non-overlapping windows (stride `seq_len`, plus one token
//! for the last target). Each epoch visits every window once, in an order shuffled from
//! the run's seed and the epoch number, so the batch of any step is a pure function of
//! (seed, step): runs are reproducible and can resume anywhere.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::spec::run_config::EvalWindows;

use super::shards::TokenFile;
use super::DataError;

/// Inputs and next-token targets of `batch_size` sequences, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub batch_size: usize,
    pub seq_len: usize,
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
}

impl Batch {
    fn from_windows(windows: Vec<Vec<u32>>, seq_len: usize) -> Batch {
        let mut inputs = Vec::with_capacity(windows.len() * seq_len);
        let mut targets = Vec::with_capacity(windows.len() * seq_len);
        for window in &windows {
            inputs.extend_from_slice(&window[..seq_len]);
            targets.extend_from_slice(&window[1..]);
        }
        Batch {
            batch_size: windows.len(),
            seq_len,
            inputs,
            targets,
        }
    }
}

/// Deterministic training batches over a token file.
pub struct TrainBatches<'a> {
    tokens: &'a TokenFile,
    seq_len: usize,
    batch_size: usize,
    seed: u64,
    windows: usize,
    /// (epoch, window order) of the epoch last used.
    order: Option<(usize, Vec<usize>)>,
}

impl<'a> TrainBatches<'a> {
    pub fn new(
        tokens: &'a TokenFile,
        seq_len: usize,
        batch_size: usize,
        seed: u64,
    ) -> Result<Self, DataError> {
        let windows = tokens.len().saturating_sub(1) / seq_len;
        if windows < batch_size {
            return Err(DataError::Input(format!(
                "the training split has {} tokens, fewer than one batch of {batch_size} x {seq_len}",
                tokens.len()
            )));
        }
        Ok(TrainBatches {
            tokens,
            seq_len,
            batch_size,
            seed,
            windows,
            order: None,
        })
    }

    /// Windows in the training split (sequences per epoch).
    pub fn windows(&self) -> usize {
        self.windows
    }

    /// The batch of optimizer step `step` (from 0).
    pub fn batch(&mut self, step: u64) -> Batch {
        let first = step as usize * self.batch_size;
        let windows = (first..first + self.batch_size)
            .map(|i| {
                let window = self.window_at(i / self.windows, i % self.windows);
                self.tokens.read(window * self.seq_len, self.seq_len + 1)
            })
            .collect();
        Batch::from_windows(windows, self.seq_len)
    }

    fn window_at(&mut self, epoch: usize, position: usize) -> usize {
        if self.order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut order: Vec<usize> = (0..self.windows).collect();
            let stream = self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(stream));
            self.order = Some((epoch, order));
        }
        self.order.as_ref().expect("set above").1[position]
    }
}

/// The fixed eval batch: `sequences` windows of the validation split, the first ones or
/// spread evenly over it. It does not depend on the seed, so every run of a study is
/// evaluated on the same tokens.
pub fn eval_batch(
    val: &TokenFile,
    seq_len: usize,
    sequences: usize,
    placement: EvalWindows,
) -> Result<Batch, DataError> {
    let needed = sequences * seq_len + 1;
    if val.len() < needed {
        return Err(DataError::Input(format!(
            "the validation split has {} tokens; the eval batch needs {needed} ({sequences} x {seq_len} + 1)\n  fix: lower data.eval_sequences or seq_len, raise data.val_fraction, or use a larger corpus",
            val.len()
        )));
    }
    let starts = eval_window_starts(val.len(), seq_len, sequences, placement);
    let windows = starts
        .into_iter()
        .map(|start| val.read(start, seq_len + 1))
        .collect();
    Ok(Batch::from_windows(windows, seq_len))
}

/// Token offsets of the eval windows in a split of `len` tokens (at least
/// `sequences * seq_len + 1`). `Spread` takes every k-th of the split's non-overlapping
/// windows, k = available / sequences, centred so the split's end is covered as well as
/// its start.
pub fn eval_window_starts(
    len: usize,
    seq_len: usize,
    sequences: usize,
    placement: EvalWindows,
) -> Vec<usize> {
    match placement {
        EvalWindows::First => (0..sequences).map(|i| i * seq_len).collect(),
        EvalWindows::Spread => {
            let available = (len - 1) / seq_len;
            let stride = available / sequences;
            let offset = stride / 2;
            (0..sequences)
                .map(|i| (offset + i * stride) * seq_len)
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_windows_are_contiguous_and_spread_ones_cover_the_split() {
        assert_eq!(
            eval_window_starts(1001, 10, 4, EvalWindows::First),
            [0, 10, 20, 30]
        );
        // 100 windows, every 25th, starting half a stride in.
        assert_eq!(
            eval_window_starts(1001, 10, 4, EvalWindows::Spread),
            [120, 370, 620, 870]
        );
        // Exactly enough tokens: both take every window.
        for placement in [EvalWindows::First, EvalWindows::Spread] {
            assert_eq!(eval_window_starts(41, 10, 4, placement), [0, 10, 20, 30]);
        }
    }
}
