#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install what is missing, build, and train LeNet-5 on
# Fashion-MNIST (Debian's dataset-fashion-mnist). Extra arguments go to dsgtrain.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/dsgtrain configs/lenet5.prototxt "$@"
