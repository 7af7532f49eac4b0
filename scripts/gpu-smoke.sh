#!/usr/bin/env bash
# The first thing to run on a GPU machine: a ladder of checks of the CUDA build, each
# with its own time limit, stopping at the first failure, then a summary.
#
#   scripts/build-cuda.sh                   # here, on a machine with Rust
#   (carry target/cuda/ and the repository to the GPU machine)
#   scripts/gpu-smoke.sh [--budget S] [DIR] # there, from the repository root;
#                                           # DIR holds rankprobe and gpu-tests
#                                           # (default target/cuda)
#
# --budget S: the whole ladder within S seconds (e.g. a lent machine's time per call):
# each rung's limit is cut to what is left, and rungs that would start with under 10 s
# left are skipped, so the summary is always printed.
#
# Rungs: 1 the driver and libraries; 2 our kernels compile (NVRTC) and load, and TF32
# reaches dfdx's products only when asked; 3 CUDA Muon equals the CPU reference; 4 one
# transformer block forward and backward on CUDA equals the CPU; 5 a tiny study's loss
# curve on CUDA follows the CPU's; 6 three steps at the seed shape with per-phase times
# and GPU memory; 7 `bench` for 20 steps, the seed shape in f32 and with TF32 side by side.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
budget=""
if [ "${1:-}" = "--budget" ]; then
    budget="${2:?--budget needs a number of seconds}"
    case "$budget" in
        *[!0-9]* | "") echo "--budget $budget: expected whole seconds" >&2; exit 2 ;;
    esac
    shift 2
fi
bin_dir="${1:-target/cuda}"
for f in rankprobe gpu-tests; do
    if [ ! -x "$bin_dir/$f" ] && [ -f "$bin_dir/$f.xz" ]; then
        xz -d -k -f "$bin_dir/$f.xz" && chmod +x "$bin_dir/$f"
    fi
done
rankprobe="$bin_dir/rankprobe"
gpu_tests="$bin_dir/gpu-tests"

# cuBLAS and NVRTC 13 from an installed PyTorch's nvidia packages, if nothing else is set.
if python3 -c "import nvidia" 2>/dev/null; then
    nv="$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))')/nvidia"
    for lib in "$nv"/cu13/lib "$nv"/cublas/lib "$nv"/cuda_nvrtc/lib "$nv"/cuda_runtime/lib; do
        [ -d "$lib" ] && LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
    done
    export LD_LIBRARY_PATH
fi

# The GPU machine may have no network: use the corpus and token cache that
# scripts/build-cuda.sh copies into DIR/cache, when there is one.
if [ -z "${RANKPROBE_CACHE:-}" ] && [ -d "$bin_dir/cache" ]; then
    export RANKPROBE_CACHE="$(cd "$bin_dir/cache" && pwd)"
fi
# The seed shape on the State of the Union corpus (the Mix corpus needs package
# downloads): the same model, vocabulary and batch as experiments/qk_study.ron.
seed_study="$(mktemp -d)/qk_study.ron"
sed 's/corpus: Mix,/corpus: Sotu,/' experiments/qk_study.ron > "$seed_study"
# The same with `execution.tf32`, under its own name so that bench rows tell them apart.
seed_tf32="$(dirname "$seed_study")/qk_study_tf32.ron"
sed 's/name: "qk_study",/name: "qk_study_tf32",/; s/execution: (device: Auto),/execution: (device: Auto, tf32: true),/' \
    "$seed_study" > "$seed_tf32"
grep -q 'tf32: true' "$seed_tf32" || { echo "could not make the TF32 copy of the seed study" >&2; exit 2; }

results=()
failed=0
rung() {
    local name="$1" limit="$2"
    shift 2
    if [ "$failed" -ne 0 ]; then
        results+=("SKIP  $name")
        return
    fi
    if [ -n "$budget" ]; then
        local left=$((budget - SECONDS))
        if [ "$left" -lt 10 ]; then
            results+=("SKIP  $name (budget of ${budget}s spent)")
            return
        fi
        [ "$left" -lt "$limit" ] && limit="$left"
    fi
    echo
    echo "=== $name (limit ${limit}s) ==="
    local started=$SECONDS
    timeout --kill-after=10 "$limit" "$@"
    local rc=$?
    local took=$((SECONDS - started))
    if [ "$rc" -eq 0 ]; then
        results+=("PASS  $name (${took}s)")
    else
        [ "$rc" -eq 124 ] && why="timed out" || why="exit $rc"
        results+=("FAIL  $name (${took}s, $why)")
        failed=1
    fi
}

rung "1 driver, GPU and libraries" 60 bash -c "nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv && ldd '$rankprobe' | grep -E 'cuda|cublas|nvrtc' && ! ldd '$rankprobe' | grep -q 'not found'"
rung "2 kernels compile (NVRTC) and load; TF32 only when asked" 120 "$gpu_tests" --test-threads=1 --nocapture \
    our_kernels_compile_and_load_on_this_gpu opening_a_cuda_device_makes_one_cublas_handle \
    tf32_changes_dfdx_products_only_when_asked
rung "3 CUDA Muon equals the CPU reference" 300 "$gpu_tests" --test-threads=1 --nocapture cuda_muon_update_equals_the_cpu_reference
rung "4 one block forward+backward: CUDA equals CPU" 300 "$gpu_tests" --test-threads=1 --nocapture one_transformer_block_forward_and_backward
rung "5 tiny study: CUDA loss curve follows the CPU" 600 "$gpu_tests" --test-threads=1 --nocapture a_short_cuda_run_tracks_the_cpu_loss_curve
rung "6 three steps at the seed shape (phases, memory)" 600 "$rankprobe" bench "$seed_study" --steps 3 --device cuda --profile
rung "7 bench, 20 steps" 900 "$rankprobe" bench experiments/quickstart.ron "$seed_study" "$seed_tf32" --steps 20 --device cuda

echo
echo "=== summary ==="
printf '%s\n' "${results[@]}"
exit "$failed"
