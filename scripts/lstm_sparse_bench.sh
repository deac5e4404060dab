#!/usr/bin/env bash
# Structurally sparse LSTM backward on the Fashion-MNIST rows classifier, in one run (same model,
# seed, batch, epochs and threads):
#   dense          configs/lstm_rows.prototxt (dense backward throughout)
#   sparse_K       the LSTM keeps K of its gate-gradient columns per step for the whole run
#   mixed          configs/lstm_rows_sparse.prototxt (keep 0.3 for two epochs, then dense)
# Prints the LSTM layer's backward time per iteration (dsgtrain --profile) and its speedup over
# dense, training images/s, the final test accuracy, and the training time each run needed to
# first reach the dense run's final accuracy (from metrics.jsonl, tests excluded).
#   scripts/lstm_sparse_bench.sh [BUILD_DIR] [EPOCHS] [THREADS]     (defaults: build 3 1)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
epochs=${2:-3}
threads=${3:-1}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
echo "runs in $out (epochs $epochs, threads $threads)"
# The mixed schedule switches to dense for the last third of the run.
dense_start=$(awk -v e="$epochs" 'BEGIN {print e * 2 / 3}')
sed "s/start_epoch: 2 sparse_backward: false/start_epoch: $dense_start sparse_backward: false/" \
  "$here/configs/lstm_rows_sparse.prototxt" >"$out/mixed.prototxt"
runs=(dense:"$here/configs/lstm_rows.prototxt")
for keep in 0.5 0.3 0.2; do
  sed -e '/^schedule {/,/^}/d' -e "s/keep_fraction: 0.3/keep_fraction: $keep/" "$out/mixed.prototxt" \
    >"$out/sparse_$keep.prototxt"
  runs+=("sparse_$keep:$out/sparse_$keep.prototxt")
done
runs+=(mixed:"$out/mixed.prototxt")
for run in "${runs[@]}"; do
  name=${run%%:*} cfg=${run#*:}
  echo "training $name ..." >&2
  "$build/dsgtrain" "$cfg" --epochs "$epochs" --threads "$threads" --seed 1 --profile --output "$out/$name" \
    >"$out/$name.log" 2>&1
done
/usr/bin/env python3 - "$out" "${runs[@]%%:*}" <<'PY'
import json, re, sys
out, names = sys.argv[1], sys.argv[2:]
def load(name):
    log = open(f"{out}/{name}.log").read()
    back = float(re.findall(r"\] +lstm +LSTM +forward +[0-9.]+ ms +backward +([0-9.]+) ms", log)[-1])
    rate = float(re.findall(r"training \(([0-9.]+) images/s", log)[-1])
    tests = [json.loads(l) for l in open(f"{out}/{name}/metrics.jsonl") if l.strip()]
    return back, rate, tests
runs = {n: load(n) for n in names}
target = runs["dense"][2][-1]["accuracy"]
print("%-12s %12s %9s %8s %9s %s" % ("run", "LSTM bwd ms", "bwd x", "img/s", "accuracy",
                                    "training s to reach dense's %.4f" % target))
for n in names:
    back, rate, tests = runs[n]
    t, prev_iter, reached = 0.0, 0, None
    for m in tests:
        t += (m["iteration"] - prev_iter) * 64 / m["images_per_sec"] if m["images_per_sec"] > 0 else 0
        prev_iter = m["iteration"]
        if reached is None and m["accuracy"] >= target:
            reached = t
    print("%-12s %12.3f %8.2fx %8.0f %9.4f %s" % (n, back, runs["dense"][0] / back, rate, tests[-1]["accuracy"],
                                                 "%.1f s (epoch %.0f)" % (reached, [m["epoch"] for m in tests if m["accuracy"] >= target][0]) if reached is not None else "not reached"))
PY
