//! RMSNorm on the CPU over consecutive groups of `group` values (a row of d_model values,
//! or one head's head_dim values for QK-norm), with an optional gain of `group` values
//! shared by every group.

use rayon::prelude::*;

use super::elementwise::add_scaled;
use super::vector;

/// Groups per parallel task: enough work to pay for the task.
fn groups_per_task(group: usize) -> usize {
    (16_384 / group).max(1)
}

/// Writes `y = x / rms(x) * gain` and returns each group's `1 / rms`.
pub fn forward(x: &[f32], group: usize, gain: Option<&[f32]>, eps: f32, y: &mut [f32]) -> Vec<f32> {
    let mut inv_rms = vec![0.0f32; x.len() / group];
    let per = groups_per_task(group);
    x.par_chunks(group * per)
        .zip(y.par_chunks_mut(group * per))
        .zip(inv_rms.par_chunks_mut(per))
        .for_each(|((x, y), inv_rms)| {
            for ((x, y), inv) in x.chunks(group).zip(y.chunks_mut(group)).zip(inv_rms) {
                let mean_square = vector::sum_squares(x) / group as f32;
                *inv = 1.0 / (mean_square + eps).sqrt();
                match gain {
                    Some(gain) => {
                        for ((y, x), g) in y.iter_mut().zip(x).zip(gain) {
                            *y = x * *inv * g;
                        }
                    }
                    None => y.iter_mut().zip(x).for_each(|(y, x)| *y = x * *inv),
                }
            }
        });
    inv_rms
}

/// Adds the gradient of `x` to `dx` and, with a gain, the gain's gradient to `d_gain`.
pub fn backward(
    x: &[f32],
    group: usize,
    gain: Option<&[f32]>,
    inv_rms: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    d_gain: Option<&mut [f32]>,
) {
    let per = groups_per_task(group);
    let want_gain = d_gain.is_some();
    let partial_gain = x
        .par_chunks(group * per)
        .zip(dy.par_chunks(group * per))
        .zip(dx.par_chunks_mut(group * per))
        .zip(inv_rms.par_chunks(per))
        .map(|(((x, dy), dx), inv_rms)| {
            let mut d_gain = vec![0.0f32; if want_gain { group } else { 0 }];
            let mut dn = vec![0.0f32; group];
            for (((x, dy), dx), &inv) in x
                .chunks(group)
                .zip(dy.chunks(group))
                .zip(dx.chunks_mut(group))
                .zip(inv_rms)
            {
                // n = x * inv is the normalised value; dn the gradient reaching it.
                match gain {
                    Some(gain) => dn.iter_mut().zip(dy).zip(gain).for_each(|((d, dy), g)| {
                        *d = dy * g;
                    }),
                    None => dn.copy_from_slice(dy),
                }
                if want_gain {
                    for ((dg, dy), x) in d_gain.iter_mut().zip(dy).zip(x) {
                        *dg += dy * x * inv;
                    }
                }
                let mean_dn_n = vector::dot(&dn, x) * inv / group as f32;
                for ((dx, d), x) in dx.iter_mut().zip(&dn).zip(x) {
                    *dx += inv * (d - x * inv * mean_dn_n);
                }
            }
            d_gain
        })
        .collect::<Vec<_>>();
    // Each task's gain gradient is added in task order: the same sums whichever thread
    // ran what (a parallel `reduce` adds in an order that depends on work stealing, and
    // a resumed run would not repeat an uninterrupted one bit for bit).
    if let Some(d_gain) = d_gain {
        for partial in &partial_gain {
            add_scaled(d_gain, partial, 1.0);
        }
    }
}
