//! Matrix products with bf16 operands and f32 accumulation, for `model.precision: Bf16`:
//! operands are rounded to bf16 (nearest even) while they are packed for AMX tiles where
//! the CPU and Linux allow them (`tiled`, `amx`), else rounded in f32 and multiplied by the
//! f32 kernels (`emulated`: exact); an AVX512-BF16 kernel (`avx512`) runs when asked for.
//! The f32 sums are written (or added) to an f32 destination; the views and semantics are
//! those of `crate::matmul`.

mod amx;
mod avx512;
mod emulated;
pub mod format;
pub mod on_thread;
pub mod pack;
mod tiled;
mod transpose;

use std::sync::OnceLock;

use crate::matmul::Strided;

pub use self::emulated::rounded;
use self::emulated::{emulated, emulated_masked};
pub use self::tiled::{
    multiply, multiply_masked, multiply_new, multiply_new_then, Accumulator, Left, Mask, Packed,
    PackedLeft, PackedRight, Right, Side, Then,
};

/// Which implementation multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// AMX tiles (`TDPBF16PS`), Intel Xeon from Sapphire Rapids on.
    Amx,
    /// `VDPBF16PS` on 512-bit vectors (Cooper Lake, Sapphire Rapids, AMD Zen 4 on).
    Avx512Bf16,
    /// Operands rounded to bf16 in f32 and multiplied by the f32 kernels: exact (a product
    /// of two bf16 values fits an f32), no faster than f32.
    Emulated,
}

impl Kernel {
    pub const ALL: [Kernel; 3] = [Kernel::Amx, Kernel::Avx512Bf16, Kernel::Emulated];

    /// The name `bench` and the docs use.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Amx => "AMX (TDPBF16PS)",
            Kernel::Avx512Bf16 => "AVX512-BF16 (VDPBF16PS)",
            Kernel::Emulated => "f32 emulation",
        }
    }

    /// Whether this CPU (and, for AMX, the operating system) runs it.
    pub fn available(self) -> bool {
        match self {
            Kernel::Amx => amx::available(),
            Kernel::Avx512Bf16 => avx512::available(),
            Kernel::Emulated => true,
        }
    }

    /// AMX where available, else the emulation, unless `RANKPROBE_BF16_KERNEL` (`amx`,
    /// `avx512` or `emulated`) names an available one: chosen once per process.
    pub fn chosen() -> Kernel {
        static CHOSEN: OnceLock<Kernel> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let asked = std::env::var("RANKPROBE_BF16_KERNEL").ok();
            let named = asked.as_deref().and_then(|name| match name {
                "amx" => Some(Kernel::Amx),
                "avx512" => Some(Kernel::Avx512Bf16),
                "emulated" => Some(Kernel::Emulated),
                _ => None,
            });
            // Without AMX the f32 kernels on rounded operands beat our VDPBF16PS kernel
            // (0.7-0.9 of f32 against 0.5, measured on AVX512-BF16 hardware:
            // docs/speed.md), so it runs only when asked for.
            match named {
                Some(kernel) if kernel.available() => kernel,
                _ if Kernel::Amx.available() => Kernel::Amx,
                _ => Kernel::Emulated,
            }
        })
    }
}

/// `dst (+)= a @ b` with bf16-rounded operands, on all threads (one inside
/// `crate::matmul::one_per_thread`), by `Kernel::chosen()`.
pub fn matmul_bf16(
    dims: (usize, usize, usize),
    dst: (&mut [f32], Strided, bool),
    a: (&[f32], Strided),
    b: (&[f32], Strided),
) {
    matmul_bf16_with(Kernel::chosen(), dims, dst, a, b);
}

/// A new [m x n] row-major `a @ b` with bf16-rounded operands.
pub fn matmul_bf16_new(
    dims: (usize, usize, usize),
    a: (&[f32], Strided),
    b: (&[f32], Strided),
) -> Vec<f32> {
    matmul_bf16_new_then(dims, a, b, &|_, _, _| {})
}

/// `matmul_bf16_new`, each run of the result's rows passed through `then` (as the tiled
/// kernels write it, while in cache; after the product in the emulation).
pub fn matmul_bf16_new_then(
    (m, k, n): (usize, usize, usize),
    a: (&[f32], Strided),
    b: (&[f32], Strided),
    then: Then,
) -> Vec<f32> {
    let kernel = Kernel::chosen();
    if k == 0 || m == 0 || n == 0 || kernel == Kernel::Emulated {
        let mut dst = vec![0.0f32; m * n];
        let out = (&mut dst[..], Strided::rows(0, n), false);
        matmul_bf16_with(kernel, (m, k, n), out, a, b);
        each_row(&mut dst, n, then);
        return dst;
    }
    with_packed((m, k, n), a, b, |left, right| {
        multiply_new_then(kernel, left, right, then)
    })
}

/// `then(row, 0, row's values)` on each row of a row-major matrix with rows of `n`.
pub fn each_row(values: &mut [f32], n: usize, then: Then) {
    use rayon::prelude::*;
    if n > 0 {
        let rows = values.par_chunks_mut(n).enumerate();
        rows.for_each(|(r, row)| then(r, 0, row));
    }
}

/// `matmul_bf16` by `kernel`. Panics if it is not available, or if a view does not fit
/// its slice.
pub fn matmul_bf16_with(
    kernel: Kernel,
    dims: (usize, usize, usize),
    dst: (&mut [f32], Strided, bool),
    a: (&[f32], Strided),
    b: (&[f32], Strided),
) {
    product(kernel, dims, dst, a, b, Operands::Plain);
}

/// `matmul_bf16_with` where `b` already holds bf16 values (`rounded`): the emulation
/// rounds only `a` (the tiled kernels pack both, as ever).
pub fn matmul_bf16_rounded_right(
    kernel: Kernel,
    dims: (usize, usize, usize),
    dst: (&mut [f32], Strided, bool),
    a: (&[f32], Strided),
    b: (&[f32], Strided),
) {
    product(kernel, dims, dst, a, b, Operands::RightRounded);
}

/// `dst (+)= a @ b` with bf16-rounded operands by `kernel`, skipping the blocks `mask`
/// names. Panics as `matmul_bf16_with`.
pub fn matmul_bf16_masked(
    kernel: Kernel,
    dims: (usize, usize, usize),
    dst: (&mut [f32], Strided, bool),
    a: (&[f32], Strided),
    b: (&[f32], Strided),
    mask: Mask,
) {
    product(kernel, dims, dst, a, b, Operands::Masked(mask));
}

/// What a product knows of its operands beyond their values.
#[derive(Clone, Copy)]
enum Operands {
    Plain,
    /// `b` holds bf16 values already (the emulation rounds only `a`).
    RightRounded,
    /// Zero (or never read) where the mask says.
    Masked(Mask),
}

/// The products' one checked entry.
fn product(
    kernel: Kernel,
    (m, k, n): (usize, usize, usize),
    (dst, d, accumulate): (&mut [f32], Strided, bool),
    (a, sa): (&[f32], Strided),
    (b, sb): (&[f32], Strided),
    operands: Operands,
) {
    assert!(
        kernel.available(),
        "{} is not available here",
        kernel.name()
    );
    if m == 0 || n == 0 {
        return;
    }
    d.check(m, n, dst.len(), "bf16 matmul destination");
    sa.check(m, k, a.len(), "bf16 matmul left operand");
    sb.check(k, n, b.len(), "bf16 matmul right operand");
    let (dims, dst) = ((m, k, n), (dst, d, accumulate));
    if k == 0 || kernel == Kernel::Emulated {
        return match operands {
            Operands::Plain => emulated(dims, dst, (a, sa), (b, sb), false),
            Operands::RightRounded => emulated(dims, dst, (a, sa), (b, sb), true),
            Operands::Masked(mask) => emulated_masked(dims, dst, (a, sa), (b, sb), mask),
        };
    }
    let mask = match operands {
        Operands::Masked(mask) => mask,
        _ => Mask::None,
    };
    with_packed(dims, (a, sa), (b, sb), |left, right| {
        multiply_masked(kernel, dst, (left, right), mask)
    });
}

/// `a` and `b` packed into this thread's reused buffers (`PACKED`), handed to `work`.
fn with_packed<R>(
    (m, k, n): (usize, usize, usize),
    a: (&[f32], Strided),
    b: (&[f32], Strided),
    work: impl FnOnce(&PackedLeft, &PackedRight) -> R,
) -> R {
    let packing = crate::profile::span("bf16 products: packing");
    let (left, right) = PACKED.with(|p| std::mem::take(&mut *p.borrow_mut()));
    let left = PackedLeft::reusing(left, (m, k), a);
    let right = PackedRight::reusing(right, (k, n), b);
    drop(packing);
    let result = work(&left, &right);
    PACKED.with(|p| *p.borrow_mut() = (left.data, right.data));
    result
}

thread_local! {
    /// The packed operands of this thread's last product, whose memory the next reuses.
    static PACKED: std::cell::RefCell<(Vec<u16>, Vec<u16>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
}

/// FLOP/s of a row-major [rows x k] x [k x n] product by `kernel` on every thread
/// (packing and conversion included), best of five.
pub fn measured_flops(kernel: Kernel, (rows, k, n): (usize, usize, usize)) -> f64 {
    crate::matmul::time_product((rows, k, n), |c, a, b| {
        matmul_bf16_with(
            kernel,
            (rows, k, n),
            (c, Strided::rows(0, n), false),
            (a, Strided::rows(0, k)),
            (b, Strided::rows(0, n)),
        )
    })
}

#[cfg(test)]
mod tests;

/// Prints each kernel's FLOP/s against f32 on a few shapes (`cargo test --release
/// bf16_speeds -- --ignored --nocapture`): a measurement, not a check.
#[cfg(test)]
#[test]
#[ignore]
fn bf16_speeds() {
    for dims in [
        (2048, 2048, 2048),
        (2048, 512, 512),
        (2048, 512, 2048),
        (2048, 2048, 512),
        (512, 2048, 512),
    ] {
        let f32_flops = crate::matmul::measured_flops(dims.0, dims.1, dims.2);
        let mut line = format!("{dims:?}: f32 {:.0} GFLOP/s", f32_flops / 1e9);
        for kernel in Kernel::ALL.into_iter().filter(|k| k.available()) {
            let flops = measured_flops(kernel, dims);
            line += &format!(
                "; {} {:.0} ({:.2}x)",
                kernel.name(),
                flops / 1e9,
                flops / f32_flops
            );
        }
        println!("{line}");
    }
}
