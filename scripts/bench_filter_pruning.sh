#!/usr/bin/env bash
# Training-step throughput of LeNet-5, dense vs filter-pruned (conv2 and ip1 at 50% of their
# filters / neurons from iteration 0, so every step runs the smaller GEMMs), measured in one run:
# dense and pruned alternate, REPEATS times each, at 1 and 2 threads. Prints the median images/s
# of each (dsgtrain's "training (X images/s" figure, which excludes tests and snapshots) and the
# speedup ratio.
#   scripts/bench_filter_pruning.sh [REPEATS]        (default 3)
# Environment: DSG_BUILD (build directory holding dsgtrain; default build), ITERATIONS (300),
# THREADS ("1 2"), DATA (a --data directory for dsgtrain; default: the configs' Fashion-MNIST).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${DSG_BUILD:-$root/build}
repeats=${1:-3}
iterations=${ITERATIONS:-300}
threads_list=${THREADS:-"1 2"}
dsgtrain=$build/dsgtrain
if [[ ! -x $dsgtrain ]]; then
  echo "bench_filter_pruning: error: $dsgtrain not found (build first or set DSG_BUILD)" >&2
  exit 1
fi
if ! [[ $repeats =~ ^[1-9][0-9]*$ ]]; then
  echo "bench_filter_pruning: error: REPEATS must be a positive integer, got '$repeats'" >&2
  exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Both configs: LeNet-5 with a one-batch final test (the test pass is excluded from the figure
# anyway; this only keeps the run short).
sed -e 's/^test_iter: .*/test_iter: 1/' "$root/configs/lenet5.prototxt" > "$tmp/dense.prototxt"
awk '
  { print }
  /name: "conv2" type: "Convolution"/ || /name: "ip1" type: "InnerProduct"/ {
    print "    sparsity_param { policy: \"magnitude\" granularity: FILTER target_sparsity: 0.5 }"
  }
  END { print "schedule { phase { name: \"prune\" start_iter: 0 mode: PRUNE } }" }
' "$tmp/dense.prototxt" > "$tmp/pruned.prototxt"
if [[ $(grep -c 'granularity: FILTER' "$tmp/pruned.prototxt") != 2 ]]; then
  echo "bench_filter_pruning: error: could not find conv2 and ip1 in configs/lenet5.prototxt" >&2
  exit 1
fi

data_args=()
if [[ -n ${DATA:-} ]]; then data_args=(--data "$DATA"); fi

# Runs one training; prints its images/s.
run() {
  local config=$1 threads=$2 log=$tmp/log.txt
  if ! "$dsgtrain" "$config" --iterations "$iterations" --threads "$threads" --seed 1 \
      --output "$tmp/out" "${data_args[@]}" > "$log" 2>&1; then
    echo "bench_filter_pruning: error: dsgtrain $config failed:" >&2
    tail -n 3 "$log" >&2
    exit 1
  fi
  local ips
  ips=$(tail -n 1 "$log" | sed -n 's/.*training (\([0-9.]*\) images\/s.*/\1/p')
  if [[ -z $ips ]]; then
    echo "bench_filter_pruning: error: no 'training (X images/s' in dsgtrain's last line:" >&2
    tail -n 1 "$log" >&2
    exit 1
  fi
  echo "$ips"
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "LeNet-5 training throughput, batch 64, $iterations iterations per run, $repeats alternating runs each"
echo "pruned: conv2 25/50 filters, ip1 250/500 neurons (FILTER, from iteration 0); $(basename "$dsgtrain") in $build"
for threads in $threads_list; do
  dense_runs="" pruned_runs=""
  for ((i = 1; i <= repeats; i++)); do
    dense_runs+="$(run "$tmp/dense.prototxt" "$threads") "
    pruned_runs+="$(run "$tmp/pruned.prototxt" "$threads") "
  done
  dense=$(echo "$dense_runs" | median)
  pruned=$(echo "$pruned_runs" | median)
  speedup=$(awk -v a="$pruned" -v b="$dense" 'BEGIN { printf "%.2f", a / b }')
  printf 'threads %s: dense median %s images/s (runs: %s), filter-pruned 50%% median %s images/s (runs: %s), speedup %sx\n' \
    "$threads" "$dense" "${dense_runs% }" "$pruned" "${pruned_runs% }" "$speedup"
done
