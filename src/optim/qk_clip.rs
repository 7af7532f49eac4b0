//! QK-Clip (the clip of Kimi K2's MuonClip; J. Su, "QK-Clip", 2025): after each optimizer
//! step, every attention head whose largest logit in that step's forward pass exceeded
//! `tau` has its query and key projections scaled down, so that the same inputs would
//! give it a largest logit of exactly `tau`. It bounds the logits as QK-norm does without
//! normalising the geometry of queries and keys.
//!
//! The rule, per layer: query head h saw the largest logit S_h (q . k / sqrt(head_dim),
//! from the forward pass of the step just taken) and gets the factor
//! g_h = min(1, tau / S_h). Its logits must shrink by g_h:
//! - a key head read by one query head (multi-head attention): W_q^h and W_k^h are each
//!   scaled by sqrt(g_h), Kimi's split for per-head keys;
//! - a key head shared by several query heads (grouped-query attention): the key is left
//!   alone and each query head takes its whole g_h, as Kimi K2 treats the rotary key that
//!   MLA shares between heads. A head under `tau` is then not touched, whichever heads it
//!   shares its key with.
//!
//! The clip changes weights only; an optimizer's state (momentum, moments) is untouched,
//! as in MuonClip. Per head it counts the steps it clipped and keeps the smallest factor
//! it applied; both travel in the checkpoint as optimizer state (`qk_clip.*`), so a
//! resumed run reports what an uninterrupted one would.

use dfdx::prelude::*;

use crate::model::Transformer;

use super::state::{OptimizerState, RestoreError, Restoring};

/// Probe rows per (layer, query head) at each probe point: steps clipped so far, the
/// smallest factor applied so far, the largest logit of the last training step.
pub const QK_CLIP_STEPS_METRIC: &str = "qk_clip_steps";
pub const QK_CLIP_MIN_FACTOR_METRIC: &str = "qk_clip_min_factor";
pub const TRAIN_MAX_LOGIT_METRIC: &str = "train_max_logit";

/// The names of the clip's items in a checkpoint's optimizer state start with this.
const STATE_PREFIX: &str = "qk_clip.";

/// The clip of one run, with its statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct QkClip {
    tau: f32,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    /// Per (layer, query head), row-major: steps in which the head was clipped.
    clipped_steps: Vec<i64>,
    /// Per (layer, query head): the smallest factor applied to its logits (1: never).
    min_factor: Vec<f32>,
    /// Per (layer, query head): the largest logit of the last step, before its clip.
    last_max_logits: Vec<f32>,
}

/// What one step's clip did, over all heads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepClip {
    pub heads_clipped: usize,
    /// The smallest factor applied (1 when no head was clipped).
    pub min_factor: f32,
    /// The largest logit of any head in the step's forward pass, before the clip.
    pub max_logit: f32,
}

impl StepClip {
    /// The step's rows of the metrics table (split `train`).
    /// (The step's largest logit is recorded for every run, clipped or not: `max_logit`.)
    pub fn metrics(&self) -> [(&'static str, f64); 2] {
        [
            ("qk_clip_heads", self.heads_clipped as f64),
            (QK_CLIP_MIN_FACTOR_METRIC, f64::from(self.min_factor)),
        ]
    }
}

/// The scale of each query head's rows of W_q and of each key head's rows of W_k that
/// shrink head h's logits by `factors[h]` (the module's rule).
pub fn scales(factors: &[f32], kv_heads: usize) -> (Vec<f32>, Vec<f32>) {
    let group = factors.len() / kv_heads;
    if group == 1 {
        let split: Vec<f32> = factors.iter().map(|g| g.sqrt()).collect();
        (split.clone(), split)
    } else {
        (factors.to_vec(), vec![1.0; kv_heads])
    }
}

/// g = min(1, tau / S); a logit that is not a number is left alone (the run's loss
/// reports the divergence).
fn factor(tau: f32, max_logit: f32) -> f32 {
    if max_logit > tau {
        tau / max_logit
    } else {
        1.0
    }
}

/// Multiplies the rows of each `width`-row block of a row-major [blocks * width, cols]
/// matrix by its block's scale.
fn scale_row_blocks(values: &mut [f32], width: usize, cols: usize, scales: &[f32]) {
    for (block, scale) in values.chunks_exact_mut(width * cols).zip(scales) {
        if *scale != 1.0 {
            block.iter_mut().for_each(|v| *v *= scale);
        }
    }
}

impl QkClip {
    pub fn new(tau: f64, layers: usize, heads: usize, kv_heads: usize) -> Self {
        let n = layers * heads;
        QkClip {
            tau: tau as f32,
            layers,
            heads,
            kv_heads,
            clipped_steps: vec![0; n],
            min_factor: vec![1.0; n],
            last_max_logits: vec![f32::NAN; n],
        }
    }

    /// Clips the heads of `model` whose largest logit in the step's forward pass
    /// (`max_logits`: per layer, per query head) exceeded tau, and counts them.
    pub fn apply<
        const V: usize,
        const M: usize,
        const HD: usize,
        const KVW: usize,
        const F: usize,
        const L: usize,
        D: Device<f32>,
    >(
        &mut self,
        model: &mut Transformer<V, M, HD, KVW, F, L, f32, D>,
        max_logits: &[Vec<f32>],
    ) -> Result<StepClip, String> {
        if max_logits.len() != self.layers || max_logits.iter().any(|l| l.len() != self.heads) {
            return Err(format!(
                "QK-Clip: the forward pass reported logits of {} layer(s), the model has {} \
                 of {} heads",
                max_logits.len(),
                self.layers,
                self.heads
            ));
        }
        let mut step = StepClip {
            heads_clipped: 0,
            min_factor: 1.0,
            max_logit: f32::NEG_INFINITY,
        };
        for (layer, (block, logits)) in model.blocks.iter_mut().zip(max_logits).enumerate() {
            let factors: Vec<f32> = logits.iter().map(|&s| factor(self.tau, s)).collect();
            for (h, (&g, &s)) in factors.iter().zip(logits).enumerate() {
                let at = layer * self.heads + h;
                self.last_max_logits[at] = s;
                step.max_logit = step.max_logit.max(s);
                if g < 1.0 {
                    self.clipped_steps[at] += 1;
                    self.min_factor[at] = self.min_factor[at].min(g);
                    step.heads_clipped += 1;
                    step.min_factor = step.min_factor.min(g);
                }
            }
            if factors.iter().all(|&g| g == 1.0) {
                continue;
            }
            let (q_scales, k_scales) = scales(&factors, self.kv_heads);
            let mut wq = block.wq.as_vec();
            scale_row_blocks(&mut wq, HD, M, &q_scales);
            block.wq.copy_from(&wq);
            if k_scales.iter().any(|&s| s != 1.0) {
                let mut wk = block.wk.as_vec();
                scale_row_blocks(&mut wk, HD, M, &k_scales);
                block.wk.copy_from(&wk);
            }
        }
        Ok(step)
    }

    /// Per (layer, query head): steps clipped so far, the smallest factor applied so far,
    /// and the largest logit of the last step before its clip (NaN before any step).
    pub fn head_statistics(&self) -> impl Iterator<Item = (usize, usize, i64, f32, f32)> + '_ {
        (0..self.layers * self.heads).map(|at| {
            (
                at / self.heads,
                at % self.heads,
                self.clipped_steps[at],
                self.min_factor[at],
                self.last_max_logits[at],
            )
        })
    }

    fn counter_name(&self, at: usize) -> String {
        format!(
            "qk_clip.clipped_steps.{}.{}",
            at / self.heads,
            at % self.heads
        )
    }

    /// Adds the statistics that must survive a resume to an optimizer's `state`.
    pub fn save(&self, state: &mut OptimizerState) {
        for (at, &count) in self.clipped_steps.iter().enumerate() {
            state.counter(self.counter_name(at), count);
        }
        state.buffer("qk_clip.min_factor", self.min_factor.clone());
    }

    /// Takes this clip's items (`qk_clip.*`) out of a saved state, leaving the
    /// optimizer's; refuses a state without them, with others under its prefix, or with
    /// values no run could have reached (see `restore`). Changes nothing when it refuses.
    pub fn restore_from(
        &mut self,
        state: &mut OptimizerState,
        step: u64,
    ) -> Result<(), RestoreError> {
        let mut saved = state.split_off(STATE_PREFIX).restoring()?;
        let mut restored = self.clone();
        restored.restore(&mut saved, step)?;
        saved.finish()?;
        *self = restored;
        Ok(())
    }

    /// Takes this clip's items out of `saved`. A count that is negative or above `step`,
    /// or a factor outside (0, 1], is a misfit.
    fn restore(&mut self, saved: &mut Restoring, step: u64) -> Result<(), RestoreError> {
        let misfit = |why: String| RestoreError::Misfit(format!("QK-Clip: {why}"));
        let mut counts = Vec::with_capacity(self.clipped_steps.len());
        for at in 0..self.clipped_steps.len() {
            let name = self.counter_name(at);
            let count = saved.counter(&name)?;
            if count < 0 || count as u64 > step {
                return Err(misfit(format!("`{name}` is {count} after {step} steps")));
            }
            counts.push(count);
        }
        let factors = saved.buffer("qk_clip.min_factor", self.min_factor.len())?;
        if let Some(bad) = factors.iter().find(|g| !(**g > 0.0 && **g <= 1.0)) {
            return Err(misfit(format!(
                "a smallest factor is {bad}, outside (0, 1]"
            )));
        }
        self.clipped_steps = counts;
        self.min_factor = factors;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_head_keys_split_the_factor_and_shared_keys_are_left_alone() {
        // Two heads with their own keys: head 0 at 4x tau scales both by 1/2.
        let (q, k) = scales(&[0.25, 1.0], 2);
        assert_eq!((q, k), (vec![0.5, 1.0], vec![0.5, 1.0]));
        // Two query heads share one key: each query takes its factor, the key none.
        let (q, k) = scales(&[0.25, 1.0], 1);
        assert_eq!((q, k), (vec![0.25, 1.0], vec![1.0]));
        assert_eq!(factor(10.0, 40.0), 0.25);
        assert_eq!(factor(10.0, 10.0), 1.0);
        assert_eq!(factor(10.0, f32::NAN), 1.0);
    }

    /// The largest logit of each (layer, query head) of `model` on a fixed batch.
    fn max_logits<const KVW: usize>(
        model: &Transformer<11, 16, 4, KVW, 24, 2, f32, Cpu>,
        arch: &crate::model::Architecture,
        consts: &crate::model::Constants<4, Cpu>,
    ) -> Vec<Vec<f32>> {
        let dev = Cpu::default();
        let tokens: Vec<usize> = (0..3 * 9).map(|i| (i * 7 + 3) % 11).collect();
        let mut taps = crate::model::Taps {
            max_logits: Some(Vec::new()),
            ..Default::default()
        };
        let tokens = dev.tensor_from_vec(tokens, (3, 9));
        model.forward(arch, consts, tokens, model.embed.clone(), Some(&mut taps));
        taps.max_logits.unwrap()
    }

    /// Clipping at tau leaves each head's largest logit on the same batch at
    /// min(S_h, tau): the heads under tau unchanged, the others at tau.
    fn clip_bounds_the_logits<const KVW: usize>() {
        use crate::model::{init::init_model, Architecture, Constants};
        use crate::spec::run_config::Activation;
        let dev = Cpu::seed_from_u64(5);
        let arch = Architecture {
            n_heads: 4,
            n_kv_heads: KVW / 4,
            head_dim: 4,
            activation: Activation::SquaredRelu,
            qk_norm: None,
            tied_embeddings: true,
            embedding_scale: 4.0,
            rope_base: 10000.0,
            norm_eps: 1e-6,
        };
        let consts = Constants::<4, Cpu>::new(&dev, &arch, 9);
        let mut model: Transformer<11, 16, 4, KVW, 24, 2, f32, Cpu> = init_model(&dev, 0.5);
        let before = max_logits(&model, &arch, &consts);
        let mut all: Vec<f32> = before.concat();
        all.sort_by(f32::total_cmp);
        let tau = all[all.len() / 2];
        let mut clip = QkClip::new(f64::from(tau), 2, 4, KVW / 4);
        // Layer 0 only: clipping it changes layer 1's inputs.
        let first_layer_only = [before[0].clone(), vec![f32::NEG_INFINITY; 4]];
        let step = clip.apply(&mut model, &first_layer_only).unwrap();
        let after = max_logits(&model, &arch, &consts);
        let clipped = before[0].iter().filter(|&&s| s > tau).count();
        assert!(clipped > 0 && clipped < 4, "{before:?} at tau {tau}");
        assert_eq!(step.heads_clipped, clipped);
        for (h, (&s, &now)) in before[0].iter().zip(&after[0]).enumerate() {
            let want = s.min(tau);
            assert!(
                (now - want).abs() <= 1e-4 * want.abs(),
                "head {h}: {s} -> {now}, tau {tau}"
            );
        }
    }

    #[test]
    fn clipped_heads_end_at_tau_with_per_head_and_shared_keys() {
        clip_bounds_the_logits::<16>(); // 4 key heads: one per query head
        clip_bounds_the_logits::<8>(); // 2 key heads, each shared by 2 query heads
    }

    #[test]
    fn row_blocks_scale_by_head() {
        // [2 heads * 2 rows, 3 cols].
        let mut w: Vec<f32> = (1..=12).map(|v| v as f32).collect();
        scale_row_blocks(&mut w, 2, 3, &[0.5, 1.0]);
        assert_eq!(&w[..6], &[0.5, 1.0, 1.5, 2.0, 2.5, 3.0]);
        assert_eq!(&w[6..], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
    }

    #[test]
    fn statistics_survive_a_save_and_restore_and_bad_ones_are_refused() {
        let mut clip = QkClip::new(10.0, 1, 2, 1);
        clip.clipped_steps = vec![3, 0];
        clip.min_factor = vec![0.5, 1.0];
        let mut state = OptimizerState::default();
        clip.save(&mut state);
        state.counter("adamw.step", 5);
        let mut other = QkClip::new(10.0, 1, 2, 1);
        let mut rest = state.clone();
        other.restore_from(&mut rest, 5).unwrap();
        // What is left is the optimizer's.
        assert_eq!(rest.counters, vec![("adamw.step".to_owned(), 5)]);
        assert!(rest.buffers.is_empty());
        assert_eq!(other.clipped_steps, clip.clipped_steps);
        assert_eq!(other.min_factor, clip.min_factor);
        // Three clipped steps cannot have happened in two.
        let mut saved = state.clone().restoring().unwrap();
        assert!(matches!(
            QkClip::new(10.0, 1, 2, 1).restore(&mut saved, 2),
            Err(RestoreError::Misfit(why)) if why.contains("is 3 after 2 steps")
        ));
        let mut bad = state;
        bad.buffers[0].1[1] = 0.0;
        let mut saved = bad.restoring().unwrap();
        assert!(QkClip::new(10.0, 1, 2, 1).restore(&mut saved, 5).is_err());
    }
}
