#!/usr/bin/env bash
# Fuzzes the .dsgz decoder with libFuzzer (clang, ASan + UBSan) for SECONDS (default 600), seeded
# with real .dsgz files written by dsgcompress from the tests' models (and any given as CORPUS_DIR).
# Needs: apt-get install clang libclang-rt-14-dev (installed here when missing).
#   scripts/fuzz_dsgz.sh [SECONDS] [CORPUS_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-600}
work=${FUZZ_DIR:-$here/build-fuzz}
missing=()
for p in clang libclang-rt-14-dev libprotobuf-dev protobuf-compiler zlib1g-dev libspdlog-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
mkdir -p "$work/gen" "$work/corpus"
protoc -I"$here/proto" --cpp_out="$work/gen" "$here/proto/dsg.proto"
flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$here" -I"$work/gen" -DSPDLOG_FMT_EXTERNAL)
srcs=("$here/tests/fuzz/dsgz_fuzz.cpp" "$here/compress/dsgz.cpp" "$here/compress/huffman.cpp"
      "$here/compress/bitstream.cpp" "$here/compress/relative_index.cpp" "$here/runtime/error.cpp"
      "$work/gen/dsg.pb.cc")
echo "fuzz_dsgz: building $work/dsgz_fuzz"
clang++ "${flags[@]}" "${srcs[@]}" -o "$work/dsgz_fuzz" -lprotobuf -lz -lpthread
# Seeds: small valid files of every blob encoding (tests/fuzz/make_seeds.cpp), plus CORPUS_DIR.
clang++ -std=c++17 -O1 -I"$here" -I"$work/gen" "$here/tests/fuzz/make_seeds.cpp" "${srcs[@]:1}" \
  -o "$work/make_seeds" -lprotobuf -lz -lpthread
"$work/make_seeds" "$work/corpus"
if [ -n "${2:-}" ]; then cp "$2"/*.dsgz "$work/corpus/" 2>/dev/null || true; fi
echo "fuzz_dsgz: running for $seconds s on $(ls "$work/corpus" | wc -l) seed files"
"$work/dsgz_fuzz" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
  "$work/corpus" 2>&1 | tee "$work/fuzz.log" | grep -E "^#[0-9]+.*(pulse|DONE)|ERROR|stat::|Done" || true
if grep -q "ERROR: libFuzzer\|ERROR: AddressSanitizer\|runtime error" "$work/fuzz.log"; then
  echo "fuzz_dsgz: CRASH (see $work/fuzz.log)"; exit 1
fi
echo "fuzz_dsgz: no crash in $seconds s ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$work/fuzz.log" | awk '{print $2}') inputs)"
