//! Initialisation: every matrix N(0, init_std), every norm gain 1, from the device's
//! seeded generator so that a seed fixes the initial weights.

use dfdx::prelude::*;
use rand_distr::Normal;

use super::params::Transformer;

/// Builds a model on `dev` and draws its matrices from N(0, std).
pub fn init_model<
    const V: usize,
    const M: usize,
    const HD: usize,
    const KVW: usize,
    const F: usize,
    const L: usize,
    D: Device<f32>,
>(
    dev: &D,
    std: f64,
) -> Transformer<V, M, HD, KVW, F, L, f32, D> {
    let mut model = <Transformer<V, M, HD, KVW, F, L, f32, D> as BuildModule<D, f32>>::build(dev);
    let normal = Normal::new(0.0f32, std as f32).expect("init_std is validated positive");
    model.embed.fill_with_distr(normal);
    model.lm_head.fill_with_distr(normal);
    for block in &mut model.blocks {
        block.wq.fill_with_distr(normal);
        block.wk.fill_with_distr(normal);
        block.wv.fill_with_distr(normal);
        block.wo.fill_with_distr(normal);
        block.w_up.fill_with_distr(normal);
        block.w_gate.fill_with_distr(normal);
        block.w_down.fill_with_distr(normal);
    }
    model
}
