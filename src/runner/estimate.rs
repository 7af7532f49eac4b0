//! How long a run and a study will take on this machine: measured from the first timed
//! steps of a run (wall time per step, evaluations and probes included, the warm-up step
//! left out), scaled to the other runs by their training FLOPs, and remembered per
//! machine, device and model shape so that `plan` can say it before anything trains.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::atomic_file::write_atomic;
use crate::data::cache::cache_dir;
use crate::model::shapes::ModelShape;
use crate::plan::cost::{param_count, steps_and_tokens, training_flops_at};
use crate::plan::PlannedRun;
use crate::store::lock::host;

/// A run still to train in this sweep: its label, tokens and training FLOPs (`None` when
/// the vocabulary is only known from a tokenizer file).
#[derive(Debug, Clone)]
pub struct RunCost {
    pub label: String,
    pub tokens: u64,
    pub flops: Option<f64>,
    /// The model shape, as `ModelShape` shows it: the key of the speed cache.
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
        shape: ModelShape::of(&run.config, vocab).to_string(),
        params,
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

/// A measured speed, remembered in the cache directory (`speed.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub host: String,
    /// "cpu" or "cuda:N".
    pub device: String,
    pub shape: String,
    pub params: u64,
    pub flops_per_s: f64,
    /// Seconds since the Unix epoch.
    pub measured_at: u64,
    /// "sweep" (wall time, evaluations included) or "bench" (training steps only).
    pub by: String,
}

fn speed_file() -> PathBuf {
    cache_dir().join("speed.json")
}

/// The slowest training speed believed (1 MFLOP/s: slower than any computer this runs
/// on) and the fastest (100 PFLOP/s: about fifty times an H200's dense bf16 peak). A
/// remembered speed outside them was not measured (a damaged or edited cache) and would
/// print an estimate of centuries or of nothing as if measured.
pub const SLOWEST_FLOPS: f64 = 1e6;
pub const FASTEST_FLOPS: f64 = 1e17;

/// Whether `flops_per_s` could have been measured.
fn physical(flops_per_s: f64) -> bool {
    flops_per_s.is_finite() && (SLOWEST_FLOPS..=FASTEST_FLOPS).contains(&flops_per_s)
}

/// The remembered speeds that could have been measured, and how many others the file
/// held.
fn read_checked() -> (Vec<Measured>, usize) {
    let all = crate::regular_file::read(&speed_file())
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Vec<Measured>>(&bytes).ok())
        .unwrap_or_default();
    let total = all.len();
    // The file is read, not trusted: only speeds that could have been measured.
    let kept: Vec<Measured> = all
        .into_iter()
        .filter(|m| physical(m.flops_per_s))
        .collect();
    let discarded = total - kept.len();
    (kept, discarded)
}

fn read_all() -> Vec<Measured> {
    read_checked().0
}

/// How many remembered speeds were ignored as impossible (see `SLOWEST_FLOPS`).
pub fn impossible_speeds() -> usize {
    read_checked().1
}

/// Remembers `flops_per_s` of `shape` on `device` of this machine (the latest one per
/// key). Failing to write the cache changes nothing else.
pub fn remember(device: &str, shape: &str, params: u64, flops_per_s: f64, by: &str) {
    if !physical(flops_per_s) {
        return;
    }
    let host = host();
    let mut all = read_all();
    all.retain(|m| !(m.host == host && m.device == device && m.shape == shape));
    all.push(Measured {
        host,
        device: device.to_owned(),
        shape: shape.to_owned(),
        params,
        flops_per_s,
        measured_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        by: by.to_owned(),
    });
    let dir = cache_dir();
    if std::fs::create_dir_all(&dir).is_ok() {
        if let Ok(json) = serde_json::to_vec_pretty(&all) {
            let _ = write_atomic(&speed_file(), &json);
        }
    }
}

/// The speed remembered for `device` of this machine: of `shape` itself, else of the
/// shape with the nearest parameter count.
pub fn remembered(device: &str, shape: &str, params: u64) -> Option<Measured> {
    let host = host();
    let mine: Vec<Measured> = read_all()
        .into_iter()
        .filter(|m| m.host == host && m.device == device)
        .collect();
    if let Some(exact) = mine.iter().find(|m| m.shape == shape) {
        return Some(exact.clone());
    }
    let distance = |m: &Measured| (m.params as f64 / params.max(1) as f64).ln().abs();
    mine.into_iter()
        .min_by(|a, b| distance(a).total_cmp(&distance(b)))
}

/// How long `runs` take on `device` of this machine at the speeds remembered for their
/// shapes; `None` before any measurement here.
pub fn from_memory(device: &str, runs: &[RunCost]) -> Option<Remembered> {
    if runs.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut stand_in = None;
    let mut measured_at = u64::MAX;
    for run in runs {
        let measured = remembered(device, &run.shape, run.params)?;
        if measured.shape != run.shape {
            stand_in.get_or_insert(measured.params);
        }
        measured_at = measured_at.min(measured.measured_at);
        total = total.saturating_add(time_at(measured.flops_per_s, std::slice::from_ref(run)));
    }
    Some(Remembered {
        total,
        measured_at,
        stand_in,
    })
}

/// An estimate from remembered speeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Remembered {
    pub total: Duration,
    /// The oldest measurement used (seconds since the Unix epoch).
    pub measured_at: u64,
    /// The parameter count of a measured shape that stood in for one never measured.
    pub stand_in: Option<u64>,
}

impl Remembered {
    /// "about 8.3 days for the 4 runs on cpu, at the speed measured here on <date>".
    pub fn describe(&self, runs: usize, device: &str) -> String {
        let at = UNIX_EPOCH.checked_add(Duration::from_secs(self.measured_at));
        // humantime formats years up to 9999 only.
        let at = at.filter(|at| {
            at.duration_since(UNIX_EPOCH)
                .is_ok_and(|d| d.as_secs() < 253_402_300_799)
        });
        let when = at.map_or_else(
            || "an unknown date".to_owned(),
            |at| humantime::format_rfc3339_seconds(at).to_string(),
        );
        let what = match runs {
            1 => "the run".to_owned(),
            n => format!("the {n} runs"),
        };
        let mut text = format!(
            "about {} for {what} on {device}, at the training speed measured here on {when}",
            spoken(self.total)
        );
        if let Some(params) = self.stand_in {
            text += &format!(
                " (for shapes never measured, the nearest measured one, {} params, stands in)",
                crate::text_table::human_count(params)
            );
        }
        text
    }
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
        let never = Remembered {
            total: Duration::MAX,
            measured_at: u64::MAX,
            stand_in: None,
        };
        assert!(never.describe(2, "cpu").contains("an unknown date"));
    }

    #[test]
    fn durations_are_spoken_in_a_fitting_unit() {
        assert_eq!(spoken(Duration::from_secs(40)), "40 s");
        assert_eq!(spoken(Duration::from_secs(720)), "12 min");
        assert_eq!(spoken(Duration::from_secs(3 * 3600 + 1800)), "3.5 h");
        assert_eq!(spoken(Duration::from_secs(200 * 3600)), "8.3 days");
    }
}
