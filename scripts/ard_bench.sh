#!/usr/bin/env bash
# Approximate random dropout against Bernoulli dropout on LeNet-300-100 (Fashion-MNIST), in one run:
# for each p, configs/lenet300_100_ard.prototxt and configs/lenet300_100_dropout.prototxt with that
# dropout_ratio (same net, solver, seed and epochs) and PyTorch's Bernoulli dropout on the same
# model (scripts/torch_peer.py --dropout p). Prints training images/s (tests excluded), the
# ARD / Bernoulli speedup and the final test accuracies.
#   scripts/ard_bench.sh [BUILD_DIR] [EPOCHS] [THREADS]     (defaults: build 10 1)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
epochs=${2:-10}
threads=${3:-1}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
echo "runs in $out (epochs $epochs, threads $threads)"
iters=$(awk -v e="$epochs" 'BEGIN {printf "%d", e * 60000 / 64}')
rate() { sed -n 's/.*training (\([0-9.]*\) images\/s.*/\1/p' "$1" | tail -1; }
acc() { grep -o '"accuracy": [0-9.]*' "$1/metrics.jsonl" | tail -1 | awk '{print $2}'; }
printf "%5s %14s %14s %8s %10s %10s %14s %10s\n" p "ARD img/s" "dropout img/s" speedup "ARD acc" "drop acc" "torch img/s" "torch acc"
for p in 0.3 0.5 0.7; do
  for kind in ard dropout; do
    sed "s/dropout_ratio: 0.5/dropout_ratio: $p/g" "$here/configs/lenet300_100_$kind.prototxt" >"$out/${kind}_$p.prototxt"
    "$build/dsgtrain" "$out/${kind}_$p.prototxt" --epochs "$epochs" --threads "$threads" --seed 1 \
      --output "$out/${kind}_$p" >"$out/${kind}_$p.log" 2>&1
  done
  torch=$(/usr/bin/python3 "$here/scripts/torch_peer.py" --model lenet300_100 --dropout "$p" --threads "$threads" \
    --iterations "$iters" 2>/dev/null)
  a=$(rate "$out/ard_$p.log") d=$(rate "$out/dropout_$p.log")
  printf "%5s %14.0f %14.0f %7.2fx %10s %10s %14.0f %10.4f\n" "$p" "$a" "$d" "$(awk -v a="$a" -v d="$d" 'BEGIN {print a / d}')" \
    "$(acc "$out/ard_$p")" "$(acc "$out/dropout_$p")" \
    "$(echo "$torch" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_sec"])')" \
    "$(echo "$torch" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])')"
done
