//! `y = x @ w^T` on row-major slices (x [rows, in], w [out, in], dfdx's `Linear` layout):
//! the products every projection and the feed-forward block share. Each product takes bf16 operands when the thread trains in `model.precision: Bf16`
//! (`bf16_matmul::on_thread`).

use crate::bf16_matmul::on_thread::{product, product_new, product_new_then, tiled_kernel_here};
use crate::bf16_matmul::{multiply, multiply_new, PackedLeft, PackedRight, Then};
use crate::matmul::Strided;

/// A new [rows, outputs] `x @ w^T`.
pub fn forward((rows, inputs, outputs): (usize, usize, usize), x: &[f32], w: &[f32]) -> Vec<f32> {
    product_new(
        (rows, inputs, outputs),
        (x, Strided::rows(0, inputs)),
        (w, Strided::rows(0, inputs).t()),
    )
}

/// `forward`, each run of the output's rows passed through `then` as it is written.
pub fn forward_then(
    (rows, inputs, outputs): (usize, usize, usize),
    x: &[f32],
    w: &[f32],
    then: Then,
) -> Vec<f32> {
    product_new_then(
        (rows, inputs, outputs),
        (x, Strided::rows(0, inputs)),
        (w, Strided::rows(0, inputs).t()),
        then,
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

/// `x @ w^T` for each of `weights` (each [outputs, inputs]): with bf16 products, `x` is
/// packed once for all of them (the attention projections read one input).
pub fn forward_each(rows: usize, inputs: usize, x: &[f32], weights: &[&[f32]]) -> Vec<Vec<f32>> {
    let Some(kernel) = tiled_kernel_here() else {
        return (weights.iter())
            .map(|w| forward((rows, inputs, w.len() / inputs), x, w))
            .collect();
    };
    let left = PackedLeft::new((rows, inputs), (x, Strided::rows(0, inputs)));
    (weights.iter())
        .map(|w| {
            let outputs = w.len() / inputs;
            let right = PackedRight::new((inputs, outputs), (w, Strided::rows(0, inputs).t()));
            multiply_new(kernel, &left, &right)
        })
        .collect()
}

/// `backward` for each (dy, w, dw) of layers that read the same `x`: with bf16 products,
/// `x` is packed once, as the right operand of every weight gradient.
pub fn backward_each(
    rows: usize,
    inputs: usize,
    (x, dx): (&[f32], &mut [f32]),
    parts: Vec<(&[f32], &[f32], &mut [f32])>,
) {
    let Some(kernel) = tiled_kernel_here() else {
        for (dy, w, dw) in parts {
            backward((rows, inputs, w.len() / inputs), dy, (x, &mut *dx), (w, dw));
        }
        return;
    };
    let x_right = PackedRight::new((rows, inputs), (x, Strided::rows(0, inputs)));
    for (dy, w, dw) in parts {
        let outputs = w.len() / inputs;
        product(
            (rows, outputs, inputs),
            (&mut *dx, Strided::rows(0, inputs), true),
            (dy, Strided::rows(0, outputs)),
            (w, Strided::rows(0, inputs)),
        );
        let dy_t = PackedLeft::new((outputs, rows), (dy, Strided::rows(0, outputs).t()));
        multiply(
            kernel,
            (dw, Strided::rows(0, inputs), true),
            &dy_t,
            &x_right,
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bf16_matmul::on_thread::Bf16Products;
    use crate::optim::newton_schulz::round_bf16;

    fn values(len: usize, salt: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7919 + salt) % 211) as f32 - 105.0) / 70.0 + 1e-3)
            .collect()
    }

    fn rounded(v: &[f32]) -> Vec<f32> {
        v.iter().map(|&x| round_bf16(x)).collect()
    }

    /// Equal up to f32 accumulation over `k` terms of at most `size` each.
    fn close(got: &[f32], want: &[f32], k: usize, size: f32, what: &str) {
        let bound = 4.0 * k as f32 * f32::EPSILON * size;
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= bound,
                "{what}[{i}]: {g} vs {w} (bound {bound})"
            );
        }
    }

    /// In bf16 every product of a linear layer, forward and backward (the weight gradient
    /// in both of its forms), is its f32 twin on operands rounded to bf16.
    #[test]
    fn bf16_products_are_their_f32_twins_on_rounded_operands() {
        for (rows, inputs, outputs) in [(70, 96, 40), (64, 64, 300), (33, 200, 64)] {
            let (x, w, dy) = (
                values(rows * inputs, 1),
                values(outputs * inputs, 2),
                values(rows * outputs, 3),
            );
            let dims = (rows, inputs, outputs);
            let size = 1.6 * 1.6;
            let want = forward(dims, &rounded(&x), &rounded(&w));
            let (mut want_dx, mut want_dw) =
                (vec![0.5; rows * inputs], vec![0.25; outputs * inputs]);
            backward(
                dims,
                &rounded(&dy),
                (&rounded(&x), &mut want_dx),
                (&rounded(&w), &mut want_dw),
            );
            let _bf16 = Bf16Products::set(true);
            let got = forward(dims, &x, &w);
            close(&got, &want, inputs, size, "y");
            assert_ne!(got, forward_f32(dims, &x, &w), "bf16 rounding took place");
            let (mut dx, mut dw) = (vec![0.5; rows * inputs], vec![0.25; outputs * inputs]);
            backward(dims, &dy, (&x, &mut dx), (&w, &mut dw));
            close(&dx, &want_dx, outputs, size, "dx");
            close(&dw, &want_dw, rows, size, "dw");
        }
    }

    fn forward_f32(dims: (usize, usize, usize), x: &[f32], w: &[f32]) -> Vec<f32> {
        let _f32 = Bf16Products::set(false);
        forward(dims, x, w)
    }
}
