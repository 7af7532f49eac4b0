#!/usr/bin/env bash
# rankprobe against PyTorch eager on the CPU, side by side in one process per study: the
# issue-10 set (quickstart A1 with Muon, quickstart B1 with AdamW, cpu_20m B1), same
# model, batch, optimizer and thread count, steps 2..N timed in both, three alternating
# rounds, the best of each reported.
#
#   scripts/bench-vs-pytorch.sh [STEPS]        # default 20 steps (cpu_20m: STEPS / 2)
#
# PyTorch comes from RANKPROBE_PYTHON (default python3); without torch the reference
# columns say why they were skipped. Add --profile by setting PROFILE=1.
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-20}"
extra=()
[ "${PROFILE:-0}" = 1 ] && extra+=(--profile)
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/rankprobe"
"$bin" bench experiments/quickstart.ron --run A1 --steps "$steps" --torch --rounds 3 "${extra[@]}"
"$bin" bench experiments/quickstart.ron --run B1 --steps "$steps" --torch --rounds 3 "${extra[@]}"
"$bin" bench experiments/cpu_20m.ron --run B1 --steps "$(( steps > 8 ? steps / 2 : 4 ))" --torch --rounds 3 "${extra[@]}"
