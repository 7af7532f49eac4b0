//! `rankprobe bench FILE...`: training throughput of each study's first run (or the run
//! `--run LABEL`), next to the machine's matrix-product peak measured in the same process
//! (machines here are noisy, so the figures to compare are ratios), optionally next to
//! PyTorch eager on the same model, batch and optimizer (`--torch`), with a per-phase
//! profile (`--profile`) and peak memory.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use dfdx::prelude::*;

use crate::data::prepare_dataset;
use crate::matmul::{matmul_threaded, Strided};
use crate::model::shapes::ModelShape;
use crate::plan::cost::{param_count, training_flops_at};
use crate::profile;
use crate::runner::estimate::remember;
use crate::spec::run_config::RunConfig;
use crate::text_table::{human_count, TextTable};
#[cfg(feature = "cuda")]
use crate::train::device::TrainDevice;
use crate::train::{train_run, MetricRow, TrainObserver, TrainOptions};

use super::{load_plan, Failure};

/// The reference implementation `--torch` runs (embedded, so the binary runs anywhere).
const TORCH_REFERENCE: &str = include_str!("../../scripts/torch_reference.py");

/// Side of the square matrix product that measures the peak.
const PEAK_SIDE: usize = 2048;

/// Times the steps after the first (a warm-up: first allocations and page faults) up to
/// the last, and with `--profile` records their phases.
struct Throughput {
    tokens_per_step: u64,
    total_tokens: u64,
    profiling: bool,
    timed_since: Option<Instant>,
    timed_seconds: f64,
    profile: Vec<(&'static str, f64, u64)>,
}

impl Throughput {
    fn timed_steps(&self) -> u64 {
        self.total_tokens / self.tokens_per_step - 1
    }

    fn tokens_per_s(&self) -> f64 {
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

/// FLOP/s of a [rows x k] x [k x n] f32 matmul on the CPU (the AVX-512/AVX2 kernels the
/// CPU training uses, on all threads), best of a few repetitions.
fn matmul_flops(rows: usize, k: usize, n: usize) -> f64 {
    let dev = Cpu::seed_from_u64(0);
    let a: Tensor<(usize, usize), f32, _> = dev.sample_normal_like(&(rows, k));
    let b: Tensor<(usize, usize), f32, _> = dev.sample_normal_like(&(k, n));
    let (a, b) = (a.as_vec(), b.as_vec());
    let mut c = vec![0.0f32; rows * n];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let started = Instant::now();
        matmul_threaded(
            (rows, k, n),
            (&mut c, Strided::rows(0, n), false),
            (&a, Strided::rows(0, k)),
            (&b, Strided::rows(0, n)),
        );
        best = best.min(started.elapsed().as_secs_f64());
    }
    std::hint::black_box(c);
    2.0 * (rows * k * n) as f64 / best
}

/// The same on a dfdx device, timed between synchronisations.
#[cfg(feature = "cuda")]
fn dfdx_matmul_flops<D: Device<f32> + Synchronize>(
    dev: &D,
    rows: usize,
    k: usize,
    n: usize,
) -> f64 {
    let a: Tensor<(usize, usize), f32, D> = dev.sample_normal_like(&(rows, k));
    let b: Tensor<(usize, usize), f32, D> = dev.sample_normal_like(&(k, n));
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        dev.synchronize();
        let started = Instant::now();
        let c = a.clone().matmul(b.clone());
        dev.synchronize();
        best = best.min(started.elapsed().as_secs_f64());
        std::hint::black_box(c);
    }
    2.0 * (rows * k * n) as f64 / best
}

/// The side of the square product the peak is measured on: a GPU needs a larger one
/// to be busy.
fn peak_side(device: crate::spec::Device) -> usize {
    match device {
        crate::spec::Device::Cuda(_) => PEAK_SIDE * 4,
        _ => PEAK_SIDE,
    }
}

/// The peak reference on the device a bench trains on: one large square product (with
/// TF32 tensor cores where the run uses them).
fn peak_flops(device: crate::spec::Device, tf32: bool) -> f64 {
    match device {
        #[cfg(feature = "cuda")]
        crate::spec::Device::Cuda(ordinal) => match <Cuda as TrainDevice>::open(ordinal, 0, tf32) {
            Ok(dev) => {
                let side = peak_side(device);
                dfdx_matmul_flops(&dev, side, side, side)
            }
            Err(_) => f64::NAN,
        },
        _ => {
            let _ = tf32;
            matmul_flops(PEAK_SIDE, PEAK_SIDE, PEAK_SIDE)
        }
    }
}

/// Peak memory of the run on `device`, in MiB: the CUDA pool's high-water mark on a GPU,
/// this process's peak resident memory (VmHWM, the largest run so far) on the CPU.
fn peak_memory_mib(device: crate::spec::Device) -> Option<f64> {
    match device {
        #[cfg(feature = "cuda")]
        crate::spec::Device::Cuda(ordinal) => crate::train::cuda_memory::peak_bytes(ordinal)
            .ok()
            .map(|bytes| bytes as f64 / (1024.0 * 1024.0)),
        _ => peak_rss_mib(),
    }
}

/// Starts a new peak for `peak_memory_mib` where the device allows it (the GPU's pool).
fn reset_peak_memory(device: crate::spec::Device) {
    #[cfg(feature = "cuda")]
    if let crate::spec::Device::Cuda(ordinal) = device {
        let _ = crate::train::cuda_memory::reset_peak(ordinal);
    }
    let _ = device;
}

/// This process's peak resident memory (VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// What the PyTorch reference measured.
struct TorchFigures {
    tokens_per_s: f64,
    peak_flops: f64,
    peak_rss_mib: f64,
    version: String,
}

/// Runs the PyTorch reference on the CPU with `threads` threads: its figures, or why not.
fn torch_reference(
    config: &RunConfig,
    vocab: usize,
    steps: u64,
    threads: usize,
) -> Result<TorchFigures, String> {
    let python = std::env::var("RANKPROBE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let job = serde_json::json!({
        "config": config,
        "vocab": vocab,
        "steps": steps,
        "warmup": 1,
        "threads": threads,
        "peak_side": PEAK_SIDE,
    });
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(TORCH_REFERENCE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot start `{python}` ({err}); set RANKPROBE_PYTHON"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(job.to_string().as_bytes())
            .map_err(|err| format!("cannot talk to `{python}`: {err}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|err| format!("`{python}` failed: {err}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let last = stderr.lines().last().unwrap_or("").trim().to_owned();
        return Err(match output.status.code() {
            Some(3) => last,
            _ => format!("the PyTorch reference failed: {last}"),
        });
    }
    let figures: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|err| format!("the PyTorch reference printed no figures ({err})"))?;
    let number = |key: &str| figures[key].as_f64().unwrap_or(f64::NAN);
    Ok(TorchFigures {
        tokens_per_s: number("tokens_per_s"),
        peak_flops: number("peak_gflops") * 1e9,
        peak_rss_mib: number("peak_rss_mib"),
        version: figures["torch"].as_str().unwrap_or("?").to_owned(),
    })
}

/// What `rankprobe bench` is asked to do.
pub struct BenchOptions<'a> {
    pub files: &'a [PathBuf],
    pub steps: u64,
    pub label: Option<&'a str>,
    pub device: crate::spec::Device,
    /// Also time the PyTorch reference on the same run.
    pub torch: bool,
    /// Print a per-phase profile of each run.
    pub profile: bool,
    /// Rounds of rankprobe (and the reference) per run; the best of each is reported.
    pub rounds: usize,
}

pub fn bench(options: BenchOptions) -> Result<(), Failure> {
    let device = crate::train::device::resolve(options.device)
        .map_err(|err| Failure::BadInput(err.to_string()))?;
    if options.steps < 2 {
        return Err(Failure::BadInput(format!(
            "bench --steps {}: at least 2 steps are needed: step 1 warms up (first \
             allocations) and is not timed, so the steps after it are what is measured",
            options.steps
        )));
    }
    if options.rounds == 0 {
        return Err(Failure::BadInput(
            "bench --rounds 0: at least one round is needed".to_owned(),
        ));
    }
    let steps = options.steps;
    let threads = rayon::current_num_threads();
    let mut headers = vec![
        "study",
        "run",
        "params",
        "tokens/step",
        "tokens/s",
        "train GFLOP/s",
        "of peak",
        "peak mem MiB",
    ];
    if options.torch {
        headers.extend(["torch tokens/s", "torch of peak", "torch RSS MiB", "ratio"]);
    }
    let mut table = TextTable::new(headers.into_iter().map(String::from).collect());
    let mut rows = Vec::new();
    let mut profiles = Vec::new();
    let mut notes = Vec::new();
    // The fastest large products, in f32 ([0]) and with TF32 tensor cores ([1]): each row
    // is measured against the mode it trained in.
    let mut peaks: [Vec<f64>; 2] = [vec![peak_flops(device, false)], Vec::new()];
    let mut row_tf32 = Vec::new();
    for file in options.files {
        let plan = load_plan(file)?;
        let run = match options.label {
            None => &plan.runs[0],
            Some(label) => plan.runs.iter().find(|r| r.label == label).ok_or_else(|| {
                Failure::BadInput(format!("{}: no run labelled `{label}`", file.display()))
            })?,
        };
        let mut config = run.config.clone();
        let tf32 = crate::train::device::uses_tf32(plan.execution.tf32, device);
        let tokens_per_step = config.data.tokens_per_step();
        // Train `steps` steps, evaluating only at the start and the end.
        config.schedule.tokens = steps * tokens_per_step;
        config.schedule.eval_every_tokens = None;
        config.probes.at_tokens.clear();
        config.probes.every_tokens = None;
        let dataset =
            prepare_dataset(&config.data).map_err(|e| Failure::BadInput(e.to_string()))?;
        let vocab = dataset.tokenizer.vocab_size;
        let flops_per_token = training_flops_at(&config, vocab, 1);
        // Rounds alternate rankprobe and the reference; the best of each counts (the
        // machines here are shared: the best run is the one least disturbed).
        let mut best: Option<Throughput> = None;
        let mut torch: Option<Result<TorchFigures, String>> = None;
        let mut memory = f64::NAN;
        for _ in 0..options.rounds.max(1) {
            let mut throughput = Throughput {
                tokens_per_step,
                total_tokens: steps * tokens_per_step,
                profiling: options.profile,
                timed_since: None,
                timed_seconds: f64::NAN,
                profile: Vec::new(),
            };
            let train_options = TrainOptions {
                device,
                tf32,
                ..TrainOptions::default()
            };
            reset_peak_memory(device);
            train_run(&config, &dataset, &mut throughput, train_options)
                .map_err(|e| Failure::RunFailed(e.to_string()))?;
            memory = peak_memory_mib(device).unwrap_or(f64::NAN);
            if best
                .as_ref()
                .is_none_or(|b| throughput.tokens_per_s() > b.tokens_per_s())
            {
                best = Some(throughput);
            }
            // Measured again after each run: the peak is the best of every measurement.
            peaks[usize::from(tf32)].push(peak_flops(device, tf32));
            if options.torch && !matches!(torch, Some(Err(_))) {
                let figures = if device != crate::spec::Device::Cpu {
                    Err("the PyTorch reference runs on the CPU only".to_owned())
                } else {
                    torch_reference(&config, vocab, steps - 1, threads)
                };
                if let Ok(f) = &figures {
                    peaks[0].push(f.peak_flops);
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
        // Remembered for `plan`'s estimates on this machine.
        let shape = ModelShape::of(&config, vocab).to_string();
        remember(&device.to_string(), &shape, params, train_flops, "bench");
        let mut row = vec![
            plan.study.clone(),
            run.label.clone(),
            human_count(params),
            tokens_per_step.to_string(),
            format!("{:.0}", throughput.tokens_per_s()),
            format!("{:.1}", train_flops / 1e9),
            String::new(),
            format!("{memory:.0}"),
        ];
        match &torch {
            None => {}
            Some(Ok(figures)) => {
                row.extend([
                    format!("{:.0}", figures.tokens_per_s),
                    String::new(),
                    format!("{:.0}", figures.peak_rss_mib),
                    format!("{:.2}", throughput.tokens_per_s() / figures.tokens_per_s),
                ]);
                notes.push(format!(
                    "PyTorch {} (eager, f32, {threads} threads)",
                    figures.version
                ));
            }
            Some(Err(why)) => {
                row.extend(["-", "-", "-", "-"].map(String::from));
                notes.push(format!(
                    "{} {}: PyTorch reference skipped: {why}",
                    plan.study, run.label
                ));
            }
        }
        rows.push(row);
        row_tf32.push(tf32);
        profiles.push((
            format!("{} {}", plan.study, run.label),
            throughput,
            steps,
            train_flops,
            torch
                .and_then(Result::ok)
                .map(|f| f.tokens_per_s * flops_per_token),
        ));
    }
    // The peak is the best large product of the whole bench (rankprobe's kernels and
    // PyTorch's), so both implementations are measured against the same ceiling.
    let best = |measured: &[f64]| {
        measured
            .iter()
            .copied()
            .filter(|p| p.is_finite())
            .fold(f64::NAN, f64::max)
    };
    let peak = [best(&peaks[0]), best(&peaks[1])];
    let rows = rows.into_iter().zip(&row_tf32).zip(&profiles);
    for ((mut row, &tf32), (_, _, _, train_flops, torch_flops)) in rows {
        row[6] = format!("{:.2}", train_flops / peak[usize::from(tf32)]);
        if let Some(torch_flops) = torch_flops {
            row[9] = format!("{:.2}", torch_flops / peak[0]);
        }
        table.push(row);
    }
    println!(
        "training throughput on {device}, {threads} threads: steps 2-{steps} timed (step 1 warms \
         up, in PyTorch too); peak = the fastest {side}^3 f32 matrix product measured in this run: {:.1} GFLOP/s",
        peak[0] / 1e9,
        side = peak_side(device)
    );
    if row_tf32.contains(&true) {
        println!(
            "runs with `execution.tf32`: measured against the fastest TF32 product: {:.1} GFLOP/s",
            peak[1] / 1e9
        );
    }
    println!();
    print!("{}", table.render());
    notes.sort();
    notes.dedup();
    for note in notes {
        println!("{note}");
    }
    if options.profile {
        for (name, throughput, steps, _, _) in &profiles {
            print_profile(name, throughput, *steps);
        }
    }
    Ok(())
}

/// The per-phase table of one run: wall time per step and share of the step.
fn print_profile(name: &str, throughput: &Throughput, steps: u64) {
    let profiled_steps = throughput.timed_steps() as f64;
    let step_seconds = throughput.timed_seconds / profiled_steps;
    println!(
        "\nprofile of {name}: steps 2-{steps}, {:.1} ms per step (phases nest: the \
         operations are inside forward and backward)\n",
        step_seconds * 1e3
    );
    let mut table = TextTable::new(
        ["phase", "ms/step", "share", "calls/step"]
            .map(String::from)
            .to_vec(),
    );
    for (phase, seconds, calls) in &throughput.profile {
        table.push(vec![
            phase.to_string(),
            format!("{:.2}", seconds / profiled_steps * 1e3),
            format!("{:.1}%", 100.0 * seconds / throughput.timed_seconds),
            format!("{:.0}", *calls as f64 / profiled_steps),
        ]);
    }
    print!("{}", table.render());
}

/// `rankprobe muon-bench FILE`: CPU time of one Muon update (momentum, Newton-Schulz,
/// scaling) for each matrix shape of the study's first Muon run, and per optimizer step.
pub fn muon_bench(file: &std::path::Path) -> Result<(), Failure> {
    use crate::optim::muon::{matrix_update, Muon};
    use crate::spec::run_config::{OptimizerConfig, Precision};
    let plan = load_plan(file)?;
    let Some((run, muon)) = plan.runs.iter().find_map(|r| match &r.config.optimizer {
        OptimizerConfig::Muon(m) => Some((r, m.clone())),
        OptimizerConfig::AdamW(_) | OptimizerConfig::Lion(_) => None,
    }) else {
        return Err(Failure::BadInput(format!(
            "{} has no Muon run",
            file.display()
        )));
    };
    let model = &run.config.model;
    let matrices = Muon::matrices(
        &muon,
        model.activation,
        model.d_model,
        model.n_kv_heads * model.head_dim,
        model.d_ff,
        model.n_layers,
    );
    let mut shapes: Vec<(usize, usize)> = matrices.iter().map(|m| (m.rows, m.cols)).collect();
    shapes.sort_unstable();
    shapes.dedup();
    let dev = Cpu::seed_from_u64(0);
    let mut table = TextTable::new(
        ["matrix", "per step", "f32 ms", "bf16 ms", "matmul GFLOP/s"]
            .map(String::from)
            .to_vec(),
    );
    let mut total = [0.0f64; 2];
    for (rows, cols) in shapes {
        let count = matrices
            .iter()
            .filter(|m| (m.rows, m.cols) == (rows, cols))
            .count();
        let grad: Tensor<(usize, usize), f32, _> = dev.sample_normal_like(&(rows, cols));
        let grad = grad.as_vec();
        let mut times = [0.0f64; 2];
        for (slot, precision) in [Precision::F32, Precision::Bf16].into_iter().enumerate() {
            let config = crate::spec::run_config::MuonConfig {
                precision,
                ..muon.clone()
            };
            let mut buf = vec![0.0f32; grad.len()];
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let started = Instant::now();
                std::hint::black_box(matrix_update(&config, &mut buf, &grad, rows, cols));
                best = best.min(started.elapsed().as_secs_f64());
            }
            times[slot] = best;
            total[slot] += best * count as f64;
        }
        let (small, large) = (rows.min(cols), rows.max(cols));
        table.push(vec![
            format!("{rows} x {cols}"),
            count.to_string(),
            format!("{:.1}", times[0] * 1e3),
            format!("{:.1}", times[1] * 1e3),
            format!("{:.1}", matmul_flops(small, large, small) / 1e9),
        ]);
    }
    println!(
        "Muon updates of {} run {} on the CPU (best of 3)\n",
        plan.study, run.label
    );
    print!("{}", table.render());
    println!(
        "\nper optimizer step: {:.1} ms (f32), {:.1} ms (bf16 emulated)",
        total[0] * 1e3,
        total[1] * 1e3
    );
    cuda_muon_bench(&muon, &matrices);
    Ok(())
}

/// The CUDA half of `muon-bench`: the same shapes on GPU 0, when this build and machine
/// have one.
#[cfg(feature = "cuda")]
fn cuda_muon_bench(
    muon: &crate::spec::run_config::MuonConfig,
    matrices: &[crate::optim::muon::MuonMatrix],
) {
    use crate::optim::cuda_muon::CudaMuon;
    use crate::spec::run_config::Precision;
    if crate::train::device::resolve(crate::spec::Device::Auto) != Ok(crate::spec::Device::Cuda(0))
    {
        println!("\nno CUDA device: the GPU half is skipped");
        return;
    }
    let mut shapes: Vec<(usize, usize)> = matrices.iter().map(|m| (m.rows, m.cols)).collect();
    shapes.sort_unstable();
    shapes.dedup();
    let dev = Cpu::seed_from_u64(0);
    let mut table = TextTable::new(
        ["matrix", "per step", "cuda f32 ms", "cuda bf16 ms"]
            .map(String::from)
            .to_vec(),
    );
    let mut total = [0.0f64; 2];
    for shape in shapes {
        let count = matrices
            .iter()
            .filter(|m| (m.rows, m.cols) == shape)
            .count();
        let grad: Tensor<(usize, usize), f32, _> = dev.sample_normal_like(&shape);
        let grad = grad.as_vec();
        let mut row = vec![format!("{} x {}", shape.0, shape.1), count.to_string()];
        for (slot, precision) in [Precision::F32, Precision::Bf16].into_iter().enumerate() {
            let config = crate::spec::run_config::MuonConfig {
                precision,
                ..muon.clone()
            };
            match CudaMuon::new(&config).time_update(0, &grad, shape, 20) {
                Ok(seconds) => {
                    total[slot] += seconds * count as f64;
                    row.push(format!("{:.3}", seconds * 1e3));
                }
                Err(why) => row.push(format!("error: {why}")),
            }
        }
        table.push(row);
    }
    println!("\nthe same on CUDA device 0 (mean of 20 after a warm-up)\n");
    print!("{}", table.render());
    println!(
        "\nper optimizer step on the GPU: {:.2} ms (f32), {:.2} ms (bf16)",
        total[0] * 1e3,
        total[1] * 1e3
    );
}

#[cfg(not(feature = "cuda"))]
fn cuda_muon_bench(
    _muon: &crate::spec::run_config::MuonConfig,
    _matrices: &[crate::optim::muon::MuonMatrix],
) {
    println!("\n(this build has no CUDA support: the GPU half needs --features cuda)");
}
