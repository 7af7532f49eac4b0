//! Training throughput of one run: the steps after the first (a warm-up: first
//! allocations and page faults) timed through a `TrainObserver`, with the per-phase
//! profile when asked.

use std::time::Instant;

use crate::profile;
use crate::train::{MetricRow, TrainObserver};

/// Times the steps after the first up to the last, and with `profiling` records their
/// phases.
#[derive(Debug, Clone)]
pub struct Throughput {
    tokens_per_step: u64,
    total_tokens: u64,
    profiling: bool,
    timed_since: Option<Instant>,
    /// Seconds of the timed steps.
    pub timed_seconds: f64,
    /// (phase, seconds, calls) over the timed steps.
    pub profile: Vec<(&'static str, f64, u64)>,
}

impl Throughput {
    pub fn new(tokens_per_step: u64, steps: u64, profiling: bool) -> Self {
        Throughput {
            tokens_per_step,
            total_tokens: steps * tokens_per_step,
            profiling,
            timed_since: None,
            timed_seconds: f64::NAN,
            profile: Vec::new(),
        }
    }

    pub fn timed_steps(&self) -> u64 {
        self.total_tokens / self.tokens_per_step - 1
    }

    pub fn tokens_per_s(&self) -> f64 {
        (self.timed_steps() * self.tokens_per_step) as f64 / self.timed_seconds
    }
}

impl TrainObserver for Throughput {
    fn metric(&mut self, _row: MetricRow) {}

    fn step_done(&mut self, tokens: u64, _loss: f32, _tokens_per_s: f64) {
        if tokens == self.tokens_per_step {
            profile::enable(self.profiling);
            self.timed_since = Some(Instant::now());
        }
        if tokens == self.total_tokens {
            if let Some(started) = self.timed_since.take() {
                self.timed_seconds = started.elapsed().as_secs_f64();
                self.profile = profile::totals();
            }
            profile::enable(false);
        }
    }
}
