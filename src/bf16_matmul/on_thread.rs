//! Which products a thread makes: f32 (`crate::matmul`) or bf16 operands with f32
//! accumulation (`matmul_bf16`). A run in `model.precision: Bf16` turns bf16 on for its
//! thread while it trains; the model's fused CPU operations ask here, on that thread, at
//! each product, so the model's signatures stay those of f32.

use std::cell::Cell;

use crate::matmul::{matmul_new, matmul_threaded, Strided};

use super::{each_row, matmul_bf16, matmul_bf16_new, matmul_bf16_new_then, Kernel, Then};

thread_local! {
    static BF16: Cell<bool> = const { Cell::new(false) };
}

/// bf16 products on this thread until dropped (then what was set before).
pub struct Bf16Products {
    before: bool,
}

impl Bf16Products {
    /// Sets this thread's products to bf16 when `on`, to f32 otherwise.
    pub fn set(on: bool) -> Bf16Products {
        Bf16Products {
            before: BF16.with(|flag| flag.replace(on)),
        }
    }
}

impl Drop for Bf16Products {
    fn drop(&mut self) {
        BF16.with(|flag| flag.set(self.before));
    }
}

/// Whether this thread's products take bf16 operands.
pub fn bf16_here() -> bool {
    BF16.with(|flag| flag.get())
}

/// The tiled kernel this thread's products use with operands packed once for several
/// products (`PackedLeft`, `PackedRight`): `None` in f32, or where bf16 is emulated.
pub fn tiled_kernel_here() -> Option<Kernel> {
    bf16_here()
        .then(Kernel::chosen)
        .filter(|kernel| *kernel != Kernel::Emulated)
}

/// `dst (+)= a @ b` on all threads, in this thread's precision.
pub fn product(
    dims: (usize, usize, usize),
    dst: (&mut [f32], Strided, bool),
    a: (&[f32], Strided),
    b: (&[f32], Strided),
) {
    if bf16_here() {
        matmul_bf16(dims, dst, a, b);
    } else {
        matmul_threaded(dims, dst, a, b);
    }
}

/// `product_new`, each run of the result's rows passed through `then` (fused into the
/// write-back of bf16 tiles; after the product otherwise).
pub fn product_new_then(
    dims: (usize, usize, usize),
    a: (&[f32], Strided),
    b: (&[f32], Strided),
    then: Then,
) -> Vec<f32> {
    if bf16_here() {
        return matmul_bf16_new_then(dims, a, b, then);
    }
    let mut values = matmul_new(dims, a, b);
    each_row(&mut values, dims.2, then);
    values
}

/// A new row-major `a @ b` on all threads, in this thread's precision.
pub fn product_new(
    dims: (usize, usize, usize),
    a: (&[f32], Strided),
    b: (&[f32], Strided),
) -> Vec<f32> {
    if bf16_here() {
        matmul_bf16_new(dims, a, b)
    } else {
        matmul_new(dims, a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_is_per_thread_and_restored() {
        assert!(!bf16_here());
        {
            let _outer = Bf16Products::set(true);
            assert!(bf16_here());
            std::thread::spawn(|| assert!(!bf16_here())).join().unwrap();
            {
                let _inner = Bf16Products::set(false);
                assert!(!bf16_here());
            }
            assert!(bf16_here());
            // 1 + 2^-9 is not a bf16 value: in bf16 the product rounds it to 1.
            let x = [1.0 + 1.0 / 512.0];
            let one = [1.0f32];
            let got = product_new(
                (1, 1, 1),
                (&x, Strided::rows(0, 1)),
                (&one, Strided::rows(0, 1)),
            );
            assert_eq!(got, vec![1.0]);
        }
        assert!(!bf16_here());
    }
}
