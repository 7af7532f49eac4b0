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
use crate::train::{train_run, MetricRow, TrainObserver};

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
        train_run(&config, &dataset, &mut throughput)
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
