//! `y = x @ w^T` on row-major slices (x [rows, in], w [out, in], dfdx's `Linear` layout):
//! the products every projection and the feed-forward block share. Each product takes bf16 operands when the thread trains in `model.precision: Bf16`
//! (`bf16_matmul::on_thread`).

use crate::bf16_matmul::on_thread::{product, product_new};
use crate::matmul::Strided;

/// A new [rows, outputs] `x @ w^T`.
pub fn forward((rows, inputs, outputs): (usize, usize, usize), x: &[f32], w: &[f32]) -> Vec<f32> {
    product_new(
        (rows, inputs, outputs),
        (x, Strided::rows(0, inputs)),
        (w, Strided::rows(0, inputs).t()),
    )
}

/// Adds the gradients of `y = x @ w^T` for `dy`: dx += dy @ w and dw += dy^T @ x.
pub fn backward(
    (rows, inputs, outputs): (usize, usize, usize),
    dy: &[f32],
    (x, dx): (&[f32], &mut [f32]),
    (w, dw): (&[f32], &mut [f32]),
) {
    product(
        (rows, outputs, inputs),
        (dx, Strided::rows(0, inputs), true),
        (dy, Strided::rows(0, outputs)),
        (w, Strided::rows(0, inputs)),
    );
    weight_grad((rows, inputs, outputs), dy, x, dw);
}

/// Below this many outputs, `weight_grad` computes the transposed product.
const FEW_OUTPUTS: usize = 256;

/// Adds `dy^T @ x` to the weight gradient `dw` [outputs, inputs].
///
/// `gemm` runs these products (an inner dimension of all the rows) faster with more
/// result rows than columns when the rows are few: [128 x 2048] x [2048 x 512] at about
/// 210 GFLOP/s, its transpose at 250 (2 cores, AVX-512). With fewer outputs than inputs,
/// and few outputs, `x^T @ dy` [inputs, outputs] is computed and added transposed. From
/// 256 outputs on (cpu_20m: 512) both run near the peak, and the transposed form would
/// only add a copy.
pub fn weight_grad(
    (rows, inputs, outputs): (usize, usize, usize),
    dy: &[f32],
    x: &[f32],
    dw: &mut [f32],
) {
    if outputs >= inputs || outputs >= FEW_OUTPUTS {
        product(
            (outputs, rows, inputs),
            (dw, Strided::rows(0, inputs), true),
            (dy, Strided::rows(0, outputs).t()),
            (x, Strided::rows(0, inputs)),
        );
        return;
    }
    let transposed = product_new(
        (inputs, rows, outputs),
        (x, Strided::rows(0, inputs).t()),
        (dy, Strided::rows(0, outputs)),
    );
    for (o, dw_row) in dw.chunks_mut(inputs).enumerate() {
        for (i, d) in dw_row.iter_mut().enumerate() {
            *d += transposed[i * outputs + o];
        }
    }
}
