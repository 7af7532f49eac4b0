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
    Bf16 {
        head: &'a [f32],
        kernel: Kernel,
        /// head^T [width, vocab] and, for gradients, head [vocab, width], packed (tiled
        /// kernels only).
        packed: Option<(PackedRight, Option<PackedRight>)>,
    },
    /// bf16 by the emulation: the head rounded to bf16 values once per step.
    Rounded {
        head: Vec<f32>,
    },
}

impl<'a> HeadProducts<'a> {
    /// For `head` [vocab, width]: bf16 products when `bf16` (packed now, on all threads).
    pub fn new(head: &'a [f32], (width, vocab): (usize, usize), bf16: bool, grads: bool) -> Self {
        if !bf16 {
            return HeadProducts::F32 { head };
        }
        let kernel = Kernel::chosen();
        if kernel == Kernel::Emulated {
            let (head, _) = rounded((vocab, width), head, Strided::rows(0, width));
            return HeadProducts::Rounded { head };
        }
        let packed = (kernel != Kernel::Emulated).then(|| {
            let transposed = PackedRight::new((width, vocab), (head, Strided::rows(0, width).t()));
            let rows =
                grads.then(|| PackedRight::new((vocab, width), (head, Strided::rows(0, width))));
            (transposed, rows)
        });
        HeadProducts::Bf16 {
            head,
            kernel,
            packed,
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
        let transposed = Strided::rows(0, width).t();
        match self {
            HeadProducts::F32 { head } => {
                f32_product((n, width, vocab), out, x, (head, transposed))
            }
            HeadProducts::Bf16 {
                kernel,
                packed: Some((transposed, _)),
                ..
            } => multiply(*kernel, out, &PackedLeft::new((n, width), x), transposed),
            HeadProducts::Bf16 { head, kernel, .. } => {
                matmul_bf16_with(*kernel, (n, width, vocab), out, x, (head, transposed))
            }
            HeadProducts::Rounded { head } => matmul_bf16_rounded_right(
                Kernel::Emulated,
                (n, width, vocab),
                out,
                x,
                (head, transposed),
            ),
        }
    }

    /// The n rows of `dx` (a view, overwritten) = `d_logits` [n, vocab] @ head.
    pub fn dx(
        &self,
        (n, vocab, width): (usize, usize, usize),
        d_logits: &[f32],
        dx: (&mut [f32], Strided),
    ) {
        let out = (dx.0, dx.1, false);
        let d_logits = (d_logits, Strided::rows(0, vocab));
        match self {
            HeadProducts::F32 { head } => f32_product(
                (n, vocab, width),
                out,
                d_logits,
                (head, Strided::rows(0, width)),
            ),
            HeadProducts::Bf16 {
                kernel,
                packed: Some((_, Some(rows))),
                ..
            } => multiply(*kernel, out, &PackedLeft::new((n, vocab), d_logits), rows),
            HeadProducts::Bf16 { head, kernel, .. } => matmul_bf16_with(
                *kernel,
                (n, vocab, width),
                out,
                d_logits,
                (head, Strided::rows(0, width)),
            ),
            HeadProducts::Rounded { head } => matmul_bf16_rounded_right(
                Kernel::Emulated,
                (n, vocab, width),
                out,
                d_logits,
                (head, Strided::rows(0, width)),
            ),
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
        let d_logits_t = (d_logits, Strided::rows(0, vocab).t());
        match self {
            HeadProducts::F32 { .. } => f32_product((vocab, n, width), out, d_logits_t, x),
            HeadProducts::Bf16 { kernel, .. } => {
                matmul_bf16_with(*kernel, (vocab, n, width), out, d_logits_t, x)
            }
            HeadProducts::Rounded { .. } => {
                matmul_bf16_with(Kernel::Emulated, (vocab, n, width), out, d_logits_t, x)
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
        let each_time = HeadProducts::Bf16 {
            head: &head,
            kernel: Kernel::Emulated,
            packed: None,
        };
        let x_rows = (&x[..], Strided::rows(0, width));
        let results = [once, each_time].map(|products| {
            let mut logits = vec![0.0f32; rows * vocab];
            products.logits((rows, width, vocab), x_rows, &mut logits);
            let mut dx = vec![0.0f32; rows * width];
            products.dx(
                (rows, vocab, width),
                &d_logits,
                (&mut dx, Strided::rows(0, width)),
            );
            let mut d_head = vec![0.5f32; vocab * width];
            products.d_head((vocab, rows, width), &d_logits, x_rows, &mut d_head);
            (logits, dx, d_head)
        });
        assert_eq!(results[0], results[1]);
        // And they are bf16 products, not f32 ones.
        let mut f32_logits = vec![0.0f32; rows * vocab];
        HeadProducts::F32 { head: &head }.logits((rows, width, vocab), x_rows, &mut f32_logits);
        assert_ne!(results[0].0, f32_logits);
    }
}
