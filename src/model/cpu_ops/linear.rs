//! `y = x @ w^T` on row-major slices (x [rows, in], w [out, in], dfdx's `Linear` layout):
//! the products every projection, the feed-forward block and the LM head share.

use crate::matmul::{matmul_new, matmul_threaded, Strided};

/// A new [rows, outputs] `x @ w^T`.
pub fn forward((rows, inputs, outputs): (usize, usize, usize), x: &[f32], w: &[f32]) -> Vec<f32> {
    matmul_new(
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
    matmul_threaded(
        (rows, outputs, inputs),
        (dx, Strided::rows(0, inputs), true),
        (dy, Strided::rows(0, outputs)),
        (w, Strided::rows(0, inputs)),
    );
    matmul_threaded(
        (outputs, rows, inputs),
        (dw, Strided::rows(0, inputs), true),
        (dy, Strided::rows(0, outputs).t()),
        (x, Strided::rows(0, inputs)),
    );
}
