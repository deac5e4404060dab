#!/usr/bin/env bash
# Dense LSTM training against PyTorch, in one run: configs/lstm_rows.prototxt (Fashion-MNIST read
# row by row: 28 steps x 28 features, LSTM 128, last step -> 10 classes, Adam, batch 64) with
# dsgtrain, then the same model, solver, batch, epochs and threads in PyTorch
# (scripts/torch_peer.py --model lstm_rows). Prints both training images/s (tests excluded), the
# ratio DSG / PyTorch and both final test accuracies. Both use the system OpenBLAS with the same
# thread count.
#   scripts/lstm_bench.sh [BUILD_DIR] [EPOCHS] [THREADS]     (defaults: build 1 1)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
epochs=${2:-1}
threads=${3:-1}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
echo "runs in $out (epochs $epochs, threads $threads, batch 64)"
"$build/dsgtrain" "$here/configs/lstm_rows.prototxt" --epochs "$epochs" --threads "$threads" --seed 1 \
  --output "$out/lstm_rows" >"$out/lstm_rows.log" 2>&1 || { tail -5 "$out/lstm_rows.log"; exit 1; }
dsg_rate=$(sed -n 's/.*training (\([0-9.]*\) images\/s.*/\1/p' "$out/lstm_rows.log" | tail -1)
dsg_acc=$(grep -o '"accuracy": [0-9.]*' "$out/lstm_rows/metrics.jsonl" | tail -1 | awk '{print $2}')
# dsgtrain rounds the epochs up to whole iterations of 64 images; so does the peer.
iters=$(awk -v e="$epochs" 'BEGIN {n = e * 60000 / 64; printf "%d", (n == int(n)) ? n : int(n) + 1}')
# torch.set_num_threads does not reach Debian's OpenBLAS (PyTorch's BLAS here, as DSG's): pin it too.
OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads \
  /usr/bin/python3 "$here/scripts/torch_peer.py" --model lstm_rows --threads "$threads" --batch 64 \
  --iterations "$iters" >"$out/torch.json" 2>"$out/torch.err" || { tail -5 "$out/torch.err"; exit 1; }
torch_rate=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["images_per_sec"])' "$out/torch.json")
torch_acc=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accuracy"])' "$out/torch.json")
printf "%-18s %10s %9s\n" run "img/s" accuracy
printf "%-18s %10.0f %9.4f\n" "dsg lstm_rows" "$dsg_rate" "${dsg_acc:-nan}"
printf "%-18s %10.0f %9.4f\n" "pytorch lstm_rows" "$torch_rate" "$torch_acc"
printf "DSG / PyTorch: %.2fx (%d iterations, %s thread(s))\n" \
  "$(awk -v a="$dsg_rate" -v b="$torch_rate" 'BEGIN {print a / b}')" "$iters" "$threads"
