#!/usr/bin/env bash
# The GPU check, run from a bundle (scripts/gpu_bundle.sh) on a machine with a CUDA device, in a
# few minutes; writes ONE results file and prints it:
#   1. what was found: nvidia-smi, the driver, the CUDA runtime the bundle links, Python/PyTorch,
#      the cuBLAS it uses (PyTorch's nvidia-cublas, found in site-packages);
#   2. dsg_gpu_tests (every CUDA op and layer case against the CPU): must run and pass, not skip;
#   3. one epoch of LeNet-5 on Fashion-MNIST with dsgtrain --device cuda and --device cpu, same
#      seed: both test accuracies and their difference (limit 0.5 points);
#   4. scripts/gpu_bench.sh's table: dsgtrain vs PyTorch eager and torch.compile, images/s.
#
#   scripts/gpu_check.sh [options] [BUNDLE_DIR | BUNDLE.tar.xz | BUILD_DIR]
#   BUNDLE_DIR/gpu_check.sh [options]
# Options:
#   --dry-run              no GPU: dsg_gpu_tests must skip cleanly, step 3's device run uses
#                          --device host-device-code (the device code on the host), step 4 --device cpu;
#                          also chosen, with exit status 3, when no GPU is found.
#   --iterations N         train N iterations instead of one epoch (938) in step 3
#   --bench-iterations N   timed iterations per benchmark row (default 500; dry run 40)
#   --bench-warmup W       warm-up iterations per benchmark row (default 50; dry run 5)
#   --no-bench             skip step 4
#   --no-compile           step 4 without torch.compile (it compiles for a minute or more)
#   --results FILE         the results file (default: BUNDLE_DIR/gpu_results.txt, or next to
#                          BUNDLE.tar.xz)
#   --logs-archive FILE    also pack every log of the run (dsgtrain, dsg_gpu_tests, benchmark) into
#                          FILE (.tar.gz)
# Exit status: 0 pass, 1 a check failed, 2 usage or set-up error, 3 no GPU found (ran as dry run).
# Time limits (seconds, environment): GPU_TESTS_TIMEOUT 180, LENET_TIMEOUT 150 per run, and the
# benchmark gets the rest of TIME_BUDGET 470 (BENCH_TIMEOUT overrides), so a GPU run stays < 8 min;
# a dry run allows LENET_TIMEOUT 600 and TIME_BUDGET 1200.
set -euo pipefail
self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

dry=0 iterations="" bench=1 bench_extra=() logs_archive="" bench_iters="" bench_warmup="" results="" root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1; shift ;;
    --iterations) iterations=$2; shift 2 ;;
    --bench-iterations) bench_iters=$2; shift 2 ;;
    --bench-warmup) bench_warmup=$2; shift 2 ;;
    --no-bench) bench=0; shift ;;
    --no-compile) bench_extra+=(--no-compile); shift ;;
    --results) results=$2; shift 2 ;;
    --logs-archive) logs_archive=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    -*) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) root=$1; shift ;;
  esac
done

# Where the bundle is: the argument, the bundle this script sits in, or build-bundle/dsg-bundle.
if [ -z "$root" ]; then
  if [ -x "$self/../bin/dsgtrain" ]; then root=$self/..
  else root=$self/../build-bundle/dsg-bundle; fi
fi
if [ -f "$root" ] && [[ $root == *.tar.xz ]]; then
  archive=$(cd "$(dirname "$root")" && pwd)/$(basename "$root")
  unpack=$(mktemp -d "${TMPDIR:-/tmp}/dsg-bundle.XXXXXX")
  echo "gpu_check: unpacking $archive into $unpack"
  if command -v xz >/dev/null 2>&1; then
    tar -C "$unpack" -xJf "$archive"
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$archive" "$unpack"
  fi
  root=$(find "$unpack" -mindepth 1 -maxdepth 1 -type d | head -1)
  [ -n "$results" ] || results=$(dirname "$archive")/gpu_results.txt
fi
[ -d "$root" ] || { echo "gpu_check: no bundle at $root (build one with scripts/gpu_bundle.sh)" >&2; exit 2; }
root=$(cd "$root" && pwd)
# The scripts of the bundle itself when it has them (they match its binaries).
scripts=$self
[ -f "$root/scripts/gpu_env.sh" ] && scripts=$root/scripts
# shellcheck source=scripts/gpu_env.sh
source "$scripts/gpu_env.sh"
gpu_env_locate "$root"
[ -n "$results" ] || results=$root/gpu_results.txt
mkdir -p "$(dirname "$results")"
: >"$results"
logs=$(mktemp -d "${TMPDIR:-/tmp}/dsg-gpu-check.XXXXXX")
say() { printf '%s\n' "$*" | tee -a "$results"; }
failures=()
start_s=$(date +%s)
lap_s=$start_s
# lap: the seconds since the last lap (each step reports its own time)
lap() { local now; now=$(date +%s); LAP="$((now - lap_s)) s"; lap_s=$now; }

# --- 1. what is there ------------------------------------------------------------------------
gpu_found=0
smi_line="nvidia-smi: not found"
if command -v nvidia-smi >/dev/null 2>&1; then
  if smi=$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1) &&
     [ -n "$smi" ]; then
    gpu_found=1
    smi_line="nvidia-smi: $(echo "$smi" | head -1)"
    cuda_drv=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -1)
    [ -z "$cuda_drv" ] || smi_line="$smi_line; driver supports CUDA $cuda_drv"
  else
    smi_line="nvidia-smi: failed: $(echo "$smi" | head -1)"
  fi
elif [ -e /dev/nvidia0 ] || [ -e /dev/nvidiactl ]; then
  gpu_found=1
  smi_line="nvidia-smi: not found, but /dev/nvidia* exists: assuming a GPU"
fi
no_gpu_exit=0
if [ "$dry" = 0 ] && [ "$gpu_found" = 0 ]; then
  no_gpu_exit=3
  dry=1
fi
device=cuda
[ "$dry" = 0 ] || device=cpu
# Step 3's device run: on a GPU --device cuda; in a dry run the same device code on the host
# (--device host-device-code), so the dry run trains LeNet-5 through every layer's device code.
train_device=cuda
[ "$dry" = 0 ] || train_device=host-device-code
if [ "$dry" = 1 ]; then
  [ -n "$bench_iters" ] || bench_iters=40
  [ -n "$bench_warmup" ] || bench_warmup=5
fi
# A dry run on a slow shared CPU may take longer: its limits are wider.
lenet_timeout=${LENET_TIMEOUT:-150}
time_budget=${TIME_BUDGET:-470}
if [ "$dry" = 1 ]; then
  lenet_timeout=${LENET_TIMEOUT:-600}
  time_budget=${TIME_BUDGET:-1200}
fi
[ -n "$bench_iters" ] || bench_iters=500
[ -n "$bench_warmup" ] || bench_warmup=50

gpu_env_python
gpu_env_cublas
mode_line="GPU (device runs use --device cuda)"
[ "$dry" = 0 ] || mode_line="DRY RUN: no GPU used; LeNet-5's device run uses --device host-device-code, the benchmark --device cpu"
[ "$no_gpu_exit" = 0 ] || mode_line="$mode_line (no GPU found; --dry-run not given: exit status 3)"
say "DSG GPU check, $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -n)"
say "mode: $mode_line"
say "bundle: $root ($DSG_LAYOUT)"
[ ! -f "$root/MANIFEST" ] || sed -n '2,5p' "$root/MANIFEST" | sed 's/^/  /' | tee -a "$results"
say ""
say "== 1. machine"
say "$smi_line"
say "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
if [ -n "$PY" ]; then
  say "python: $PY: $("$PY" - <<'PY' 2>&1 | tail -1
import torch
s = "torch %s (CUDA %s)" % (torch.__version__, torch.version.cuda)
try:
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        s += ", device 0: %s, %d SMs, sm_%d%d" % (p.name, p.multi_processor_count, p.major, p.minor)
    else:
        s += ", torch.cuda.is_available() = False"
except Exception as e:
    s += ", CUDA query failed: %s" % e
print(s)
PY
)"
else
  say "python: no Python with PyTorch found (python3, /usr/bin/python3, /opt/torch/.venv/bin/python3; set PYTHON)"
fi
say "cuBLAS: $CUBLAS_NOTE"
lap; say "(step 1: $LAP)"

# --- 2. dsg_gpu_tests ------------------------------------------------------------------------
say ""
say "== 2. dsg_gpu_tests (CUDA ops and layer cases against the CPU)"
rc=0
timeout "${GPU_TESTS_TIMEOUT:-180}" "$DSG_BIN/dsg_gpu_tests" -w NoTests >"$logs/gpu_tests.log" 2>&1 || rc=$?
summary=$(grep -E "All tests passed|test cases|skipped: no CUDA device" "$logs/gpu_tests.log" | tail -2 | tr '\n' ' ' || true)
if [ "$dry" = 1 ]; then
  if [ "$rc" = 77 ]; then
    say "result: skipped cleanly (exit 77), as expected without a GPU: $summary"
  else
    say "result: FAILED: expected exit 77 (skipped) without a GPU, got $rc"
    tail -15 "$logs/gpu_tests.log" | sed 's/^/  | /' | tee -a "$results"
    failures+=("dsg_gpu_tests did not skip cleanly (exit $rc)")
  fi
else
  if [ "$rc" = 0 ] && grep -q "All tests passed" "$logs/gpu_tests.log"; then
    say "result: PASSED on the GPU: $summary"
  else
    case "$rc" in
      77) why="skipped: no CUDA device reached" ;;
      124) why="timed out" ;;
      *) why="exit $rc" ;;
    esac
    say "result: FAILED ($why): $summary"
    { grep -E "FAILED|REQUIRE|CHECK|with expansion|error" "$logs/gpu_tests.log" || tail -15 "$logs/gpu_tests.log"; } |
      head -30 | sed 's/^/  | /' | tee -a "$results"
    failures+=("dsg_gpu_tests: $why")
  fi
fi

lap; say "(step 2: $LAP)"

# --- 3. LeNet-5, one epoch on the device and on the CPU -----------------------------------------
say ""
length=(--epochs 1)
length_text="one epoch (938 iterations of 64)"
if [ -n "$iterations" ]; then
  length=(--iterations "$iterations")
  length_text="$iterations iterations of 64 (--iterations)"
fi
say "== 3. LeNet-5 on Fashion-MNIST, $length_text, seed 1: --device $train_device vs --device cpu"
declare -A acc=()
for run in device cpu; do
  dev=$train_device
  [ "$run" = cpu ] && dev=cpu
  log=$logs/lenet5_$run.log
  rc=0
  timeout "$lenet_timeout" "$DSG_BIN/dsgtrain" "$DSG_CONFIGS/lenet5.prototxt" "${length[@]}" --seed 1 \
    --device "$dev" --data "$DSG_DATA" --output "$logs/lenet5_$run" >"$log" 2>&1 || rc=$?
  rate=$(sed -n 's/.*Trained \([0-9]*\) iterations in \([0-9.]*\) s of training (\([0-9.]*\) images\/s.*/\1 iterations in \2 s, \3 images\/s/p' "$log" | tail -1)
  a=$(grep -o '"accuracy": [0-9.eE+-]*' "$logs/lenet5_$run/metrics.jsonl" 2>/dev/null | tail -1 | awk '{print $2}' || true)
  label="--device $dev"
  [ "$run" = device ] && label="device run ($label)" || label="reference ($label)"
  if [ "$rc" != 0 ] || [ -z "$a" ]; then
    say "$label: FAILED (exit $rc)"
    { grep -iE "error|what\(\)|implementation|cannot" "$log" || tail -5 "$log"; } | head -5 | sed 's/^/  | /' | tee -a "$results"
    failures+=("LeNet-5 $label failed (exit $rc)")
  else
    acc[$run]=$a
    say "$label: test accuracy $(awk -v a="$a" 'BEGIN {printf "%.2f%%", 100 * a}'); $rate"
  fi
  if [ "$run" = device ] && [ "$dev" = cuda ]; then
    found=$(grep -m1 "CUDA runtime .* device(s)" "$log" | sed 's/.*\] //' || true)
    [ -n "$found" ] || found="CUDA: dsgtrain logged no device line"
    loaded=$(grep -m1 "cuBLAS loaded from" "$log" | sed 's/.*\] //' || true)
    [ -n "$loaded" ] || loaded="cuBLAS: dsgtrain logged no \"cuBLAS loaded from\" line"
    say "  dsgtrain: $found"
    say "  dsgtrain: $loaded"
  fi
done
if [ -n "${acc[device]:-}" ] && [ -n "${acc[cpu]:-}" ]; then
  diff=$(awk -v a="${acc[device]}" -v b="${acc[cpu]}" 'BEGIN {d = 100 * (a - b); printf "%+.2f", d}')
  if awk -v d="$diff" 'BEGIN {exit !(d <= 0.5 && d >= -0.5)}'; then
    say "difference device - cpu: $diff points (limit 0.5): OK"
  else
    say "difference device - cpu: $diff points (limit 0.5): TOO LARGE"
    failures+=("LeNet-5 accuracy differs by $diff points")
  fi
fi

lap; say "(step 3: $LAP)"

# --- 4. benchmark ------------------------------------------------------------------------------
if [ "$bench" = 1 ]; then
  say ""
  say "== 4. benchmark: dsgtrain --device $device vs PyTorch eager / torch.compile (scripts/gpu_bench.sh)"
  rc=0
  # The benchmark gets what is left of the check's time budget (TIME_BUDGET, default 470 s: the
  # whole check stays under 8 minutes), at least 60 s; rows finished before a cut are kept.
  bench_timeout=${BENCH_TIMEOUT:-$(( $time_budget - ($(date +%s) - start_s) ))}
  [ "$bench_timeout" -ge 60 ] || bench_timeout=60
  GPU_BENCH_LOGS=$logs/bench timeout "$bench_timeout" bash "$scripts/gpu_bench.sh" --device "$device" --warmup "$bench_warmup" \
    --iterations "$bench_iters" "${bench_extra[@]}" "$root" >"$logs/bench.txt" 2>&1 || rc=$?
  tee -a "$results" <"$logs/bench.txt"
  case "$rc" in
    0) ;;
    124) say "benchmark: cut after ${bench_timeout} s, the check's time budget (rows above are complete)"; failures+=("benchmark timed out") ;;
    *) failures+=("benchmark: a dsgtrain row failed (exit $rc)") ;;
  esac
  lap; say "(step 4: $LAP)"
fi

# --- verdict -----------------------------------------------------------------------------------
say ""
elapsed=$(( $(date +%s) - start_s ))
if [ ${#failures[@]} -gt 0 ]; then
  say "== verdict: FAIL after ${elapsed} s"
  for f in "${failures[@]}"; do say "  - $f"; done
  status=1
elif [ "$no_gpu_exit" != 0 ]; then
  say "== verdict: NO GPU after ${elapsed} s: every step ran with --device cpu and passed, but nothing ran on a GPU"
  status=3
elif [ "$dry" = 1 ]; then
  say "== verdict: DRY RUN PASSED after ${elapsed} s (nothing ran on a GPU; dsg_gpu_tests skipped cleanly)"
  status=0
else
  say "== verdict: PASS after ${elapsed} s"
  status=0
fi
say "logs: $logs"
if [ -n "$logs_archive" ]; then
  tar --exclude='*.dsgmodel' -czf "$logs_archive" -C "$logs" . 2>/dev/null && echo "gpu_check: logs in $logs_archive" ||
    echo "gpu_check: could not write $logs_archive" >&2
fi
echo "gpu_check: results in $results"
exit "$status"
