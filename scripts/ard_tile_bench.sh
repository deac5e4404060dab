#!/usr/bin/env bash
# Tile-pattern synapse dropout against Bernoulli DropConnect on LeNet-300-100 (Fashion-MNIST), in
# one run: for each p, configs/lenet300_100_ard_tile.prototxt with both tile kernels (GROUPED: one
# GEMM per residue class of tile rows; PER_TILE: one GEMM per kept 32 x 32 tile) and
# configs/lenet300_100_dropconnect.prototxt with that dropout_ratio (same net, solver, seed and
# epochs). Prints training images/s (tests excluded), the speedups over DropConnect and the final
# test accuracies.
#   scripts/ard_tile_bench.sh [BUILD_DIR] [EPOCHS] [THREADS]     (defaults: build 10 1)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
epochs=${2:-10}
threads=${3:-1}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
echo "runs in $out (epochs $epochs, threads $threads)"
rate() { sed -n 's/.*training (\([0-9.]*\) images\/s.*/\1/p' "$1" | tail -1; }
acc() { grep -o '"accuracy": [0-9.]*' "$1/metrics.jsonl" | tail -1 | awk '{print $2}'; }
printf "%5s %12s %12s %14s %9s %9s %9s %9s %9s\n" p "grouped/s" "per-tile/s" "dropconnect/s" "grouped" "per-tile" "acc grp" "acc tile" "acc dc"
for p in 0.3 0.5 0.7; do
  sed "s/dropout_ratio: 0.5/dropout_ratio: $p/g" "$here/configs/lenet300_100_ard_tile.prototxt" >"$out/pertile_$p.prototxt"
  sed "s/pattern: TILE/pattern: TILE tile_kernel: GROUPED/" "$out/pertile_$p.prototxt" >"$out/grouped_$p.prototxt"
  sed "s/dropout_ratio: 0.5/dropout_ratio: $p/g" "$here/configs/lenet300_100_dropconnect.prototxt" >"$out/dropconnect_$p.prototxt"
  for kind in grouped pertile dropconnect; do
    "$build/dsgtrain" "$out/${kind}_$p.prototxt" --epochs "$epochs" --threads "$threads" --seed 1 \
      --output "$out/${kind}_$p" >"$out/${kind}_$p.log" 2>&1
  done
  g=$(rate "$out/grouped_$p.log") t=$(rate "$out/pertile_$p.log") d=$(rate "$out/dropconnect_$p.log")
  printf "%5s %12.0f %12.0f %14.0f %8.2fx %8.2fx %9s %9s %9s\n" "$p" "$g" "$t" "$d" \
    "$(awk -v a="$g" -v d="$d" 'BEGIN {print a / d}')" "$(awk -v a="$t" -v d="$d" 'BEGIN {print a / d}')" \
    "$(acc "$out/grouped_$p")" "$(acc "$out/pertile_$p")" "$(acc "$out/dropconnect_$p")"
done
