//! Sweep progress: indicatif bars on a terminal; without one (a Slurm log, `nohup`, CI)
//! a plain line at least every `log_every` and at every evaluation. Either way, once the
//! first steps of a run are timed, the estimated time of the run and of the rest of the
//! sweep, with a plain warning when a study would take hours on the CPU.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::matmul::PEAK_SIDE;
use crate::text_table::human_count;

use super::estimate::{
    long_on_the_cpu, saturating_seconds, spoken, Pace, RunCost, LONG_ON_THE_CPU,
};
use super::remembered::{peak_known, remember, remember_peak, ShapeSpeed};
use super::speed_range::from_memory;

/// How often a plain log line is written without a terminal, by default.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// The sweep bar (runs) and the bar of the run in progress (tokens).
pub struct Progress {
    interactive: bool,
    log_every: Duration,
    /// "cpu" or "cuda:N": where the estimates hold.
    device: String,
    /// The runs this sweep trains, in order; the first `started` have started.
    runs: Vec<RunCost>,
    started: usize,
    warned: bool,
    bars: MultiProgress,
    sweep: ProgressBar,
    run: Option<RunBar>,
}

struct RunBar {
    bar: ProgressBar,
    label: String,
    /// Plain mode: when the last line was written.
    logged_at: Instant,
    /// The latest step's line.
    status: String,
    pace: Pace,
}

impl Progress {
    /// Progress of a sweep training `runs` on `device`, logging at least every
    /// `log_every` without a terminal.
    pub fn new(runs: Vec<RunCost>, device: &str, log_every: Duration) -> Self {
        let interactive = std::io::stderr().is_terminal();
        let mut progress = Progress::bare(runs.len(), interactive);
        progress.runs = runs;
        progress.device = device.to_owned();
        progress.log_every = log_every;
        progress
    }

    /// Before the first run: the estimate from speeds measured here before, if any,
    /// with the warning when it is hours on the CPU (said again once a run is timed).
    pub fn remembered_estimate(&mut self) {
        let Some(remembered) = from_memory(&self.device, &self.runs) else {
            return;
        };
        self.println(&format!(
            "estimate: {}",
            remembered.describe(self.runs.len(), &self.device)
        ));
        if self.device == "cpu" && remembered.total() > LONG_ON_THE_CPU {
            self.println(&long_on_the_cpu(remembered.total()));
        }
    }

    fn bare(runs: usize, interactive: bool) -> Self {
        let target = if interactive {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bars = MultiProgress::with_draw_target(target);
        let sweep = bars.add(ProgressBar::new(runs as u64));
        sweep.set_style(
            ProgressStyle::with_template(
                "sweep {bar:30.green/white} {pos}/{len} runs  {elapsed_precise}  {msg}",
            )
            .expect("valid template"),
        );
        Progress {
            interactive,
            log_every: LOG_EVERY,
            device: String::new(),
            runs: Vec::new(),
            started: 0,
            warned: false,
            bars,
            sweep,
            run: None,
        }
    }

    /// A line above the bars (or on stderr when there are none).
    pub fn println(&self, line: &str) {
        if self.interactive {
            let _ = self.bars.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    pub fn start_run(&mut self, label: &str, total_tokens: u64) {
        let bar = self.bars.add(ProgressBar::new(total_tokens));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>8} {bar:30.cyan/blue} {msg}  eta {eta}")
                .expect("valid template"),
        );
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(250));
        self.sweep.set_message(format!("running {label}"));
        self.println(&format!(
            "[{label}] training {} tokens",
            human_count(total_tokens)
        ));
        self.run = Some(RunBar {
            bar,
            label: label.to_owned(),
            logged_at: Instant::now(),
            status: String::new(),
            pace: Pace::new(),
        });
        if self
            .runs
            .get(self.started)
            .is_some_and(|r| r.label == label)
        {
            self.started += 1;
        }
    }

    pub fn step(&mut self, tokens: u64, loss: f32, tokens_per_s: f64) {
        let interactive = self.interactive;
        let Some(run) = self.run.as_mut() else { return };
        let total = run.bar.length().unwrap_or(tokens);
        let remaining = total.saturating_sub(tokens) as f64 / tokens_per_s.max(1e-9);
        run.status = format!(
            "{}/{} tok  {} tok/s  loss {loss:.4}  eta {}",
            human_count(tokens),
            human_count(total),
            human_count(tokens_per_s as u64),
            HumanDuration(saturating_seconds(remaining))
        );
        run.bar.set_position(tokens);
        run.bar.set_message(run.status.clone());
        if !interactive && run.logged_at.elapsed() >= self.log_every {
            run.logged_at = Instant::now();
            eprintln!("[{}] {}", run.label, run.status);
        }
        self.estimate(tokens);
    }

    /// An evaluation of the run in progress: a log line without a terminal.
    pub fn evaluated(&mut self, val_loss: f64) {
        let Some(run) = self.run.as_mut() else { return };
        if self.interactive {
            return;
        }
        run.logged_at = Instant::now();
        let tokens = run.bar.position();
        if run.status.is_empty() {
            eprintln!(
                "[{}] {} tok  val loss {val_loss:.4}",
                run.label,
                human_count(tokens)
            );
        } else {
            eprintln!("[{}] {}  val loss {val_loss:.4}", run.label, run.status);
        }
    }

    /// Once the run's pace is measured: its estimated time and the sweep's, remembered
    /// for `plan`, with a warning when the sweep would take hours on the CPU.
    fn estimate(&mut self, tokens: u64) {
        let Some(run) = self.run.as_mut() else { return };
        let Some(cost) = self.started.checked_sub(1).and_then(|i| self.runs.get(i)) else {
            return;
        };
        let later = &self.runs[self.started..];
        let Some(estimate) = run.pace.step(tokens, cost, later) else {
            return;
        };
        let mut line = format!(
            "[{}] estimate on {}: {} tok/s, about {} for this run",
            run.label,
            self.device,
            human_count(estimate.tokens_per_s as u64),
            spoken(estimate.run_left)
        );
        match later.len() {
            0 => {}
            1 => line += &format!(", {} with the run after it", spoken(estimate.sweep_left)),
            n => {
                let left = spoken(estimate.sweep_left);
                line += &format!(", {left} with the {n} runs after it");
            }
        }
        if let Some(flops_per_s) = estimate.flops_per_s {
            line += &format!(" ({flops_per_s:.2e} training FLOP/s)");
            let speed = ShapeSpeed {
                params: cost.params,
                flops_per_s,
                flops_per_token: flops_per_s / estimate.tokens_per_s,
            };
            remember(&self.device, &cost.shape, speed, "sweep");
            // Once per machine: the CPU's matmul peak, which bounds the estimate for
            // shapes never measured (a fraction of a second).
            if self.device == "cpu" && !peak_known(&self.device) {
                remember_peak(
                    &self.device,
                    crate::matmul::measured_flops(PEAK_SIDE, PEAK_SIDE, PEAK_SIDE),
                );
            }
        }
        self.println(&line);
        if self.device == "cpu" && estimate.sweep_left > LONG_ON_THE_CPU && !self.warned {
            self.warned = true;
            self.println(&long_on_the_cpu(estimate.sweep_left));
        }
    }

    pub fn finish_run(&mut self, summary: &str) {
        if let Some(run) = self.run.take() {
            run.bar.finish_and_clear();
            self.bars.remove(&run.bar);
            self.println(&format!("[{}] {summary}", run.label));
        }
        self.sweep.inc(1);
    }

    pub fn finish(&self) {
        self.sweep.finish_and_clear();
    }
}
