#!/usr/bin/env bash
# Sensitivity-aware input-feature-map dropout on LeNet-5 (Fashion-MNIST), in one run:
# configs/lenet5_fmdrop.prototxt (30% of pool1 / pool2 channels dropped per pass, Taylor
# sensitivity), the same with uniform channel choice, and configs/lenet5.prototxt (the same net
# without it); same solver, seed and epochs. Prints training images/s (tests excluded), the speedup
# and the final test accuracy. Then PyTorch on the plain net as the external reference.
#   scripts/fmdrop_bench.sh [BUILD_DIR] [EPOCHS] [THREADS]     (defaults: build 2 1)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
epochs=${2:-2}
threads=${3:-1}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
echo "runs in $out (epochs $epochs, threads $threads)"
sed 's/dropout_param { dropout_ratio: 0.3 }/dropout_param { dropout_ratio: 0.3 } feature_map_dropout_param { sensitivity: UNIFORM }/' \
  "$here/configs/lenet5_fmdrop.prototxt" >"$out/lenet5_fmdrop_uniform.prototxt"
rate() { sed -n 's/.*training (\([0-9.]*\) images\/s.*/\1/p' "$1" | tail -1; }
acc() { grep -o '"accuracy": [0-9.]*' "$1/metrics.jsonl" | tail -1 | awk '{print $2}'; }
for run in lenet5:"$here/configs/lenet5.prototxt" lenet5_fmdrop:"$here/configs/lenet5_fmdrop.prototxt" \
           lenet5_fmdrop_uniform:"$out/lenet5_fmdrop_uniform.prototxt"; do
  name=${run%%:*} cfg=${run#*:}
  "$build/dsgtrain" "$cfg" --epochs "$epochs" --threads "$threads" --seed 1 --output "$out/$name" >"$out/$name.log" 2>&1
done
base=$(rate "$out/lenet5.log")
printf "%-24s %10s %8s %9s\n" run "img/s" speedup accuracy
for name in lenet5 lenet5_fmdrop lenet5_fmdrop_uniform; do
  r=$(rate "$out/$name.log")
  printf "%-24s %10.0f %7.2fx %9s\n" "$name" "$r" "$(awk -v a="$r" -v b="$base" 'BEGIN {print a / b}')" "$(acc "$out/$name")"
done
iters=$(awk -v e="$epochs" 'BEGIN {printf "%d", e * 60000 / 64}')
/usr/bin/python3 "$here/scripts/torch_peer.py" --model lenet5 --threads "$threads" --iterations "$iters" 2>/dev/null |
  /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); print("%-24s %10.0f %8s %9.4f" % ("pytorch lenet5", j["images_per_sec"], "", j["accuracy"]))'
