#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install what is missing, build, and run the whole
# test suite (Catch2 through CTest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 900
