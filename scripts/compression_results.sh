#!/usr/bin/env bash
# Reproduces the README's compression results on Fashion-MNIST. For each config it trains the
# compressed model and its full-precision dense twin (the same config with every sparsity_param,
# quant_param and the schedule removed: same net, solver, seed and epochs), runs dsgcompress on the
# final snapshot and dsgeval on the .dsgz (decoded run and EIE-style compressed-kernel run), and
# prints accuracy against the twin, parameter bytes and file bytes against 32-bit dense, and the
# ratios. Then the cost model's fine- vs kernel-granularity comparison for LeNet-5's conv2.
#   scripts/compression_results.sh [BUILD_DIR] [JOBS]
# OUT=DIR keeps the runs in DIR; runs whose results are already there are not repeated.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
jobs=${2:-2}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
echo "runs in $out"

variant() {  # name source-config python-transform -> writes $out/name.prototxt
  /usr/bin/python3 - "$here/configs/$2.prototxt" "$out/$1.prototxt" "$3" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
if sys.argv[3] == "dense":
    t = re.sub(r'\n *(sparsity|quant)_param \{[^}]*\}', '', t)
    t = re.sub(r'\nschedule \{.*\n\}\n?', '\n', t, flags=re.S)
elif sys.argv[3] == "kernel":  # conv2 pruned by whole 5x5 kernels instead of single weights
    t = t.replace('sparsity_param { policy: "magnitude" target_sparsity: 0.88 }',
                  'sparsity_param { policy: "magnitude" target_sparsity: 0.88 granularity: KERNEL }')
open(sys.argv[2], "w").write(t)
PY
}
variant lenet300_100_compress_dense lenet300_100_compress dense
variant lenet5_compress_dense lenet5_compress dense
variant lenet5_ttq_dense lenet5_ttq dense
variant lenet5_compress_kernel lenet5_compress kernel
cat >"$out/jobs" <<JOBS
lenet5_compress $here/configs/lenet5_compress.prototxt
lenet5_compress_kernel $out/lenet5_compress_kernel.prototxt
lenet5_compress_dense $out/lenet5_compress_dense.prototxt
lenet5_ttq $here/configs/lenet5_ttq.prototxt
lenet5_ttq_dense $out/lenet5_ttq_dense.prototxt
lenet300_100_compress $here/configs/lenet300_100_compress.prototxt
lenet300_100_compress_dense $out/lenet300_100_compress_dense.prototxt
JOBS
run() {
  [ -f "$out/$1.json" ] && return 0
  "$build/dsgtrain" "$2" --threads 1 --seed 1 --output "$out/$1" >"$out/$1.log" 2>&1
  model=$(ls -t "$out/$1"/*.dsgmodel | head -1)
  "$build/dsgcompress" "$model" -o "$out/$1.dsgz" >"$out/$1.compress.txt"
  "$build/dsgeval" "$out/$1.dsgz" --threads 1 --json "$out/$1.json" >"$out/$1.eval.md"
}
export -f run
export build out
xargs -P "$jobs" -L 1 bash -c 'run "$0" "$1"' <"$out/jobs"

field() {  # json-file python-expression
  /usr/bin/python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"
}
printf "\n%-24s %9s %9s %8s %8s %12s %10s %10s %8s %12s\n" model "dense acc" "decoded" "vs dense" "EIE acc" \
  "param bytes" "ratio" "file bytes" "ratio" "EIE s/dec s"
for m in lenet300_100_compress lenet5_compress lenet5_compress_kernel lenet5_ttq; do
  j=$out/$m.json
  dense=$(field "$out/${m%_kernel}_dense.json" 'j["top1"]')
  dec=$(field "$j" 'j["decoded_run"]["top1"]')
  eie=$(field "$j" 'j["compressed_run"]["top1"]')
  secs=$(field "$j" '"%.3f/%.3f" % (j["compressed_run"]["seconds"], j["decoded_run"]["seconds"])')
  params=$(awk '/^parameters before Huffman/ {print $(NF-2)}' "$out/$m.compress.txt")
  dense_bytes=$(awk '/^32-bit dense parameters/ {print $4}' "$out/$m.compress.txt")
  file=$(stat -c %s "$out/$m.dsgz")
  printf "%-24s %9.4f %9.4f %+8.2f %8.4f %12s %9.1fx %10s %7.1fx %12s\n" "$m" "$dense" "$dec" \
    "$(awk -v a="$dec" -v b="$dense" 'BEGIN {print 100 * (a - b)}')" "$eie" "$params" \
    "$(awk -v a="$dense_bytes" -v b="$params" 'BEGIN {print a / b}')" "$file" \
    "$(awk -v a="$dense_bytes" -v b="$file" 'BEGIN {print a / b}')" "$secs"
done
echo
echo "Cost model, LeNet-5 conv2 (per sample): fine-grained vs kernel-granularity pruning"
printf "%-24s %10s %12s %12s %14s %12s\n" model "MACs" "weight words" "index words" "memory refs" "energy nJ"
for m in lenet5_compress lenet5_compress_kernel; do
  field "$out/$m.json" '"%-24s %10d %12.0f %12.0f %14.0f %12.1f" % ((sys.argv[1].split("/")[-1][:-5],) + next((c["compressed"]["macs"], c["compressed"]["weight_words"], c["compressed"]["index_words"], c["compressed"]["weight_words"] + c["compressed"]["index_words"] + c["compressed"]["activation_words"], c["compressed"]["energy_pj"] / 1e3) for c in j["cost"]["layers"] if c["name"] == "conv2"))'
done
echo
for m in lenet300_100_compress lenet5_compress lenet5_ttq; do echo "== dsgcompress $m"; sed -n '/^| blob/,$p' "$out/$m.compress.txt"; done
