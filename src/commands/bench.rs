//! `rankprobe bench FILE...` and `rankprobe muon-bench FILE`: the runs to time taken from
//! the arguments, timed by the `bench` library module, printed as tables.

use std::path::PathBuf;

use crate::bench::muon_timing::{self, ShapeTiming};
use crate::bench::peak::peak_side;
use crate::bench::throughput::Throughput;
use crate::bench::{measure, BenchError, Report, Settings, Target};
use crate::text_table::{human_count, TextTable};

use super::{load_plan, Failure};

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
    let mut targets = Vec::new();
    for file in options.files {
        let plan = load_plan(file)?;
        let run = match options.label {
            None => plan.runs[0].clone(),
            Some(label) => {
                (plan.runs.iter().find(|r| r.label == label).cloned()).ok_or_else(|| {
                    Failure::BadInput(format!("{}: no run labelled `{label}`", file.display()))
                })?
            }
        };
        targets.push(Target {
            study: plan.study.clone(),
            run,
            tf32: plan.execution.tf32,
        });
    }
    let settings = Settings {
        device,
        steps: options.steps,
        rounds: options.rounds,
        torch: options.torch,
        profile: options.profile,
    };
    let report = measure(&targets, &settings).map_err(|err| match err {
        BenchError::Data(why) => Failure::BadInput(why),
        BenchError::Train(why) => Failure::RunFailed(why),
    })?;
    print_report(&report, &settings);
    Ok(())
}

fn print_report(report: &Report, settings: &Settings) {
    let (device, steps, threads) = (settings.device, settings.steps, report.threads);
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
    if settings.torch {
        headers.extend(["torch tokens/s", "torch of peak", "torch RSS MiB", "ratio"]);
    }
    let mut table = TextTable::new(headers.into_iter().map(String::from).collect());
    let mut notes = Vec::new();
    for run in &report.runs {
        let tokens_per_s = run.throughput.tokens_per_s();
        let mut row = vec![
            run.study.clone(),
            run.label.clone(),
            human_count(run.params),
            run.tokens_per_step.to_string(),
            format!("{tokens_per_s:.0}"),
            format!("{:.1}", run.train_flops / 1e9),
            format!("{:.2}", run.of_peak(report)),
            format!("{:.0}", run.peak_memory_mib),
        ];
        match &run.torch {
            None => {}
            Some(Ok(figures)) => {
                let torch_flops = run.torch_flops.unwrap_or(f64::NAN);
                // A figure that cannot be true (missing, infinite, negative) prints "-".
                let cell = |value: f64, digits: usize| {
                    if value.is_finite() && value >= 0.0 {
                        format!("{value:.digits$}")
                    } else {
                        "-".to_owned()
                    }
                };
                row.extend([
                    cell(figures.tokens_per_s, 0),
                    cell(torch_flops / report.peak[if run.bf16 { 2 } else { 0 }], 2),
                    cell(figures.peak_rss_mib, 0),
                    cell(tokens_per_s / figures.tokens_per_s, 2),
                ]);
                let precision = if run.bf16 { "bf16 autocast" } else { "f32" };
                notes.push(format!(
                    "PyTorch {} (eager, {precision}, {threads} threads)",
                    figures.version
                ));
            }
            Some(Err(why)) => {
                row.extend(["-", "-", "-", "-"].map(String::from));
                notes.push(format!(
                    "{} {}: PyTorch reference skipped: {why}",
                    run.study, run.label
                ));
            }
        }
        table.push(row);
    }
    println!(
        "training throughput on {device}, {threads} threads: steps 2-{steps} timed (step 1 warms \
         up, in PyTorch too); peak = the fastest {side}^3 f32 matrix product measured in this run: {:.1} GFLOP/s",
        report.peak[0] / 1e9,
        side = peak_side(device)
    );
    if report.runs.iter().any(|r| r.bf16) {
        println!(
            "runs with `model.precision: Bf16`: products by {}, measured against the fastest \
             bf16 {side}^3 product (ours, or PyTorch's under --torch): {:.1} GFLOP/s",
            crate::bf16_matmul::Kernel::chosen().name(),
            report.peak[2] / 1e9,
            side = peak_side(device)
        );
    }
    if report.runs.iter().any(|r| r.tf32) {
        println!(
            "runs with `execution.tf32`: measured against the fastest TF32 product: {:.1} GFLOP/s",
            report.peak[1] / 1e9
        );
    }
    println!();
    print!("{}", table.render());
    notes.sort();
    notes.dedup();
    for note in notes {
        println!("{note}");
    }
    if settings.profile {
        for run in &report.runs {
            print_profile(
                &format!("{} {}", run.study, run.label),
                &run.throughput,
                steps,
            );
        }
    }
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
/// scaling) for each matrix shape of the study's first Muon run, and per optimizer step;
/// the same on CUDA device 0 where there is one.
pub fn muon_bench(file: &std::path::Path) -> Result<(), Failure> {
    use crate::optim::muon::Muon;
    use crate::spec::run_config::OptimizerConfig;
    let plan = load_plan(file)?;
    let Some((run, muon)) = plan.runs.iter().find_map(|r| match &r.config.optimizer {
        OptimizerConfig::Muon(m) => Some((r, m.clone())),
        _ => None,
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
        model.head_dim,
        model.d_ff,
        model.n_layers,
    );
    let cpu = muon_timing::cpu(&muon, &matrices);
    println!(
        "Muon updates of {} run {} on the CPU (best of 3)\n",
        plan.study, run.label
    );
    let headers = ["matrix", "per step", "f32 ms", "bf16 ms", "matmul GFLOP/s"];
    print!("{}", timing_table(&headers, &cpu, 1).render());
    let [f32_s, bf16_s] = muon_timing::per_step(&cpu);
    println!(
        "\nper optimizer step: {:.1} ms (f32), {:.1} ms (bf16 emulated)",
        f32_s * 1e3,
        bf16_s * 1e3
    );
    match muon_timing::cuda(&muon, &matrices) {
        Some(gpu) => {
            println!("\nthe same on CUDA device 0 (mean of 20 after a warm-up)\n");
            let headers = ["matrix", "per step", "cuda f32 ms", "cuda bf16 ms"];
            print!("{}", timing_table(&headers, &gpu, 3).render());
            let [f32_s, bf16_s] = muon_timing::per_step(&gpu);
            println!(
                "\nper optimizer step on the GPU: {:.2} ms (f32), {:.2} ms (bf16)",
                f32_s * 1e3,
                bf16_s * 1e3
            );
        }
        None if cfg!(feature = "cuda") => println!("\nno CUDA device: the GPU half is skipped"),
        None => println!("\n(this build has no CUDA support: the GPU half needs --features cuda)"),
    }
    Ok(())
}

/// One row per shape: its size, count, milliseconds per precision (`decimals`), and the
/// product speed where measured.
fn timing_table(headers: &[&str], timings: &[ShapeTiming], decimals: usize) -> TextTable {
    let mut table = TextTable::new(headers.iter().map(|h| h.to_string()).collect());
    for t in timings {
        let mut row = vec![format!("{} x {}", t.rows, t.cols), t.count.to_string()];
        for seconds in &t.seconds {
            row.push(match seconds {
                Ok(s) => format!("{:.decimals$}", s * 1e3),
                Err(why) => format!("error: {why}"),
            });
        }
        if let Some(flops) = t.matmul_flops {
            row.push(format!("{:.1}", flops / 1e9));
        }
        table.push(row);
    }
    table
}
