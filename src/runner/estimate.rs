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
use crate::spec::run_config::Precision;
use crate::spec::RunConfig;
use crate::store::lock::host;

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

/// A measured speed, remembered in the cache directory (`speed.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub host: String,
    /// "cpu" or "cuda:N".
    pub device: String,
    /// The model shape (`ModelShape`), or `PEAK_KEY` for the device's matmul peak.
    pub shape: String,
    pub params: u64,
    pub flops_per_s: f64,
    /// Training FLOPs per token of the shape (absent in older caches: about 6 per
    /// parameter is assumed there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops_per_token: Option<f64>,
    /// Seconds since the Unix epoch.
    pub measured_at: u64,
    /// "sweep" (wall time, evaluations included), "bench" (training steps only) or
    /// "peak" (one large f32 matrix product).
    pub by: String,
}

impl Measured {
    fn tokens_per_s(&self) -> f64 {
        let per_token = self
            .flops_per_token
            .filter(|f| f.is_finite() && *f > 0.0)
            .unwrap_or(6.0 * self.params.max(1) as f64);
        self.flops_per_s / per_token
    }
}

/// The key under which a device's f32 matmul peak is remembered: the bound no training
/// step on it can beat.
pub const PEAK_KEY: &str = "f32 matmul peak";

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

/// What one measurement of a shape's training speed says about it.
#[derive(Debug, Clone, Copy)]
pub struct ShapeSpeed {
    pub params: u64,
    pub flops_per_s: f64,
    pub flops_per_token: f64,
}

/// Remembers `speed` of `shape` on `device` of this machine (the latest one per key).
/// Failing to write the cache changes nothing else.
pub fn remember(device: &str, shape: &str, speed: ShapeSpeed, by: &str) {
    if !physical(speed.flops_per_s) {
        return;
    }
    let host = host();
    let mut all = read_all();
    all.retain(|m| !(m.host == host && m.device == device && m.shape == shape));
    all.push(Measured {
        host,
        device: device.to_owned(),
        shape: shape.to_owned(),
        params: speed.params,
        flops_per_s: speed.flops_per_s,
        flops_per_token: Some(speed.flops_per_token).filter(|f| f.is_finite() && *f > 0.0),
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

/// Remembers `device`'s f32 matmul peak (see `PEAK_KEY`).
pub fn remember_peak(device: &str, flops_per_s: f64) {
    let speed = ShapeSpeed {
        params: 0,
        flops_per_s,
        flops_per_token: 0.0,
    };
    remember(device, PEAK_KEY, speed, "peak");
}

/// This machine's remembered measurements for `device`: its shapes' speeds and its peak.
fn mine(device: &str) -> (Vec<Measured>, Option<f64>) {
    let host = host();
    let (peaks, shapes): (Vec<Measured>, Vec<Measured>) = read_all()
        .into_iter()
        .filter(|m| m.host == host && m.device == device)
        .partition(|m| m.shape == PEAK_KEY);
    (shapes, peaks.first().map(|p| p.flops_per_s))
}

/// Whether a matmul peak is remembered for `device` of this machine.
pub fn peak_known(device: &str) -> bool {
    mine(device).1.is_some()
}

/// The training FLOP/s a run can be expected at: one figure for a measured shape, else
/// the bounds the measured shapes and the peak put on it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SpeedBounds {
    slowest: f64,
    /// `None` when nothing bounds it (no larger shape measured and no peak known).
    fastest: Option<f64>,
    /// The measured shapes that bound it, when it was never measured itself.
    stand_ins: Option<(Option<u64>, Option<u64>)>,
    /// When the oldest of the measurements it rests on was made.
    measured_at: u64,
}

/// Parameter counts closer than 2% (as a log ratio) count as the same size.
const NEARLY: f64 = 0.0198;

/// How fast `run` trains, from `shapes` measured on its device and the device's `peak`.
/// A shape never measured is bounded by two rules that hold for these kernels: a larger
/// model runs at least as many FLOP/s as a smaller one (its products are larger), and
/// at most as many tokens/s (every token costs it more); no run beats the matmul peak.
fn speed_bounds(shapes: &[Measured], peak: Option<f64>, run: &RunCost) -> Option<SpeedBounds> {
    // Only shapes measured in the run's precision say anything about it; the f32 peak
    // bounds f32 runs only.
    let bf16 = |key: &str| key.ends_with(" bf16");
    let shapes: Vec<&Measured> = shapes
        .iter()
        .filter(|m| bf16(&m.shape) == bf16(&run.shape))
        .collect();
    let peak = peak.filter(|_| !bf16(&run.shape));
    if let Some(exact) = shapes.iter().find(|m| m.shape == run.shape) {
        return Some(SpeedBounds {
            slowest: exact.flops_per_s,
            fastest: Some(exact.flops_per_s),
            stand_ins: None,
            measured_at: exact.measured_at,
        });
    }
    // A shape of nearly the same size (a norm's weights more or less) runs at its speed.
    let nearly = |m: &&&Measured| (m.params as f64 / run.params.max(1) as f64).ln().abs() < NEARLY;
    if let Some(near) = shapes.iter().find(nearly) {
        return Some(SpeedBounds {
            slowest: near.flops_per_s,
            fastest: Some(near.flops_per_s),
            stand_ins: Some((Some(near.params), Some(near.params))),
            measured_at: near.measured_at,
        });
    }
    let smaller = shapes
        .iter()
        .filter(|m| m.params <= run.params)
        .max_by_key(|m| m.params);
    let larger = shapes
        .iter()
        .filter(|m| m.params > run.params)
        .min_by_key(|m| m.params);
    let per_token = run.flops.map_or(6.0 * run.params.max(1) as f64, |f| {
        f / run.tokens.max(1) as f64
    });
    let slowest = match (smaller, larger) {
        (Some(smaller), _) => smaller.flops_per_s,
        (None, Some(larger)) => larger.tokens_per_s() * per_token,
        (None, None) => return None,
    };
    let fastest = match larger {
        Some(larger) => Some(larger.flops_per_s.max(slowest)),
        None => peak.map(|peak| peak.max(slowest)),
    };
    let used = smaller.into_iter().chain(larger);
    Some(SpeedBounds {
        slowest,
        fastest,
        stand_ins: Some((smaller.map(|m| m.params), larger.map(|m| m.params))),
        measured_at: used.map(|m| m.measured_at).min().unwrap_or(u64::MAX),
    })
}

/// How long `runs` take on `device` of this machine at the speeds remembered there;
/// `None` before any measurement here.
pub fn from_memory(device: &str, runs: &[RunCost]) -> Option<Remembered> {
    let (shapes, peak) = mine(device);
    estimate_from(&shapes, peak, runs)
}

fn estimate_from(shapes: &[Measured], peak: Option<f64>, runs: &[RunCost]) -> Option<Remembered> {
    if runs.is_empty() {
        return None;
    }
    let mut longest = Duration::ZERO;
    let mut shortest = Some(Duration::ZERO);
    let mut stand_in = StandIn::default();
    let mut measured_at = u64::MAX;
    for run in runs {
        let bounds = speed_bounds(shapes, peak, run)?;
        measured_at = measured_at.min(bounds.measured_at);
        let at = |flops_per_s| time_at(flops_per_s, std::slice::from_ref(run));
        longest = longest.saturating_add(at(bounds.slowest));
        shortest = shortest
            .zip(bounds.fastest)
            .map(|(sum, fastest)| sum.saturating_add(at(fastest)));
        if let Some((smaller, larger)) = bounds.stand_ins {
            stand_in.runs += 1;
            stand_in.smaller = stand_in.smaller.max(smaller);
            stand_in.larger = match (stand_in.larger, larger) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            stand_in.peak_bound |= larger.is_none() && peak.is_some();
        }
    }
    Some(Remembered {
        longest,
        shortest,
        measured_at,
        stand_in: (stand_in.runs > 0).then_some(stand_in),
        peak,
    })
}

/// Runs whose shape was never measured, and what bounds their speed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StandIn {
    pub runs: usize,
    /// The parameter counts of the nearest measured shapes below and above them.
    pub smaller: Option<u64>,
    pub larger: Option<u64>,
    /// Whether the matmul peak bounds some of them from above.
    pub peak_bound: bool,
}

/// An estimate from remembered speeds: one duration where every shape was measured, a
/// range where some stand in for shapes never measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Remembered {
    /// At the slowest speed believable for each run.
    pub longest: Duration,
    /// At the fastest; `None` where nothing bounds it.
    pub shortest: Option<Duration>,
    /// The oldest measurement used (seconds since the Unix epoch).
    pub measured_at: u64,
    pub stand_in: Option<StandIn>,
    /// The device's remembered matmul peak (FLOP/s).
    pub peak: Option<f64>,
}

impl Remembered {
    /// The single figure: the measured time, or the middle of the range on a log scale
    /// (at most the square root of the range's ratio away from either end).
    pub fn total(&self) -> Duration {
        match self.shortest {
            Some(shortest) if shortest < self.longest => {
                saturating_seconds((shortest.as_secs_f64() * self.longest.as_secs_f64()).sqrt())
            }
            _ => self.longest,
        }
    }

    /// "about 8.3 days for the 4 runs on cpu, at the training speed measured here on
    /// <date>", with the range and its reason when shapes stand in.
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
        let Some(stand_in) = self.stand_in else {
            return format!(
                "about {} for {what} on {device}, at the training speed measured here on {when}",
                spoken(self.longest)
            );
        };
        let range = match self.shortest {
            Some(shortest) if spoken(shortest) == spoken(self.longest) => {
                format!("about {} for {what} on {device}", spoken(self.longest))
            }
            Some(shortest) => format!(
                "about {} for {what} on {device} (between {} and {})",
                spoken(self.total()),
                spoken(shortest),
                spoken(self.longest)
            ),
            None => format!("at most {} for {what} on {device}", spoken(self.longest)),
        };
        let count = crate::text_table::human_count;
        let bounded = match (stand_in.smaller, stand_in.larger) {
            (Some(smaller), Some(larger)) if smaller == larger && !stand_in.peak_bound => {
                format!(
                    "taken from a measured shape of nearly the same size ({} params)",
                    count(smaller)
                )
            }
            _ => {
                let slow_end = match (stand_in.smaller, stand_in.larger) {
                    (Some(smaller), _) => format!(
                        "the FLOP/s of the smaller measured shape ({} params)",
                        count(smaller)
                    ),
                    (None, Some(larger)) => format!(
                        "the tokens/s of the larger measured shape ({} params)",
                        count(larger)
                    ),
                    (None, None) => "nothing".to_owned(),
                };
                let fast_end = match (stand_in.larger, stand_in.peak_bound, self.peak) {
                    (Some(larger), false, _) => format!(
                        "the FLOP/s of the larger measured shape ({} params)",
                        count(larger)
                    ),
                    (_, true, Some(peak)) => {
                        format!("this device's f32 matmul peak ({:.0} GFLOP/s)", peak / 1e9)
                    }
                    _ => "nothing yet (`rankprobe bench` measures the matmul peak that would)"
                        .to_owned(),
                };
                format!("bounded, from below by {slow_end}, from above by {fast_end}")
            }
        };
        let which = match (runs, stand_in.runs) {
            (1, _) => "its shape was never measured here, so its training FLOP/s is".to_owned(),
            (_, 1) => "1 run's shape was never measured here, so its training FLOP/s is".to_owned(),
            (_, n) => {
                format!("{n} runs' shapes were never measured here, so their training FLOP/s is")
            }
        };
        format!("{range}: {which} {bounded}; speeds measured here on {when}")
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
            longest: Duration::MAX,
            shortest: Some(Duration::MAX),
            measured_at: u64::MAX,
            stand_in: None,
            peak: None,
        };
        assert!(never.describe(2, "cpu").contains("an unknown date"));
    }

    fn measured(shape: &str, params: u64, flops_per_s: f64) -> Measured {
        Measured {
            host: "h".to_owned(),
            device: "cpu".to_owned(),
            shape: shape.to_owned(),
            params,
            flops_per_s,
            flops_per_token: Some(6.0 * params as f64),
            measured_at: 1_700_000_000,
            by: "sweep".to_owned(),
        }
    }

    fn shaped(shape: &str, params: u64, tokens: u64) -> RunCost {
        RunCost {
            label: shape.to_owned(),
            tokens,
            flops: Some(6.0 * params as f64 * tokens as f64),
            shape: shape.to_owned(),
            params,
        }
    }

    #[test]
    fn a_measured_shape_gives_one_figure() {
        let shapes = [measured("small", 1_000_000, 3e10)];
        let run = shaped("small", 1_000_000, 1_000_000);
        let r = estimate_from(&shapes, Some(4.3e11), &[run]).unwrap();
        assert_eq!(r.longest, Duration::from_secs(200));
        assert_eq!(r.total(), Duration::from_secs(200));
        assert!(r.stand_in.is_none());
        assert!(!r.describe(1, "cpu").contains("between"));
    }

    /// The case the issue measured: a 1M-parameter model's FLOP/s scaled to the 88.6M
    /// seed model said 110.8 days where a measured seed step says about 8. With the
    /// matmul peak as the upper bound the figure is a range holding the truth, and its
    /// middle is within the square root of the range's width of it (here under 4x).
    #[test]
    fn a_shape_never_measured_gets_a_range_bounded_by_the_peak() {
        let small_speed = 3e10;
        let shapes = [measured("small", 1_000_000, small_speed)];
        let seed = shaped("seed", 88_600_000, 40_000_000);
        let r = estimate_from(&shapes, Some(4.3e11), std::slice::from_ref(&seed)).unwrap();
        let flops = seed.flops.unwrap();
        // The truth the issue measured: the seed shape at 14x the small model's FLOP/s.
        let truth = flops / (small_speed * 110.8 / 8.0);
        let (short, long) = (r.shortest.unwrap().as_secs_f64(), r.longest.as_secs_f64());
        assert!(short <= truth && truth <= long, "{short} {truth} {long}");
        let off = (r.total().as_secs_f64() / truth).max(truth / r.total().as_secs_f64());
        assert!(off < 4.0, "the middle is {off}x off");
        let text = r.describe(1, "cpu");
        assert!(
            text.contains("between") && text.contains("matmul peak (430 GFLOP/s)"),
            "{text}"
        );
        assert!(
            text.contains("smaller measured shape (1M params)"),
            "{text}"
        );
    }

    #[test]
    fn measured_shapes_on_both_sides_bound_the_one_between() {
        let shapes = [
            measured("small", 1_000_000, 2e10),
            measured("large", 100_000_000, 2e11),
            measured(PEAK_KEY, 0, 4e11),
        ];
        let mid = shaped("mid", 10_000_000, 1_000_000);
        let b = speed_bounds(&shapes[..2], Some(4e11), &mid).unwrap();
        assert_eq!(b.slowest, 2e10);
        assert_eq!(b.fastest, Some(2e11));
        // Smaller than every measured shape: at least the larger one's tokens/s, at
        // most its FLOP/s.
        let tiny = shaped("tiny", 100_000, 1_000_000);
        let b = speed_bounds(&shapes[..2], None, &tiny).unwrap();
        assert!((b.slowest - 2e10 * 0.1).abs() < 1.0, "{b:?}");
        assert_eq!(b.fastest, Some(2e10));
        // Larger than every measured shape and no peak known: only a longest time.
        let huge = shaped("huge", 1_000_000_000, 1_000_000);
        let r = estimate_from(&shapes[..2], None, &[huge]).unwrap();
        assert_eq!(r.shortest, None);
        let text = r.describe(1, "cpu");
        assert!(
            text.starts_with("at most") && text.contains("rankprobe bench"),
            "{text}"
        );
    }

    #[test]
    fn the_date_said_is_that_of_the_measurements_used() {
        let mut old = measured("other bf16", 1_000_000, 3e10);
        old.measured_at = 1_000_000_000;
        let used = measured("small", 1_000_000, 3e10);
        let run = shaped("small", 1_000_000, 1_000_000);
        let r = estimate_from(&[old, used], None, &[run]).unwrap();
        assert_eq!(r.measured_at, 1_700_000_000);
    }

    #[test]
    fn durations_are_spoken_in_a_fitting_unit() {
        assert_eq!(spoken(Duration::from_secs(40)), "40 s");
        assert_eq!(spoken(Duration::from_secs(720)), "12 min");
        assert_eq!(spoken(Duration::from_secs(3 * 3600 + 1800)), "3.5 h");
        assert_eq!(spoken(Duration::from_secs(200 * 3600)), "8.3 days");
    }
}
