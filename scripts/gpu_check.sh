#!/usr/bin/env bash
# On a machine with a CUDA device: runs only the cross-device [gpu] tests (every CUDA op, the
# ReLU / InnerProduct / SoftmaxWithLoss layers and an SGD update against the CPU) from a built tree.
# Fails when a test fails, when none ran, or when they were skipped for want of a device, so a
# passing run means the comparisons really ran on a GPU.
#   scripts/gpu_check.sh [BUILD_DIR]     (default: build)
set -euo pipefail
build=${1:-build}
bin="$build/dsg_tests"
if [ ! -x "$bin" ]; then
  echo "gpu_check: $bin not found; build the tree first (cmake --build $build)" >&2
  exit 2
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
"$bin" "[gpu]" -w NoTests 2>&1 | tee "$log" || status=$?
if grep -q "skipped: no CUDA device" "$log"; then
  echo "gpu_check: FAILED: the [gpu] tests were skipped (no CUDA device), nothing was compared" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "gpu_check: FAILED: the [gpu] tests failed (exit $status)" >&2
  exit "$status"
fi
echo "gpu_check: the [gpu] tests ran on a CUDA device and passed"
