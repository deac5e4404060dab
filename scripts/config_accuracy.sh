#!/usr/bin/env bash
# Trains every config in configs/ whose data is on this machine (seed 1, full schedule) with one
# or two builds of dsgtrain and prints each config's final TEST outputs (accuracy, loss) and, with
# two builds, whether they are identical: the check that a refactoring preserved behaviour.
# Configs whose data is missing (CIFAR-10) are listed as skipped.
#   scripts/config_accuracy.sh AFTER_DIR [BEFORE_DIR] [THREADS]
#     AFTER_DIR / BEFORE_DIR: folders holding a dsgtrain binary (e.g. build, or a saved older build)
#   CONFIGS="lenet5 lstm_rows" restricts the list; outputs go to $OUT (default a temp folder).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
after=${1:?usage: config_accuracy.sh AFTER_DIR [BEFORE_DIR] [THREADS]}
before=${2:-}
threads=${3:-2}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
configs=${CONFIGS:-$(cd "$here/configs" && ls *.prototxt | sed 's/\.prototxt$//')}

# The last "Test net output" lines of a dsgtrain log, as "name=value" pairs.
final_outputs() {
  awk '/Testing net/ {n = 0; delete o} /Test net output #/ {sub(/.*Test net output #[0-9]+: /, ""); o[n++] = $0}
       END {s = ""; for (i = 0; i < n; i++) s = s (i ? " " : "") o[i]; gsub(/ = /, "=", s); print s}' "$1"
}

train() {  # $1 dsgtrain dir, $2 config, $3 tag -> prints final outputs and seconds
  local log="$out/$2.$3.log" start end
  start=$(date +%s)
  if ! "$1/dsgtrain" "$here/configs/$2.prototxt" --seed 1 --threads "$threads" --output "$out/$2.$3" >"$log" 2>&1; then
    echo "FAILED ($(tail -n 1 "$log"))"
    return
  fi
  end=$(date +%s)
  echo "$(final_outputs "$log") [$((end - start)) s]"
}

printf "%-28s %s\n" config "final TEST outputs (seed 1, $threads threads)"
status=0
for c in $configs; do
  # Data present? Every source of the config must exist (absolute, or relative to configs/).
  missing=""
  for src in $(grep -oE 'source: *"[^"]*"' "$here/configs/$c.prototxt" | sed -E 's/source: *"([^"]*)"/\1/' | sort -u); do
    case "$src" in /*) p=$src ;; *) p="$here/configs/$src" ;; esac
    [ -e "$p" ] || missing="$src"
  done
  if [ -n "$missing" ]; then
    printf "%-28s skipped: data '%s' is not on this machine\n" "$c" "$missing"
    continue
  fi
  a=$(train "$after" "$c" after)
  printf "%-28s after:  %s\n" "$c" "$a"
  if [ -n "$before" ]; then
    b=$(train "$before" "$c" before)
    printf "%-28s before: %s\n" "" "$b"
    if [ "${a% \[*}" = "${b% \[*}" ]; then printf "%-28s identical\n" ""; else printf "%-28s DIFFERENT\n" ""; status=1; fi
  fi
done
exit "$status"
