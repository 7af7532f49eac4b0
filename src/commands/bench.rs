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
    let dev = Cpu::seed_from_u64(0);
    let a: Tensor<(usize, usize), f32, _> = dev.sample_normal_like(&(rows, k));
    let b: Tensor<(usize, usize), f32, _> = dev.sample_normal_like(&(k, n));
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let started = Instant::now();
        let c = a.clone().matmul(b.clone());
        std::hint::black_box(c.as_vec());
        best = best.min(started.elapsed().as_secs_f64());
    }
    2.0 * (rows * k * n) as f64 / best
}

pub fn bench(files: &[PathBuf], steps: u64, label: Option<&str>) -> Result<(), Failure> {
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
        let tokens_per_step = (config.data.batch_size * config.data.seq_len) as u64;
        // Train `steps` steps, evaluating only at the start and the end.
        config.schedule.tokens = steps * tokens_per_step;
        config.schedule.eval_every_tokens = None;
        config.probes.at_tokens.clear();
        config.probes.every_tokens = None;
        let dataset =
            prepare_dataset(&config.data).map_err(|e| Failure::BadInput(e.to_string()))?;
        let mut throughput = Throughput::default();
        train_run(&config, &dataset, &mut throughput, TrainOptions::default())
            .map_err(|e| Failure::RunFailed(e.to_string()))?;
        let flops_per_token = training_flops(&config, 1).unwrap_or(f64::NAN);
        let train_flops = flops_per_token * throughput.tokens_per_s;
        let reference = matmul_flops(
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
    println!("CPU training throughput over {steps} steps (ratio = train FLOP/s / matmul FLOP/s)\n");
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
    Ok(())
}
