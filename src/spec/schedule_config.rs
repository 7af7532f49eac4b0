//! The run's schedule: token budget, learning rate and its scale, evaluation cadence and
//! what counts as divergence (`schedule`).

use serde::{Deserialize, Serialize};

use super::problems::*;

use super::patch::{patch_as_leaf, spec_struct};

spec_struct! {
    /// Token budget, learning-rate schedule and evaluation cadence.
    pub struct ScheduleConfig {
        /// Training tokens; the run takes floor(tokens / tokens per step) steps.
        pub tokens: u64,
        pub lr: LrSchedule,
        /// Validation loss every this many tokens (besides every probe point).
        #[serde(default)]
        pub eval_every_tokens: Option<u64>,
        /// One knob for a whole run's learning rate: every parameter group's rate (Muon's
        /// matrices and its AdamW group, AdamW, Lion) is multiplied by it, on top of the
        /// schedule. What a learning-rate sweep varies (`LogGrid(path:
        /// "schedule.lr_scale", ...)`). Left out of the serialised config at 1, so run
        /// ids from before the option stay valid.
        #[serde(default = "unit_scale", skip_serializing_if = "is_unit_scale")]
        pub lr_scale: f64,
        /// Global gradient-norm clipping before any optimizer: when the L2 norm of every
        /// trained tensor's gradient together exceeds this, every gradient is multiplied
        /// by max_grad_norm / (norm + 1e-6) (PyTorch's `clip_grad_norm_`). The pre-clip
        /// norm is recorded every step (`grad_norm`) whether or not this is set. Left out
        /// of the serialised config when off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_grad_norm: Option<f64>,
        /// z-loss (PaLM; Wortsman et al. 2023): the training objective adds this
        /// coefficient times the mean over tokens of log^2 Z, Z the output softmax's
        /// normaliser, which holds the output logits' scale down (1e-4 in both papers).
        /// The validation loss stays the plain cross-entropy. Left out of the serialised
        /// config when off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub z_loss: Option<f64>,
        /// When a run counts as diverged besides a non-finite loss or gradient norm: its
        /// validation loss above its step-0 validation loss plus `margin` at `evaluations`
        /// evaluations in a row. Such a run ends `diverged` with the step and reason and
        /// keeps its rows. Left out of the serialised config when off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub divergence: Option<Divergence>,
    }
}

fn unit_scale() -> f64 {
    1.0
}

fn is_unit_scale(value: &f64) -> bool {
    *value == 1.0
}

/// The loss rule of divergence: see `ScheduleConfig::divergence`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Divergence {
    /// Nats above the step-0 validation loss.
    pub margin: f64,
    /// Evaluations in a row (after step 0) above it.
    pub evaluations: usize,
}

/// Learning-rate multiplier over training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum LrSchedule {
    Constant,
    /// Linear warmup, then cosine decay to `min_lr_ratio` * lr at the end.
    WarmupCosine {
        warmup_tokens: u64,
        min_lr_ratio: f64,
    },
    /// Warmup, stable, then linear decay over the last `decay_fraction` of the budget.
    Wsd {
        warmup_tokens: u64,
        decay_fraction: f64,
        min_lr_ratio: f64,
    },
}

patch_as_leaf!(LrSchedule, Divergence,);

// What this section must hold (`check::check_run` runs every section's checks).

pub(super) fn check_schedule(schedule: &ScheduleConfig, tokens_per_step: u64, p: &mut Problems) {
    if tokens_per_step > 0 && schedule.tokens < tokens_per_step {
        p.push(
            "schedule.tokens",
            format!(
                "the budget of {} tokens is less than one step ({} tokens = batch_size * seq_len)",
                schedule.tokens, tokens_per_step
            ),
            format!("use tokens: {tokens_per_step} or more"),
        );
    }
    let warmup = match schedule.lr {
        LrSchedule::Constant => None,
        LrSchedule::WarmupCosine {
            warmup_tokens,
            min_lr_ratio,
        } => {
            p.in_unit_interval("schedule.lr", min_lr_ratio, false);
            Some(warmup_tokens)
        }
        LrSchedule::Wsd {
            warmup_tokens,
            decay_fraction,
            min_lr_ratio,
        } => {
            p.in_unit_interval("schedule.lr", min_lr_ratio, false);
            if !(decay_fraction > 0.0 && decay_fraction <= 1.0) {
                p.push(
                    "schedule.lr",
                    format!("decay_fraction must be in (0, 1], got {decay_fraction}"),
                    "e.g. decay_fraction: 0.2 decays over the last 20% of the budget",
                );
            }
            let decay_tokens = (decay_fraction * schedule.tokens as f64) as u64;
            if warmup_tokens.saturating_add(decay_tokens) > schedule.tokens {
                p.push(
                    "schedule.lr",
                    "warmup and decay together are longer than the budget".to_owned(),
                    "shorten warmup_tokens or decay_fraction",
                );
            }
            Some(warmup_tokens)
        }
    };
    if let Some(warmup) = warmup.filter(|&w| w >= schedule.tokens) {
        p.push(
            "schedule.lr",
            format!(
                "warmup_tokens ({warmup}) must be less than the budget ({})",
                schedule.tokens
            ),
            "shorten the warmup",
        );
    }
    p.positive_finite("schedule.lr_scale", schedule.lr_scale);
    if let Some(max) = schedule.max_grad_norm {
        p.positive_finite("schedule.max_grad_norm", max);
    }
    if let Some(z) = schedule.z_loss {
        p.positive_finite("schedule.z_loss", z);
    }
    if let Some(rule) = schedule.divergence {
        if !(rule.margin.is_finite() && rule.margin >= 0.0) {
            p.push(
                "schedule.divergence",
                format!("margin must be a finite number >= 0, got {}", rule.margin),
                "e.g. divergence: (margin: 0.5, evaluations: 2)",
            );
        }
        p.positive("schedule.divergence", rule.evaluations);
    }
    if schedule.eval_every_tokens == Some(0) {
        p.push(
            "schedule.eval_every_tokens",
            "eval_every_tokens must be at least 1".to_owned(),
            "use None to evaluate at probe points only",
        );
    }
}
