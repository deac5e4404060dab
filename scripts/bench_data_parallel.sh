#!/usr/bin/env bash
# Data-parallel throughput of LeNet-5, one epoch per run, measured in one run with the three
# set-ups alternating REPEATS times: 1 rank x 1 thread, 2 ranks x 1 thread (mpirun), 1 rank x 2
# threads. Prints the median images/s of each (dsgtrain's "training (X images/s" figure: the whole
# job, tests and snapshots excluded), the ratios of the medians, and the median of the ratios
# within each repeat (paired, so a machine whose speed drifts between repeats skews less).
#   scripts/bench_data_parallel.sh [REPEATS]        (default 3)
# Environment: DSG_BUILD (build directory; default build), EPOCHS (1), CONFIG (configs/lenet5.prototxt).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${DSG_BUILD:-$root/build}
repeats=${1:-3}
epochs=${EPOCHS:-1}
config=${CONFIG:-$root/configs/lenet5.prototxt}
dsgtrain=$build/dsgtrain
if [[ ! -x $dsgtrain ]]; then
  echo "bench_data_parallel: error: $dsgtrain not found (build first or set DSG_BUILD)" >&2
  exit 1
fi
if ! command -v mpirun >/dev/null; then
  echo "bench_data_parallel: error: mpirun not found (apt-get install openmpi-bin libopenmpi-dev, then rebuild)" >&2
  exit 1
fi
if ! [[ $repeats =~ ^[1-9][0-9]*$ ]]; then
  echo "bench_data_parallel: error: REPEATS must be a positive integer, got '$repeats'" >&2
  exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A one-batch test pass (excluded from the figure anyway) keeps the runs short.
sed -e 's/^test_iter: .*/test_iter: 1/' "$config" > "$tmp/bench.prototxt"
mpirun_cmd=(mpirun --oversubscribe -np 2)
[[ $(id -u) == 0 ]] && mpirun_cmd+=(--allow-run-as-root)

# run NAME THREADS [LAUNCHER...]: one run; appends its images/s to $tmp/NAME.
run() {
  local name=$1 threads=$2; shift 2
  if ! "$@" "$dsgtrain" "$tmp/bench.prototxt" --epochs "$epochs" --threads "$threads" --seed 1 \
       --output "$tmp/out_$name" > "$tmp/$name.log" 2>&1; then
    echo "bench_data_parallel: error: the $name run failed:" >&2
    tail -5 "$tmp/$name.log" >&2
    exit 1
  fi
  local ips
  ips=$(sed -n 's/.*training (\([0-9.]*\) images\/s.*/\1/p' "$tmp/$name.log" | tail -1)
  [[ -n $ips ]] || { echo "bench_data_parallel: error: no images/s in the $name log" >&2; exit 1; }
  echo "$ips" >> "$tmp/$name"
  printf '  %-22s %8s images/s\n' "$name" "$ips"
}

echo "LeNet-5 data-parallel throughput: $epochs epoch(s) per run, $repeats repeats, alternating ($(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'))"
for ((r = 1; r <= repeats; r++)); do
  echo "repeat $r:"
  run 1rank_1thread 1
  run 2ranks_1thread 1 "${mpirun_cmd[@]}"
  run 1rank_2threads 2
done
median() { sort -g "$tmp/$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
a=$(median 1rank_1thread); b=$(median 2ranks_1thread); c=$(median 1rank_2threads)
echo "median images/s: 1 rank x 1 thread $a, 2 ranks x 1 thread $b, 1 rank x 2 threads $c"
awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN {
  printf "2 ranks x 1 thread vs 1 rank x 1 thread:  %.2fx of the medians (target >= 1.8x)\n", b / a
  printf "2 ranks x 1 thread vs 1 rank x 2 threads: %.2fx of the medians\n", b / c
}'
paired() {  # median over repeats of (2 ranks / $1) within the repeat
  paste "$tmp/2ranks_1thread" "$tmp/$1" | awk '{ print $1 / $2 }' | sort -g |
    awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo "paired (median of per-repeat ratios): vs 1 rank x 1 thread $(paired 1rank_1thread)x, vs 1 rank x 2 threads $(paired 1rank_2threads)x"
