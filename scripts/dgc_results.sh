#!/usr/bin/env bash
# Deep Gradient Compression against dense exchange, 2 ranks (mpirun), for LeNet-5 and
# LeNet-300-100 on Fashion-MNIST: the gradient bytes each rank sends per iteration (dense
# allreduce payload vs DGC's (index, value) pairs and whole small tensors) and the final test
# accuracy of both runs with the same seed and data order. Writes the table to stdout.
#   scripts/dgc_results.sh [EPOCHS]     (default: each config's own max_iter)
# Environment: DSG_BUILD (build directory; default build), SEEDS ("1"; several give mean and spread),
# MODELS ("lenet5 lenet300_100"), PLOT (a PNG path: test accuracy per epoch of every run, dense
# solid and DGC dashed, drawn by scripts/plot_dgc.py with python3-matplotlib).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${DSG_BUILD:-$root/build}
epochs=${1:-}
seeds=${SEEDS:-1}
models=${MODELS:-"lenet5 lenet300_100"}
dsgtrain=$build/dsgtrain
[[ -x $dsgtrain ]] || { echo "dgc_results: error: $dsgtrain not found (build first or set DSG_BUILD)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "dgc_results: error: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mpirun_cmd=(mpirun --oversubscribe -np 2)
[[ $(id -u) == 0 ]] && mpirun_cmd+=(--allow-run-as-root)
length=()
[[ -n $epochs ]] && length=(--epochs "$epochs")

# train CONFIG SEED TAG: prints "accuracy bytes_sent dense_bytes".
train() {
  local log=$tmp/$3.log
  if ! "${mpirun_cmd[@]}" "$dsgtrain" "$1" "${length[@]}" --threads 1 --seed "$2" --output "$tmp/$3" > "$log" 2>&1; then
    echo "dgc_results: error: training $1 failed:" >&2; tail -5 "$log" >&2; exit 1
  fi
  local acc bytes dense
  acc=$(sed -n 's/.*Test net output #0: accuracy = \([0-9.e-]*\).*/\1/p' "$log" | tail -1)
  bytes=$(sed -n 's/.*): \([0-9]*\) bytes sent per rank and iteration (dense: \([0-9]*\),.*/\1/p' "$log" | tail -1)
  dense=$(sed -n 's/.*): \([0-9]*\) bytes sent per rank and iteration (dense: \([0-9]*\),.*/\2/p' "$log" | tail -1)
  echo "$acc $bytes $dense"
}

echo "DGC vs dense gradient exchange, 2 ranks x 1 thread, seeds: $seeds${epochs:+, $epochs epochs}"
printf '%-14s %5s %13s %13s %9s %10s %10s %8s\n' model seed dense_B/iter dgc_B/iter ratio acc_dense acc_dgc delta
for model in $models; do
  for seed in $seeds; do
    read -r acc_d bytes_d _ < <(train "$root/configs/$model.prototxt" "$seed" "${model}_dense_$seed")
    read -r acc_g bytes_g dense_g < <(train "$root/configs/${model}_dgc.prototxt" "$seed" "${model}_dgc_$seed")
    awk -v m="$model" -v s="$seed" -v bd="$bytes_d" -v bg="$bytes_g" -v ad="$acc_d" -v ag="$acc_g" 'BEGIN {
      printf "%-14s %5s %13d %13d %8.1fx %9.2f%% %9.2f%% %+7.2f\n", m, s, bd, bg, bd / bg, 100 * ad, 100 * ag, 100 * (ag - ad)
    }' | tee -a "$tmp/rows"
  done
done
if [[ -n ${PLOT:-} ]]; then
  # Debian's python3-matplotlib (setup.sh --bench), also where another python3 comes first on PATH.
  py=python3; [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
  "$py" "$root/scripts/plot_dgc.py" "$PLOT" "$tmp"/*/metrics.jsonl
  echo "plot: $PLOT"
fi
awk '{ n[$1]++; r[$1] += $5; d[$1] += $8; dd[$1] += $8 * $8; lo[$1] = (n[$1] == 1 || $8 < lo[$1]) ? $8 : lo[$1]; hi[$1] = (n[$1] == 1 || $8 > hi[$1]) ? $8 : hi[$1] }
     END { for (m in n) printf "%-14s mean over %d seed(s): %.1fx fewer bytes, accuracy %+.2f points (range %+.2f .. %+.2f; target within 0.3)\n", m, n[m], r[m] / n[m], d[m] / n[m], lo[m], hi[m] }' "$tmp/rows"
