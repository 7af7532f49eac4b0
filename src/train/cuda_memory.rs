//! The CUDA memory pool that dfdx (through cudarc) allocates from: keep freed memory for
//! reuse instead of returning it to the driver at every synchronisation (the loss is read
//! every step, so by default large buffers were released and allocated again each step),
//! and read its high-water mark for `bench`.

use std::ffi::c_void;

use cudarc::driver::{result, sys};

fn default_pool(ordinal: usize) -> Result<sys::CUmemoryPool, String> {
    let device = result::device::get(ordinal as i32).map_err(|e| format!("{e:?}"))?;
    let mut pool = std::ptr::null_mut();
    // SAFETY: `pool` is a valid out-pointer; the device handle comes from the driver.
    unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, device) }
        .result()
        .map_err(|e| format!("{e:?}"))?;
    Ok(pool)
}

fn set(ordinal: usize, attribute: sys::CUmemPool_attribute, mut value: u64) -> Result<(), String> {
    let pool = default_pool(ordinal)?;
    // SAFETY: both attributes set here take a u64 (cuuint64_t).
    unsafe { sys::cuMemPoolSetAttribute(pool, attribute, &mut value as *mut u64 as *mut c_void) }
        .result()
        .map_err(|e| format!("{e:?}"))
}

/// Freed memory stays in the pool (release threshold: unlimited).
pub fn keep_freed_memory(ordinal: usize) -> Result<(), String> {
    set(
        ordinal,
        sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
        u64::MAX,
    )
}

/// Starts a new high-water mark.
pub fn reset_peak(ordinal: usize) -> Result<(), String> {
    set(
        ordinal,
        sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
        0,
    )
}

/// The most memory in use from the pool since `reset_peak`, in bytes.
pub fn peak_bytes(ordinal: usize) -> Result<u64, String> {
    let pool = default_pool(ordinal)?;
    let mut value: u64 = 0;
    // SAFETY: USED_MEM_HIGH is a u64 (cuuint64_t).
    unsafe {
        sys::cuMemPoolGetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
            &mut value as *mut u64 as *mut c_void,
        )
    }
    .result()
    .map_err(|e| format!("{e:?}"))?;
    Ok(value)
}
