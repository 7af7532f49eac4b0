//! Elementwise CPU kernels that dfdx would run as several single-threaded passes, each
//! allocating its output: here one parallel pass each.

use rayon::prelude::*;

const CHUNK: usize = 16_384;

/// `y = relu(x)^2`.
pub fn squared_relu(x: &[f32]) -> Vec<f32> {
    x.par_iter()
        .with_min_len(CHUNK)
        .map(|&x| {
            let r = x.max(0.0);
            r * r
        })
        .collect()
}

/// Replaces the pre-activation `h` with the gradient reaching it, `2 relu(h) dy`.
pub fn squared_relu_grad_in_place(h: &mut [f32], dy: &[f32]) {
    h.par_chunks_mut(CHUNK)
        .zip(dy.par_chunks(CHUNK))
        .for_each(|(h, dy)| {
            for (h, &dy) in h.iter_mut().zip(dy) {
                *h = 2.0 * h.max(0.0) * dy;
            }
        });
}

/// `dst += src`.
pub fn add_in_place(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "adding slices of different lengths");
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, s)| *d += s));
}
