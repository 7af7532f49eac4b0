//! Finite-difference checks of the forward pass's gradients (the CPU's fused operations)
//! on tiny shapes, and a tiny model overfitting one batch.

use dfdx::optim::{Adam, AdamConfig};
use dfdx::prelude::*;
use rand_distr::Normal;

use super::arch::Architecture;
use super::constants::Constants;
use super::forward::cross_entropy;
use super::init::init_model;
use super::ops::ModelOps;
use super::params::Transformer;
use crate::spec::run_config::{Activation, Gain};

/// Central-difference step and tolerance: f32 forward passes limit the precision.
const STEP: f32 = 1e-2;
const TOLERANCE: f32 = 2e-2;

fn assert_close(analytic: f32, numeric: f32, what: &str) {
    let scale = analytic.abs().max(numeric.abs()).max(1e-2);
    assert!(
        (analytic - numeric).abs() / scale < TOLERANCE,
        "{what}: analytic {analytic} vs finite difference {numeric}"
    );
}

/// Checks d f / d t[i] for a few entries i of `t`, where `f` reads `t` afresh each call.
fn check_entries<S: Shape>(
    t: &mut Tensor<S, f32, Cpu>,
    analytic: &[f32],
    f: &mut dyn FnMut(&Tensor<S, f32, Cpu>) -> f32,
    what: &str,
) {
    let base = t.as_vec();
    let picks = [0, base.len() / 3, base.len() / 2, base.len() - 1];
    for &i in &picks {
        let mut plus = base.clone();
        plus[i] += STEP;
        t.copy_from(&plus);
        let up = f(t);
        let mut minus = base.clone();
        minus[i] -= STEP;
        t.copy_from(&minus);
        let down = f(t);
        t.copy_from(&base);
        assert_close(
            analytic[i],
            (up - down) / (2.0 * STEP),
            &format!("{what}[{i}]"),
        );
    }
}

fn arch(qk_norm: Option<Gain>, activation: Activation) -> Architecture {
    Architecture {
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 4,
        activation,
        qk_norm,
        tied_embeddings: true,
        embedding_scale: 4.0,
        rope_base: 10000.0,
        norm_eps: 1e-6,
    }
}

/// A random weighting so that the checked scalar depends on every output entry.
fn weights<S: Shape>(dev: &Cpu, shape: S) -> Tensor<S, f32, Cpu> {
    dev.sample_normal_like(&shape)
}

#[test]
fn rms_norm_gradients_match_finite_differences() {
    let dev = Cpu::seed_from_u64(1);
    let shape = (6usize, Const::<8>);
    let mut x: Tensor<_, f32, _> = dev.sample_normal_like(&shape);
    let mut gain: Tensor<Rank1<8>, f32, _> = dev.sample(Normal::new(1.0, 0.2).unwrap());
    let w = weights(&dev, shape);
    let value = |x: &Tensor<(usize, Const<8>), f32, Cpu>, g: &Tensor<Rank1<8>, f32, Cpu>| {
        (Cpu::rms_norm(x.clone(), Some(g.clone()), 1e-6) * w.clone())
            .sum::<Rank0, _>()
            .array()
    };
    let grads = (Cpu::rms_norm(x.leaky_trace(), Some(gain.leaky_trace()), 1e-6) * w.clone())
        .sum::<Rank0, _>()
        .backward();
    let (gx, gg) = (grads.get(&x).as_vec(), grads.get(&gain).as_vec());
    let g2 = gain.clone();
    check_entries(&mut x, &gx, &mut |x| value(x, &g2), "rms_norm dx");
    let x2 = x.clone();
    check_entries(&mut gain, &gg, &mut |g| value(&x2, g), "rms_norm dgain");
}

#[test]
fn qk_norm_gradients_match_finite_differences() {
    let dev = Cpu::seed_from_u64(2);
    // Two heads of 4 per row: one gain of 4 shared by both.
    let shape = (6usize, Const::<8>);
    let mut x: Tensor<_, f32, _> = dev.sample_normal_like(&shape);
    let mut gain: Tensor<Rank1<4>, f32, _> = dev.sample(Normal::new(1.0, 0.2).unwrap());
    let w = weights(&dev, shape);
    let grads = (Cpu::rms_norm(x.leaky_trace(), Some(gain.leaky_trace()), 1e-6) * w.clone())
        .sum()
        .backward();
    let (gx, gg) = (grads.get(&x).as_vec(), grads.get(&gain).as_vec());
    let value = |x: &Tensor<(usize, Const<8>), f32, Cpu>, g: &Tensor<Rank1<4>, f32, Cpu>| {
        (Cpu::rms_norm(x.clone(), Some(g.clone()), 1e-6) * w.clone())
            .sum::<Rank0, _>()
            .array()
    };
    let g2 = gain.clone();
    check_entries(&mut x, &gx, &mut |x| value(x, &g2), "qk_norm dx");
    let x2 = x.clone();
    check_entries(&mut gain, &gg, &mut |g| value(&x2, g), "qk_norm dgain");
}

#[test]
fn rope_gradients_match_finite_differences_and_rope_preserves_norms() {
    let dev = Cpu::seed_from_u64(3);
    let a = arch(None, Activation::SquaredRelu);
    let consts = Constants::<4, Cpu>::new(&dev, &a, 5);
    // Two sequences of 5 positions, 3 heads of 4.
    let shape = (10usize, Const::<12>);
    let mut x: Tensor<_, f32, _> = dev.sample_normal_like(&shape);
    // A rotation: every head vector keeps its length.
    let rotated = Cpu::rope(x.clone(), &consts);
    let norms = |t: &Tensor<(usize, Const<12>), f32, Cpu>| {
        let heads = t.clone().reshape_like(&(30usize, Const::<4>));
        heads.square().sum::<_, Axis<1>>().as_vec()
    };
    for (before, after) in norms(&x).iter().zip(norms(&rotated)) {
        assert!((before - after).abs() < 1e-4, "{before} vs {after}");
    }
    // Position 0 of each sequence is not rotated.
    assert_eq!(rotated.as_vec()[..12], x.as_vec()[..12]);
    assert_eq!(rotated.as_vec()[60..72], x.as_vec()[60..72]);
    let w = weights(&dev, shape);
    let grads = (Cpu::rope(x.leaky_trace(), &consts) * w.clone())
        .sum::<Rank0, _>()
        .backward();
    let gx = grads.get(&x).as_vec();
    check_entries(
        &mut x,
        &gx,
        &mut |x| {
            (Cpu::rope(x.clone(), &consts) * w.clone())
                .sum::<Rank0, _>()
                .array()
        },
        "rope dx",
    );
}

#[test]
fn cross_entropy_gradient_is_softmax_minus_one_hot() {
    let dev = Cpu::seed_from_u64(4);
    let mut logits: Tensor<(usize, Const<5>), f32, _> = dev.sample_normal_like(&(2, Const::<5>));
    let targets = dev.tensor_from_vec(vec![3usize, 0], (2,));
    let grads = cross_entropy(logits.leaky_trace(), targets.clone()).backward();
    let g = grads.get(&logits).as_vec();
    check_entries(
        &mut logits,
        &g,
        &mut |l| cross_entropy(l.clone(), targets.clone()).array(),
        "loss dlogits",
    );
    // Uniform logits: loss is ln(vocab).
    let uniform: Tensor<(usize, Const<5>), f32, _> = dev.zeros_like(&(2, Const::<5>));
    assert!((cross_entropy(uniform, targets).array() - 5f32.ln()).abs() < 1e-6);
}

type Tiny = Transformer<11, 16, 4, 8, 24, 2, f32, Cpu>;

fn tiny_loss(model: &Tiny, a: &Architecture, consts: &Constants<4, Cpu>, dev: &Cpu) -> f32 {
    let tokens = dev.tensor_from_vec(vec![1usize, 5, 2, 7, 3, 9, 4, 0, 10, 6], (2, 5));
    let targets = dev.tensor_from_vec(vec![5usize, 2, 7, 3, 1, 4, 0, 10, 6, 8], (10,));
    cross_entropy(
        model.forward(a, consts, tokens, model.embed.clone(), None),
        targets,
    )
    .array()
}

fn tiny_grads(
    model: &Tiny,
    a: &Architecture,
    consts: &Constants<4, Cpu>,
    dev: &Cpu,
) -> Gradients<f32, Cpu> {
    let tokens = dev.tensor_from_vec(vec![1usize, 5, 2, 7, 3, 9, 4, 0, 10, 6], (2, 5));
    let targets = dev.tensor_from_vec(vec![5usize, 2, 7, 3, 1, 4, 0, 10, 6, 8], (10,));
    let grads = model.alloc_grads();
    let logits = model.forward(a, consts, tokens, model.embed.clone().traced(grads), None);
    cross_entropy(logits, targets).backward()
}

#[test]
fn gqa_attention_and_model_gradients_match_finite_differences() {
    for (qk_norm, activation) in [
        (Some(Gain::Learnable), Activation::SquaredRelu),
        (None, Activation::SwiGlu),
        (Some(Gain::Frozen), Activation::Gelu),
    ] {
        let dev = Cpu::seed_from_u64(5);
        let a = arch(qk_norm, activation);
        let consts = Constants::<4, Cpu>::new(&dev, &a, 5);
        let mut model: Tiny = init_model(&dev, 0.3);
        let grads = tiny_grads(&model, &a, &consts, &dev);
        let what = format!("{qk_norm:?} {activation:?}");
        macro_rules! check {
            ($($field:tt)+) => {{
                let analytic = grads.get(&model.$($field)+).as_vec();
                let mut t = model.$($field)+.clone();
                let snapshot = model.clone();
                check_entries(&mut t, &analytic, &mut |t| {
                    let mut m = snapshot.clone();
                    m.$($field)+ = t.clone();
                    tiny_loss(&m, &a, &consts, &dev)
                }, &format!("{what} {}", stringify!($($field)+)));
                model.$($field)+ = t;
            }};
        }
        check!(blocks[0].wq);
        check!(blocks[0].wk);
        check!(blocks[1].wv);
        check!(blocks[0].wo);
        check!(blocks[0].wo);
        check!(blocks[1].w_up);
        check!(blocks[0].w_down);
        check!(blocks[0].attn_norm);
        check!(embed);
        check!(final_norm);
        if qk_norm == Some(Gain::Learnable) {
            check!(blocks[1].q_gain);
            check!(blocks[0].k_gain);
        }
        if activation == Activation::SwiGlu {
            check!(blocks[0].w_gate);
        }
    }
}

#[test]
fn attention_is_causal() {
    let dev = Cpu::seed_from_u64(6);
    let a = arch(Some(Gain::Learnable), Activation::SquaredRelu);
    let consts = Constants::<4, Cpu>::new(&dev, &a, 5);
    let model: Tiny = init_model(&dev, 0.3);
    let logits = |tokens: Vec<usize>| {
        let t = dev.tensor_from_vec(tokens, (1, 5));
        model
            .forward(&a, &consts, t, model.embed.clone(), None)
            .as_vec()
    };
    let first = logits(vec![1, 2, 3, 4, 5]);
    let changed_last = logits(vec![1, 2, 3, 4, 9]);
    // Positions 0..4 cannot see the last token.
    assert_eq!(first[..4 * 11], changed_last[..4 * 11]);
    assert_ne!(first[4 * 11..], changed_last[4 * 11..]);
}

#[test]
fn tiny_model_overfits_one_batch() {
    let dev = Cpu::seed_from_u64(7);
    let a = arch(Some(Gain::Learnable), Activation::SquaredRelu);
    let consts = Constants::<4, Cpu>::new(&dev, &a, 5);
    let mut model: Tiny = init_model(&dev, 0.1);
    let mut opt = Adam::new(
        &model,
        AdamConfig {
            lr: 1e-2,
            ..Default::default()
        },
    );
    let initial = tiny_loss(&model, &a, &consts, &dev);
    for _ in 0..300 {
        let grads = tiny_grads(&model, &a, &consts, &dev);
        match opt.update(&mut model, &grads) {
            Ok(()) | Err(OptimizerUpdateError::UnusedParams(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    let last = tiny_loss(&model, &a, &consts, &dev);
    assert!(initial > 2.0, "initial loss {initial}");
    assert!(last < 0.05, "loss {initial} -> {last}");
}

#[test]
fn taps_capture_requested_sites_without_changing_the_output() {
    use super::arch::Taps;
    use crate::spec::run_config::{Site, Stage, Tensor as Kind};
    let dev = Cpu::seed_from_u64(8);
    let a = arch(Some(Gain::Learnable), Activation::SquaredRelu);
    let consts = Constants::<4, Cpu>::new(&dev, &a, 5);
    let model: Tiny = init_model(&dev, 0.3);
    let tokens = || dev.tensor_from_vec(vec![1usize, 2, 3, 4, 5, 6, 7, 8, 9, 10], (2, 5));
    let plain = model
        .forward(&a, &consts, tokens(), model.embed.clone(), None)
        .as_vec();
    let k_rope = Site {
        tensor: Kind::K,
        after: Stage::Rope,
    };
    let v_proj = Site {
        tensor: Kind::V,
        after: Stage::Projection,
    };
    let mut taps = Taps {
        project_keys: None,
        sites: vec![k_rope, v_proj],
        captured: Vec::new(),
        max_logits: None,
        mean_log_z: None,
    };
    let tapped = model
        .forward(&a, &consts, tokens(), model.embed.clone(), Some(&mut taps))
        .as_vec();
    assert_eq!(plain, tapped);
    // Two layers x two sites, K and V with the 2 KV heads, 10 rows each.
    assert_eq!(taps.captured.len(), 4);
    for capture in &taps.captured {
        assert_eq!((capture.rows, capture.heads, capture.head_dim), (10, 2, 4));
        assert_eq!(capture.values.len(), 10 * 2 * 4);
    }
    let k0 = taps
        .captured
        .iter()
        .find(|c| c.layer == 0 && c.site == k_rope)
        .unwrap();
    // After QK-norm (gain 1 at init) and RoPE (a rotation), each head vector has RMS 1.
    for head in k0.values.chunks(4) {
        let rms = (head.iter().map(|v| v * v).sum::<f32>() / 4.0).sqrt();
        assert!((rms - 1.0).abs() < 1e-3, "{rms}");
    }
}

#[test]
fn token_losses_are_each_positions_cross_entropy() {
    let dev = Cpu::seed_from_u64(6);
    let a = arch(Some(Gain::Learnable), Activation::SquaredRelu);
    let consts = Constants::<4, Cpu>::new(&dev, &a, 5);
    let model: Tiny = init_model(&dev, 0.3);
    let tokens = dev.tensor_from_vec(vec![1usize, 5, 2, 7, 3, 9, 4, 0, 10, 6], (2, 5));
    let ids = vec![5usize, 2, 7, 3, 1, 4, 0, 10, 6, 8];
    let targets = dev.tensor_from_vec(ids.clone(), (10,));
    let (mean, losses) =
        model.loss_and_token_losses(&a, &consts, (tokens.clone(), targets.clone()), None);
    assert!((mean - tiny_loss(&model, &a, &consts, &dev)).abs() < 1e-5);
    let logits = model
        .forward(&a, &consts, tokens, model.embed.clone(), None)
        .as_vec();
    for (row, (&loss, &id)) in losses.iter().zip(&ids).enumerate() {
        let l = &logits[row * 11..][..11];
        let top = l.iter().copied().fold(f32::MIN, f32::max);
        let log_z = top + l.iter().map(|v| (v - top).exp()).sum::<f32>().ln();
        assert!((loss - (log_z - l[id])).abs() < 1e-5, "row {row}: {loss}");
    }
    let average = losses.iter().sum::<f32>() / 10.0;
    assert!((average - mean).abs() < 1e-5);
}
