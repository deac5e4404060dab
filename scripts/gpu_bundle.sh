#!/usr/bin/env bash
# Builds a self-contained bundle for running DSG on a CUDA machine that has only an NVIDIA driver,
# a CUDA toolkit and a Python with PyTorch (no Debian packages, no network): a portable Release
# build with CUDA (-DDSG_NATIVE=OFF, sm_80 + sm_90 SASS and compute_90 PTX, the CUDA runtime
# linked statically; cuBLAS is opened at run time from the toolkit or PyTorch's nvidia-cublas),
# every non-system shared library the binaries need, the configs, the GPU scripts and the
# Fashion-MNIST files the LeNet / LSTM configs read.
#
#   scripts/gpu_bundle.sh [DIR]          (default: build-bundle/dsg-bundle)
#
# Writes DIR (the unpacked bundle; DIR/MANIFEST lists it) and DIR.tar.xz (what travels: it must
# stay under 60 MiB, checked). On the GPU machine:
#   scripts/gpu_check.sh DIR.tar.xz      (unpacks to a temporary folder and runs the check)
#   DIR/gpu_check.sh                     (from an unpacked bundle)
# Layout: DIR/bin/<tool> are wrappers that set LD_LIBRARY_PATH to DIR/lib and run DIR/libexec/<tool>;
# DIR/lib/compat holds this machine's libstdc++ / libgcc_s, used only where the system's is older
# than the binaries need. Environment: BUILD_DIR (default build-bundle), JOBS (default 2),
# CUDA_ARCHS (default "80-real;90"), MAX_MIB (default 60).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$here/build-bundle/dsg-bundle}
build=${BUILD_DIR:-$here/build-bundle}
jobs=${JOBS:-2}
archs=${CUDA_ARCHS:-80-real;90}
max_mib=${MAX_MIB:-60}
data_src=${DATA_SRC:-/usr/share/datasets/fashion-mnist}
tools=(dsgtrain dsgeval dsgcompress dsg_gpu_tests)

die() { echo "gpu_bundle: $*" >&2; exit 1; }
[ -x /usr/local/cuda/bin/nvcc ] || command -v nvcc >/dev/null || die "no nvcc: the bundle needs the CUDA toolkit to build"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [ -f "$data_src/$f" ] || die "$data_src/$f missing (apt-get install dataset-fashion-mnist, or set DATA_SRC)"
done
case "$dir" in /*) ;; *) dir=$PWD/$dir ;; esac
[ "$dir" != / ] && [ "$dir" != "$here" ] || die "refusing to use $dir as the bundle folder"

mkdir -p "$build"
echo "== configure $build (Release, portable CPU code, CUDA archs $archs)"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDSG_NATIVE=OFF -DDSG_ENABLE_CUDA=ON \
  "-DCMAKE_CUDA_ARCHITECTURES=$archs" >"$build/bundle-configure.log" 2>&1 ||
  { tail -20 "$build/bundle-configure.log"; die "cmake configure failed (log: $build/bundle-configure.log)"; }
grep -q "DSG CUDA backend: ON" "$build/bundle-configure.log" || die "the CUDA backend is off in $build (see $build/bundle-configure.log)"
echo "== build ${tools[*]} (-j$jobs)"
nice -n5 cmake --build "$build" -j"$jobs" --target "${tools[@]}" >"$build/bundle-build.log" 2>&1 ||
  { tail -30 "$build/bundle-build.log"; die "build failed (log: $build/bundle-build.log)"; }

echo "== assemble $dir"
rm -rf "$dir" "$dir.tar.xz"
mkdir -p "$dir/bin" "$dir/libexec" "$dir/lib/compat" "$dir/scripts" "$dir/data/fashion-mnist"
for t in "${tools[@]}"; do
  [ -x "$build/$t" ] || die "$build/$t was not built"
  cp "$build/$t" "$dir/libexec/$t"
  strip --strip-unneeded "$dir/libexec/$t"
done
# The binaries must not need the CUDA runtime library (linked statically) nor cuBLAS (dlopened).
for t in "${tools[@]}"; do
  if ldd "$dir/libexec/$t" | grep -Eq 'libcudart|libcublas'; then
    die "$t links libcudart or libcublas dynamically: $(ldd "$dir/libexec/$t" | grep -E 'libcudart|libcublas' | tr -s ' \t' ' ')"
  fi
done

# Shared libraries: everything ldd resolves except the C library family, the loader and the
# driver (libcuda comes with the GPU machine's driver); libstdc++ / libgcc_s go to lib/compat.
is_system() {
  case "$1" in
    linux-vdso.so.*|ld-linux*|libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libutil.so.*|\
    libresolv.so.*|libcuda.so.*|libnvidia-*) return 0 ;;
  esac
  return 1
}
declare -A seen=()
for t in "${tools[@]}"; do
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    [ "$path" != "not" ] || die "$t: $name not found by ldd on this machine"
    is_system "$name" && continue
    [ -n "${seen[$name]:-}" ] && continue
    seen[$name]=$path
    case "$name" in
      libstdc++.so.*|libgcc_s.so.*) dest=$dir/lib/compat/$name ;;
      *) dest=$dir/lib/$name ;;
    esac
    cp -L "$path" "$dest"
    chmod u+w "$dest"
    strip --strip-unneeded "$dest" 2>/dev/null || true
  done < <(ldd "$dir/libexec/$t")
done
# The newest GLIBCXX / CXXABI versions the bundle needs: the wrappers add lib/compat only when the
# machine's libstdc++ lacks one of them.
need_glibcxx=$(cat "$dir"/libexec/* "$dir"/lib/*.so* | grep -ao 'GLIBCXX_3\.4\.[0-9]*' | sort -t. -k3,3n -u | tail -1)
need_cxxabi=$(cat "$dir"/libexec/* "$dir"/lib/*.so* | grep -ao 'CXXABI_1\.3\.[0-9]*' | sort -t. -k3,3n -u | tail -1)
need_glibc=$(cat "$dir"/libexec/* "$dir"/lib/*.so* | grep -ao 'GLIBC_2\.[0-9]*' | sort -t. -k2,2n -u | tail -1)
printf '%s\n%s\n' "$need_glibcxx" "$need_cxxabi" >"$dir/lib/compat/NEEDED"

cat >"$dir/bin/run" <<'EOF'
#!/usr/bin/env bash
# bin/run TOOL [ARGS...] (or bin/TOOL [ARGS...]): runs libexec/TOOL with the bundle's libraries.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tool=$(basename "$0")
if [ "$tool" = run ]; then
  [ $# -ge 1 ] || { echo "usage: $0 TOOL [ARGS...]" >&2; exit 2; }
  tool=$1; shift
fi
[ -x "$root/libexec/$tool" ] || { echo "run: no $tool in $root/libexec" >&2; exit 2; }
libs=$root/lib
# This machine's libstdc++ if it has every version the bundle needs, else the bundled one.
sys=$(/sbin/ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}' || true)
use_compat=1
if [ -n "$sys" ] && [ -r "$sys" ]; then
  use_compat=0
  while read -r v; do
    [ -z "$v" ] || grep -qaw "$v" "$sys" || use_compat=1
  done <"$root/lib/compat/NEEDED"
fi
[ "$use_compat" = 0 ] || libs=$libs:$root/lib/compat
export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
exec "$root/libexec/$tool" "$@"
EOF
chmod +x "$dir/bin/run"
for t in "${tools[@]}"; do ln -s run "$dir/bin/$t"; done

mkdir -p "$dir/configs"
cp "$here"/configs/*.prototxt "$dir/configs/"
cp "$here/scripts/gpu_check.sh" "$here/scripts/gpu_bench.sh" "$here/scripts/gpu_bench_torch.py" "$here/scripts/gpu_env.sh" \
  "$here/scripts/torch_peer.py" "$dir/scripts/"
cat >"$dir/gpu_check.sh" <<'EOF'
#!/usr/bin/env bash
# Runs the GPU check from this bundle: see scripts/gpu_check.sh (--dry-run, --help).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec bash "$here/scripts/gpu_check.sh" "$@" "$here"
EOF
chmod +x "$dir/gpu_check.sh" "$dir"/scripts/*.sh
cp "$data_src"/train-images-idx3-ubyte.gz "$data_src"/train-labels-idx1-ubyte.gz \
  "$data_src"/t10k-images-idx3-ubyte.gz "$data_src"/t10k-labels-idx1-ubyte.gz "$dir/data/fashion-mnist/"

# A smoke test here: the wrappers find every library (ldd through the wrapper's LD_LIBRARY_PATH).
for t in "${tools[@]}"; do
  missing=$(env LD_LIBRARY_PATH="$dir/lib:$dir/lib/compat" ldd "$dir/libexec/$t" | grep 'not found' || true)
  [ -z "$missing" ] || die "$t: $missing"
done
"$dir/bin/dsgtrain" --help >/dev/null || die "bin/dsgtrain --help failed"

nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
cuda_version=$("$nvcc_bin" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$here" status --porcelain 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
{
  echo "DSG GPU bundle"
  echo "source: $(basename "$here") commit $commit$dirty, built $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -m)"
  echo "CUDA toolkit: $cuda_version (runtime linked statically); architectures: $archs"
  echo "cuBLAS: opened at run time (DSG_CUBLAS_LIB, loader path, /usr/local/cuda/lib64, /usr/local/cuda/targets/*/lib)"
  echo "needs on the target: glibc >= ${need_glibc#GLIBC_}, an NVIDIA driver for CUDA $cuda_version, libcublas.so.13 or .12"
  echo "libstdc++: the system's when it has $need_glibcxx and $need_cxxabi, else lib/compat"
  echo
  echo "files (bytes):"
  (cd "$dir" && find . -type f -o -type l | LC_ALL=C sort | while read -r f; do
    if [ -L "$f" ]; then printf '%12s  %s -> %s\n' link "${f#./}" "$(readlink "$f")"
    else printf '%12d  %s\n' "$(stat -c %s "$f")" "${f#./}"; fi
  done)
} >"$dir/MANIFEST"

echo "== archive $dir.tar.xz"
tar -C "$(dirname "$dir")" -cf - "$(basename "$dir")" | xz -T"$jobs" -6 >"$dir.tar.xz"
unpacked=$(du -sb "$dir" | cut -f1)
packed=$(stat -c %s "$dir.tar.xz")
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
{
  echo
  echo "size: unpacked $(mib "$unpacked") ($unpacked bytes), archive $(basename "$dir").tar.xz $(mib "$packed") ($packed bytes)"
} | tee -a "$dir/MANIFEST"
echo "largest files:"
(cd "$dir" && find . -type f -printf '%s %p\n' | sort -rn | head -6 | awk '{printf "  %8.1f MiB  %s\n", $1 / 1048576, substr($2, 3)}')
if [ "$packed" -ge $((max_mib * 1048576)) ]; then
  die "the archive is $(mib "$packed"), over the ${max_mib} MiB limit"
fi
echo "gpu_bundle: OK: $dir.tar.xz ($(mib "$packed"), limit ${max_mib} MiB); run: scripts/gpu_check.sh $dir.tar.xz"
