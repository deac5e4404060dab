#!/usr/bin/env bash
# Runs the test suite once per OpenBLAS kernel family this CPU can execute, by setting
# OPENBLAS_CORETYPE, so tolerances are exercised against the float rounding of every kernel a
# machine of ours may pick (Haswell, SkylakeX, Zen, ...). Prints one PASS/FAIL line per core type
# with the number of failed tests; exits non-zero if any core type fails.
#
#   scripts/test_coretypes.sh [build-dir]      (default ./build; needs a built dsg_tests + ctest)
#   CTEST_ARGS="-R test_structure" scripts/test_coretypes.sh   to run a subset
#
# Support is read from /proc/cpuinfo: Prescott always; Sandybridge needs avx; Haswell and Zen
# need avx2 + fma; SkylakeX needs avx512f + avx512bw; Cooperlake also avx512_bf16. OpenBLAS
# (DYNAMIC_ARCH, as Debian builds it) honours OPENBLAS_CORETYPE at load time. Checked with
#   OPENBLAS_VERBOSE=2 OPENBLAS_CORETYPE=X ./build/dsg_tests "[#test_inner_product]"
# which prints "Core: X" to stderr for each X above (the script prints that line too, per run).
set -u
build="${1:-build}"
if [[ ! -x "$build/dsg_tests" ]]; then
  echo "no $build/dsg_tests: build first (cmake --build $build)" >&2
  exit 2
fi
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { for f in "$@"; do [[ "$flags" == *" $f "* ]] || return 1; done; }

cores=()
has avx2 fma && cores+=(Haswell Zen)
has avx512f avx512bw && cores+=(SkylakeX)
has avx512f avx512bw avx512_bf16 && cores+=(Cooperlake)
has avx && cores+=(Sandybridge)
cores+=(Prescott)

status=0
for core in "${cores[@]}"; do
  # The kernel OpenBLAS reports for this setting (its "Core: ..." line at library load).
  selected=$(OPENBLAS_VERBOSE=2 OPENBLAS_CORETYPE=$core "$build/dsg_tests" "[#test_tolerance_probe]" 2>&1 >/dev/null |
             grep -m1 -o 'Core: .*' || echo "Core: (not reported)")
  log="$build/test_coretypes_$core.log"
  (cd "$build" && OPENBLAS_CORETYPE=$core ctest -j2 --output-on-failure ${CTEST_ARGS:-}) >"$log" 2>&1
  rc=$?
  total=$(grep -oE 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
  failed=$(grep -oE '[0-9]+ tests failed out of' "$log" | grep -oE '^[0-9]+' || echo "?")
  if [[ $rc -eq 0 ]]; then
    line="PASS $core ($selected): 0 of $total tests failed"
  else
    line="FAIL $core ($selected): $failed of $total tests failed (log: $log)"
    status=1
  fi
  echo "$line"
done
exit $status
