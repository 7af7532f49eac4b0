//! Benchmarks, as a library: training throughput of a run next to the machine's own
//! limit measured in the same process (machines here are noisy, so the figures to compare
//! are ratios), optionally next to PyTorch eager on the same model, batch and optimizer,
//! with a per-phase profile and peak memory; and the time of one Muon update per matrix.
//! `commands::bench` parses the command line, calls these, and prints.

pub mod muon_timing;
pub mod peak;
pub mod throughput;
pub mod torch;

use crate::data::prepare_dataset;
use crate::plan::cost::{param_count, training_flops_at};
use crate::plan::PlannedRun;
use crate::runner::estimate::speed_key;
use crate::runner::remembered::{remember, remember_peak, ShapeSpeed};
use crate::spec::Device;
use crate::train::{train_run, TrainOptions};

use self::peak::{peak_flops, peak_memory_mib, reset_peak_memory};
use self::throughput::Throughput;
use self::torch::{torch_reference, TorchFigures};

/// One run to time.
pub struct Target {
    pub study: String,
    pub run: PlannedRun,
    /// `execution.tf32` of its study.
    pub tf32: bool,
}

/// How to time them.
pub struct Settings {
    /// Resolved (`train::device::resolve`): not `Auto`.
    pub device: Device,
    /// Steps per round, at least 2 (step 1 warms up and is not timed).
    pub steps: u64,
    /// Rounds of rankprobe (and the reference) per run, at least 1; the best counts.
    pub rounds: usize,
    /// Also time the PyTorch reference (CPU only).
    pub torch: bool,
    /// Record the per-phase profile.
    pub profile: bool,
}

/// What was measured for one run.
pub struct RunFigures {
    pub study: String,
    pub label: String,
    pub params: u64,
    pub tokens_per_step: u64,
    /// The best round.
    pub throughput: Throughput,
    /// Training FLOP/s of the best round.
    pub train_flops: f64,
    /// Whether it trained with TF32 products (and is measured against the TF32 peak).
    pub tf32: bool,
    /// Whether it trained with bf16 products (`model.precision: Bf16`, measured against
    /// the bf16 peak).
    pub bf16: bool,
    pub peak_memory_mib: f64,
    /// The PyTorch reference's best round (or why it did not run), when asked for.
    pub torch: Option<Result<TorchFigures, String>>,
    /// The reference's training FLOP/s.
    pub torch_flops: Option<f64>,
}

/// A whole bench.
pub struct Report {
    pub threads: usize,
    /// The fastest large products of the whole bench (rankprobe's kernels and PyTorch's),
    /// in f32 (`[0]`), with TF32 tensor cores (`[1]`) and with bf16 operands (`[2]`: our
    /// kernel, `bf16_matmul::Kernel::chosen`, or PyTorch's); NaN where no run used them.
    pub peak: [f64; 3],
    pub runs: Vec<RunFigures>,
}

impl RunFigures {
    /// Training FLOP/s as a fraction of the peak of the mode it trained in.
    pub fn of_peak(&self, report: &Report) -> f64 {
        self.train_flops / report.peak[peak_index(self.tf32, self.bf16)]
    }
}

/// Which peak a run is measured against: 0 f32, 1 TF32, 2 bf16.
fn peak_index(tf32: bool, bf16: bool) -> usize {
    match (tf32, bf16) {
        (_, true) => 2,
        (true, false) => 1,
        (false, false) => 0,
    }
}

/// The fastest 2048^3 product with bf16 operands by the kernel runs use here.
fn bf16_peak_flops() -> f64 {
    use crate::bf16_matmul::{measured_flops, Kernel};
    let side = peak::PEAK_SIDE;
    measured_flops(Kernel::chosen(), (side, side, side))
}

/// Why a bench stopped.
#[derive(Debug)]
pub enum BenchError {
    /// The run's data could not be prepared.
    Data(String),
    /// Training failed.
    Train(String),
}

/// Times each target (`settings.steps` steps per round, evaluating only at the start and
/// the end) and remembers its speed for `plan`'s estimates on this machine.
pub fn measure(targets: &[Target], settings: &Settings) -> Result<Report, BenchError> {
    let threads = rayon::current_num_threads();
    let device = settings.device;
    let mut peaks: [Vec<f64>; 3] = [vec![peak_flops(device, false)], Vec::new(), Vec::new()];
    let mut runs = Vec::new();
    for target in targets {
        let mut config = target.run.config.clone();
        let tf32 = crate::train::device::uses_tf32(target.tf32, device);
        let bf16 = config.model.precision == crate::spec::run_config::Precision::Bf16;
        let mode = peak_index(tf32, bf16);
        let tokens_per_step = config.data.tokens_per_step();
        config.schedule.tokens = settings.steps * tokens_per_step;
        config.schedule.eval_every_tokens = None;
        config.probes.at_tokens.clear();
        config.probes.every_tokens = None;
        let dataset = prepare_dataset(&config.data).map_err(|e| BenchError::Data(e.to_string()))?;
        let vocab = dataset.tokenizer.vocab_size;
        let flops_per_token = training_flops_at(&config, vocab, 1);
        // Rounds alternate rankprobe and the reference; the best of each counts (the
        // machines here are shared: the best run is the one least disturbed).
        let mut best: Option<Throughput> = None;
        let mut torch: Option<Result<TorchFigures, String>> = None;
        let mut memory = f64::NAN;
        for _ in 0..settings.rounds.max(1) {
            let mut throughput = Throughput::new(tokens_per_step, settings.steps, settings.profile);
            let options = TrainOptions {
                device,
                tf32,
                ..TrainOptions::default()
            };
            reset_peak_memory(device);
            train_run(&config, &dataset, &mut throughput, options)
                .map_err(|e| BenchError::Train(e.to_string()))?;
            memory = peak_memory_mib(device).unwrap_or(f64::NAN);
            if best
                .as_ref()
                .is_none_or(|b| throughput.tokens_per_s() > b.tokens_per_s())
            {
                best = Some(throughput);
            }
            // Measured again after each run: the peak is the best of every measurement.
            peaks[mode].push(if bf16 {
                bf16_peak_flops()
            } else {
                peak_flops(device, tf32)
            });
            if settings.torch && !matches!(torch, Some(Err(_))) {
                let figures = if device != Device::Cpu {
                    Err("the PyTorch reference runs on the CPU only".to_owned())
                } else {
                    torch_reference(&config, vocab, settings.steps - 1, threads)
                };
                if let Ok(f) = &figures {
                    peaks[mode].push(if bf16 {
                        f.bf16_peak_flops
                    } else {
                        f.peak_flops
                    });
                }
                let better = match (&torch, &figures) {
                    (Some(Ok(old)), Ok(new)) => new.tokens_per_s > old.tokens_per_s,
                    _ => true,
                };
                if better {
                    torch = Some(figures);
                }
            }
        }
        let throughput = best.expect("at least one round");
        let train_flops = flops_per_token * throughput.tokens_per_s();
        let params = param_count(&config.model, vocab as u64).total();
        let shape = speed_key(&config, vocab);
        let speed = ShapeSpeed {
            params,
            flops_per_s: train_flops,
            flops_per_token,
        };
        remember(&device.to_string(), &shape, speed, "bench");
        if let Some(peak) = peaks[0].iter().copied().reduce(f64::max) {
            remember_peak(&device.to_string(), peak);
        }
        let torch_flops = match &torch {
            Some(Ok(f)) => Some(f.tokens_per_s * flops_per_token),
            _ => None,
        };
        runs.push(RunFigures {
            study: target.study.clone(),
            label: target.run.label.clone(),
            params,
            tokens_per_step,
            throughput,
            train_flops,
            tf32,
            bf16,
            peak_memory_mib: memory,
            torch,
            torch_flops,
        });
    }
    let best = |measured: &[f64]| {
        measured
            .iter()
            .copied()
            .filter(|p| p.is_finite())
            .fold(f64::NAN, f64::max)
    };
    Ok(Report {
        threads,
        peak: [best(&peaks[0]), best(&peaks[1]), best(&peaks[2])],
        runs,
    })
}
