//! f32 matrix products on strided views of slices, bounds-checked, through the `gemm`
//! crate (AVX-512 or AVX2 kernels chosen at run time): single-threaded for kernels that
//! run many small products inside their own parallel loops, on every thread for the
//! model's projections and Newton-Schulz.

/// Where a matrix lives in a slice: element (r, c) is at `offset + r * row + c * col`.
#[derive(Debug, Clone, Copy)]
pub struct Strided {
    pub offset: usize,
    pub row: usize,
    pub col: usize,
}

impl Strided {
    /// Rows of `row` elements apart, columns adjacent (row-major).
    pub fn rows(offset: usize, row: usize) -> Self {
        Strided {
            offset,
            row,
            col: 1,
        }
    }

    /// The same matrix from its element (r, c) on.
    pub fn at(self, r: usize, c: usize) -> Self {
        Strided {
            offset: self.index(r, c),
            ..self
        }
    }

    /// Where element (r, c) lies.
    pub fn index(&self, r: usize, c: usize) -> usize {
        self.offset + r * self.row + c * self.col
    }

    /// The transpose of this view.
    pub fn t(self) -> Self {
        Strided {
            offset: self.offset,
            row: self.col,
            col: self.row,
        }
    }

    /// Whether the `rows x cols` elements of this view are distinct positions (rows
    /// apart by at least a row's extent, or columns by a column's).
    pub fn elements_distinct(&self, rows: usize, cols: usize) -> bool {
        let extent = |stride: usize, count: usize| stride * count.saturating_sub(1) + 1;
        (self.col > 0 && self.row >= extent(self.col, cols))
            || (self.row > 0 && self.col >= extent(self.row, rows))
            || rows <= 1 && (cols <= 1 || self.col > 0)
            || cols <= 1 && self.row > 0
    }

    /// Panics unless a `rows x cols` matrix at this view fits in `len` elements.
    pub fn check(&self, rows: usize, cols: usize, len: usize, what: &str) {
        if rows == 0 || cols == 0 {
            return;
        }
        let last = self.offset + (rows - 1) * self.row + (cols - 1) * self.col;
        assert!(
            last < len,
            "{what}: a {rows}x{cols} view ends at {last}, past {len}"
        );
    }
}

/// `dst (+)= scale * a @ b` with `a` [m x k], `b` [k x n], `dst` [m x n]; `accumulate`
/// adds to `dst` instead of overwriting it. On the calling thread.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    dims: (usize, usize, usize),
    dst: &mut [f32],
    d: Strided,
    accumulate: bool,
    a: &[f32],
    sa: Strided,
    b: &[f32],
    sb: Strided,
    scale: f32,
) {
    product(
        dims,
        (dst, d, accumulate),
        (a, sa),
        (b, sb),
        scale,
        gemm::Parallelism::None,
    );
}

/// `matmul` on all of rayon's threads, for large products; on the calling thread alone
/// inside `one_per_thread`.
pub fn matmul_threaded(
    dims: (usize, usize, usize),
    dst: (&mut [f32], Strided, bool),
    a: (&[f32], Strided),
    b: (&[f32], Strided),
) {
    matmul_scaled(dims, dst, a, b, 1.0);
}

/// `matmul_threaded` adding `scale * a @ b`.
pub fn matmul_scaled(
    dims: (usize, usize, usize),
    dst: (&mut [f32], Strided, bool),
    a: (&[f32], Strided),
    b: (&[f32], Strided),
    scale: f32,
) {
    product(dims, dst, a, b, scale, threads());
}

/// A new [m x n] row-major `a @ b`, on all threads: the destination is written without
/// being zeroed first.
pub fn matmul_new(
    (m, k, n): (usize, usize, usize),
    a: (&[f32], Strided),
    b: (&[f32], Strided),
) -> Vec<f32> {
    let mut dst: Vec<f32> = Vec::with_capacity(m * n);
    if m == 0 || n == 0 {
        return dst;
    }
    if k == 0 {
        dst.resize(m * n, 0.0);
        return dst;
    }
    // SAFETY: `dst` has room for the m x n row-major view, which gemm writes without
    // reading it (`accumulate` is false) before `set_len` exposes it; it is a fresh
    // allocation, so it aliases neither operand.
    unsafe {
        gemm_checked(
            (m, k, n),
            (dst.as_mut_ptr(), Strided::rows(0, n), false),
            a,
            b,
            1.0,
            threads(),
        );
        dst.set_len(m * n);
    }
    dst
}

thread_local! {
    /// Set while this thread runs one item of a parallel loop whose items each make
    /// their own products (`one_per_thread`).
    static ONE_PER_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Side of the square matrix product that measures the CPU's peak.
pub const PEAK_SIDE: usize = 2048;

/// FLOP/s of a [rows x k] x [k x n] f32 product on every thread (the kernels the CPU
/// training uses), best of five: the machine's own limit that training speeds are read
/// against.
pub fn measured_flops(rows: usize, k: usize, n: usize) -> f64 {
    time_product((rows, k, n), |c, a, b| {
        matmul_threaded(
            (rows, k, n),
            (c, Strided::rows(0, n), false),
            (a, Strided::rows(0, k)),
            (b, Strided::rows(0, n)),
        )
    })
}

/// FLOP/s of `product` writing a row-major [m x n] from row-major operands [m x k] and
/// [k x n], best of five.
pub fn time_product(
    (rows, k, n): (usize, usize, usize),
    product: impl Fn(&mut [f32], &[f32], &[f32]),
) -> f64 {
    // Operands of ordinary magnitude (no zeros, no subnormals) so no kernel takes a
    // shortcut or a slow path.
    let fill = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|i| 0.5 + (i.wrapping_mul(2_654_435_761) % 1000) as f32 / 1000.0)
            .collect()
    };
    let (a, b) = (fill(rows * k), fill(k * n));
    let mut c = vec![0.0f32; rows * n];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let started = std::time::Instant::now();
        product(&mut c, &a, &b);
        best = best.min(started.elapsed().as_secs_f64());
    }
    std::hint::black_box(c);
    2.0 * (rows * k * n) as f64 / best
}

/// Runs `f` with the threaded products inside it on the calling thread alone: for the
/// items of a parallel loop that already keeps every thread busy (Muon's matrices), where
/// splitting each product again would only add hand-offs.
pub fn one_per_thread<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the flag when `f` returns or unwinds.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ONE_PER_THREAD.with(|flag| flag.set(self.0));
        }
    }
    let _restore = Restore(ONE_PER_THREAD.with(|flag| flag.replace(true)));
    f()
}

/// Whether a product may spread over rayon's threads here (not inside `one_per_thread`).
pub fn may_use_threads() -> bool {
    !ONE_PER_THREAD.with(|flag| flag.get())
}

fn threads() -> gemm::Parallelism {
    if ONE_PER_THREAD.with(|flag| flag.get()) {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    }
}

fn product(
    (m, k, n): (usize, usize, usize),
    (dst, d, accumulate): (&mut [f32], Strided, bool),
    a: (&[f32], Strided),
    b: (&[f32], Strided),
    scale: f32,
    parallelism: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    d.check(m, n, dst.len(), "matmul destination");
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                for c in 0..n {
                    dst[d.offset + r * d.row + c * d.col] = 0.0;
                }
            }
        }
        return;
    }
    // SAFETY: the destination view lies inside `dst` (checked above), and `dst` is
    // borrowed mutably, so it does not alias `a` or `b`.
    unsafe {
        gemm_checked(
            (m, k, n),
            (dst.as_mut_ptr(), d, accumulate),
            a,
            b,
            scale,
            parallelism,
        );
    }
}

/// `dst (+)= scale * a @ b` through gemm, after checking that the operands' views lie
/// inside their slices (m, k, n all non-zero).
///
/// # Safety
/// The m x n view `d` from `dst` must be valid for writes (and for reads when
/// `accumulate`) and must not overlap `a` or `b`.
unsafe fn gemm_checked(
    (m, k, n): (usize, usize, usize),
    (dst, d, accumulate): (*mut f32, Strided, bool),
    (a, sa): (&[f32], Strided),
    (b, sb): (&[f32], Strided),
    scale: f32,
    parallelism: gemm::Parallelism,
) {
    sa.check(m, k, a.len(), "matmul left operand");
    sb.check(k, n, b.len(), "matmul right operand");
    // SAFETY: the operands' views were checked above; the destination is the caller's.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.add(d.offset),
            d.col as isize,
            d.row as isize,
            accumulate,
            a.as_ptr().add(sa.offset),
            sa.col as isize,
            sa.row as isize,
            b.as_ptr().add(sb.offset),
            sb.col as isize,
            sb.row as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn strided_products_match_a_naive_product() {
        let (m, k, n) = (5, 3, 4);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32).sin()).collect();
        let expected = naive(m, k, n, &a, &b);
        let mut c = vec![1.0; m * n];
        matmul(
            (m, k, n),
            &mut c,
            Strided::rows(0, n),
            false,
            &a,
            Strided::rows(0, k),
            &b,
            Strided::rows(0, n),
            1.0,
        );
        for (x, y) in c.iter().zip(&expected) {
            assert!((x - y).abs() < 1e-5);
        }
        let fresh = matmul_new(
            (m, k, n),
            (&a, Strided::rows(0, k)),
            (&b, Strided::rows(0, n)),
        );
        for (x, y) in fresh.iter().zip(&expected) {
            assert!((x - y).abs() < 1e-5);
        }
        // b stored transposed ([n x k]) and read through a transposed view; accumulate 2x.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        matmul(
            (m, k, n),
            &mut c,
            Strided::rows(0, n),
            true,
            &a,
            Strided::rows(0, k),
            &bt,
            Strided::rows(0, k).t(),
            1.0,
        );
        for (x, y) in c.iter().zip(&expected) {
            assert!((x - 2.0 * y).abs() < 1e-4);
        }
    }

    #[test]
    #[should_panic(expected = "past")]
    fn a_view_past_the_slice_panics() {
        let mut c = vec![0.0; 4];
        let a = vec![0.0; 4];
        matmul(
            (2, 2, 3),
            &mut c,
            Strided::rows(0, 2),
            false,
            &a,
            Strided::rows(0, 2),
            &a,
            Strided::rows(0, 2),
            1.0,
        );
    }
}
