//! How long a run and a study will take on this machine: measured from the first timed
//! steps of a run (wall time per step, evaluations and probes included, the warm-up step
//! left out), scaled to the other runs by their training FLOPs. What is remembered of
//! past runs, for `plan` to say before anything trains: `remembered`.

use std::time::{Duration, Instant};

use crate::model::shapes::ModelShape;
use crate::plan::cost::{param_count, steps_and_tokens, training_flops_at};
use crate::plan::PlannedRun;
use crate::spec::run_config::Precision;
use crate::spec::RunConfig;

/// A run still to train in this sweep: its label, tokens and training FLOPs (`None` when
/// the vocabulary is only known from a tokenizer file).
#[derive(Debug, Clone)]
pub struct RunCost {
    pub label: String,
    pub tokens: u64,
    pub flops: Option<f64>,
    /// The key of the speed cache (`speed_key`).
    pub shape: String,
    pub params: u64,
}

/// What `run` costs, for estimates: its FLOPs with the vocabulary of its prepared data.
pub fn run_cost(run: &PlannedRun, vocab: Option<usize>) -> RunCost {
    let (_, tokens) = steps_and_tokens(&run.config);
    let vocab = vocab
        .or(run.config.data.tokenizer.known_vocab())
        .unwrap_or(0);
    let params = param_count(&run.config.model, vocab as u64).total();
    RunCost {
        label: run.label.clone(),
        tokens,
        flops: (vocab > 0).then(|| training_flops_at(&run.config, vocab, tokens)),
        shape: speed_key(&run.config, vocab),
        params,
    }
}

/// The key of a run's speed in the cache: its model shape, and the precision of its
/// products when that is not f32 (bf16 products run at another speed).
pub fn speed_key(config: &RunConfig, vocab: usize) -> String {
    let shape = ModelShape::of(config, vocab).to_string();
    match config.model.precision {
        Precision::F32 => shape,
        Precision::Bf16 => format!("{shape} bf16"),
    }
}

/// A study on the CPU that would take longer than this gets a plain warning.
pub const LONG_ON_THE_CPU: Duration = Duration::from_secs(3 * 3600);

/// Measures one run's pace: from the end of its first step (the warm-up) on.
#[derive(Debug)]
pub struct Pace {
    since: Option<(Instant, u64)>,
    steps: u64,
    said: bool,
}

/// What a run's pace says about the time left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub tokens_per_s: f64,
    /// Training FLOP/s of this run (wall time), when its FLOPs are known.
    pub flops_per_s: Option<f64>,
    /// The rest of this run.
    pub run_left: Duration,
    /// This run's rest and every later run of the sweep.
    pub sweep_left: Duration,
}

impl Pace {
    pub fn new() -> Self {
        Pace {
            since: None,
            steps: 0,
            said: false,
        }
    }

    /// After a step that brought the run to `tokens`: an estimate, once, when enough
    /// steps have been timed (three, over two seconds at least, or one over a minute).
    pub fn step(&mut self, tokens: u64, run: &RunCost, later: &[RunCost]) -> Option<Estimate> {
        let Some((start, start_tokens)) = self.since else {
            self.since = Some((Instant::now(), tokens));
            return None;
        };
        self.steps += 1;
        let elapsed = start.elapsed();
        let settled = (self.steps >= 3 && elapsed >= Duration::from_secs(2))
            || elapsed >= Duration::from_secs(60);
        if self.said || !settled || tokens <= start_tokens {
            return None;
        }
        self.said = true;
        let tokens_per_s = (tokens - start_tokens) as f64 / elapsed.as_secs_f64();
        Some(estimate(tokens_per_s, tokens, run, later))
    }
}

impl Default for Pace {
    fn default() -> Self {
        Pace::new()
    }
}

/// The time left at `tokens_per_s`, the later runs scaled by FLOPs per token (by tokens
/// where FLOPs are unknown).
pub fn estimate(tokens_per_s: f64, tokens: u64, run: &RunCost, later: &[RunCost]) -> Estimate {
    let seconds = |tokens: f64| saturating_seconds(tokens / tokens_per_s.max(1e-9));
    let run_left = seconds(run.tokens.saturating_sub(tokens) as f64);
    let per_token = run.flops.map(|f| f / run.tokens.max(1) as f64);
    let flops_per_s = per_token.map(|f| f * tokens_per_s);
    let later_left = later
        .iter()
        .map(|other| match (other.flops, per_token) {
            (Some(flops), Some(per_token)) => seconds(flops / per_token),
            _ => seconds(other.tokens as f64),
        })
        .fold(Duration::ZERO, Duration::saturating_add);
    Estimate {
        tokens_per_s,
        flops_per_s,
        run_left,
        sweep_left: run_left.saturating_add(later_left),
    }
}

/// The time for `runs` at a remembered FLOP/s (runs without known FLOPs are left out).
pub fn time_at(flops_per_s: f64, runs: &[RunCost]) -> Duration {
    let flops: f64 = runs.iter().filter_map(|r| r.flops).sum();
    saturating_seconds(flops / flops_per_s.max(1e-9))
}

/// `seconds` as a duration; a value past what a duration holds (or not a number) is the
/// longest duration, never a panic.
pub fn saturating_seconds(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX)
}

/// The plain warning for a sweep that takes hours on the CPU, with the alternatives.
pub fn long_on_the_cpu(left: Duration) -> String {
    format!(
        "note: at this speed the rest of this sweep takes about {} on the CPU. It keeps going; \
         to finish sooner, build for a GPU (docs/gpu.md) or run a CPU-scale study: \
         experiments/qk_study_cpu.ron asks the same question at CPU scale, \
         experiments/quickstart.ron takes about a minute",
        spoken(left)
    )
}

/// A duration as a person says it: "40 s", "12 min", "3.5 h", "8.3 days".
pub fn spoken(duration: Duration) -> String {
    let s = duration.as_secs_f64();
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 90.0 * 60.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 48.0 * 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(label: &str, tokens: u64, flops: Option<f64>) -> RunCost {
        RunCost {
            label: label.to_owned(),
            tokens,
            flops,
            shape: "s".to_owned(),
            params: 1,
        }
    }

    #[test]
    fn later_runs_are_scaled_by_their_flops() {
        let run = cost("A1", 1_000, Some(1e6));
        // A later run with twice the FLOPs per token and the same tokens takes twice as long.
        let later = [cost("B1", 1_000, Some(2e6)), cost("C1", 500, None)];
        let e = estimate(100.0, 400, &run, &later);
        assert_eq!(e.run_left, Duration::from_secs(6));
        assert_eq!(e.flops_per_s, Some(1e5));
        assert_eq!(e.sweep_left, Duration::from_secs(6 + 20 + 5));
        assert_eq!(time_at(1e5, &later), Duration::from_secs(20));
    }

    #[test]
    fn the_pace_is_said_once_after_the_warm_up_and_enough_steps() {
        let run = cost("A1", 1_000_000, None);
        let mut pace = Pace::new();
        assert!(
            pace.step(10, &run, &[]).is_none(),
            "the warm-up step is not timed"
        );
        pace.since = pace
            .since
            .map(|(_, t)| (Instant::now() - Duration::from_secs(3), t));
        assert!(pace.step(20, &run, &[]).is_none());
        assert!(pace.step(30, &run, &[]).is_none());
        let e = pace
            .step(40, &run, &[])
            .expect("three timed steps over 3 s");
        assert!((e.tokens_per_s - 10.0).abs() < 0.5, "{e:?}");
        assert!(pace.step(50, &run, &[]).is_none(), "said once");
    }

    #[test]
    fn absurd_speeds_give_long_durations_not_panics() {
        let run = cost("A1", 1_000, Some(1e300));
        assert_eq!(time_at(1e-300, std::slice::from_ref(&run)), Duration::MAX);
        let stalled = estimate(0.0, 0, &run, std::slice::from_ref(&run));
        assert!(stalled.sweep_left >= Duration::from_secs(1_000_000_000_000));
        assert!(spoken(Duration::MAX).ends_with("days"));
    }

    #[test]
    fn durations_are_spoken_in_a_fitting_unit() {
        assert_eq!(spoken(Duration::from_secs(40)), "40 s");
        assert_eq!(spoken(Duration::from_secs(720)), "12 min");
        assert_eq!(spoken(Duration::from_secs(3 * 3600 + 1800)), "3.5 h");
        assert_eq!(spoken(Duration::from_secs(200 * 3600)), "8.3 days");
    }
}
