//! Learning-rate multipliers over training, and the steps at which to evaluate.

use std::collections::BTreeSet;
use std::f64::consts::PI;

use crate::spec::run_config::{LrSchedule, RunConfig};

/// The multiplier of the base learning rate for the step that starts after `tokens_done`
/// of a `budget`-token run taking `tokens_per_step` per step.
pub fn lr_multiplier(
    schedule: &LrSchedule,
    tokens_done: u64,
    tokens_per_step: u64,
    budget: u64,
) -> f64 {
    let warmup = |warmup_tokens: u64| -> Option<f64> {
        (tokens_done < warmup_tokens)
            .then(|| ((tokens_done + tokens_per_step) as f64 / warmup_tokens as f64).min(1.0))
    };
    match *schedule {
        LrSchedule::Constant => 1.0,
        LrSchedule::WarmupCosine {
            warmup_tokens,
            min_lr_ratio,
        } => warmup(warmup_tokens).unwrap_or_else(|| {
            let progress =
                (tokens_done - warmup_tokens) as f64 / (budget - warmup_tokens).max(1) as f64;
            min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + (PI * progress.min(1.0)).cos())
        }),
        LrSchedule::Wsd {
            warmup_tokens,
            decay_fraction,
            min_lr_ratio,
        } => warmup(warmup_tokens).unwrap_or_else(|| {
            let decay_tokens = decay_fraction * budget as f64;
            let decay_start = budget as f64 - decay_tokens;
            if (tokens_done as f64) < decay_start {
                1.0
            } else {
                let progress = ((tokens_done as f64 - decay_start) / decay_tokens).min(1.0);
                1.0 - (1.0 - min_lr_ratio) * progress
            }
        }),
    }
}

/// Steps (as "after this many optimizer steps", 0 = the initial model) at which the
/// probes run: 0, the end, every `probes.at_tokens` point and every `probes.every_tokens`.
/// A token point between steps is taken at the first step boundary after it.
pub fn probe_steps(config: &RunConfig, steps: u64) -> BTreeSet<u64> {
    let mut points = token_points(config, steps, config.probes.every_tokens);
    let per_step = config.data.tokens_per_step();
    points.extend(
        config
            .probes
            .at_tokens
            .iter()
            .map(|&t| t.div_ceil(per_step).min(steps)),
    );
    points
}

/// Steps at which the validation loss is measured: every probe step, and every
/// `schedule.eval_every_tokens`.
pub fn eval_steps(config: &RunConfig, steps: u64) -> BTreeSet<u64> {
    let mut points = probe_steps(config, steps);
    points.extend(token_points(
        config,
        steps,
        config.schedule.eval_every_tokens,
    ));
    points
}

/// 0, the end, and every multiple of `every` tokens (if given), as steps.
fn token_points(config: &RunConfig, steps: u64, every: Option<u64>) -> BTreeSet<u64> {
    let per_step = config.data.tokens_per_step();
    let mut points: BTreeSet<u64> = [0, steps].into_iter().collect();
    if let Some(every) = every {
        points.extend(
            (1..)
                .map(|k| k * every)
                .take_while(|&t| t <= steps * per_step)
                .map(|t| t.div_ceil(per_step).min(steps)),
        );
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::test_fixtures::tiny;

    #[test]
    fn warmup_cosine_starts_small_peaks_and_ends_at_min() {
        let s = LrSchedule::WarmupCosine {
            warmup_tokens: 1000,
            min_lr_ratio: 0.1,
        };
        assert!((lr_multiplier(&s, 0, 100, 10_000) - 0.1).abs() < 1e-12);
        assert!((lr_multiplier(&s, 900, 100, 10_000) - 1.0).abs() < 1e-12);
        assert!((lr_multiplier(&s, 1000, 100, 10_000) - 1.0).abs() < 1e-12);
        assert!((lr_multiplier(&s, 10_000, 100, 10_000) - 0.1).abs() < 1e-12);
        let mid = lr_multiplier(&s, 5500, 100, 10_000);
        assert!((mid - 0.55).abs() < 1e-12, "{mid}");
    }

    #[test]
    fn wsd_is_flat_then_decays_linearly() {
        let s = LrSchedule::Wsd {
            warmup_tokens: 0,
            decay_fraction: 0.2,
            min_lr_ratio: 0.0,
        };
        assert_eq!(lr_multiplier(&s, 0, 100, 10_000), 1.0);
        assert_eq!(lr_multiplier(&s, 7900, 100, 10_000), 1.0);
        assert!((lr_multiplier(&s, 9000, 100, 10_000) - 0.5).abs() < 1e-12);
        assert_eq!(lr_multiplier(&s, 10_000, 100, 10_000), 0.0);
        assert_eq!(lr_multiplier(&LrSchedule::Constant, 5, 1, 10), 1.0);
    }

    #[test]
    fn eval_steps_cover_start_probes_cadence_and_end() {
        let mut config = tiny(); // 2048 tokens per step
        config.schedule.tokens = 1_000_000;
        config.schedule.eval_every_tokens = Some(100_000);
        config.probes.at_tokens = vec![0, 50_000];
        let steps = 488;
        let points = eval_steps(&config, steps);
        assert!(points.contains(&0) && points.contains(&steps));
        assert!(
            points.contains(&25),
            "50K tokens -> step 25 (51,200 tokens)"
        );
        assert!(points.contains(&49), "100K tokens -> step 49");
        assert!(points.iter().all(|&s| s <= steps));
        assert_eq!(points.len(), 2 + 1 + 9, "{points:?}");
        let probes = probe_steps(&config, steps);
        assert_eq!(probes.into_iter().collect::<Vec<_>>(), [0, 25, steps]);
    }
}
