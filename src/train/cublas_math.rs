//! TF32 for dfdx's matrix products on CUDA.
//!
//! cuBLAS uses TF32 tensor cores for f32 products only when a handle's math mode says so
//! (`cublasSetMathMode`); there is no process-wide switch to turn it on
//! (`NVIDIA_TF32_OVERRIDE` can only turn it off). dfdx creates its handle inside
//! `Cuda::try_build` and keeps it private. So this binary defines `cublasCreate_v2`
//! itself: the linker binds cudarc's calls (and so dfdx's) to this definition rather
//! than to the shared library's, and it calls the library's in turn (found with
//! `dlsym(RTLD_NEXT)`), noting each handle made while `handles_made_by` watches. The
//! device opener sets the math mode of exactly the handle dfdx made; handles made
//! elsewhere (Muon's own) keep cuBLAS's default.

use std::cell::RefCell;
use std::sync::OnceLock;

use cudarc::cublas::sys::{cublasHandle_t, cublasMath_t, cublasSetMathMode, cublasStatus_t};

type Create = unsafe extern "C" fn(*mut cublasHandle_t) -> cublasStatus_t;

thread_local! {
    /// The handles made on this thread while `handles_made_by` runs (None: not watching).
    static WATCHED: RefCell<Option<Vec<usize>>> = const { RefCell::new(None) };
}

/// libcublas's own `cublasCreate_v2`, the next definition after this binary's.
pub fn library_create() -> Option<Create> {
    static ADDRESS: OnceLock<Option<usize>> = OnceLock::new();
    let address = *ADDRESS.get_or_init(|| {
        // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT searches the objects loaded
        // after this one (libcublas, which cudarc links).
        let found = unsafe { libc::dlsym(libc::RTLD_NEXT, c"cublasCreate_v2".as_ptr()) };
        (!found.is_null()).then_some(found as usize)
    });
    // SAFETY: the symbol is libcublas's `cublasCreate_v2`, of exactly this signature.
    address.map(|address| unsafe { std::mem::transmute::<usize, Create>(address) })
}

/// Stands in for libcublas's `cublasCreate_v2` (see the module's doc): creates the
/// handle with the library's function and notes it for `handles_made_by`.
///
/// # Safety
/// As the library's: `handle` points to writable memory for one handle.
#[no_mangle]
pub unsafe extern "C" fn cublasCreate_v2(handle: *mut cublasHandle_t) -> cublasStatus_t {
    let Some(create) = library_create() else {
        eprintln!("rankprobe: libcublas's cublasCreate_v2 was not found (dlsym RTLD_NEXT)");
        return cublasStatus_t::CUBLAS_STATUS_NOT_INITIALIZED;
    };
    // SAFETY: the caller's contract is the library's.
    let status = unsafe { create(handle) };
    if status == cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        // SAFETY: on success the library has written the handle.
        let made = unsafe { *handle } as usize;
        WATCHED.with(|watched| {
            if let Some(list) = watched.borrow_mut().as_mut() {
                list.push(made);
            }
        });
    }
    status
}

/// Runs `open` and returns its result with the cuBLAS handles made meanwhile on this
/// thread, in order.
pub fn handles_made_by<R>(open: impl FnOnce() -> R) -> (R, Vec<cublasHandle_t>) {
    /// Stops watching even if `open` panics.
    struct Watch;
    impl Drop for Watch {
        fn drop(&mut self) {
            WATCHED.with(|watched| watched.borrow_mut().take());
        }
    }
    // The linker takes this module's code from the library archive only for a symbol
    // something asks for; asking here keeps `cublasCreate_v2` in every binary that opens
    // a device, ahead of libcublas's (scripts/build-cuda.sh checks the binaries).
    std::hint::black_box(cublasCreate_v2 as Create);
    WATCHED.with(|watched| *watched.borrow_mut() = Some(Vec::new()));
    let watch = Watch;
    let result = open();
    let made = WATCHED.with(|watched| watched.borrow_mut().take().unwrap_or_default());
    drop(watch);
    (
        result,
        made.into_iter().map(|h| h as cublasHandle_t).collect(),
    )
}

/// Sets `handle`'s f32 products to TF32 tensor cores (`tf32`) or to cuBLAS's default,
/// full f32.
///
/// # Safety
/// `handle` is alive: made by `cublasCreate_v2` and not destroyed yet (e.g. the handle
/// of a dfdx device that is still open).
pub unsafe fn set_tf32(handle: cublasHandle_t, tf32: bool) -> Result<(), String> {
    let mode = if tf32 {
        cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
    } else {
        cublasMath_t::CUBLAS_DEFAULT_MATH
    };
    // SAFETY: the caller's contract.
    let status = unsafe { cublasSetMathMode(handle, mode) };
    match status {
        cublasStatus_t::CUBLAS_STATUS_SUCCESS => Ok(()),
        other => Err(format!("cublasSetMathMode({mode:?}) failed: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without this the math mode of dfdx's handle could not be set: cudarc's calls
    /// must land here, not in libcublas. No GPU needed.
    #[test]
    fn cudarc_calls_this_binarys_cublas_create() {
        let cudarc_create: Create = cudarc::cublas::sys::cublasCreate_v2;
        let ours: Create = cublasCreate_v2;
        assert_eq!(cudarc_create as usize, ours as usize);
        // The binary links libcublas for dfdx's products; this test binary only if it
        // references a library function too.
        std::hint::black_box(cudarc::cublas::sys::cublasSetMathMode as *const ());
        let library = library_create().expect("libcublas's cublasCreate_v2 is found");
        assert_ne!(library as usize, ours as usize);
    }

    #[test]
    fn watching_notes_only_handles_made_inside_and_stops_after() {
        let (value, made) = handles_made_by(|| 7);
        assert_eq!((value, made.len()), (7, 0));
        WATCHED.with(|watched| assert!(watched.borrow().is_none()));
        let outcome = std::panic::catch_unwind(|| handles_made_by(|| panic!("opening failed")));
        assert!(outcome.is_err());
        WATCHED.with(|watched| assert!(watched.borrow().is_none()));
    }
}
