//! The tiled kernels' side of a product: operands packed once (`Packed`), the tasks that
//! multiply them block by block (AMX or AVX512-BF16), and the write-back of the sums.

use rayon::prelude::*;

use crate::matmul::Strided;

use super::format::{round_up, BLOCK, TILE_K, TILE_LEN};
use super::pack::{pack_left, pack_right};
use super::{amx, avx512, Kernel};

// A mask's blocks are the kernels' blocks along the inner dimension too.
const _: () = assert!(BLOCK == TILE_K);

/// An operand packed for the kernels, as the left (`Left`) or right (`Right`) factor.
pub struct Packed<Side> {
    pub(super) data: Vec<u16>,
    /// Where the panels begin in `data` (a cache-line boundary).
    start: usize,
    /// Rows and columns of the operand as multiplied: [m x k] left, [k x n] right.
    dims: (usize, usize),
    side: std::marker::PhantomData<Side>,
}

/// The left factor: tiles of 16 rows x 32 inner values.
pub struct Left;
/// The right factor: pair-interleaved tiles of 16 columns (a weight packed once serves
/// many products).
pub struct Right;

/// A left operand [m x k] packed for the kernels.
pub type PackedLeft = Packed<Left>;
/// A right operand [k x n] packed for the kernels.
pub type PackedRight = Packed<Right>;

/// How a side packs.
pub trait Side {
    const NAME: &'static str;
    /// Packs into `into`; returns where the panels begin.
    fn pack(dims: (usize, usize), x: &[f32], view: Strided, into: &mut Vec<u16>) -> usize;
}

impl Side for Left {
    const NAME: &'static str = "bf16 matmul left operand";
    fn pack(dims: (usize, usize), x: &[f32], view: Strided, into: &mut Vec<u16>) -> usize {
        pack_left(dims, x, view, into)
    }
}

impl Side for Right {
    const NAME: &'static str = "bf16 matmul right operand";
    fn pack(dims: (usize, usize), x: &[f32], view: Strided, into: &mut Vec<u16>) -> usize {
        pack_right(dims, x, view, into)
    }
}

impl<S: Side> Packed<S> {
    /// `x` [rows x cols] seen through `view`. Panics if the view does not fit `x`.
    pub fn new(dims: (usize, usize), x: (&[f32], Strided)) -> Self {
        Self::reusing(Vec::new(), dims, x)
    }

    pub(super) fn reusing(
        mut data: Vec<u16>,
        (rows, cols): (usize, usize),
        (x, view): (&[f32], Strided),
    ) -> Self {
        view.check(rows, cols, x.len(), S::NAME);
        let start = S::pack((rows, cols), x, view, &mut data);
        Packed {
            data,
            start,
            dims: (rows, cols),
            side: std::marker::PhantomData,
        }
    }
}

/// `dst (+)= left @ right` by a tiled kernel (`Kernel::Amx` or `Kernel::Avx512Bf16`),
/// on all threads (one inside `crate::matmul::one_per_thread`). Panics if the kernel is
/// not available or not tiled, if the inner dimensions differ or are 0, or if the view
/// does not fit `dst`.
pub fn multiply(
    kernel: Kernel,
    dst: (&mut [f32], Strided, bool),
    left: &PackedLeft,
    right: &PackedRight,
) {
    multiply_masked(kernel, dst, (left, right), Mask::None);
}

/// Which 32 x 32 blocks of a product a mask lets the kernels skip (causal attention's
/// products: the masked triangle's scores are never read, its probabilities are zero).
/// Blocks are counted in 32s along rows, columns and the inner dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mask {
    /// Every block.
    None,
    /// Result blocks above the diagonal (column block > row block) are left unwritten.
    ResultAboveDiagonal,
    /// The left operand is zero above its diagonal: row block `i` sums inner blocks
    /// `0..=i` only.
    LeftAboveDiagonal,
    /// The left operand is zero below its diagonal: row block `i` sums inner blocks from
    /// `i` on only.
    LeftBelowDiagonal,
}

impl Mask {
    /// The column blocks of row block `bi` computed, of `cols` (a range's end).
    pub(super) fn column_end(self, bi: usize, cols: usize) -> usize {
        match self {
            Mask::ResultAboveDiagonal => cols.min(bi + 1),
            _ => cols,
        }
    }

    /// The inner tiles (32 values each, as the blocks) row block `bi` sums, of `tiles`.
    pub(super) fn inner(self, bi: usize, tiles: usize) -> std::ops::Range<usize> {
        match self {
            Mask::LeftAboveDiagonal => 0..tiles.min(bi + 1),
            Mask::LeftBelowDiagonal => bi.min(tiles)..tiles,
            _ => 0..tiles,
        }
    }
}

/// `multiply`, skipping the blocks `mask` names. Panics as `multiply`.
pub fn multiply_masked(
    kernel: Kernel,
    (dst, d, accumulate): (&mut [f32], Strided, bool),
    (left, right): (&PackedLeft, &PackedRight),
    mask: Mask,
) {
    let (m, n) = result_dims(kernel, left, right);
    if m == 0 || n == 0 {
        return;
    }
    d.check(m, n, dst.len(), "bf16 matmul destination");
    let out = Destination {
        ptr: dst.as_mut_ptr(),
        view: d,
        dims: (m, n),
        accumulate,
        then: &|_, _, _| {},
    };
    // SAFETY: the view lies inside `dst` (checked above), borrowed mutably for the call.
    unsafe { tiled(kernel, &out, (left, right), mask) };
}

/// The [m x n] of `left @ right`. Panics unless `kernel` is a tiled kernel available
/// here and the inner dimensions agree and are not 0.
fn result_dims(kernel: Kernel, left: &PackedLeft, right: &PackedRight) -> (usize, usize) {
    assert!(kernel != Kernel::Emulated && kernel.available());
    let ((m, k), (k2, n)) = (left.dims, right.dims);
    assert!(k == k2 && k > 0, "inner dimensions {k} and {k2}");
    (m, n)
}

/// The tasks of a product into `out`.
///
/// # Safety
/// `out`'s view must lie inside an allocation the caller holds exclusively for the call
/// (initialised unless every element is overwritten: `accumulate` false).
unsafe fn tiled(
    kernel: Kernel,
    out: &Destination<'_>,
    (left, right): (&PackedLeft, &PackedRight),
    mask: Mask,
) {
    let _tiles = crate::profile::span("bf16 products: tiles and write-back");
    let ((m, k), (_, n), d) = (left.dims, right.dims, out.view);
    let (left, right) = (&left.data[left.start..], &right.data[right.start..]);
    let tiles = round_up(k, TILE_K) / TILE_K;
    let panel = tiles * TILE_LEN;
    let (row_blocks, col_blocks) = (round_up(m, BLOCK) / BLOCK, round_up(n, BLOCK) / BLOCK);
    let runs_per_row = col_blocks.div_ceil(COLUMN_RUN);
    // One task: a block row (32 rows) by a run of column blocks, its sums in `acc`.
    let task = |(tiles_here, acc): &mut (Option<amx::Tiles>, Vec<f32>), at: usize| {
        let (bi, run) = (at / runs_per_row, at % runs_per_row);
        let (j0, j1) = (run * COLUMN_RUN, ((run + 1) * COLUMN_RUN).min(col_blocks));
        let (j1, inner) = (mask.column_end(bi, j1), mask.inner(bi, tiles));
        if j0 >= j1 {
            return; // every block of the task is masked
        }
        let row = (j1 - j0) * BLOCK + ROW_PAD;
        // The sums from a cache-line boundary: tile loads and stores that straddle lines
        // are slower.
        acc.resize(BLOCK * row + 15, 0.0);
        let start = (acc.as_ptr() as usize).wrapping_neg() % 64 / 4;
        let acc = &mut acc[start..];
        if inner.is_empty() {
            acc.fill(0.0); // a mask left nothing to sum
        }
        let a = two_panels(left, panel, bi);
        // The inner dimension in slabs: the left slab (16 KiB) stays in L1 while the
        // right ones pass.
        for k0 in inner.clone().step_by(INNER_RUN) {
            let run_tiles = INNER_RUN.min(inner.end - k0);
            let a = a.map(|p| &p[k0 * TILE_LEN..]);
            for bj in j0..j1 {
                let b = two_panels(right, panel, bj).map(|p| &p[k0 * TILE_LEN..]);
                let sums = Accumulator {
                    acc: &mut acc[(bj - j0) * BLOCK..],
                    row,
                    first: k0 == inner.start,
                };
                match tiles_here {
                    Some(amx) => amx.block(a, b, run_tiles, sums),
                    None => avx512::block(a, b, run_tiles, sums),
                }
            }
        }
        // SAFETY: tasks cover disjoint parts of a view whose elements are distinct
        // (checked before going parallel), inside `dst` (checked above), which is
        // borrowed mutably for this whole call.
        unsafe { out.write(bi * BLOCK, j0 * BLOCK, (acc, row)) };
    };
    let configure = || {
        let tiles = (kernel == Kernel::Amx).then(|| amx::Tiles::configure().expect("AMX granted"));
        (tiles, Vec::new())
    };
    let tasks = row_blocks * runs_per_row;
    if tasks > 1 && crate::matmul::may_use_threads() && d.elements_distinct(m, n) {
        (0..tasks).into_par_iter().for_each_init(configure, task);
    } else {
        let mut state = configure();
        (0..tasks).for_each(|at| task(&mut state, at));
    }
}

/// Column blocks per task (512 columns: the task's sums, 64 KiB, stay in L2).
const COLUMN_RUN: usize = 16;
/// Tiles of the inner dimension per slab (256 values).
const INNER_RUN: usize = 8;
/// A task's rows of sums are a cache line (16 f32) longer than its columns, so the rows
/// of a tile do not all fall in the same few cache sets.
const ROW_PAD: usize = 16;

/// Where a kernel adds a 32 x 32 block's sums: the block's first row at the start of
/// `acc`, rows `row` apart; `first`: the first slab, overwrite.
pub struct Accumulator<'a> {
    pub acc: &'a mut [f32],
    pub row: usize,
    pub first: bool,
}

/// Panels 2 `block` and 2 `block` + 1 of `len` values each.
fn two_panels(packed: &[u16], len: usize, block: usize) -> [&[u16]; 2] {
    [
        &packed[2 * block * len..][..len],
        &packed[(2 * block + 1) * len..][..len],
    ]
}

/// A new row-major `left @ right` by a tiled kernel (as `multiply`).
pub fn multiply_new(kernel: Kernel, left: &PackedLeft, right: &PackedRight) -> Vec<f32> {
    multiply_new_then(kernel, left, right, &|_, _, _| {})
}

/// Elementwise work on a product's values as they are written: `then(row, first
/// column, values)` on each run of a row, while the values are still in cache.
pub type Then<'a> = &'a (dyn Fn(usize, usize, &mut [f32]) + Sync);

/// `multiply_new`, each run of the result's rows passed through `then` as written.
pub fn multiply_new_then(
    kernel: Kernel,
    left: &PackedLeft,
    right: &PackedRight,
    then: Then,
) -> Vec<f32> {
    let (m, n) = result_dims(kernel, left, right);
    let mut dst: Vec<f32> = Vec::with_capacity(m * n);
    let out = Destination {
        ptr: dst.as_mut_ptr(),
        view: Strided::rows(0, n),
        dims: (m, n),
        accumulate: false,
        then,
    };
    // SAFETY: `out` is a fresh allocation of m x n values, which `tiled` writes
    // every one of (not reading any: `accumulate` is false) before `set_len` exposes them.
    unsafe {
        tiled(kernel, &out, (left, right), Mask::None);
        dst.set_len(m * n);
    }
    dst
}

/// Where the blocks' sums go.
struct Destination<'a> {
    ptr: *mut f32,
    view: Strided,
    dims: (usize, usize),
    accumulate: bool,
    /// On each run of a row's sums before they are written (or added).
    then: Then<'a>,
}

// SAFETY: threads write disjoint blocks only (see `write`); `then` is `Sync`.
unsafe impl Sync for Destination<'_> {}

impl Destination<'_> {
    /// Writes (or adds) the sums (rows `row` apart) of the result's rows from `row0` and
    /// columns from `col0`, as far as the result and the sums reach.
    ///
    /// # Safety
    /// The view must lie inside the destination allocation, and no other thread may
    /// touch these elements meanwhile.
    unsafe fn write(&self, row0: usize, col0: usize, (sums, row): (&mut [f32], usize)) {
        let (m, n) = self.dims;
        let v = self.view;
        let rows = BLOCK.min(m - row0);
        let cols = (row - ROW_PAD).min(n - col0);
        for r in 0..rows {
            let sums = &mut sums[r * row..][..cols];
            (self.then)(row0 + r, col0, sums);
            let sums = &*sums;
            let first = v.offset + (row0 + r) * v.row + col0 * v.col;
            if v.col == 1 {
                // SAFETY: the row's `cols` elements are inside the view, per the caller.
                let out = unsafe { std::slice::from_raw_parts_mut(self.ptr.add(first), cols) };
                if self.accumulate {
                    out.iter_mut().zip(sums).for_each(|(o, s)| *o += s);
                } else {
                    out.copy_from_slice(sums);
                }
                continue;
            }
            for (c, &sum) in sums.iter().enumerate() {
                // SAFETY: inside the view (row < m, col < n), per the caller.
                let at = unsafe { &mut *self.ptr.add(first + c * v.col) };
                *at = if self.accumulate { *at + sum } else { sum };
            }
        }
    }
}
