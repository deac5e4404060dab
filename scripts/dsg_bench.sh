#!/usr/bin/env bash
# Dynamic Sparse Graph on LeNet-5 (Fashion-MNIST), in one run: configs/lenet5_bn.prototxt (dense,
# CONV/FC -> ReLU -> BN) and configs/lenet5_dsg.prototxt at gamma = 0.5, 0.8, 0.9, each with the
# published per-sample selection and with the batch-shared variant; same solver, seed and epochs.
# Prints per run: training images/s (tests excluded) and the wall-clock speedup over dense, the
# final test accuracy and its difference to dense, and the training cost of the last pass as
# counted by dsgtrain (metrics.jsonl): training and inference MAC reduction (search included) and
# the activation-memory saving (dense 32-bit activations of the dense net / zero-value-compressed
# activations of the run; in brackets against the dense net's own zero-value-compressed size).
#   scripts/dsg_bench.sh [BUILD_DIR] [EPOCHS] [THREADS]     (defaults: build 2 1)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
epochs=${2:-2}
threads=${3:-1}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
echo "runs in $out (epochs $epochs, threads $threads)"
runs=(dense:"$here/configs/lenet5_bn.prototxt")
for sel in PER_SAMPLE BATCH_SHARED; do
  for gamma in 0.5 0.8 0.9; do
    name="dsg_${sel,,}_$gamma"
    sed -e "s/dsg_param { gamma: [0-9.]* epsilon: 0.5 selection: [A-Z_]* }/dsg_param { gamma: $gamma epsilon: 0.5 selection: $sel }/" \
      "$here/configs/lenet5_dsg.prototxt" >"$out/$name.prototxt"
    grep -q "gamma: $gamma epsilon: 0.5 selection: $sel" "$out/$name.prototxt"
    runs+=("$name:$out/$name.prototxt")
  done
done
for run in "${runs[@]}"; do
  name=${run%%:*} cfg=${run#*:}
  echo "training $name ..." >&2
  "$build/dsgtrain" "$cfg" --epochs "$epochs" --threads "$threads" --seed 1 --output "$out/$name" >"$out/$name.log" 2>&1
done
/usr/bin/env python3 - "$out" "${runs[@]%%:*}" <<'PY'
import json, re, sys
out, names = sys.argv[1], sys.argv[2:]
def load(name):
    last = [json.loads(l) for l in open(f"{out}/{name}/metrics.jsonl") if l.strip()][-1]
    rate = float(re.findall(r"training \(([0-9.]+) images/s", open(f"{out}/{name}.log").read())[-1])
    return last, rate
base, base_rate = load("dense")
print("%-24s %8s %8s %9s %7s %10s %10s %12s" % ("run", "img/s", "speedup", "accuracy", "diff", "train ops", "infer ops", "act. memory"))
for name in names:
    m, rate = load(name)
    print("%-24s %8.0f %7.2fx %9.4f %+7.2f %9.2fx %9.2fx %6.2fx (%.2fx)" % (
        name, rate, rate / base_rate, m["accuracy"], 100 * (m["accuracy"] - base["accuracy"]),
        m["train_macs_dense"] / m["train_macs"], m["inference_macs_dense"] / m["inference_macs"],
        base["activation_bytes"] / m["activation_zvc_bytes"], base["activation_zvc_bytes"] / m["activation_zvc_bytes"]))
PY
