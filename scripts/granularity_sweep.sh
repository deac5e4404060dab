#!/usr/bin/env bash
# Mao et al.'s granularity study on LeNet-5 / Fashion-MNIST: conv2 is pruned at FINE, VECTOR,
# KERNEL and FILTER granularity to several sparsities (1 dense epoch, 1 epoch of gradual pruning,
# 1 epoch of retraining), each run against the dense net trained for the same 3 epochs. The
# protocol fixes Caffe's "inv" learning-rate policy (base_lr 0.01, gamma 1e-4, power 0.75) for
# every run, dense included, whatever configs/lenet5.prototxt uses. Prints,
# per granularity, the highest sparsity within 0.5 points of dense accuracy and conv2's size under
# the index-saving model of papers.md section 5: values at 8 bits plus one 4-bit relative index
# per kept group (CR = 32 / (d (b_w + b_i / g))).
#   scripts/granularity_sweep.sh [BUILD_DIR] [JOBS]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
jobs=${2:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
epochs=3

make_config() {  # granularity sparsity -> config path
  local g=$1 s=$2 out="$work/lenet5_${1}_${2}.prototxt"
  /usr/bin/python3 - "$here/configs/lenet5.prototxt" "$out" "$g" "$s" <<'PY'
import sys, re
src, dst, g, s = sys.argv[1:]
t = open(src).read()
t = re.sub(r'lr_policy: "\w+".*\n(gamma: .*\n)?power: .*\n', 'lr_policy: "inv"\ngamma: 0.0001\npower: 0.75\n', t)
if g == "DENSE":
    open(dst, "w").write(t); sys.exit(0)
i = t.index('name: "conv2"'); j = t.index('convolution_param', i)
t = t[:j] + 'sparsity_param { policy: "magnitude" granularity: %s target_sparsity: %s }\n    ' % (g, s) + t[j:]
t = t.rstrip() + '''
schedule {
  phase { name: "dense" start_epoch: 0 mode: DENSE }
  phase { name: "prune" start_epoch: 1 mode: GRADUAL prune_interval: 50 }
  phase { name: "retrain" start_epoch: 2 mode: HOLD }
}
'''
open(dst, "w").write(t)
PY
  echo "$out"
}

run() {  # name config -> "name accuracy conv2_nonzeros"
  local name=$1 cfg=$2
  "$build/dsgtrain" "$cfg" --epochs $epochs --threads 1 --seed 1 --output "$work/$name" >"$work/$name.log" 2>&1
  local acc
  acc=$(grep -o '"accuracy": [0-9.]*' "$work/$name/metrics.jsonl" | tail -1 | awk '{print $2}')
  echo "$name $acc"
}
export -f run make_config
export build work epochs here

levels_FINE="0.9 0.95 0.98"; levels_VECTOR="0.8 0.9 0.95"; levels_KERNEL="0.75 0.9 0.95"; levels_FILTER="0.3 0.5 0.6"
{
  echo "dense $(make_config DENSE 0)"
  for g in FINE VECTOR KERNEL FILTER; do
    eval "levels=\$levels_$g"
    for s in $levels; do echo "${g}_$s $(make_config "$g" "$s")"; done
  done
} >"$work/jobs"
xargs -P "$jobs" -L 1 bash -c 'run "$0" "$1"' <"$work/jobs" | sort >"$work/results"

dense=$(awk '$1 == "dense" {print $2}' "$work/results")
echo "dense LeNet-5, $epochs epochs: accuracy $dense"
printf "%-8s %9s %9s %7s %12s %14s\n" granularity sparsity accuracy loss "group size" "conv2 bytes"
for g in FINE VECTOR KERNEL FILTER; do
  case $g in FINE) gs=1 ;; VECTOR) gs=5 ;; KERNEL) gs=25 ;; FILTER) gs=500 ;; esac
  best=""; bacc=""
  while read -r name acc; do
    s=${name#${g}_}
    loss=$(awk -v d="$dense" -v a="$acc" 'BEGIN {printf "%.2f", 100 * (d - a)}')
    within=$(awk -v l="$loss" 'BEGIN {print (l <= 0.5)}')
    printf "  %-8s %7s %9s %7s\n" "$g" "$s" "$acc" "$loss"
    [ "$within" = 1 ] && { best=$s; bacc=$acc; }
  done < <(grep "^${g}_" "$work/results" | sort -t_ -k2 -g)
  if [ -n "$best" ]; then
    bytes=$(awk -v s="$best" -v g="$gs" 'BEGIN {n = 25000; d = 1 - s; printf "%.0f", (d * n * 8 + d * n / g * 4) / 8}')
    printf "%-8s %9s %9s %7s %12s %14s\n" "$g" "$best" "$bacc" "<=0.5" "$gs" "$bytes (dense 100000)"
  else
    printf "%-8s %9s %9s %7s %12s %14s\n" "$g" "none" "-" ">0.5" "$gs" "-"
  fi
done
