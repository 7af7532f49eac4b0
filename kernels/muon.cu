// Muon's element-wise CUDA kernels. The matrix products of Newton-Schulz run through
// cuBLAS; these kernels do everything between them. Compiled at run time with NVRTC
// (src/optim/cuda_muon.rs embeds this file), so a user with a GPU needs no extra step.
//
// Every matrix is row-major f32. Sizes are unsigned long long (Rust u64).

typedef unsigned long long u64;

// buf = buf + (1 - beta) * (grad - buf); dir = nesterov ? grad + beta * (buf - grad) : buf
extern "C" __global__ void momentum(float *buf, const float *grad, float *dir, float beta,
                                    int nesterov, u64 n) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = grad[i];
    float b = buf[i] + (1.0f - beta) * (g - buf[i]);
    buf[i] = b;
    dir[i] = nesterov ? g + beta * (b - g) : b;
}

// out[0] += sum of x[i]^2 (out must be zeroed first). A block reduces in shared memory,
// then one atomic add per block.
extern "C" __global__ void sum_squares(const float *x, float *out, u64 n) {
    __shared__ float partial[1024];
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    float v = i < n ? x[i] : 0.0f;
    partial[threadIdx.x] = v * v;
    __syncthreads();
    for (unsigned int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) atomicAdd(out, partial[0]);
}

// x = x / (sqrt(sumsq[0]) * factor + eps): the Frobenius pre-normalisation, reading the
// norm from device memory so that the host never waits.
extern "C" __global__ void divide_by_norm(float *x, const float *sumsq, float factor,
                                          float eps, u64 n) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    x[i] = x[i] / (sqrtf(sumsq[0]) * factor + eps);
}

// x = x * s
extern "C" __global__ void scale(float *x, float s, u64 n) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    x[i] *= s;
}

__device__ unsigned int bf16_bits(float v) {
    unsigned int bits = __float_as_uint(v);
    if ((bits & 0x7f800000u) == 0x7f800000u) return bits >> 16;  // inf, nan: keep
    return (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;          // nearest, ties to even
}

// x = bf16(x), kept in f32 (the same rounding as the CPU reference's round_bf16).
extern "C" __global__ void round_bf16(float *x, u64 n) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    x[i] = __uint_as_float(bf16_bits(x[i]) << 16);
}

// out = bf16(x) as raw bfloat16 bits, the operand format of a tensor-core GEMM.
extern "C" __global__ void to_bf16(const float *x, unsigned short *out, u64 n) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[i] = (unsigned short)bf16_bits(x[i]);
}

// dst[dst_offset + i] = src[src_offset + i] for i < n
extern "C" __global__ void copy_range(const float *src, u64 src_offset, float *dst,
                                      u64 dst_offset, u64 n) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    dst[dst_offset + i] = src[src_offset + i];
}

// The [rows x cols] matrix at src + src_offset, transposed into dst + dst_offset
// ([cols x rows]).
extern "C" __global__ void transpose(const float *src, u64 src_offset, float *dst,
                                     u64 dst_offset, u64 rows, u64 cols) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    u64 r = i / cols, c = i % cols;
    dst[dst_offset + c * rows + r] = src[src_offset + i];
}
