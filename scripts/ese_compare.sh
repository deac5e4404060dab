#!/usr/bin/env bash
# ESE load-balance-aware pruning against plain magnitude pruning at the same sparsity and
# schedule (LeNet-300-100, Fashion-MNIST, 10% density): final accuracy of both and the ESE
# partition balance (max/mean non-zeros per partition) as dsgtrain reports it.
#   scripts/ese_compare.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed -e 's/policy: "ese"/policy: "magnitude"/' -e 's/ num_partitions: [0-9]*//' \
  "$here/configs/lenet300_100_ese.prototxt" >"$work/magnitude.prototxt"
for name in ese magnitude; do
  cfg=$here/configs/lenet300_100_ese.prototxt
  [ $name = magnitude ] && cfg=$work/magnitude.prototxt
  "$build/dsgtrain" "$cfg" --threads 1 --seed 1 --output "$work/$name" >"$work/$name.log" 2>&1 &
done
wait
for name in ese magnitude; do
  acc=$(grep -o '"accuracy": [0-9.]*' "$work/$name/metrics.jsonl" | tail -1 | awk '{print $2}')
  echo "$name: final accuracy $acc"
  grep "Sparsity ip" "$work/$name.log" | tail -3 | sed 's/.*dsg\]  *//'
done
