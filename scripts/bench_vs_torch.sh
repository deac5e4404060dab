#!/usr/bin/env bash
# Trains one epoch (938 iterations at batch 64) of LeNet-300-100 and LeNet-5 with dsgtrain and the
# same models with PyTorch (Debian's python3-torch), alternating, at 1 and 2 threads, and prints
# images/s, the ratio and the GFLOP/s of the training step next to the machine's sgemm peak.
# With BEFORE_DIR (a folder holding an earlier build's dsgtrain), that dsgtrain runs too, in the
# same alternation, and a column gives after/before: a before-and-after comparison in one run.
#   scripts/bench_vs_torch.sh [BUILD_DIR] [REPEATS] [BEFORE_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
repeats=${2:-3}
before=${3:-}
iters=${ITERATIONS:-938}
py=/usr/bin/python3
dsgtrain=$build/dsgtrain
[ -x "$dsgtrain" ] || { echo "bench: $dsgtrain not built (run scripts/setup.sh first)" >&2; exit 1; }
$py -c "import torch" 2>/dev/null || { echo "bench: needs Debian's python3-torch (apt-get install python3-torch)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The SkylakeX kernels exist only on AVX-512 CPUs (forcing them elsewhere dies with SIGILL).
skylakex=()
grep -qw avx512f /proc/cpuinfo && skylakex=(OPENBLAS_CORETYPE=SkylakeX)

sgemm_peak() {  # GFLOP/s of a 1024^3 single-precision GEMM with OpenBLAS (SkylakeX kernels on AVX-512) at $1 threads
  env "${skylakex[@]}" OPENBLAS_NUM_THREADS=$1 OMP_NUM_THREADS=$1 $py - <<'PY'
import time, numpy as np
a = np.random.rand(1024, 1024).astype(np.float32); b = np.random.rand(1024, 1024).astype(np.float32)
a @ b
ts = []
for _ in range(5):
    t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
ts.sort(); print("%.1f" % (2 * 1024**3 / ts[2] / 1e9))
PY
}

dsg_ips() {  # images/s of training reported by dsgtrain ($3: another dsgtrain binary)
  "${3:-$dsgtrain}" "$here/configs/$1.prototxt" --iterations "$iters" --threads "$2" --seed 1 --output "$out/$1" 2>&1 |
    sed -n 's/.*training (\([0-9.]*\) images\/s.*/\1/p' | tail -1
}

# PyTorch runs twice per repeat, with the inherited OpenBLAS kernels and with the SkylakeX kernels
# that dsgtrain selects on AVX-512 CPUs (its Linear layers use the same OpenBLAS); the faster run
# counts, so the peer gets the same BLAS advantage.
torch_json() {
  local a b
  a=$(OPENBLAS_NUM_THREADS=$2 OMP_NUM_THREADS=$2 $py "$here/scripts/torch_peer.py" --model "$1" --threads "$2" --iterations "$iters")
  [ ${#skylakex[@]} -gt 0 ] || { echo "$a"; return; }
  b=$(env "${skylakex[@]}" OPENBLAS_NUM_THREADS=$2 OMP_NUM_THREADS=$2 $py "$here/scripts/torch_peer.py" --model "$1" --threads "$2" --iterations "$iters")
  $py -c 'import json,sys; a,b=(json.loads(x) for x in sys.argv[1:]); print(json.dumps(a if a["images_per_sec"]>=b["images_per_sec"] else b))' "$a" "$b"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

[ -z "$before" ] || [ -x "$before/dsgtrain" ] || { echo "bench: $before/dsgtrain not found" >&2; exit 1; }
printf "%-13s %7s %12s %12s %7s %11s %11s %10s" model threads "dsg img/s" "torch img/s" ratio "dsg GFLOP/s" "sgemm peak" "target"
[ -z "$before" ] && echo || printf " %12s %12s\n" "before img/s" "after/before"
for threads in 1 2; do
  peak=$(sgemm_peak "$threads")
  for model in lenet300_100 lenet5; do
    d=(); t=(); b=(); flops=0
    for r in $(seq "$repeats"); do
      d+=("$(dsg_ips "$model" "$threads")")
      [ -z "$before" ] || b+=("$(dsg_ips "$model" "$threads" "$before/dsgtrain")")
      j=$(torch_json "$model" "$threads")
      t+=("$($py -c 'import json,sys; print(json.loads(sys.argv[1])["images_per_sec"])' "$j")")
      flops=$($py -c 'import json,sys; print(json.loads(sys.argv[1])["train_step_flops_per_image"])' "$j")
    done
    dm=$(printf '%s\n' "${d[@]}" | median); tm=$(printf '%s\n' "${t[@]}" | median)
    ratio=$(awk -v a="$dm" -v b="$tm" 'BEGIN {printf "%.2f", a / b}')
    gf=$(awk -v a="$dm" -v f="$flops" 'BEGIN {printf "%.1f", a * f / 1e9}')
    ok=$(awk -v r="$ratio" 'BEGIN {print (r >= 1.5 ? "met" : "MISSED")}')
    printf "%-13s %7s %12.0f %12.0f %7s %11s %11s %10s" "$model" "$threads" "$dm" "$tm" "${ratio}x" "$gf" "$peak" "1.5x $ok"
    if [ -z "$before" ]; then
      echo
    else
      bm=$(printf '%s\n' "${b[@]}" | median)
      printf " %12.0f %12s\n" "$bm" "$(awk -v a="$dm" -v b="$bm" 'BEGIN {printf "%.3fx", a / b}')"
    fi
  done
done
