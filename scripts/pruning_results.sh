#!/usr/bin/env bash
# Reproduces the pruning-family results of the README on Fashion-MNIST: each sparse config against
# its dense twin (the same config with every sparsity_param and the schedule removed: same net,
# solver, seed and epoch budget), 1 thread per run, JOBS runs at a time. Prints final test
# accuracy, the difference in points, and the fraction of weights left (dsgeval on the final
# snapshot).
#   scripts/pruning_results.sh [BUILD_DIR] [JOBS]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
jobs=${2:-2}
out=${OUT:-$(mktemp -d)}
echo "runs in $out"

dense_twin() {  # config -> the same config without sparsity
  /usr/bin/python3 - "$here/configs/$1.prototxt" "$out/$1_dense.prototxt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
t = re.sub(r'\n *sparsity_param \{[^}]*\}', '', t)
t = re.sub(r'\nschedule \{.*\n\}\n?', '\n', t, flags=re.S)
open(sys.argv[2], "w").write(t)
PY
  echo "$out/$1_dense.prototxt"
}
# name config epochs
{
  for c in lenet300_100_pruned:10 lenet5_pruned:8 lenet5_dsd:8 lenet5_filter_pruned:6; do
    name=${c%:*} epochs=${c#*:}
    echo "${name}_dense $(dense_twin "$name") $epochs"
    echo "$name $here/configs/$name.prototxt $epochs"
  done
} >"$out/jobs"
run() {
  "$build/dsgtrain" "$2" --epochs "$3" --threads 1 --seed 1 --output "$out/$1" >"$out/$1.log" 2>&1
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
printf "%-28s %-28s %9s %9s %10s\n" run baseline accuracy "vs dense" "weights %"
while read -r name cfg epochs; do
  case $name in
    *_dense) base=- ;;
    *) base=${name}_dense ;;
  esac
  acc=$(accuracy "$name")
  diff=-
  [ "$base" != - ] && diff=$(awk -v a="$acc" -v b="$(accuracy "$base")" 'BEGIN {printf "%+.2f", 100 * (a - b)}')
  printf "%-28s %-28s %9s %9s %10s\n" "$name" "$base" "$acc" "$diff" "$(density "$name")"
done <"$out/jobs"
