#!/usr/bin/env bash
# Checks the include order of DSG's folders (the build enforces the same rule through per-library
# include paths; this names every offending line, and also catches relative "../x/" includes):
#
#   runtime  <-  layers, datasets  <-  sparsity  <-  compress  <-  apps
#   runtime  <-  distributed  <-  apps
#
# A file may include headers of its own folder and of the folders its folder depends on. Exits 1
# and lists file:line: include for each violation.
#   scripts/check_layering.sh [SOURCE_DIR]
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
declare -A allowed=(
  [runtime]="runtime"
  [layers]="runtime layers"
  [datasets]="runtime datasets"
  [sparsity]="runtime layers sparsity"
  [compress]="runtime layers sparsity compress"
  [distributed]="runtime distributed"
  [apps]="runtime layers datasets sparsity compress distributed apps"
)
folders="runtime layers datasets sparsity compress distributed apps"
status=0
checked=0
for folder in "${!allowed[@]}"; do
  [ -d "$root/$folder" ] || continue
  while IFS= read -r -d '' file; do
    checked=$((checked + 1))
    while IFS= read -r hit; do
      line=${hit%%:*}
      target=$(sed -E 's/^[^"]*"([^"]*)".*/\1/' <<<"${hit#*:}")
      # Normalise relative includes against the file's folder: "../sparsity/x.hpp" -> sparsity.
      case "$target" in ../*) target=${target#../} ;; esac
      top=${target%%/*}
      [ "$top" = "$target" ] && continue  # same-directory include
      case " $folders " in *" $top "*) ;; *) continue ;; esac
      case " ${allowed[$folder]} " in *" $top "*) ;; *)
        echo "${file#$root/}:$line: includes \"$target\", but $folder/ may include only: ${allowed[$folder]}"
        status=1 ;;
      esac
    done < <(grep -n -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" || true)
  done < <(find "$root/$folder" -maxdepth 1 -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) -print0)
done
if [ "$status" -eq 0 ]; then
  echo "check_layering: $checked files follow runtime <- layers, datasets <- sparsity <- compress <- apps, runtime <- distributed <- apps"
fi
exit "$status"
