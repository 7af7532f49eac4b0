//! GPU tests: built only with `--features cuda`, and they need a CUDA device. Run them on
//! a GPU machine with `cargo test --release --features cuda --test gpu`, or run the test
//! binary that `scripts/build-cuda.sh` copies to `target/cuda/gpu-tests` (from the
//! repository root, so that the test studies are found).
#![cfg(feature = "cuda")]

mod common;

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use rankprobe::data::prepare_dataset;
use rankprobe::optim::cuda_muon::CudaMuon;
use rankprobe::optim::muon::matrix_update;
use rankprobe::plan::Plan;
use rankprobe::spec::run_config::{MuonConfig, MuonVariant, OptimizerConfig, Precision};
use rankprobe::spec::Device;
use rankprobe::train::{train_run, MetricRow, Split, TrainObserver, TrainOptions};

fn plan(path: &str) -> Plan {
    common::plan_text(&std::fs::read_to_string(common::root().join(path)).unwrap()).unwrap()
}

fn seed_muon() -> MuonConfig {
    match &plan("experiments/qk_study.ron").runs[0].config.optimizer {
        OptimizerConfig::Muon(muon) => muon.clone(),
        other => panic!("the seed's A1 is Muon, got {other:?}"),
    }
}

fn relative_error(ours: &[f32], reference: &[f32]) -> f64 {
    let diff: f64 = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let norm: f64 = reference.iter().map(|v| f64::from(*v).powi(2)).sum();
    (diff / norm).sqrt()
}

/// Tolerances on the relative Frobenius error of the update against the CPU reference.
/// f32: the two differ only in summation order. bf16: both round every GEMM operand
/// to bf16, but a different summation order can flip a rounding by one bf16 ulp (2^-8).
fn tolerance(precision: Precision) -> f64 {
    match precision {
        Precision::F32 => 1e-3,
        Precision::Bf16 => 3e-2,
    }
}

#[test]
fn cuda_muon_update_equals_the_cpu_reference_for_every_seed_shape() {
    let cpu = Cpu::default();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // The seed's Muon matrices: merged QKVO, w_up, w_down.
    for (rows, cols) in [(1536, 512), (2048, 512), (512, 2048)] {
        let grads: Vec<Vec<f32>> = (0..2)
            .map(|_| (0..rows * cols).map(|_| rng.gen_range(-1.0..1.0)).collect())
            .collect();
        for variant in [MuonVariant::PolarExpress, MuonVariant::Ns5] {
            for precision in [Precision::F32, Precision::Bf16] {
                let config = MuonConfig {
                    variant,
                    precision,
                    ..seed_muon()
                };
                let mut gpu = CudaMuon::new(&config);
                let mut buf = vec![0.0f32; rows * cols];
                // Two steps, so that the momentum buffer carries over.
                for (step, grad) in grads.iter().enumerate() {
                    let expected = matrix_update(&config, &mut buf, grad, rows, cols);
                    let got = gpu.update_on_host(0, 0, grad, rows, cols).unwrap();
                    let error = relative_error(&got, &expected);
                    println!("{rows} x {cols} {variant:?} {precision:?} step {step}: {error:.2e}");
                    assert!(
                        error < tolerance(precision),
                        "{rows} x {cols} {variant:?} {precision:?} step {step}: \
                         relative error {error:.2e}"
                    );
                }
            }
        }
    }
}

#[derive(Default)]
struct Losses(Vec<(u64, f64)>);

impl TrainObserver for Losses {
    fn metric(&mut self, row: MetricRow) {
        if row.split == Split::Train && row.metric == "loss" {
            self.0.push((row.step, row.value));
        }
    }

    fn step_done(&mut self, _tokens: u64, _loss: f32, _tokens_per_s: f64) {}
}

#[test]
fn a_short_cuda_run_tracks_the_cpu_loss_curve() {
    let plan = plan("tests/studies/tiny.ron");
    for label in ["A1", "B1"] {
        let run = plan.runs.iter().find(|r| r.label == label).unwrap();
        let dataset = prepare_dataset(&run.config.data).unwrap();
        let mut curves = Vec::new();
        for device in [Device::Cpu, Device::Cuda(0)] {
            let mut losses = Losses::default();
            let options = TrainOptions {
                device,
                ..TrainOptions::default()
            };
            train_run(&run.config, &dataset, &mut losses, options).unwrap();
            curves.push(losses.0);
        }
        let (cpu, gpu) = (&curves[0], &curves[1]);
        assert_eq!(cpu.len(), gpu.len());
        for ((step, c), (_, g)) in cpu.iter().zip(gpu) {
            println!("{label} step {step}: cpu {c:.4} gpu {g:.4}");
            // Same init (dfdx draws on the host), same batches; only the kernels differ.
            assert!(
                (c - g).abs() <= 0.02 * c,
                "{label} step {step}: cpu loss {c}, gpu loss {g}"
            );
        }
    }
}
