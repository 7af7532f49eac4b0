//! The fused CPU operations against the dfdx compositions they replace (`composed`),
//! forward values and gradients, on shapes that cover several attention row blocks,
//! partial blocks and grouped queries.

use dfdx::prelude::*;

use crate::model::arch::Architecture;
use crate::model::composed;
use crate::model::constants::Constants;
use crate::spec::run_config::Activation;

use crate::model::arch::AttentionShape;

const TOLERANCE: f32 = 2e-5;

fn assert_all_close(fused: &[f32], reference: &[f32], what: &str) {
    assert_eq!(fused.len(), reference.len(), "{what}: lengths");
    let scale = reference.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
    for (i, (a, b)) in fused.iter().zip(reference).enumerate() {
        assert!(
            (a - b).abs() <= TOLERANCE * scale,
            "{what}[{i}]: fused {a} vs composed {b} (scale {scale})"
        );
    }
}

fn arch(heads: usize, kv_heads: usize, head_dim: usize) -> Architecture {
    Architecture {
        n_heads: heads,
        n_kv_heads: kv_heads,
        head_dim,
        activation: Activation::SquaredRelu,
        qk_norm: None,
        tied_embeddings: true,
        embedding_scale: 1.0,
        rope_base: 10000.0,
        norm_eps: 1e-6,
    }
}

/// Activations [rows, W] on the CPU, recording.
type Traced<const W: usize> = Tensor<(usize, Const<W>), f32, Cpu, OwnedTape<f32, Cpu>>;

/// Runs `f` on a traced copy of `input` with a random weighting of its output summed to
/// a scalar: the output's values and the input's gradient.
fn value_and_grad<const W: usize>(
    input: &Tensor<(usize, Const<W>), f32, Cpu>,
    weights: &Tensor<(usize, Const<W>), f32, Cpu>,
    f: impl Fn(Traced<W>) -> Traced<W>,
) -> (Vec<f32>, Vec<f32>) {
    let out = f(input.leaky_trace());
    let values = out.as_vec();
    let grads = (out * weights.clone()).sum::<Rank0, _>().backward();
    (values, grads.get(input).as_vec())
}

#[test]
fn fused_attention_matches_the_composition() {
    // (batch, seq, heads, kv heads): one partial block, several blocks, a partial last
    // block, multi-query and plain multi-head.
    for (batch, seq, heads, kv_heads) in [(2, 5, 4, 2), (2, 70, 4, 2), (1, 64, 2, 1), (3, 33, 2, 2)]
    {
        const HD: usize = 4;
        let dev = Cpu::seed_from_u64(seq as u64);
        let a = arch(heads, kv_heads, HD);
        let consts = Constants::<HD, Cpu>::new(&dev, &a, seq);
        let shape = AttentionShape {
            batch,
            seq,
            heads,
            kv_heads,
            head_dim: HD,
        };
        let rows = batch * seq;
        match (heads, kv_heads) {
            (4, 2) => check_attention::<16, 8>(&dev, rows, shape, &consts),
            (2, 1) => check_attention::<8, 4>(&dev, rows, shape, &consts),
            (2, 2) => check_attention::<8, 8>(&dev, rows, shape, &consts),
            other => unreachable!("{other:?}"),
        }
    }
}

fn check_attention<const QW: usize, const KVW: usize>(
    dev: &Cpu,
    rows: usize,
    shape: AttentionShape,
    consts: &Constants<4, Cpu>,
) {
    let q: Tensor<(usize, Const<QW>), f32, _> = dev.sample_normal_like(&(rows, Const));
    let k: Tensor<(usize, Const<KVW>), f32, _> = dev.sample_normal_like(&(rows, Const));
    let v: Tensor<(usize, Const<KVW>), f32, _> = dev.sample_normal_like(&(rows, Const));
    let w: Tensor<(usize, Const<QW>), f32, _> = dev.sample_normal_like(&(rows, Const));
    let run = |fused: bool| {
        let (tq, tk, tv) = (q.leaky_trace(), k.leaky_trace(), v.leaky_trace());
        let mut maxes = Vec::new();
        let out = if fused {
            super::causal_attention(tq, tk, tv, shape, Some(&mut maxes))
        } else {
            composed::causal_attention(tq, tk, tv, shape, consts, Some(&mut maxes))
        };
        let what = format!("{shape:?} max logits (fused: {fused})");
        assert_all_close(
            &maxes,
            &plain_max_logits(&q.as_vec(), &k.as_vec(), shape),
            &what,
        );
        let values = out.as_vec();
        let grads = (out * w.clone()).sum::<Rank0, _>().backward();
        let g = [
            grads.get(&q).as_vec(),
            grads.get(&k).as_vec(),
            grads.get(&v).as_vec(),
        ];
        (values, g)
    };
    let (fused, fused_grads) = run(true);
    let (reference, reference_grads) = run(false);
    let what = format!("{shape:?}");
    assert_all_close(&fused, &reference, &format!("{what} output"));
    for (name, (a, b)) in ["dq", "dk", "dv"]
        .iter()
        .zip(fused_grads.iter().zip(&reference_grads))
    {
        assert_all_close(a, b, &format!("{what} {name}"));
    }
}

/// Per query head, the largest q_i . k_j / sqrt(head_dim) over batches and j <= i, by
/// plain loops in f64.
fn plain_max_logits(q: &[f32], k: &[f32], shape: AttentionShape) -> Vec<f32> {
    let (hd, seq) = (shape.head_dim, shape.seq);
    let (qw, kvw) = (shape.heads * hd, shape.kv_heads * hd);
    let group = shape.heads / shape.kv_heads;
    (0..shape.heads)
        .map(|h| {
            let mut top = f64::NEG_INFINITY;
            for b in 0..shape.batch {
                for i in 0..seq {
                    for j in 0..=i {
                        let qi = &q[(b * seq + i) * qw + h * hd..][..hd];
                        let kj = &k[(b * seq + j) * kvw + (h / group) * hd..][..hd];
                        let dot: f64 = qi.iter().zip(kj).map(|(a, b)| f64::from(a * b)).sum();
                        top = top.max(dot / (hd as f64).sqrt());
                    }
                }
            }
            top as f32
        })
        .collect()
}

#[test]
fn fused_norms_rope_activation_and_loss_match_the_compositions() {
    const W: usize = 12;
    let dev = Cpu::seed_from_u64(11);
    let (batch, seq) = (3, 7);
    let rows = batch * seq;
    let a = arch(3, 3, 4);
    let consts = Constants::<4, Cpu>::new(&dev, &a, seq);
    let x: Tensor<(usize, Const<W>), f32, _> = dev.sample_normal_like(&(rows, Const));
    let w: Tensor<(usize, Const<W>), f32, _> = dev.sample_normal_like(&(rows, Const));
    let row_gain: Tensor<Rank1<W>, f32, _> = dev.sample_normal();
    let head_gain: Tensor<Rank1<4>, f32, _> = dev.sample_normal();
    let compare = |what: &str,
                   fused: &dyn Fn(Traced<W>) -> Traced<W>,
                   reference: &dyn Fn(Traced<W>) -> Traced<W>| {
        let (a, ga) = value_and_grad(&x, &w, fused);
        let (b, gb) = value_and_grad(&x, &w, reference);
        assert_all_close(&a, &b, &format!("{what} output"));
        assert_all_close(&ga, &gb, &format!("{what} dx"));
    };
    compare(
        "row rms_norm",
        &|x| super::rms_norm(x, Some(row_gain.retaped()), 1e-6),
        &|x| composed::rms_norm(x, Some(row_gain.retaped()), 1e-6),
    );
    compare(
        "head rms_norm",
        &|x| super::rms_norm(x, Some(head_gain.retaped()), 1e-6),
        &|x| composed::rms_norm(x, Some(head_gain.retaped()), 1e-6),
    );
    compare(
        "head rms_norm without gain",
        &|x| super::rms_norm::<W, 4, _>(x, None, 1e-6),
        &|x| composed::rms_norm::<W, 4, _, _>(x, None, 1e-6),
    );
    compare("rope", &|x| super::rope(x, &consts.rope_table), &|x| {
        composed::rope(x, &consts)
    });
    // Both operands depend on x: its gradient gathers both of the add's.
    compare(
        "add",
        &|x| super::add(x.with_empty_tape(), x.square()),
        &|x| x.with_empty_tape() + x.square(),
    );
    // The gain's gradient.
    let gain_grad = |fused: bool| {
        let g = head_gain.leaky_trace();
        let y = if fused {
            super::rms_norm(x.clone().retaped(), Some(g), 1e-6)
        } else {
            composed::rms_norm(x.clone().retaped(), Some(g), 1e-6)
        };
        (y * w.clone())
            .sum::<Rank0, _>()
            .backward()
            .get(&head_gain)
            .as_vec()
    };
    assert_all_close(&gain_grad(true), &gain_grad(false), "head gain gradient");
    // LM head and cross-entropy: loss and gradients.
    let head: Tensor<Rank2<9, W>, f32, _> = dev.sample_normal();
    let targets = dev.tensor_from_vec((0..rows).map(|r| (r * 5) % 9).collect(), (rows,));
    // With and without z-loss (PaLM's 1e-4, and a large 0.5 that dominates): the fused
    // kernel against the composed graph, loss, gradients and mean log Z.
    for z in [0.0f32, 1e-4, 0.5] {
        let loss = |fused: bool| {
            let (tx, th) = (x.leaky_trace(), head.leaky_trace());
            let mut log_z = f32::NAN;
            let loss = if fused {
                super::lm_head_loss(tx, th, targets.clone(), z, Some(&mut log_z))
            } else {
                let logits = composed::linear(tx, th);
                composed::cross_entropy_z(logits, targets.clone(), z, Some(&mut log_z))
            };
            let value = loss.array();
            let grads = loss.backward();
            (
                value,
                grads.get(&x).as_vec(),
                grads.get(&head).as_vec(),
                log_z,
            )
        };
        let (a, b) = (loss(true), loss(false));
        assert_all_close(&[a.0], &[b.0], "cross-entropy");
        assert_all_close(&a.1, &b.1, "cross-entropy dx");
        assert_all_close(&a.2, &b.2, "cross-entropy dhead");
        assert_all_close(&[a.3], &[b.3], "mean log Z");
    }
}

#[test]
fn fused_linear_and_feed_forward_match_the_compositions() {
    let dev = Cpu::seed_from_u64(12);
    let x: Tensor<(usize, Const<24>), f32, _> = dev.sample_normal_like(&(37, Const));
    let w: Tensor<Rank2<10, 24>, f32, _> = dev.sample_normal();
    let weights: Tensor<(usize, Const<10>), f32, _> = dev.sample_normal_like(&(37, Const));
    let run = |fused: bool| {
        let (tx, tw) = (x.leaky_trace(), w.leaky_trace());
        let y = if fused {
            super::linear(tx, tw)
        } else {
            composed::linear(tx, tw)
        };
        let values = y.as_vec();
        let grads = (y * weights.clone()).sum::<Rank0, _>().backward();
        (values, grads.get(&x).as_vec(), grads.get(&w).as_vec())
    };
    let (a, b) = (run(true), run(false));
    assert_all_close(&a.0, &b.0, "linear output");
    assert_all_close(&a.1, &b.1, "linear dx");
    assert_all_close(&a.2, &b.2, "linear dw");

    let up: Tensor<Rank2<40, 24>, f32, _> = dev.sample_normal();
    let down: Tensor<Rank2<24, 40>, f32, _> = dev.sample_normal();
    let weights: Tensor<(usize, Const<24>), f32, _> = dev.sample_normal_like(&(37, Const));
    let run = |fused: bool| {
        let (tx, tu, td) = (x.leaky_trace(), up.leaky_trace(), down.leaky_trace());
        let y = if fused {
            super::squared_relu_mlp(tx, tu, td)
        } else {
            composed::squared_relu_mlp(tx, tu, td)
        };
        let values = y.as_vec();
        let grads = (y * weights.clone()).sum::<Rank0, _>().backward();
        (
            values,
            [
                grads.get(&x).as_vec(),
                grads.get(&up).as_vec(),
                grads.get(&down).as_vec(),
            ],
        )
    };
    let (a, b) = (run(true), run(false));
    assert_all_close(&a.0, &b.0, "feed-forward output");
    for (name, (ga, gb)) in ["dx", "d up", "d down"].iter().zip(a.1.iter().zip(&b.1)) {
        assert_all_close(ga, gb, &format!("feed-forward {name}"));
    }
}

#[test]
fn fused_qkv_matches_the_composition() {
    let dev = Cpu::seed_from_u64(13);
    let x: Tensor<(usize, Const<16>), f32, _> = dev.sample_normal_like(&(21, Const));
    let wq: Tensor<Rank2<16, 16>, f32, _> = dev.sample_normal();
    let wk: Tensor<Rank2<8, 16>, f32, _> = dev.sample_normal();
    let wv: Tensor<Rank2<8, 16>, f32, _> = dev.sample_normal();
    let run = |fused: bool| {
        let args = (
            x.leaky_trace(),
            wq.leaky_trace(),
            wk.leaky_trace(),
            wv.leaky_trace(),
        );
        let (q, k, v) = if fused {
            super::qkv(args.0, args.1, args.2, args.3)
        } else {
            composed::qkv(args.0, args.1, args.2, args.3)
        };
        let values = [q.as_vec(), k.as_vec(), v.as_vec()];
        // A scalar that depends on all three outputs differently.
        let loss = q.square().sum::<Rank0, _>() + k.sum::<Rank0, _>() + (v * 3.0).sin().sum();
        let grads = loss.backward();
        (
            values,
            [
                grads.get(&x).as_vec(),
                grads.get(&wq).as_vec(),
                grads.get(&wk).as_vec(),
                grads.get(&wv).as_vec(),
            ],
        )
    };
    let (a, b) = (run(true), run(false));
    for (i, (x, y)) in a.0.iter().zip(&b.0).enumerate() {
        assert_all_close(x, y, &format!("qkv output {i}"));
    }
    for (i, (x, y)) in a.1.iter().zip(&b.1).enumerate() {
        assert_all_close(x, y, &format!("qkv gradient {i}"));
    }
}

#[test]
fn a_permuted_input_is_read_in_its_logical_order() {
    let dev = Cpu::seed_from_u64(14);
    // [24, 37] permuted to a [37, 24] view: not standard layout.
    let stored: Tensor<(Const<24>, usize), f32, _> = dev.sample_normal_like(&(Const, 37));
    let view = stored.clone().permute::<_, Axes2<1, 0>>();
    let w: Tensor<Rank2<10, 24>, f32, _> = dev.sample_normal();
    let fused = super::linear(view.clone(), w.clone()).as_vec();
    let reference = composed::linear(view, w).as_vec();
    assert_all_close(&fused, &reference, "linear of a permuted input");
}

#[test]
fn bf16_attention_is_the_f32_attention_within_bf16_rounding() {
    use crate::bf16_matmul::on_thread::Bf16Products;
    use crate::model::cpu_ops::attention;
    // Several blocks with a partial last one, grouped queries, a head as wide as the
    // tiles' inner dimension and more.
    let shape = AttentionShape {
        batch: 2,
        seq: 100,
        heads: 4,
        kv_heads: 2,
        head_dim: 48,
    };
    let rows = shape.batch * shape.seq;
    let values = |len: usize, seed: u32| -> Vec<f32> {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
            .collect()
    };
    let (qw, kvw) = (
        shape.heads * shape.head_dim,
        shape.kv_heads * shape.head_dim,
    );
    let (q, k, v) = (
        values(rows * qw, 1),
        values(rows * kvw, 2),
        values(rows * kvw, 3),
    );
    let d_out = values(rows * qw, 4);
    let run = |bf16: bool| {
        let _precision = Bf16Products::set(bf16);
        let f = attention::forward(shape, &q, &k, &v);
        let saved = attention::Saved {
            q: &q,
            k: &k,
            v: &v,
            probs: &f.probs,
        };
        let (mut dq, mut dk, mut dv) = (vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]);
        attention::backward(shape, &saved, &d_out, &mut dq, &mut dk, &mut dv);
        [f.out, f.max_logits, dq, dk, dv]
    };
    let (f32s, bf16s) = (run(false), run(true));
    for (name, (a, b)) in ["output", "max logits", "dq", "dk", "dv"]
        .iter()
        .zip(bf16s.iter().zip(&f32s))
    {
        assert_ne!(a, b, "{name}: bf16 gave the f32 result bit for bit");
        let scale = b.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 2e-2 * scale,
                "{name}[{i}]: bf16 {x} vs f32 {y} (scale {scale})"
            );
        }
    }
}
