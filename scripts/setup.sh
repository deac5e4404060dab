#!/usr/bin/env bash
# Installs DSG's build dependencies from Debian's archive (only what is missing) and builds DSG
# in ./build. Used by scripts/train.sh and scripts/test.sh; safe to run repeatedly.
#   scripts/setup.sh [--bench]   (--bench also installs python3-torch for the peer benchmarks)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libprotobuf-dev protobuf-compiler libspdlog-dev libcli11-dev
          catch2 libopenblas-dev zlib1g-dev dataset-fashion-mnist fortunes libonnx-dev python3-onnx
          openmpi-bin libopenmpi-dev python3-numpy python3-torch python3-matplotlib python3-venv)
[ "${1:-}" = "--bench" ] && packages+=(python3-torch python3-numpy python3-matplotlib)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
