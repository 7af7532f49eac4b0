//! `rankprobe bench FILE...`: CPU training throughput of each study's first run (or the
//! run `--run LABEL`), next to
//! a plain dfdx matmul measured in the same process (machines here are noisy, so the
//! figure to compare across machines is the ratio, not the absolute number).

use std::path::PathBuf;
use std::time::Instant;

use dfdx::prelude::*;

use crate::data::prepare_dataset;
use crate::plan::cost::{param_count, training_flops};
use crate::text_table::{human_count, TextTable};
use crate::train::{train_run, MetricRow, TrainObserver, TrainOptions};

use super::{load_plan, Failure};

/// Keeps the training throughput a run reports.
#[derive(Default)]
struct Throughput {
    tokens_per_s: f64,
}

impl TrainObserver for Throughput {
    fn metric(&mut self, _row: MetricRow) {}

    fn step_done(&mut self, _tokens: u64, _loss: f32, tokens_per_s: f64) {
        self.tokens_per_s = tokens_per_s;
    }
}

/// FLOP/s of a [rows x k] x [k x n] f32 matmul on the CPU, best of a few repetitions.
fn matmul_flops(rows: usize, k: usize, n: usize) -> f64 {
    matmul_flops_on(&Cpu::seed_from_u64(0), rows, k, n)
}

/// The same on `dev`, timed between device synchronisations.
fn matmul_flops_on<D: Device<f32> + Synchronize>(dev: &D, rows: usize, k: usize, n: usize) -> f64 {
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

/// The matmul reference on the device a bench trains on.
fn reference_flops(device: crate::spec::Device, rows: usize, k: usize, n: usize) -> f64 {
    match device {
        #[cfg(feature = "cuda")]
        crate::spec::Device::Cuda(ordinal) => match Cuda::try_build(ordinal, 0) {
            Ok(dev) => matmul_flops_on(&dev, rows, k, n),
            Err(_) => f64::NAN,
        },
        _ => matmul_flops(rows, k, n),
    }
}

pub fn bench(
    files: &[PathBuf],
    steps: u64,
    label: Option<&str>,
    device: crate::spec::Device,
) -> Result<(), Failure> {
    let device =
        crate::train::device::resolve(device).map_err(|err| Failure::BadInput(err.to_string()))?;
    let mut table = TextTable::new(
        [
            "study",
            "run",
            "params",
            "tokens/step",
            "tokens/s",
            "train GFLOP/s",
            "matmul GFLOP/s",
            "ratio",
        ]
        .map(String::from)
        .to_vec(),
    );
    for file in files {
        let plan = load_plan(file)?;
        let run = match label {
            None => &plan.runs[0],
            Some(label) => plan.runs.iter().find(|r| r.label == label).ok_or_else(|| {
                Failure::BadInput(format!("{}: no run labelled `{label}`", file.display()))
            })?,
        };
        let mut config = run.config.clone();
        let tokens_per_step = config.data.tokens_per_step();
        // Train `steps` steps, evaluating only at the start and the end.
        config.schedule.tokens = steps * tokens_per_step;
        config.schedule.eval_every_tokens = None;
        config.probes.at_tokens.clear();
        config.probes.every_tokens = None;
        let dataset =
            prepare_dataset(&config.data).map_err(|e| Failure::BadInput(e.to_string()))?;
        let mut throughput = Throughput::default();
        let options = TrainOptions {
            device,
            ..TrainOptions::default()
        };
        train_run(&config, &dataset, &mut throughput, options)
            .map_err(|e| Failure::RunFailed(e.to_string()))?;
        let flops_per_token = training_flops(&config, 1).unwrap_or(f64::NAN);
        let train_flops = flops_per_token * throughput.tokens_per_s;
        let reference = reference_flops(
            device,
            tokens_per_step as usize,
            config.model.d_model,
            config.model.d_ff,
        );
        let params = param_count(&config.model, dataset.tokenizer.vocab_size as u64).total();
        table.push(vec![
            plan.study.clone(),
            run.label.clone(),
            human_count(params),
            tokens_per_step.to_string(),
            format!("{:.0}", throughput.tokens_per_s),
            format!("{:.1}", train_flops / 1e9),
            format!("{:.1}", reference / 1e9),
            format!("{:.3}", train_flops / reference),
        ]);
    }
    println!(
        "training throughput on {device} over {steps} steps \
         (ratio = train FLOP/s / matmul FLOP/s on the same device)\n"
    );
    print!("{}", table.render());
    Ok(())
}

/// `rankprobe muon-bench FILE`: CPU time of one Muon update (momentum, Newton-Schulz,
/// scaling) for each matrix shape of the study's first Muon run, and per optimizer step.
pub fn muon_bench(file: &std::path::Path) -> Result<(), Failure> {
    use crate::optim::muon::{matrix_update, Muon};
    use crate::spec::run_config::{OptimizerConfig, Precision};
    let plan = load_plan(file)?;
    let Some((run, muon)) = plan.runs.iter().find_map(|r| match &r.config.optimizer {
        OptimizerConfig::Muon(m) => Some((r, m.clone())),
        OptimizerConfig::AdamW(_) => None,
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
                std::hint::black_box(matrix_update(&config, &dev, &mut buf, &grad, rows, cols));
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
