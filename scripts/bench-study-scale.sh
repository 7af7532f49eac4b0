#!/usr/bin/env bash
# How long `validate` and `plan` take on a 100,000-run study: the quickstart's four
# conditions x 25 learning rates x 1,000 seeds. Both should take well under 2 s.
#
#   scripts/bench-study-scale.sh [path/to/rankprobe]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/target/release/rankprobe}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
study="$dir/scale.ron"
lrs="$(seq -s ', ' -f '%.3f' 0.001 0.001 0.025)"
seeds="$(seq -s ', ' 1 1000)"
# The quickstart with its name changed and two more axes after its conditions.
sed -e 's/name: "quickstart"/name: "scale"/' "$root/experiments/quickstart.ron" \
    | awk -v lrs="$lrs" -v seeds="$seeds" '
        /^    \],$/ && !done {
            print "        Grid(path: \"optimizer.lr\", values: [" lrs "]),"
            print "        Seeds([" seeds "]),"
            done = 1
        }
        { print }' > "$study"
cd "$root"
runs="$("$bin" validate "$study" | sed -n 's/.*(\([0-9]*\) runs).*/\1/p')"
echo "study with $runs runs"
for command in validate plan; do
    best=""
    for _ in 1 2 3; do
        start=$(date +%s%N)
        "$bin" "$command" "$study" > /dev/null
        t=$(( ($(date +%s%N) - start) / 1000000 ))
        if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
    done
    printf '%-8s best of 3: %d.%03d s\n' "$command" $((best / 1000)) $((best % 1000))
done
