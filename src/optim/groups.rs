//! Which optimizer owns which parameter in a Muon run: 2-D hidden matrices go to Muon,
//! embeddings, the LM head and norm gains to AdamW. Each parameter belongs to exactly one.

use dfdx::prelude::*;

use crate::model::{Architecture, Transformer};
use crate::spec::run_config::{Gain, MuonConfig};

use super::muon::Muon;

/// Parameter counts of each group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSizes {
    pub muon: u64,
    pub adamw: u64,
}

/// Group sizes of a model with the given dimensions (no tensors are allocated).
pub fn group_sizes(
    arch: &Architecture,
    muon: &MuonConfig,
    vocab: usize,
    d_model: usize,
    d_ff: usize,
    n_layers: usize,
) -> GroupSizes {
    let kv_width = arch.n_kv_heads * arch.head_dim;
    let muon_params = Muon::matrices(
        muon,
        arch.activation,
        d_model,
        kv_width,
        arch.head_dim,
        d_ff,
        n_layers,
    )
    .iter()
    .map(|m| (m.rows * m.cols) as u64)
    .sum();
    let tables = if arch.tied_embeddings { 1 } else { 2 };
    let qk_gains = if arch.qk_norm == Some(Gain::Learnable) {
        2 * arch.head_dim
    } else {
        0
    };
    let adamw = tables * vocab * d_model + n_layers * (2 * d_model + qk_gains) + d_model;
    GroupSizes {
        muon: muon_params,
        adamw: adamw as u64,
    }
}

/// A parameter group as a dfdx `TensorCollection`: the same model, seen through a type
/// that visits only some of its tensors, so that one optimizer owns exactly those (and
/// keeps one step counter for them). `$top` are fields of the model, `$block` fields of
/// every block.
macro_rules! group_view {
    ($(#[$doc:meta])* $name:ident,
     top: [$($top:ident: $top_init:expr),*],
     block: [$([$($block:ident: $block_init:expr),*]),*]) => {
        $(#[$doc])*
        #[repr(transparent)]
        pub struct $name<
            const V: usize,
            const M: usize,
            const HD: usize,
            const KVW: usize,
            const F: usize,
            const L: usize,
            D: Device<f32>,
        >(pub Transformer<V, M, HD, KVW, F, L, f32, D>);

        impl<
                const V: usize,
                const M: usize,
                const HD: usize,
                const KVW: usize,
                const F: usize,
                const L: usize,
                D: Device<f32>,
            > $name<V, M, HD, KVW, F, L, D>
        {
            pub fn of(model: &Transformer<V, M, HD, KVW, F, L, f32, D>) -> &Self {
                // SAFETY: the group is a repr(transparent) wrapper of exactly this type.
                unsafe { &*(model as *const Transformer<V, M, HD, KVW, F, L, f32, D> as *const Self) }
            }

            pub fn of_mut(model: &mut Transformer<V, M, HD, KVW, F, L, f32, D>) -> &mut Self {
                // SAFETY: as above.
                unsafe { &mut *(model as *mut Transformer<V, M, HD, KVW, F, L, f32, D> as *mut Self) }
            }
        }

        impl<
                const V: usize,
                const M: usize,
                const HD: usize,
                const KVW: usize,
                const F: usize,
                const L: usize,
                D: Device<f32>,
            > TensorCollection<f32, D> for $name<V, M, HD, KVW, F, L, D>
        {
            /// A group is a view, never built on its own.
            type To<E2: Dtype, D2: Device<E2>> = ();

            fn iter_tensors<Vis: ModuleVisitor<Self, f32, D>>(
                visitor: &mut Vis,
            ) -> Result<Option<Self::To<Vis::E2, Vis::D2>>, Vis::Err> {
                let fields: Vec<&'static str> = vec![$($(stringify!($block)),*),*];
                let names: Vec<Vec<String>> = (0..L)
                    .map(|i| fields.iter().map(|f| format!("blocks.{i}.{f}")).collect())
                    .collect();
                let at = |field: &str| fields.iter().position(|f| *f == field).expect("listed");
                visitor.visit_fields(
                    (
                        ($(
                            Self::tensor(
                                stringify!($top),
                                |s| &s.0.$top,
                                |s| &mut s.0.$top,
                                $top_init,
                            ),
                        )*),
                        // Groups of at most six: dfdx implements fields for tuples up to 6.
                        ($(($({
                            let at = at(stringify!($block));
                            (0..L)
                                .map(|i| {
                                    Self::tensor(
                                        &names[i][at],
                                        move |s| &s.0.blocks[i].$block,
                                        move |s| &mut s.0.blocks[i].$block,
                                        $block_init,
                                    )
                                })
                                .collect::<Vec<_>>()
                        },)*),)*),
                    ),
                    |_| (),
                )
            }
        }
    };
}

group_view!(
    /// The AdamW group of a Muon run: embeddings, the LM head and the norm gains.
    AdamWGroup,
    top: [
        embed: TensorOptions::reset_to_zeros(),
        lm_head: TensorOptions::reset_to_zeros(),
        final_norm: TensorOptions::reset_to_ones()
    ],
    block: [[
        attn_norm: TensorOptions::reset_to_ones(),
        ffn_norm: TensorOptions::reset_to_ones(),
        q_gain: TensorOptions::reset_to_ones(),
        k_gain: TensorOptions::reset_to_ones()
    ]]
);

group_view!(
    /// The Muon group: every hidden matrix (the CUDA path applies Muon's updates to it
    /// with dfdx's SGD).
    MuonGroup,
    top: [],
    block: [
        [
            wq: TensorOptions::reset_to_zeros(),
            wk: TensorOptions::reset_to_zeros(),
            wv: TensorOptions::reset_to_zeros(),
            wo: TensorOptions::reset_to_zeros()
        ],
        [
            w_up: TensorOptions::reset_to_zeros(),
            w_gate: TensorOptions::reset_to_zeros(),
            w_down: TensorOptions::reset_to_zeros()
        ]
    ]
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::cost::param_count;
    use crate::spec::run_config::OptimizerConfig;
    use crate::spec::study::Study;

    fn seed_study() -> Study {
        crate::spec::ron_options()
            .from_str(include_str!("../../experiments/qk_study.ron"))
            .unwrap()
    }

    #[test]
    fn seed_shape_splits_into_the_published_groups_and_covers_every_parameter() {
        let base = seed_study().base;
        let OptimizerConfig::Muon(muon) = &base.optimizer else {
            panic!("the seed base is Muon")
        };
        let arch = Architecture::from_config(&base.model);
        let m = &base.model;
        for (vocab, adamw) in [(49_152, 25_191_680), (50_257, 25_757_440)] {
            let sizes = group_sizes(&arch, muon, vocab, m.d_model, m.d_ff, m.n_layers);
            assert_eq!(sizes.muon, 63_438_848, "Muon ~63.4M");
            assert_eq!(sizes.adamw, adamw, "AdamW with vocabulary {vocab}");
            assert_eq!(
                sizes.muon + sizes.adamw,
                param_count(m, vocab as u64).total()
            );
        }
        // The merged QKVO matrix of the seed is [1536 x 512].
        let matrices = Muon::matrices(muon, arch.activation, 512, 256, 64, 2048, 22);
        assert_eq!((matrices[0].rows, matrices[0].cols), (1536, 512));
        assert_eq!(matrices.len(), 22 * 3);
    }
}

#[cfg(test)]
mod ownership_tests {
    use dfdx::optim::{Adam, AdamConfig, Optimizer};
    use dfdx::prelude::*;

    use super::{AdamWGroup, MuonGroup};
    use crate::model::init::init_model;
    use crate::model::{cross_entropy, Architecture, Constants, Transformer};
    use crate::optim::muon::Muon;
    use crate::spec::run_config::{Activation, Gain, MuonConfig, OptimizerConfig};

    type Tiny = Transformer<11, 16, 4, 8, 24, 2, f32, Cpu>;

    fn setup() -> (Cpu, Architecture, Tiny, Gradients<f32, Cpu>) {
        let dev = Cpu::seed_from_u64(3);
        let arch = Architecture {
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 4,
            activation: Activation::SquaredRelu,
            qk_norm: Some(Gain::Learnable),
            tied_embeddings: true,
            embedding_scale: 4.0,
            rope_base: 10000.0,
            norm_eps: 1e-6,
        };
        let consts = Constants::<4, Cpu>::new(&dev, &arch, 4);
        let model: Tiny = init_model(&dev, 0.2);
        let tokens = dev.tensor_from_vec(vec![1usize, 2, 3, 4, 5, 6, 7, 8], (2, 4));
        let targets = dev.tensor_from_vec(vec![2usize, 3, 4, 5, 6, 7, 8, 9], (8,));
        let logits = model.forward(
            &arch,
            &consts,
            tokens,
            model.embed.clone().traced(model.alloc_grads()),
            None,
        );
        let grads = cross_entropy(logits, targets).backward();
        (dev, arch, model, grads)
    }

    fn muon_config() -> MuonConfig {
        let study: crate::spec::Study = crate::spec::ron_options()
            .from_str(include_str!("../../tests/studies/tiny.ron"))
            .unwrap();
        match study.base.optimizer {
            OptimizerConfig::Muon(muon) => muon,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_two_groups_partition_the_model() {
        let (_, _, model, _) = setup();
        let adamw = AdamWGroup::of(&model).num_trainable_params();
        let muon = MuonGroup::of(&model).num_trainable_params();
        assert_eq!(adamw + muon, model.num_trainable_params());
        // Per block: wq, wo 16x16; wk, wv 8x16; w_up, w_gate 24x16; w_down 16x24.
        assert_eq!(muon, 2 * (2 * 256 + 2 * 128 + 3 * 384));
    }

    #[test]
    fn adamw_group_touches_only_embeddings_and_gains() {
        let (_, _, mut model, grads) = setup();
        let before = model.clone();
        let mut adam = Adam::new(
            AdamWGroup::of(&model),
            AdamConfig {
                lr: 0.1,
                ..Default::default()
            },
        );
        let _ = adam.update(AdamWGroup::of_mut(&mut model), &grads);
        assert_ne!(model.embed.as_vec(), before.embed.as_vec());
        assert_ne!(
            model.blocks[0].q_gain.as_vec(),
            before.blocks[0].q_gain.as_vec()
        );
        for (after, was) in model.blocks.iter().zip(&before.blocks) {
            assert_eq!(after.wq.as_vec(), was.wq.as_vec());
            assert_eq!(after.w_up.as_vec(), was.w_up.as_vec());
            assert_eq!(after.w_down.as_vec(), was.w_down.as_vec());
        }
    }

    #[test]
    fn muon_touches_only_hidden_matrices() {
        let (_, arch, mut model, mut grads) = setup();
        let before = model.clone();
        let mut muon = Muon::new(&muon_config());
        muon.step(&mut model, &mut grads, arch.activation, 0.05);
        assert_eq!(model.embed.as_vec(), before.embed.as_vec());
        assert_eq!(model.final_norm.as_vec(), before.final_norm.as_vec());
        for (after, was) in model.blocks.iter().zip(&before.blocks) {
            for (a, b) in [(&after.wq, &was.wq), (&after.wo, &was.wo)] {
                assert_ne!(a.as_vec(), b.as_vec());
            }
            assert_ne!(after.wk.as_vec(), was.wk.as_vec());
            assert_ne!(after.w_up.as_vec(), was.w_up.as_vec());
            assert_ne!(after.w_down.as_vec(), was.w_down.as_vec());
            assert_eq!(after.attn_norm.as_vec(), was.attn_norm.as_vec());
            assert_eq!(after.q_gain.as_vec(), was.q_gain.as_vec());
        }
    }

    #[test]
    fn per_head_muon_orthogonalises_each_head_block_alone() {
        use crate::optim::muon::matrix_update;
        use crate::optim::newton_schulz::transpose;
        use crate::spec::run_config::MuonMatrices;
        let (_, arch, mut model, mut grads) = setup();
        let before = model.clone();
        let config = MuonConfig {
            matrices: MuonMatrices::PerHead,
            weight_decay: 0.1,
            ..muon_config()
        };
        let grad = |g: &mut Gradients<f32, Cpu>, t: &Tensor<Rank2<16, 16>, f32, Cpu>| {
            g.get_or_alloc_mut(t).unwrap().to_vec()
        };
        let (gq, go) = (
            grad(&mut grads, &before.blocks[0].wq),
            grad(&mut grads, &before.blocks[0].wo),
        );
        let gk = grads
            .get_or_alloc_mut(&before.blocks[0].wk)
            .unwrap()
            .to_vec();
        let mut muon = Muon::new(&config);
        let lr = 0.05;
        muon.step(&mut model, &mut grads, arch.activation, lr);
        // Each head's block [4 x 16], alone: p (1 - lr wd) - lr update(block).
        let expect = |param: &[f32], grad: &[f32], head: usize| -> Vec<f32> {
            let rows = 4 * 16;
            let block = &grad[head * rows..(head + 1) * rows];
            let update = matrix_update(&config, &mut vec![0.0; rows], block, 4, 16);
            let decay = 1.0 - (lr * 0.1) as f32;
            (param[head * rows..(head + 1) * rows].iter().zip(&update))
                .map(|(p, u)| p * decay - lr as f32 * u)
                .collect()
        };
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        let (wq, wk) = (model.blocks[0].wq.as_vec(), model.blocks[0].wk.as_vec());
        for head in 0..4 {
            let want = expect(&before.blocks[0].wq.as_vec(), &gq, head);
            assert!(
                close(&wq[head * 64..(head + 1) * 64], &want),
                "Q head {head}"
            );
        }
        for head in 0..2 {
            let want = expect(&before.blocks[0].wk.as_vec(), &gk, head);
            assert!(
                close(&wk[head * 64..(head + 1) * 64], &want),
                "K head {head}"
            );
        }
        // O's heads are blocks of rows of O^T.
        let o_t = transpose(&model.blocks[0].wo.as_vec(), 16, 16);
        let before_o_t = transpose(&before.blocks[0].wo.as_vec(), 16, 16);
        let go_t = transpose(&go, 16, 16);
        for head in 0..4 {
            let want = expect(&before_o_t, &go_t, head);
            assert!(
                close(&o_t[head * 64..(head + 1) * 64], &want),
                "O head {head}"
            );
        }
        // 4 Q + 2 K + 2 V + 4 O head matrices, then the feed-forward ones.
        let matrices = Muon::matrices(&config, arch.activation, 16, 8, 4, 24, 2);
        assert_eq!(matrices.len(), 2 * (12 + 2));
        assert_eq!(matrices[4].name, "blocks.0.wk.head0");
        assert!(matrices[..12].iter().all(|m| (m.rows, m.cols) == (4, 16)));
    }
}
