#!/usr/bin/env bash
# Reproduces the pruning-family results of the README on Fashion-MNIST: each sparse config against
# the dense config trained for the same number of epochs (same seed, 1 thread per run, JOBS runs
# at a time). Prints final test accuracy, the difference in points, and the fraction of weights
# left (from dsgeval on the final snapshot).
#   scripts/pruning_results.sh [BUILD_DIR] [JOBS]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
jobs=${2:-2}
out=${OUT:-$(mktemp -d)}
echo "runs in $out"

# name config epochs
cat >"$out/jobs" <<JOBS
lenet300_100_dense10 lenet300_100 10
lenet300_100_pruned lenet300_100_pruned 10
lenet5_dense8 lenet5 8
lenet5_pruned lenet5_pruned 8
lenet5_dsd lenet5_dsd 8
lenet5_dense6 lenet5 6
lenet5_filter_pruned lenet5_filter_pruned 6
JOBS
run() {
  "$build/dsgtrain" "$here/configs/$2.prototxt" --epochs "$3" --threads 1 --seed 1 --output "$out/$1" >"$out/$1.log" 2>&1
}
export -f run
export build here out
xargs -P "$jobs" -L 1 bash -c 'run "$0" "$1" "$2"' <"$out/jobs"

accuracy() { grep -o '"accuracy": [0-9.]*' "$out/$1/metrics.jsonl" | tail -1 | awk '{print $2}'; }
density() {  # percent of weights (blob 0 of every layer with parameters) that are non-zero
  local model
  model=$(ls -t "$out/$1"/*.dsgmodel | head -1)
  "$build/dsgeval" "$model" --batches 1 --threads 1 2>/dev/null |
    awk -F'|' '/^\| total/ {gsub(/ /, "", $6); gsub(/ /, "", $7); printf "%.2f", 100 * $7 / $6}'
}
printf "%-22s %-20s %9s %9s %10s\n" run baseline accuracy "vs dense" "weights %"
while read -r name cfg epochs; do
  case $name in
    lenet300_100_pruned) base=lenet300_100_dense10 ;;
    lenet5_pruned | lenet5_dsd) base=lenet5_dense8 ;;
    lenet5_filter_pruned) base=lenet5_dense6 ;;
    *) base=- ;;
  esac
  acc=$(accuracy "$name")
  diff=-
  [ "$base" != - ] && diff=$(awk -v a="$acc" -v b="$(accuracy "$base")" 'BEGIN {printf "%+.2f", 100 * (a - b)}')
  printf "%-22s %-20s %9s %9s %10s\n" "$name" "$base" "$acc" "$diff" "$(density "$name")"
done <"$out/jobs"
