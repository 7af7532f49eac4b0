#!/usr/bin/env bash
# Builds rankprobe with CUDA support on a machine without a GPU or CUDA toolkit (a GPU
# box with CUDA installed can simply run `cargo build --release --features cuda`).
#
#   scripts/build-cuda.sh                 # -> target/cuda/rankprobe (stripped) and .xz
#   scripts/build-cuda.sh check           # cargo check --features cuda --all-targets
#   scripts/build-cuda.sh clippy          # cargo clippy, the same, -D warnings
#   scripts/build-cuda.sh test [FILTER]   # the CUDA build's unit tests that need no GPU
#                                         # (NVRTC compiles, cuBLAS linking), on the stub
#
# What it does (see DESIGN notes, "Building for the GPU without a GPU"):
#  1. installs CUDA 13.0's nvcc, headers, cudart, cuBLAS and NVRTC from PyPI into
#     $RANKPROBE_CUDA_DIR (default ~/.cache/rankprobe/cuda13); 13.0, because PTX from a
#     newer nvcc does not load on a 13.0 driver;
#  2. adds the unversioned .so links the linker wants, and a link-time stub libcuda.so
#     (soname libcuda.so.1; the real driver replaces it at run time);
#  3. puts an `nvidia-smi` shim on PATH that answers compute capability $CUDA_COMPUTE_CAP
#     (9.0 or 90; default 9.0: H100/H200), which dfdx's build script asks for;
#  4. builds `--features cuda` into target/cuda and strips and compresses the binary.
#
# At run time the binary needs libcuda.so.1 (the driver) and libcublas.so.13,
# libcublasLt.so.13, libnvrtc.so.13: e.g. LD_LIBRARY_PATH=<python site-packages>/nvidia/cu13/lib.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cuda_dir="${RANKPROBE_CUDA_DIR:-$HOME/.cache/rankprobe/cuda13}"
# Accept 9.0 or 90: the shim answers like nvidia-smi (9.0); dfdx's build script would
# parse CUDA_COMPUTE_CAP itself as an integer and panic on 9.0, so it is unset below.
cap="${CUDA_COMPUTE_CAP:-9.0}"
case "$cap" in
    *.*) ;;
    [0-9][0-9]) cap="${cap%?}.${cap#?}" ;;
    [0-9][0-9][0-9]) cap="${cap%?}.${cap#??}" ;;
    *) echo "CUDA_COMPUTE_CAP=$cap: expected a compute capability such as 9.0 or 90" >&2; exit 2 ;;
esac
case "$cap" in
    [0-9].[0-9] | [0-9][0-9].[0-9]) ;;
    *) echo "CUDA_COMPUTE_CAP=$cap: expected a compute capability such as 9.0 or 90" >&2; exit 2 ;;
esac
unset CUDA_COMPUTE_CAP
cu="$cuda_dir/nvidia/cu13"

if [ ! -x "$cu/bin/nvcc" ]; then
    echo "installing the CUDA 13.0 toolkit pieces from PyPI into $cuda_dir (about 1.1 GB)"
    python3 -m pip install --quiet --no-deps --target "$cuda_dir" \
        "nvidia-cuda-nvcc==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*" \
        "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*" "nvidia-cublas==13.0.*" \
        "nvidia-cuda-nvrtc==13.0.*"
fi

cd "$cu/lib"
for lib in cublas cublasLt nvrtc cudart; do
    versioned="$(ls lib$lib.so.13* 2>/dev/null | sort | head -n1 || true)"
    if [ -n "$versioned" ] && [ ! -e "lib$lib.so" ]; then
        ln -s "$versioned" "lib$lib.so"
    fi
done

# The stub: every cu* symbol cudarc 0.9 declares, as a function that fails; only for
# linking, never loaded (the driver's libcuda.so.1 comes first at run time).
if [ ! -e "$cu/stub/libcuda.so" ]; then
    mkdir -p "$cu/stub"
    sys_rs="$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.9.*/src/driver/sys.rs 2>/dev/null | head -n1 || true)"
    if [ -z "$sys_rs" ]; then
        (cd "$root" && cargo fetch --quiet)
        sys_rs="$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.9.*/src/driver/sys.rs | head -n1)"
    fi
    grep -o 'pub fn cu[A-Za-z0-9_]*' "$sys_rs" | sed 's/pub fn //' | sort -u |
        awk '{ printf "int %s(void) { return 999; }\n", $1 }' > "$cu/stub/libcuda_stub.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$cu/stub/libcuda.so" "$cu/stub/libcuda_stub.c"
    # Only for trying the binary here: with the stub first on LD_LIBRARY_PATH it starts,
    # finds no GPU, and trains on the CPU.
    ln -sf libcuda.so "$cu/stub/libcuda.so.1"
fi

shim="$cuda_dir/shim"
mkdir -p "$shim"
cat > "$shim/nvidia-smi" <<SHIM
#!/bin/sh
# Stand-in for dfdx's build script on a machine without a GPU.
echo compute_cap
echo $cap
SHIM
chmod +x "$shim/nvidia-smi"

cd "$root"
export CUDA_ROOT="$cu" CUDA_PATH="$cu"
export PATH="$cu/bin:$shim:$PATH"
export LIBRARY_PATH="$cu/lib:$cu/stub:${LIBRARY_PATH:-}"
# No RUSTFLAGS: they would rebuild every dependency; the linker finds the libraries
# through LIBRARY_PATH.
case "${1:-build}" in
    check) exec cargo check --release --features cuda --all-targets ;;
    clippy) exec cargo clippy --release --features cuda --all-targets -- -D warnings ;;
    test)
        shift
        # The stub driver first: no GPU is found, so nothing tries to use one.
        export LD_LIBRARY_PATH="$cu/stub:$cu/lib:${LD_LIBRARY_PATH:-}"
        exec cargo test --release --features cuda --lib "$@" ;;
esac
# The same target directory as CPU builds: only dfdx, cudarc and rankprobe rebuild.
cargo build --release --features cuda
target_dir="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p target/cuda
cp "$target_dir/release/rankprobe" target/cuda/rankprobe
# Tests against the CUDA build (run them on the GPU machine): the test binaries.
cargo test --release --features cuda --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("profile", {}).get("test") and m.get("executable") and "gpu" in m["target"]["name"]:
        print(m["executable"])' | while read -r exe; do cp "$exe" target/cuda/gpu-tests; done
strip target/cuda/rankprobe target/cuda/gpu-tests
# TF32 (`execution.tf32`) relies on the binaries defining cublasCreate_v2 themselves
# (src/train/cublas_math.rs): check that the linker kept ours.
for exe in target/cuda/rankprobe target/cuda/gpu-tests; do
    # (grep reads all of nm's output: with -q, pipefail would see nm's broken pipe)
    if ! nm -D "$exe" | grep ' T cublasCreate_v2$' > /dev/null; then
        echo "$exe does not define cublasCreate_v2: TF32 could not be turned on" >&2
        exit 1
    fi
done
# The corpus, tokenizer and token caches of this machine (a few MB after the tests have
# run here), for a GPU machine without network: scripts/gpu-smoke.sh uses them.
cache="${RANKPROBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rankprobe}"
rm -rf target/cuda/cache && mkdir -p target/cuda/cache
for part in corpora tokenizers tokens; do
    [ -d "$cache/$part" ] && cp -r "$cache/$part" target/cuda/cache/
done
xz -T0 -6 -k -f target/cuda/rankprobe
xz -T0 -6 -k -f target/cuda/gpu-tests
ls -l target/cuda/
