#!/usr/bin/env bash
# Dynamic Sparse Graph on LeNet-5 (Fashion-MNIST), in one run: configs/lenet5_bn.prototxt (dense,
# CONV/FC -> ReLU -> BN) and configs/lenet5_dsg.prototxt at gamma = 0.5, 0.8, 0.9, each with the
# published per-sample selection and with the batch-shared variant; same solver, seed and epochs.
# Prints per run: training images/s (tests excluded) and the wall-clock speedup over dense, the
# final test accuracy and its difference to dense, and the training cost of the last pass as
# counted by dsgtrain (metrics.jsonl): training and inference MAC reduction (search included) and
# the activation-memory saving (dense 32-bit activations of the dense net / zero-value-compressed
# activations of the run; in brackets against the dense net's own zero-value-compressed size).
# Then the wall-clock part on a bigger net, where the GEMMs dominate: configs/vgg8_dsg.prototxt and
# its dense twin (the same file without dsg_param) train VGG_ITERS iterations (default 10) on
# random CIFAR-10-format data written to the output directory (timing only: CIFAR-10 itself is not
# packaged by Debian), printing seconds per training iteration and the speedup over dense.
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
vgg_iters=${VGG_ITERS:-10}
mkdir -p "$out/cifar"
/usr/bin/env python3 - "$out/cifar" <<'PY'
import os, random, sys
rng = random.Random(1)
for name, records in [("data_batch_%d.bin" % b, 256) for b in range(1, 6)] + [("test_batch.bin", 100)]:
    with open(os.path.join(sys.argv[1], name), "wb") as f:
        f.write(bytes(b for _ in range(records) for b in [rng.randrange(10)] + [rng.randrange(256) for _ in range(3072)]))
PY
grep -v "dsg_param" "$here/configs/vgg8_dsg.prototxt" | sed 's/^test_interval: .*/test_interval: 0/' >"$out/vgg8_dense.prototxt"
vgg_runs=(vgg8_dense:"$out/vgg8_dense.prototxt")
for sel in PER_SAMPLE BATCH_SHARED; do
  for gamma in 0.5 0.8 0.9; do
    name="vgg8_${sel,,}_$gamma"
    sed -e "s/dsg_param { gamma: [0-9.]* epsilon: 0.5 selection: [A-Z_]* }/dsg_param { gamma: $gamma epsilon: 0.5 selection: $sel }/" \
        -e 's/^test_interval: .*/test_interval: 0/' "$here/configs/vgg8_dsg.prototxt" >"$out/$name.prototxt"
    vgg_runs+=("$name:$out/$name.prototxt")
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
for run in "${vgg_runs[@]}"; do
  name=${run%%:*} cfg=${run#*:}
  echo "timing $name ..." >&2
  "$build/dsgtrain" "$cfg" --iterations "$vgg_iters" --threads "$threads" --seed 1 --data "$out/cifar" \
    --output "$out/$name" >"$out/$name.log" 2>&1
done
echo
echo "VGG-8 on random CIFAR-10-format data, batch 64, $vgg_iters iterations, $threads thread(s): seconds per training iteration"
base=""
for run in "${vgg_runs[@]}"; do
  name=${run%%:*}
  secs=$(sed -n 's/.*Trained [0-9]* iterations in \([0-9.]*\) s of training.*/\1/p' "$out/$name.log" | tail -1)
  per=$(awk -v s="$secs" -v n="$vgg_iters" 'BEGIN {printf "%.3f", s / n}')
  [ -z "$base" ] && base=$per
  printf "%-26s %8s s %7.2fx\n" "$name" "$per" "$(awk -v a="$base" -v b="$per" 'BEGIN {print a / b}')"
done
