//! Elementwise CPU kernels that dfdx would run as several single-threaded passes, each
//! allocating its output: here one parallel pass each.

use rayon::prelude::*;

const CHUNK: usize = 16_384;

/// Replaces each pre-activation x with `relu(x)^2` (the block keeps only this: the
/// activation's gradient is recovered from it, see `squared_relu_grad`).
pub fn squared_relu(x: &mut [f32]) {
    for x in x {
        let r = x.max(0.0);
        *x = r * r;
    }
}

/// Replaces `dy`, the gradient reaching `y = relu(x)^2`, with the gradient reaching x:
/// `2 relu(x) dy = 2 sqrt(y) dy`.
pub fn squared_relu_grad(y: &[f32], dy: &mut [f32]) {
    for (dy, &y) in dy.iter_mut().zip(y) {
        *dy *= 2.0 * y.sqrt();
    }
}

/// `dst += scale * src`.
pub fn add_scaled(dst: &mut [f32], src: &[f32], scale: f32) {
    assert_eq!(dst.len(), src.len(), "adding slices of different lengths");
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, s)| *d += scale * s));
}
