//! Sweep progress: indicatif bars on a terminal, plain log lines otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::text_table::human_count;

/// The sweep bar (runs) and the bar of the run in progress (tokens).
pub struct Progress {
    interactive: bool,
    bars: MultiProgress,
    sweep: ProgressBar,
    run: Option<RunBar>,
}

struct RunBar {
    bar: ProgressBar,
    label: String,
    /// Plain mode: the last tenth of the run that was logged.
    logged_tenth: u64,
}

impl Progress {
    pub fn new(runs: usize) -> Self {
        let interactive = std::io::stderr().is_terminal();
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
            logged_tenth: 0,
        });
    }

    pub fn step(&mut self, tokens: u64, loss: f32, tokens_per_s: f64) {
        let interactive = self.interactive;
        let Some(run) = self.run.as_mut() else { return };
        let total = run.bar.length().unwrap_or(tokens);
        let status = format!(
            "{}/{} tok  {} tok/s  loss {loss:.4}",
            human_count(tokens),
            human_count(total),
            human_count(tokens_per_s as u64)
        );
        run.bar.set_position(tokens);
        run.bar.set_message(status.clone());
        let tenth = tokens * 10 / total.max(1);
        if !interactive && tenth > run.logged_tenth {
            run.logged_tenth = tenth;
            let remaining = total.saturating_sub(tokens) as f64 / tokens_per_s.max(1e-9);
            eprintln!(
                "[{}] {status}  eta {}",
                run.label,
                HumanDuration(Duration::from_secs_f64(remaining))
            );
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
