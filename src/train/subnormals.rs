//! Subnormal floats flushed to zero on the CPU while training.
//!
//! At high learning rates attention logits grow to thousands (the instability a
//! learning-rate sweep measures) and softmax probabilities and their gradients fall
//! below f32's smallest normal number (1.2e-38). x86 cores handle such subnormal operands
//! of the matrix products in microcode, hundreds of cycles each: a run of
//! `lr_sensitivity_cpu` at 10x its base rate took 4-5x as long as one at the base rate,
//! 83% of it in the f32 GEMM kernels. With the FTZ and DAZ bits of MXCSR set, subnormal
//! results and inputs are zero: the values change by less than 1.2e-38 each, far below
//! f32's rounding of any value a loss depends on. GPUs' fast paths do the same.
//! MXCSR is per thread: it is set on the calling thread and on every rayon worker.

/// Sets flush-to-zero and denormals-are-zero on this thread and every rayon worker
/// (x86-64 only; elsewhere nothing changes).
pub fn flush_to_zero() {
    set_on_this_thread();
    rayon::broadcast(|_| set_on_this_thread());
}

/// Whether this thread flushes subnormals to zero.
pub fn flushing() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        mxcsr() & FTZ_DAZ == FTZ_DAZ
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6).
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

#[cfg(target_arch = "x86_64")]
fn mxcsr() -> u32 {
    let mut value: u32 = 0;
    // SAFETY: stmxcsr stores the 32-bit control register to the given address.
    unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack)) };
    value
}

fn set_on_this_thread() {
    #[cfg(target_arch = "x86_64")]
    {
        let value = mxcsr() | FTZ_DAZ;
        // SAFETY: ldmxcsr loads a valid MXCSR value (the current one with two mode bits
        // set; no reserved bit is touched).
        unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn subnormal_products_become_zero_on_every_worker() {
        flush_to_zero();
        assert!(flushing());
        let tiny = std::hint::black_box(1e-30f32);
        // 1e-30 * 1e-10 = 1e-40 is subnormal: flushed to zero.
        assert_eq!(tiny * std::hint::black_box(1e-10f32), 0.0);
        let all: Vec<bool> = rayon::broadcast(|_| flushing());
        assert!(all.iter().all(|&f| f), "{all:?}");
        // Normal numbers are untouched.
        assert_eq!(std::hint::black_box(1.5f32) * 2.0, 3.0);
    }
}
