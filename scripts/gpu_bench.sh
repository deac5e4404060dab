#!/usr/bin/env bash
# Training throughput of dsgtrain on one device against PyTorch eager and torch.compile on the
# same device: LeNet-300-100, LeNet-5 and the LSTM rows model (configs/lenet300_100, lenet5,
# lstm_rows; the PyTorch peers are scripts/torch_peer.py's models, same layers and solvers), at
# batch 64 and 256, on the same Fashion-MNIST training set, the same number of iterations, warm-up
# excluded. Prints one table: images/s of each and the ratios dsg/eager and dsg/compile.
#
#   scripts/gpu_bench.sh [--device cuda|cpu] [--warmup W] [--iterations N] [--batches 64,256]
#                        [--models "lenet300_100 lenet5 lstm_rows"] [--no-compile] [--threads T] [ROOT]
#
# ROOT: an unpacked bundle (scripts/gpu_bundle.sh) or a build folder (default: build-bundle/dsg-bundle
# if present, else build). Defaults: cuda, W 50, N 500.
#
# How dsgtrain's images/s is measured (nothing added to the C++): dsgtrain logs "Trained K iterations
# in S s of training (R images/s, tests and snapshots excluded)", timed from the first training
# iteration (start-up and data loading are outside it). Each row runs dsgtrain twice, with
# --iterations W and --iterations W+N; the training time of each is K * batch / R (R has more
# significant digits than S), and the row's rate is N * batch / (time(W+N) - time(W)): the first W
# iterations (cuBLAS loading, first allocations, first kernel launches) cancel out.
# PyTorch (scripts/gpu_bench_torch.py): W warm-up iterations (torch.compile compiles there), then
# N timed iterations between two device synchronisations; its training set is on the device before
# timing (dsgtrain copies each batch from the host, so the comparison is conservative for dsgtrain);
# fp32 with TF32 off, as DSG computes (GPU_BENCH_TORCH_ARGS=--tf32 allows it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/gpu_env.sh
source "$here/gpu_env.sh"

device=cuda warmup=50 iters=500 batches=64,256 models="lenet300_100 lenet5 lstm_rows" compile=1 threads=0 root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --iterations) iters=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --no-compile) compile=0; shift ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    -*) echo "gpu_bench: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) root=$1; shift ;;
  esac
done
if [ -z "$root" ]; then
  repo=$(cd "$here/.." && pwd)
  if [ -x "$here/../bin/dsgtrain" ]; then root=$repo
  elif [ -d "$repo/build-bundle/dsg-bundle" ]; then root=$repo/build-bundle/dsg-bundle
  else root=$repo/build; fi
fi
gpu_env_locate "$root"
gpu_env_python
[ "$device" = cpu ] || gpu_env_cublas
# Every run's log and output: in $GPU_BENCH_LOGS when set (kept), else a temporary folder.
if [ -n "${GPU_BENCH_LOGS:-}" ]; then
  tmp=$GPU_BENCH_LOGS
  mkdir -p "$tmp"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
fi
torch_timeout=${GPU_BENCH_TORCH_TIMEOUT:-300}
dsg_timeout=${GPU_BENCH_DSG_TIMEOUT:-300}
thread_args=()
[ "$threads" -gt 0 ] && thread_args=(--threads "$threads")

# dsg_seconds CONFIG ITERS TAG: training seconds of dsgtrain's run (K * batch / R), or "error: ..."
dsg_seconds() {
  local cfg=$1 n=$2 tag=$3 batch=$4 log=$tmp/$3.log
  if ! timeout "$dsg_timeout" "$DSG_BIN/dsgtrain" "$cfg" --iterations "$n" --seed 1 --device "$device" \
      --data "$DSG_DATA" --output "$tmp/$tag" "${thread_args[@]}" >"$log" 2>&1; then
    echo "error: $(grep -m1 -iE 'error|what\(\)|cannot|no .* implementation' "$log" | cut -c1-160 || tail -1 "$log")"
    return 0
  fi
  grep -m1 "cuBLAS loaded from" "$log" >>"$tmp/cublas_lines" || true
  sed -n 's/.*Trained \([0-9]*\) iterations in [0-9.]* s of training (\([0-9.]*\) images\/s.*/\1 \2/p' "$log" |
    tail -1 | awk -v b="$batch" '$2 > 0 {printf "%.6f\n", $1 * b / $2; found = 1} END {if (!found) print "error: no throughput line"}'
}

torch_version=none
[ -z "$PY" ] || torch_version=$("$PY" -c 'import torch; print(torch.__version__ + ("" if hasattr(torch, "compile") else ", which has no torch.compile"))' 2>/dev/null || echo "?")
gpu_name=$device
if [ "$device" != cpu ] && command -v nvidia-smi >/dev/null 2>&1; then
  gpu_name="$device ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1))"
fi
echo "gpu_bench: device $gpu_name; $warmup warm-up + $iters timed iterations per row; PyTorch $torch_version${PY:+ ($PY)}"
# print_row MODEL BATCH DSG EAGER COMPILE (img/s, or err / na)
print_row() {
  awk -v m="$1" -v b="$2" -v d="$3" -v e="$4" -v c="$5" '
    function ratio(a, b) { return (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) ? sprintf("%.2fx", a / b) : "-" }
    function num(a) { return (a ~ /^[0-9.]+$/) ? sprintf("%.0f", a) : a }
    BEGIN { printf "%-13s %5s %11s %11s %13s %9s %11s\n", m, b, num(d), num(e), num(c), ratio(d, e), ratio(d, c) }'
}
printf "%-13s %5s %11s %11s %13s %9s %11s\n" model batch "dsg img/s" "eager img/s" "compile img/s" dsg/eager dsg/compile
rows=$tmp/rows.tsv
: >"$rows"
notes=()
for model in $models; do
  [ -f "$DSG_CONFIGS/$model.prototxt" ] || { echo "gpu_bench: no $DSG_CONFIGS/$model.prototxt" >&2; exit 2; }
  torch_json=$tmp/$model.torch.jsonl
  : >"$torch_json"
  if [ -n "$PY" ]; then
    modes=eager
    [ "$compile" = 1 ] && modes=eager,compile
    torch_threads=()
    [ "$threads" -gt 0 ] && torch_threads=(--threads "$threads")
    timeout "$torch_timeout" "$PY" "$DSG_SCRIPTS/gpu_bench_torch.py" --model "$model" --device "$device" \
      --batches "$batches" --modes "$modes" --warmup "$warmup" --iterations "$iters" --data "$DSG_DATA" \
      "${torch_threads[@]}" ${GPU_BENCH_TORCH_ARGS:-} >"$torch_json" 2>"$tmp/$model.torch.err" ||
      { rc=$?; [ "$rc" = 124 ] && why="timed out after ${torch_timeout} s" || why="exit $rc";
        notes+=("$model: PyTorch: $why: $(tail -1 "$tmp/$model.torch.err" | cut -c1-140)"); }
  fi
  for batch in ${batches//,/ }; do
    cfg=$tmp/${model}_b$batch.prototxt
    sed "s/batch_size: 64\b/batch_size: $batch/" "$DSG_CONFIGS/$model.prototxt" >"$cfg"
    grep -q "batch_size: $batch\b" "$cfg" || { echo "gpu_bench: could not set batch $batch in $model" >&2; exit 2; }
    t1=$(dsg_seconds "$cfg" "$warmup" "${model}_b${batch}_w" "$batch")
    t2=$t1  # the longer run only when the short one worked
    [[ $t1 == error* ]] || t2=$(dsg_seconds "$cfg" $((warmup + iters)) "${model}_b${batch}_n" "$batch")
    if [[ $t1 == error* ]] || [[ $t2 == error* ]]; then
      dsg=err
      [[ $t1 == error* ]] && notes+=("$model batch $batch dsgtrain: ${t1#error: }") || notes+=("$model batch $batch dsgtrain: ${t2#error: }")
    else
      dsg=$(awk -v a="$t1" -v b="$t2" -v n="$iters" -v bs="$batch" 'BEGIN {d = b - a; if (d > 0) printf "%.1f", n * bs / d; else print "noisy"}')
      [ "$dsg" != noisy ] || notes+=("$model batch $batch dsgtrain: the longer run was not slower ($t2 s vs $t1 s): too few iterations to time")
    fi
    eager=na comp=na
    if [ -n "$PY" ]; then
      read -r eager comp < <("$PY" - "$torch_json" "$batch" <<'PY'
import json, sys
path, batch = sys.argv[1], int(sys.argv[2])
got = {"eager": "err", "compile": "na"}
for line in open(path):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("batch") != batch:
        continue
    if r.get("images_per_sec"):
        got[r["mode"]] = "%.1f" % r["images_per_sec"]
    else:  # a PyTorch without torch.compile: not run, rather than failed
        got[r["mode"]] = "na" if "has no torch.compile" in (r.get("error") or "") else "err"
print(got["eager"], got["compile"])
PY
)
      while IFS= read -r line; do notes+=("$line"); done < <("$PY" - "$torch_json" "$batch" "$model" <<'PY'
import json, sys
path, batch, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for line in open(path):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("batch") == batch and r.get("error") and "has no torch.compile" not in r["error"]:
        print("%s batch %d torch %s: %s" % (model, batch, r["mode"], r["error"]))
PY
)
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$model" "$batch" "$dsg" "$eager" "$comp" >>"$rows"
    print_row "$model" "$batch" "$dsg" "$eager" "$comp"
  done
done

[ ! -s "$tmp/cublas_lines" ] || echo "gpu_bench: dsgtrain: $(head -1 "$tmp/cublas_lines" | sed 's/.*\] //')"
if [ ${#notes[@]} -gt 0 ]; then
  echo "notes (err: that run failed; na: not run; noisy: too few iterations to time):"
  printf '  %s\n' "${notes[@]}"
fi
# Exit status: 1 when a dsgtrain run failed (PyTorch failures are reported above, not counted).
! cut -f3 "$rows" | grep -q err
