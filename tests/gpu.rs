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
    let config = |label: &str| {
        let run = plan.runs.iter().find(|r| r.label == label).unwrap();
        run.config.clone()
    };
    // A1 again with per-head Muon matrices (the CUDA path copies each head's rows out).
    let mut per_head = config("A1");
    if let rankprobe::spec::run_config::OptimizerConfig::Muon(muon) = &mut per_head.optimizer {
        muon.matrices = rankprobe::spec::run_config::MuonMatrices::PerHead;
    }
    for (label, config) in [
        ("A1", config("A1")),
        ("B1", config("B1")),
        ("A1 per-head", per_head),
    ] {
        let run = rankprobe::plan::PlannedRun {
            config,
            ..plan.runs[0].clone()
        };
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

/// One transformer block (with QK-norm, GQA, squared ReLU) small enough to check every
/// gradient: seq 37 spans two of the CPU attention's row blocks.
type OneBlock<D> = rankprobe::model::Transformer<64, 32, 8, 16, 64, 1, f32, D>;

fn one_block_arch() -> rankprobe::model::Architecture {
    use rankprobe::spec::run_config::{Activation, Gain};
    rankprobe::model::Architecture {
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 8,
        activation: Activation::SquaredRelu,
        qk_norm: Some(Gain::Learnable),
        tied_embeddings: true,
        embedding_scale: 4.0,
        rope_base: 10000.0,
        norm_eps: 1e-6,
    }
}

/// The loss, the gradient of every parameter the block uses and each query head's
/// largest attention logit (what QK-Clip reads), on `dev`.
fn one_block_loss_and_grads<D: rankprobe::model::ModelOps>(
    dev: &D,
    model: &OneBlock<D>,
) -> (f32, Vec<Vec<f32>>, Vec<f32>) {
    let arch = one_block_arch();
    let (batch, seq) = (2, 37);
    let consts = rankprobe::model::Constants::<8, D>::new(dev, &arch, seq);
    let tokens: Vec<usize> = (0..batch * seq).map(|i| (i * 7 + 3) % 64).collect();
    let targets: Vec<usize> = (0..batch * seq).map(|i| (i * 11 + 5) % 64).collect();
    let tokens = dev.tensor_from_vec(tokens, (batch, seq));
    let targets = dev.tensor_from_vec(targets, (batch * seq,));
    let grads = model.alloc_grads();
    let mut taps = rankprobe::model::Taps {
        max_logits: Some(Vec::new()),
        ..Default::default()
    };
    let loss = model.loss(
        &arch,
        &consts,
        (tokens, targets),
        model.embed.clone().traced(grads),
        Some(&mut taps),
    );
    let value = loss.as_vec()[0];
    let grads = loss.backward();
    let block = &model.blocks[0];
    let params = [
        grads.get(&model.embed).as_vec(),
        grads.get(&model.final_norm).as_vec(),
        grads.get(&block.attn_norm).as_vec(),
        grads.get(&block.wq).as_vec(),
        grads.get(&block.wk).as_vec(),
        grads.get(&block.wv).as_vec(),
        grads.get(&block.wo).as_vec(),
        grads.get(&block.q_gain).as_vec(),
        grads.get(&block.k_gain).as_vec(),
        grads.get(&block.ffn_norm).as_vec(),
        grads.get(&block.w_up).as_vec(),
        grads.get(&block.w_down).as_vec(),
    ];
    let max_logits = taps.max_logits.unwrap().concat();
    (value, params.to_vec(), max_logits)
}

#[test]
fn one_transformer_block_forward_and_backward_on_cuda_equals_the_cpu() {
    use rankprobe::model::init::init_model;
    use rankprobe::model::snapshot::{tensors_from_host, tensors_to_host};
    let cpu = Cpu::seed_from_u64(0);
    let gpu = Cuda::seed_from_u64(0);
    let on_cpu: OneBlock<Cpu> = init_model(&cpu, 0.3);
    let mut on_gpu: OneBlock<Cuda> = init_model(&gpu, 0.3);
    tensors_from_host(&mut on_gpu, &tensors_to_host(&on_cpu), &|_| true).unwrap();
    let (cpu_loss, cpu_grads, cpu_logits) = one_block_loss_and_grads(&cpu, &on_cpu);
    let (gpu_loss, gpu_grads, gpu_logits) = one_block_loss_and_grads(&gpu, &on_gpu);
    let error = relative_error(&gpu_logits, &cpu_logits);
    println!("largest logits: cpu {cpu_logits:?} gpu {gpu_logits:?}");
    assert!(
        cpu_logits.len() == 4 && error < 1e-4,
        "largest logits: {error:.2e}"
    );
    println!("loss: cpu {cpu_loss} gpu {gpu_loss}");
    assert!(
        (cpu_loss - gpu_loss).abs() < 1e-4 * cpu_loss.abs(),
        "{cpu_loss} vs {gpu_loss}"
    );
    let names = [
        "embed",
        "final_norm",
        "attn_norm",
        "wq",
        "wk",
        "wv",
        "wo",
        "q_gain",
        "k_gain",
        "ffn_norm",
        "w_up",
        "w_down",
    ];
    for ((name, c), g) in names.iter().zip(&cpu_grads).zip(&gpu_grads) {
        let error = relative_error(g, c);
        println!("{name}: relative gradient error {error:.2e}");
        // TF32 off: f32 products on both sides, different summation orders.
        assert!(error < 1e-3, "{name}: relative gradient error {error:.2e}");
    }
}

#[test]
fn our_kernels_compile_and_load_on_this_gpu() {
    let dev = cudarc::driver::CudaDevice::new(0).expect("CUDA device 0");
    for file in rankprobe::cuda_kernels::ALL {
        rankprobe::cuda_kernels::load(&dev, file)
            .unwrap_or_else(|why| panic!("{}: {why}", file.path));
    }
    rankprobe::optim::cuda_gemm::Kernels::load(dev).expect("Muon's kernels load");
}

/// `execution.tf32`: dfdx's products on the opened device round their operands to TF32
/// (10-bit mantissa: a relative error near 1e-3 on a long random product) only when asked;
/// without it they are f32 (summation order only: near 1e-6).
#[test]
fn tf32_changes_dfdx_products_only_when_asked() {
    use rankprobe::train::device::TrainDevice;
    let (rows, k, cols) = (256, 2048, 256);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let a: Vec<f32> = (0..rows * k).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let b: Vec<f32> = (0..k * cols).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut exact = vec![0.0f32; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            let sum: f64 = (0..k)
                .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * cols + j]))
                .sum();
            exact[i * cols + j] = sum as f32;
        }
    }
    let mut errors = Vec::new();
    for tf32 in [false, true] {
        let dev = <Cuda as TrainDevice>::open(0, 0, tf32).expect("CUDA device 0 opens");
        let ta = dev.tensor_from_vec(a.clone(), (rows, k));
        let tb = dev.tensor_from_vec(b.clone(), (k, cols));
        errors.push(relative_error(&ta.matmul(tb).as_vec(), &exact));
    }
    println!(
        "relative error of a [{rows}x{k}] x [{k}x{cols}] product: f32 {:.2e}, tf32 {:.2e}",
        errors[0], errors[1]
    );
    assert!(
        errors[0] < 1e-5,
        "f32 product: relative error {:.2e}",
        errors[0]
    );
    assert!(
        errors[1] > 1e-4 && errors[1] < 1e-2,
        "TF32 product: relative error {:.2e}, expected TF32 rounding (about 1e-3)",
        errors[1]
    );
}

/// dfdx makes exactly one cuBLAS handle when a device opens: the one whose math mode
/// `execution.tf32` sets (the opener refuses TF32 otherwise).
#[test]
fn opening_a_cuda_device_makes_one_cublas_handle() {
    let (dev, handles) = rankprobe::train::cublas_math::handles_made_by(|| Cuda::try_build(0, 0));
    dev.expect("CUDA device 0 opens");
    assert_eq!(handles.len(), 1);
}

/// The causal mask's add on CUDA (`model::cuda_ops`): the same values as dfdx's add, and
/// a backward pass that gives the scores exactly the output's gradient.
#[test]
fn the_masks_add_on_cuda_passes_the_gradient_to_the_scores_only() {
    use rankprobe::model::composed::AddConstant;
    let dev = Cuda::seed_from_u64(0);
    let shape = (2, 5, 5);
    let x: Tensor<(usize, usize, usize), f32, Cuda> = dev.sample_normal_like(&shape);
    let mask: Tensor<(usize, usize), f32, Cuda> = dev.sample_normal_like(&(5, 5));
    let mask = mask.broadcast_like::<_, Axis<0>>(&shape);
    let weights: Tensor<(usize, usize, usize), f32, Cuda> = dev.sample_normal_like(&shape);
    let ours = Cuda::add_constant(x.clone().leaky_traced(), mask.clone());
    assert_eq!(ours.as_vec(), (x.clone() + mask).as_vec());
    // d/dx sum((x + mask) * weights) = weights.
    let grads = (ours * weights.clone()).sum().backward();
    assert_eq!(grads.get(&x).as_vec(), weights.as_vec());
}
