use super::*;
use crate::matmul::Strided;
use format::{from_bf16, to_bf16};

/// Deterministic operands of mixed sign and magnitude, none of them exactly bf16.
fn operand(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            (unit - 0.5) * 3.0 + 1e-3
        })
        .collect()
}

/// The product of the bf16-rounded operands in f64, and the sum of |terms| per entry.
fn reference(
    (m, k, n): (usize, usize, usize),
    (a, sa): (&[f32], Strided),
    (b, sb): (&[f32], Strided),
) -> (Vec<f64>, Vec<f64>) {
    let r = |x: f32| f64::from(from_bf16(to_bf16(x)));
    let mut out = vec![0.0; m * n];
    let mut size = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                let term = r(a[sa.offset + i * sa.row + p * sa.col])
                    * r(b[sb.offset + p * sb.row + j * sb.col]);
                out[i * n + j] += term;
                size[i * n + j] += term.abs();
            }
        }
    }
    (out, size)
}

/// Every available kernel against the f64 product of the rounded operands: exact up to
/// f32 accumulation (the bound is k f32 roundings of the sum of |terms|).
fn check_all(dims: (usize, usize, usize), transposed: (bool, bool), accumulate: bool) {
    let (m, k, n) = dims;
    let a = operand(m * k + 3, 1);
    let b = operand(k * n + 5, 2);
    let sa = if transposed.0 {
        Strided::rows(3, m).t()
    } else {
        Strided::rows(3, k)
    };
    let sb = if transposed.1 {
        Strided::rows(5, k).t()
    } else {
        Strided::rows(5, n)
    };
    let (want, size) = reference(dims, (&a, sa), (&b, sb));
    for kernel in Kernel::ALL.into_iter().filter(|k| k.available()) {
        let start = operand(m * n, 3);
        let mut got = start.clone();
        matmul_bf16_with(
            kernel,
            dims,
            (&mut got, Strided::rows(0, n), accumulate),
            (&a, sa),
            (&b, sb),
        );
        for i in 0..m * n {
            let base = if accumulate { f64::from(start[i]) } else { 0.0 };
            let want = base + want[i];
            let bound = (k as f64 + 2.0) * f64::from(f32::EPSILON) * (size[i] + base.abs()) + 1e-30;
            let error = (f64::from(got[i]) - want).abs();
            assert!(
                error <= bound,
                "{} {dims:?} entry {i}: {} vs {want} (error {error:e}, bound {bound:e})",
                kernel.name(),
                got[i]
            );
        }
    }
}

#[test]
fn every_kernel_multiplies_rounded_operands_exactly_up_to_accumulation() {
    check_all((1, 1, 1), (false, false), false);
    check_all((17, 33, 19), (false, false), false);
    check_all((40, 70, 33), (true, false), true);
    check_all((64, 128, 96), (false, true), false);
    check_all((33, 512, 65), (true, true), true);
    // Several slabs of the inner dimension and several tasks, added to what is there.
    check_all((96, 600, 544), (true, false), true);
}

#[test]
fn a_product_over_nothing_writes_zeros_or_adds_nothing() {
    for kernel in Kernel::ALL.into_iter().filter(|k| k.available()) {
        let mut c = vec![7.0f32; 6];
        matmul_bf16_with(
            kernel,
            (2, 0, 3),
            (&mut c, Strided::rows(0, 3), true),
            (&[], Strided::rows(0, 0)),
            (&[], Strided::rows(0, 3)),
        );
        assert_eq!(c, vec![7.0; 6]);
        matmul_bf16_with(
            kernel,
            (2, 0, 3),
            (&mut c, Strided::rows(0, 3), false),
            (&[], Strided::rows(0, 0)),
            (&[], Strided::rows(0, 3)),
        );
        assert_eq!(c, vec![0.0; 6]);
    }
}

#[test]
fn a_strided_destination_receives_only_its_elements() {
    // The result written transposed into a wider buffer: every other element untouched.
    let (m, k, n) = (35, 40, 20);
    let (a, b) = (operand(m * k, 4), operand(k * n, 5));
    let view = Strided {
        offset: 2,
        row: 1,
        col: m + 3,
    };
    for kernel in Kernel::ALL.into_iter().filter(|k| k.available()) {
        let mut c = vec![f32::NAN; 2 + (m + 3) * n];
        matmul_bf16_with(
            kernel,
            (m, k, n),
            (&mut c, view, false),
            (&a, Strided::rows(0, k)),
            (&b, Strided::rows(0, n)),
        );
        let plain = matmul_bf16_new(
            (m, k, n),
            (&a, Strided::rows(0, k)),
            (&b, Strided::rows(0, n)),
        );
        for (at, v) in c.iter().enumerate() {
            let inside = at >= 2 && (at - 2) % (m + 3) < m;
            assert_eq!(v.is_nan(), !inside, "{} at {at}", kernel.name());
            if inside {
                let (i, j) = ((at - 2) % (m + 3), (at - 2) / (m + 3));
                assert!((v - plain[i * n + j]).abs() <= 1e-4 * plain[i * n + j].abs().max(1.0));
            }
        }
    }
}

#[test]
fn the_chosen_kernel_runs_here() {
    assert!(Kernel::chosen().available());
    // On a CPU with AMX-BF16 under Linux, the tiles are granted and chosen.
    if Kernel::Amx.available() {
        assert_eq!(Kernel::chosen(), Kernel::Amx);
    }
}

#[test]
fn views_with_distinct_elements_are_told_from_overlapping_ones() {
    assert!(Strided::rows(0, 4).elements_distinct(3, 4));
    assert!(Strided::rows(0, 4).t().elements_distinct(4, 3));
    assert!(!Strided {
        offset: 0,
        row: 2,
        col: 1
    }
    .elements_distinct(3, 4));
    assert!(!Strided {
        offset: 0,
        row: 0,
        col: 1
    }
    .elements_distinct(3, 4));
    assert!(Strided {
        offset: 0,
        row: 0,
        col: 1
    }
    .elements_distinct(1, 4));
}

#[test]
fn masked_products_skip_only_blocks_that_do_not_count() {
    let kernels = [Kernel::Amx, Kernel::Avx512Bf16]
        .into_iter()
        .filter(|k| k.available());
    let s = 100; // four blocks of 32, the last partial
    let block = |i: usize| i / 32;
    for kernel in kernels {
        for mask in [
            Mask::ResultAboveDiagonal,
            Mask::LeftAboveDiagonal,
            Mask::LeftBelowDiagonal,
        ] {
            // The left operand zero where the mask says it is.
            let mut a = operand(s * s, 7);
            for (at, x) in a.iter_mut().enumerate() {
                let (row, inner) = (block(at / s), block(at % s));
                let zero = match mask {
                    Mask::LeftAboveDiagonal => inner > row,
                    Mask::LeftBelowDiagonal => inner < row,
                    _ => false,
                };
                if zero {
                    *x = 0.0;
                }
            }
            let b = operand(s * s, 8);
            let view = Strided::rows(0, s);
            let (want, size) = reference((s, s, s), (&a, view), (&b, view));
            let start = operand(s * s, 9);
            let mut got = start.clone();
            let dst = (&mut got[..], view, true);
            matmul_bf16_masked(kernel, (s, s, s), dst, (&a, view), (&b, view), mask);
            for i in 0..s * s {
                let (row, col) = (block(i / s), block(i % s));
                let base = f64::from(start[i]);
                if mask == Mask::ResultAboveDiagonal && col > row {
                    assert_eq!(got[i], start[i], "{mask:?}: masked entry {i} written");
                    continue;
                }
                let bound = (s as f64 + 2.0) * f64::from(f32::EPSILON) * (size[i] + base.abs());
                let error = (f64::from(got[i]) - base - want[i]).abs();
                assert!(
                    error <= bound,
                    "{} {mask:?} entry {i}: error {error:e}",
                    kernel.name()
                );
            }
        }
    }
}
