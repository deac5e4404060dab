# Sourced by scripts/gpu_check.sh and scripts/gpu_bench.sh (bash, set -euo pipefail): finds the
# tools, configs and data of a bundle (scripts/gpu_bundle.sh) or of a build tree, a Python with
# PyTorch, and PyTorch's cuBLAS.

# gpu_env_locate ROOT: sets DSG_BIN (folder holding dsgtrain, dsg_gpu_tests), DSG_CONFIGS, DSG_DATA,
# DSG_SCRIPTS and DSG_LAYOUT (bundle or build). ROOT is an unpacked bundle or a CMake build folder.
gpu_env_locate() {
  local root=$1 repo
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  DSG_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  if [ -x "$root/bin/dsgtrain" ] && [ -d "$root/configs" ]; then
    DSG_LAYOUT=bundle
    DSG_BIN=$root/bin
    DSG_CONFIGS=$root/configs
    DSG_DATA=$root/data/fashion-mnist
  elif [ -x "$root/dsgtrain" ]; then
    DSG_LAYOUT=build
    DSG_BIN=$root
    DSG_CONFIGS=$repo/configs
    DSG_DATA=${DSG_DATA:-/usr/share/datasets/fashion-mnist}
  else
    echo "$(basename "$0"): $root is neither a bundle (bin/dsgtrain, configs/) nor a build folder (dsgtrain)" >&2
    return 2
  fi
  [ -f "$DSG_DATA/train-images-idx3-ubyte.gz" ] || {
    echo "$(basename "$0"): no Fashion-MNIST in $DSG_DATA (set DSG_DATA)" >&2
    return 2
  }
}

# gpu_env_python: sets PY to the first Python that imports torch ($PYTHON, python3, the system's,
# the GPU image's venv), or to "" when there is none.
gpu_env_python() {
  PY=""
  local p
  for p in ${PYTHON:-} python3 /usr/bin/python3 /opt/torch/.venv/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c "import torch" >/dev/null 2>&1; then
      PY=$(command -v "$p")
      return 0
    fi
  done
}

# gpu_env_cublas: finds PyTorch's nvidia-cublas (site-packages/nvidia/{cu13,cublas}/lib) with
# python3 and exports DSG_CUBLAS_LIB (the file; runtime/cuda_blas.cu tries it first) and
# LD_LIBRARY_PATH (its folder, for libcublasLt). Keeps a DSG_CUBLAS_LIB already set. Sets
# CUBLAS_NOTE to one line saying what was found.
gpu_env_cublas() {
  local py=${PY:-}
  if [ -n "${DSG_CUBLAS_LIB:-}" ]; then
    CUBLAS_NOTE="DSG_CUBLAS_LIB=$DSG_CUBLAS_LIB (given)"
    return 0
  fi
  [ -n "$py" ] || py=$(command -v python3 || true)
  local found=""
  if [ -n "$py" ]; then
    found=$("$py" - <<'PY' 2>/dev/null || true
import glob, os, site, sys
dirs = []
for get in (getattr(site, "getsitepackages", None), getattr(site, "getusersitepackages", None)):
    try:
        d = get() if get else []
        dirs += [d] if isinstance(d, str) else list(d)
    except Exception:
        pass
dirs += [p for p in sys.path if p]
dirs = [d for i, d in enumerate(dirs) if d not in dirs[:i] and os.path.isdir(d)]
hits = []
for major in ("13", "12"):
    for d in dirs:
        for sub in ("nvidia/cu" + major + "/lib", "nvidia/cublas/lib", "nvidia/*/lib"):
            hits += sorted(glob.glob(os.path.join(d, sub, "libcublas.so." + major)))
print(hits[0] if hits else "")
PY
)
  fi
  if [ -n "$found" ]; then
    export DSG_CUBLAS_LIB=$found
    export LD_LIBRARY_PATH=$(dirname "$found")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    CUBLAS_NOTE="PyTorch's cuBLAS via $py site-packages: $found (exported DSG_CUBLAS_LIB)"
  else
    CUBLAS_NOTE="no cuBLAS in ${py:-python3}'s site-packages; dsgtrain searches the loader path and /usr/local/cuda"
  fi
}
