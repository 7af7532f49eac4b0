//! The LM head's three products for a block of rows, in the run's precision: f32
//! (`crate::matmul`, on the calling thread), or bf16 operands (`bf16_matmul`) with the
//! head packed once per step in the two layouts its products read, not once per block.

use crate::bf16_matmul::{matmul_bf16_with, multiply, Kernel, PackedLeft, PackedRight};
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
}

impl<'a> HeadProducts<'a> {
    /// For `head` [vocab, width]: bf16 products when `bf16` (packed now, on all threads).
    pub fn new(head: &'a [f32], (width, vocab): (usize, usize), bf16: bool, grads: bool) -> Self {
        if !bf16 {
            return HeadProducts::F32 { head };
        }
        let kernel = Kernel::chosen();
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
        let head_t = |head: &&'a [f32]| (*head, Strided::rows(0, width).t());
        match self {
            HeadProducts::F32 { head } => f32_product((n, width, vocab), out, x, head_t(head)),
            HeadProducts::Bf16 {
                kernel,
                packed: Some((transposed, _)),
                ..
            } => multiply(*kernel, out, &PackedLeft::new((n, width), x), transposed),
            HeadProducts::Bf16 { head, kernel, .. } => {
                matmul_bf16_with(*kernel, (n, width, vocab), out, x, head_t(head))
            }
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
