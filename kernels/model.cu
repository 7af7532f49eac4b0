// Kernels of the forward pass's custom operations on CUDA (src/model/cuda_ops.rs).
// Compiled at run time with NVRTC, like muon.cu; self-contained (no includes).
//
// Sizes are unsigned long long (Rust u64).

typedef unsigned long long u64;

// dst[i] += src[i]: a gradient passed through unchanged to an operation's input.
extern "C" __global__ void add_in_place(float *dst, const float *src, u64 n) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    dst[i] += src[i];
}
