//! Reductions and softmax over slices, written as loops the compiler vectorises and
//! compiled for AVX-512, AVX2 and the baseline, chosen at run time (`multiversion!`).
//! A plain `iter().sum()` or `fold(max)` runs one element at a time: a float sum may not
//! be reordered, so each add waits for the previous one. Here sixteen partial results
//! (lanes) run side by side and meet at the end, in the same order on every path, so
//! results do not depend on the machine (and no fused multiply-adds are enabled).

use super::exp::exp_one;

/// Defines `fn $name` that runs the `#[inline(always)]` function `$generic`, compiled for
/// AVX-512 or AVX2 when the CPU has them.
macro_rules! multiversion {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = $generic:path;) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) -> $ret {
                    $generic($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) -> $ret {
                    $generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}

const LANES: usize = 16;

/// Folds `xs` into sixteen lanes with `step`, then the lanes together with `combine` and
/// the remainder with `step`, in order.
#[inline(always)]
fn fold_lanes(
    xs: &[f32],
    init: f32,
    step: impl Fn(f32, f32) -> f32,
    combine: impl Fn(f32, f32) -> f32,
) -> f32 {
    let mut lanes = [init; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = step(*lane, x);
        }
    }
    let lanes = lanes.into_iter().fold(init, combine);
    chunks
        .remainder()
        .iter()
        .fold(lanes, |acc, &x| step(acc, x))
}

/// `fold_lanes` over pairs: `step(acc, a, b)`.
#[inline(always)]
fn fold_pairs(a: &[f32], b: &[f32], step: impl Fn(f32, f32, f32) -> f32) -> f32 {
    assert_eq!(a.len(), b.len(), "paired slices differ in length");
    let mut lanes = [0.0f32; LANES];
    let (mut ca, mut cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (ca, cb) in (&mut ca).zip(&mut cb) {
        for ((lane, &a), &b) in lanes.iter_mut().zip(ca).zip(cb) {
            *lane = step(*lane, a, b);
        }
    }
    let lanes = lanes.into_iter().sum::<f32>();
    ca.remainder()
        .iter()
        .zip(cb.remainder())
        .fold(lanes, |acc, (&a, &b)| step(acc, a, b))
}

/// Larger of two values; a NaN in `x` is skipped (as `f32::max` does).
#[inline(always)]
fn larger(m: f32, x: f32) -> f32 {
    if x > m {
        x
    } else {
        m
    }
}

#[inline(always)]
fn max_generic(xs: &[f32]) -> f32 {
    fold_lanes(xs, f32::NEG_INFINITY, larger, larger)
}

#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    fold_pairs(a, b, |acc, a, b| acc + a * b)
}

#[inline(always)]
fn sum_squares_generic(xs: &[f32]) -> f32 {
    fold_lanes(xs, 0.0, |acc, x| acc + x * x, |a, b| a + b)
}

/// Replaces each x with e^(x - shift) and returns their sum.
#[inline(always)]
fn exp_sum_generic(xs: &mut [f32], shift: f32) -> f32 {
    for x in xs.iter_mut() {
        *x = exp_one(*x - shift);
    }
    fold_lanes(xs, 0.0, |acc, x| acc + x, |a, b| a + b)
}

#[inline(always)]
fn softmax_generic(xs: &mut [f32]) -> (f32, f32) {
    let max = max_generic(xs);
    let sum = exp_sum_generic(xs, max);
    let inv = 1.0 / sum;
    xs.iter_mut().for_each(|x| *x *= inv);
    (max, sum)
}

multiversion! {
    /// The dot product of two slices of one length.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 = dot_generic;
}

multiversion! {
    /// The sum of squares.
    pub fn sum_squares(xs: &[f32]) -> f32 = sum_squares_generic;
}

multiversion! {
    /// Replaces each x with e^(x - shift) (shift at least the largest x, so every argument
    /// is <= 0) and returns their sum. (`softmax` runs the same code; this is its test.)
    #[cfg(test)]
    pub fn exp_sum(xs: &mut [f32], shift: f32) -> f32 = exp_sum_generic;
}

multiversion! {
    /// Softmax in place; returns the largest input and the sum of e^(x - largest) (the
    /// log of the normaliser is `max + sum.ln()`).
    pub fn softmax(xs: &mut [f32]) -> (f32, f32) = softmax_generic;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect()
    }

    #[test]
    fn reductions_equal_plain_sums_and_the_generic_path() {
        for n in [0, 1, 15, 16, 17, 100, 257] {
            let (a, b) = (values(n), values(n + 3)[3..].to_vec());
            let plain_dot: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
            let plain_sq: f64 = a.iter().map(|x| f64::from(x * x)).sum();
            assert!((f64::from(dot(&a, &b)) - plain_dot).abs() < 1e-4 * (1.0 + plain_dot.abs()));
            assert!((f64::from(sum_squares(&a)) - plain_sq).abs() < 1e-4 * (1.0 + plain_sq));
            // The vectorised paths compute the same bits as the generic one.
            assert_eq!(dot(&a, &b).to_bits(), dot_generic(&a, &b).to_bits());
            assert_eq!(sum_squares(&a).to_bits(), sum_squares_generic(&a).to_bits());
        }
    }

    #[test]
    fn max_skips_nan_and_softmax_normalises() {
        assert_eq!(max_generic(&[1.0, f32::NAN, 3.0, -2.0]), 3.0);
        assert_eq!(max_generic(&[]), f32::NEG_INFINITY);
        let xs = values(40);
        let mut probs = xs.clone();
        let (m, sum) = softmax(&mut probs);
        assert_eq!(m, xs.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)));
        let expected: f64 = xs.iter().map(|&x| f64::from(x - m).exp()).sum();
        assert!((f64::from(sum) - expected).abs() < 1e-5 * expected);
        for (p, &x) in probs.iter().zip(&xs) {
            let want = f64::from(x - m).exp() / expected;
            assert!((f64::from(*p) - want).abs() < 1e-6, "{p} vs {want}");
        }
        let mut generic = xs.clone();
        softmax_generic(&mut generic);
        assert_eq!(generic, probs);
    }
}
