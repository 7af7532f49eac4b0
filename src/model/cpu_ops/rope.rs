//! RoPE ("rotate half") on the CPU, elementwise: for each head's `hd` values at position
//! p, y_j = x_j cos_j - x_{j+hd/2} sin_j and y_{j+hd/2} = x_{j+hd/2} cos + x_j sin.

use rayon::prelude::*;

/// RoPE tables: [seq, hd] cos and sin of position * frequency, rotate-half layout.
pub struct RopeTables<'a> {
    pub cos: &'a [f32],
    pub sin: &'a [f32],
    pub head_dim: usize,
    pub seq: usize,
}

/// Applies `f(row, position)` to every row of `width` values, rows in parallel.
fn rows_in_parallel(
    out: &mut [f32],
    width: usize,
    seq: usize,
    f: impl Fn(&mut [f32], usize, usize) + Sync,
) {
    let per = (8_192 / width).max(1);
    out.par_chunks_mut(width * per)
        .enumerate()
        .for_each(|(chunk, rows)| {
            for (i, row) in rows.chunks_mut(width).enumerate() {
                let r = chunk * per + i;
                f(row, r, r % seq);
            }
        });
}

/// `y` = RoPE of `x` ([rows, width], width a multiple of head_dim, row r at position
/// r % seq).
pub fn forward(t: &RopeTables, x: &[f32], width: usize, y: &mut [f32]) {
    let (hd, half) = (t.head_dim, t.head_dim / 2);
    rows_in_parallel(y, width, t.seq, |y, r, pos| {
        let (cos, sin) = (&t.cos[pos * hd..][..hd], &t.sin[pos * hd..][..hd]);
        let x = &x[r * width..][..width];
        for (x, y) in x.chunks(hd).zip(y.chunks_mut(hd)) {
            for j in 0..half {
                y[j] = x[j] * cos[j] - x[j + half] * sin[j];
                y[j + half] = x[j + half] * cos[j + half] + x[j] * sin[j + half];
            }
        }
    });
}

/// Adds the gradient of `x` for the output gradient `dy` to `dx` (the transposed
/// rotation).
pub fn backward(t: &RopeTables, dy: &[f32], width: usize, dx: &mut [f32]) {
    let (hd, half) = (t.head_dim, t.head_dim / 2);
    rows_in_parallel(dx, width, t.seq, |dx, r, pos| {
        let (cos, sin) = (&t.cos[pos * hd..][..hd], &t.sin[pos * hd..][..hd]);
        let dy = &dy[r * width..][..width];
        for (dy, dx) in dy.chunks(hd).zip(dx.chunks_mut(hd)) {
            for j in 0..half {
                dx[j] += dy[j] * cos[j] + dy[j + half] * sin[j + half];
                dx[j + half] += dy[j + half] * cos[j + half] - dy[j] * sin[j];
            }
        }
    });
}
