//! The CUDA kernels this binary compiles at run time: their sources (`kernels/*.cu`,
//! embedded in the binary) and loading each file once into a device.
//!
//! NVRTC compiles them with no options and no include paths, so nothing of the build
//! machine is needed where the binary runs (dfdx's own run-time kernels take include
//! paths from the build machine; the forward pass avoids them, see `model::composed`).

use std::sync::Arc;

use cudarc::driver::{CudaDevice, CudaFunction};

/// One kernel source file and the functions loaded from it.
pub struct KernelFile {
    /// The file under `kernels/`, for messages.
    pub path: &'static str,
    /// The module name the device knows it by.
    pub module: &'static str,
    pub source: &'static str,
    pub functions: &'static [&'static str],
}

/// Muon's element-wise kernels (`optim::cuda_muon`).
pub const MUON: KernelFile = KernelFile {
    path: "kernels/muon.cu",
    module: "rankprobe_muon",
    source: include_str!("../kernels/muon.cu"),
    functions: &[
        "momentum",
        "sum_squares",
        "divide_by_norm",
        "scale",
        "round_bf16",
        "to_bf16",
        "copy_range",
        "transpose",
    ],
};

/// The forward pass's custom operations (`model::cuda_ops`).
pub const MODEL: KernelFile = KernelFile {
    path: "kernels/model.cu",
    module: "rankprobe_model",
    source: include_str!("../kernels/model.cu"),
    functions: &["add_in_place"],
};

/// Every file the binary compiles at run time.
pub const ALL: [&KernelFile; 2] = [&MUON, &MODEL];

/// Compiles `file` with NVRTC and loads it into `dev`, unless it is loaded already.
pub fn load(dev: &Arc<CudaDevice>, file: &KernelFile) -> Result<(), String> {
    if file.functions.iter().all(|f| dev.has_func(file.module, f)) {
        return Ok(());
    }
    let ptx = cudarc::nvrtc::compile_ptx(file.source)
        .map_err(|e| format!("compiling {} with NVRTC: {e:?}", file.path))?;
    dev.load_ptx(ptx, file.module, file.functions)
        .map_err(|e| format!("loading {}: {e:?}", file.path))
}

/// The kernel `name` of `file` on `dev`, loading the file first if needed.
pub fn function(
    dev: &Arc<CudaDevice>,
    file: &KernelFile,
    name: &str,
) -> Result<CudaFunction, String> {
    load(dev, file)?;
    dev.get_func(file.module, name)
        .ok_or_else(|| format!("{} has no kernel `{name}`", file.path))
}

#[cfg(test)]
mod tests {
    /// NVRTC needs no GPU: every kernel file must compile wherever the CUDA build runs,
    /// with no include paths (nothing of the build machine), so they include nothing:
    /// then this compilation is the one every machine does.
    #[test]
    fn every_kernel_file_compiles_with_nvrtc() {
        for file in super::ALL {
            assert!(
                !file.source.contains("#include"),
                "{} must be self-contained: at run time NVRTC has no include paths",
                file.path
            );
            let ptx = cudarc::nvrtc::compile_ptx(file.source)
                .unwrap_or_else(|e| panic!("{} does not compile: {e:?}", file.path));
            let text = ptx.to_src();
            for name in file.functions {
                assert!(
                    text.contains(&format!(".entry {name}")),
                    "{}: {name} missing",
                    file.path
                );
            }
        }
    }
}
