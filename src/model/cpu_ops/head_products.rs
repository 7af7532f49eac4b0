//! The LM head's three products for a block of rows, in the run's precision: f32
//! (`crate::matmul`, on the calling thread), or bf16 operands (`bf16_matmul`) with the
//! head packed once per step in the two layouts its products read, not once per block.

use crate::bf16_matmul::{
    matmul_bf16_rounded_right, matmul_bf16_with, multiply, rounded, Kernel, PackedLeft, PackedRight,
};
use crate::matmul::{matmul, Strided};

/// How the blocks' products are made.
pub enum HeadProducts<'a> {
    F32 {
        head: &'a [f32],
    },
    /// bf16 by a tiled kernel: head^T [width, vocab] and, when gradients are wanted,
    /// head [vocab, width], packed once per step.
    Tiled {
        kernel: Kernel,
        transposed: PackedRight,
        rows: Option<PackedRight>,
    },
    /// bf16 by the emulation: the head rounded to bf16 values once per step.
    Rounded {
        head: Vec<f32>,
    },
}

impl<'a> HeadProducts<'a> {
    /// For `head` [vocab, width]: bf16 products when `bf16` (packed or rounded now, on
    /// all threads); `grads`: `dx` will be asked for.
    pub fn new(head: &'a [f32], (width, vocab): (usize, usize), bf16: bool, grads: bool) -> Self {
        if !bf16 {
            return HeadProducts::F32 { head };
        }
        let rows = Strided::rows(0, width);
        match Kernel::chosen() {
            Kernel::Emulated => HeadProducts::Rounded {
                head: rounded((vocab, width), head, rows).0,
            },
            kernel => HeadProducts::Tiled {
                kernel,
                transposed: PackedRight::new((width, vocab), (head, rows.t())),
                rows: grads.then(|| PackedRight::new((vocab, width), (head, rows))),
            },
        }
    }

    /// `logits` [n, vocab] = the n rows of `x` (width each) @ head^T.
    pub fn logits(
        &self,
        (n, width, vocab): (usize, usize, usize),
        x: (&[f32], Strided),
        logits: &mut [f32],
    ) {
        let out = (logits, Strided::rows(0, vocab), false);
        let dims = (n, width, vocab);
        let head_t = Strided::rows(0, width).t();
        match self {
            HeadProducts::F32 { head } => f32_product(dims, out, x, (head, head_t)),
            HeadProducts::Tiled {
                kernel, transposed, ..
            } => multiply(*kernel, out, &PackedLeft::new((n, width), x), transposed),
            HeadProducts::Rounded { head } => {
                matmul_bf16_rounded_right(Kernel::Emulated, dims, out, x, (head, head_t))
            }
        }
    }

    /// The n rows of `dx` (a view, overwritten) = `d_logits` [n, vocab] @ head. Panics
    /// for bf16 products made without `grads`.
    pub fn dx(
        &self,
        (n, vocab, width): (usize, usize, usize),
        d_logits: &[f32],
        dx: (&mut [f32], Strided),
    ) {
        let out = (dx.0, dx.1, false);
        let dims = (n, vocab, width);
        let d_logits = (d_logits, Strided::rows(0, vocab));
        let head_rows = Strided::rows(0, width);
        match self {
            HeadProducts::F32 { head } => f32_product(dims, out, d_logits, (head, head_rows)),
            HeadProducts::Tiled { kernel, rows, .. } => {
                let rows = rows.as_ref().expect("the head packed for gradients");
                multiply(*kernel, out, &PackedLeft::new((n, vocab), d_logits), rows)
            }
            HeadProducts::Rounded { head } => {
                matmul_bf16_rounded_right(Kernel::Emulated, dims, out, d_logits, (head, head_rows))
            }
        }
    }

    /// `d_head` [vocab, width] += `d_logits`^T @ the n rows of `x`.
    pub fn d_head(
        &self,
        (vocab, n, width): (usize, usize, usize),
        d_logits: &[f32],
        x: (&[f32], Strided),
        d_head: &mut [f32],
    ) {
        let out = (d_head, Strided::rows(0, width), true);
        let dims = (vocab, n, width);
        let d_logits_t = (d_logits, Strided::rows(0, vocab).t());
        match self {
            HeadProducts::F32 { .. } => f32_product(dims, out, d_logits_t, x),
            HeadProducts::Tiled { kernel, .. } => {
                matmul_bf16_with(*kernel, dims, out, d_logits_t, x)
            }
            HeadProducts::Rounded { .. } => {
                matmul_bf16_with(Kernel::Emulated, dims, out, d_logits_t, x)
            }
        }
    }
}

/// An f32 product on the calling thread.
fn f32_product(
    dims: (usize, usize, usize),
    (dst, d, accumulate): (&mut [f32], Strided, bool),
    (a, sa): (&[f32], Strided),
    (b, sb): (&[f32], Strided),
) {
    matmul(dims, dst, d, accumulate, a, sa, b, sb, 1.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The emulation's head, rounded once per step, gives the products the emulation gives
    /// when it rounds the head at every product: the same bits.
    #[test]
    fn a_head_rounded_once_multiplies_as_one_rounded_each_time() {
        let (rows, width, vocab) = (40, 48, 70);
        let value = |i: usize, salt: usize| (((i * 7919 + salt) % 211) as f32 - 105.0) / 70.0;
        let x: Vec<f32> = (0..rows * width).map(|i| value(i, 1)).collect();
        let head: Vec<f32> = (0..vocab * width).map(|i| value(i, 2)).collect();
        let d_logits: Vec<f32> = (0..rows * vocab).map(|i| value(i, 3)).collect();
        let once = HeadProducts::Rounded {
            head: rounded((vocab, width), &head, Strided::rows(0, width)).0,
        };
        let x_rows = (&x[..], Strided::rows(0, width));
        let mut logits = vec![0.0f32; rows * vocab];
        once.logits((rows, width, vocab), x_rows, &mut logits);
        let mut dx = vec![0.0f32; rows * width];
        let dx_rows = (&mut dx[..], Strided::rows(0, width));
        once.dx((rows, vocab, width), &d_logits, dx_rows);
        let mut d_head = vec![0.5f32; vocab * width];
        once.d_head((vocab, rows, width), &d_logits, x_rows, &mut d_head);
        // The emulation rounding the head (and everything else) at each product.
        fn each_time(
            (m, k, n): (usize, usize, usize),
            a: (&[f32], Strided),
            b: (&[f32], Strided),
            (accumulate, start): (bool, f32),
        ) -> Vec<f32> {
            let mut out = vec![start; m * n];
            let dst = (&mut out[..], Strided::rows(0, n), accumulate);
            matmul_bf16_with(Kernel::Emulated, (m, k, n), dst, a, b);
            out
        }
        let head_t = (&head[..], Strided::rows(0, width).t());
        let d_logits_rows = (&d_logits[..], Strided::rows(0, vocab));
        let d_logits_t = (&d_logits[..], Strided::rows(0, vocab).t());
        let head_rows = (&head[..], Strided::rows(0, width));
        let results = [
            (logits, dx, d_head),
            (
                each_time((rows, width, vocab), x_rows, head_t, (false, 0.0)),
                each_time((rows, vocab, width), d_logits_rows, head_rows, (false, 0.0)),
                each_time((vocab, rows, width), d_logits_t, x_rows, (true, 0.5)),
            ),
        ];
        assert_eq!(results[0], results[1]);
        // And they are bf16 products, not f32 ones.
        let mut f32_logits = vec![0.0f32; rows * vocab];
        HeadProducts::F32 { head: &head }.logits((rows, width, vocab), x_rows, &mut f32_logits);
        assert_ne!(results[0].0, f32_logits);
    }
}
