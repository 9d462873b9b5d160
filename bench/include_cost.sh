#!/usr/bin/env bash
# What including asyncstate costs a UDF translation unit: CPU time of -fsyntax-only on a
# file that includes the umbrella header against one that includes only what any
# futures-using C++ file includes anyway, with clang 19 and g++ 12, side by side in one
# run. CPU (user+sys) time, best of N runs, so a loaded machine skews it little.
#
# usage: bench/include_cost.sh [runs]   (prints a Markdown table)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-5}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

printf '#include <asyncstate/asyncstate.hpp>\n' >"$work/umbrella.cpp"
printf '#include <future>\n#include <functional>\n#include <memory>\n#include <string>\n#include <vector>\n' \
  >"$work/baseline.cpp"

# best_cpu_seconds <compiler> <file>: the smallest user+sys time of $runs compilations.
best_cpu_seconds() {
  local best="" t i TIMEFORMAT='%U %S'  # bash's own timer: user and system CPU seconds
  for ((i = 0; i < runs; i++)); do
    { time "$1" -std=c++20 -fsyntax-only -I "$root/include" "$2"; } 2>"$work/time"
    t="$(awk '{ printf "%.3f", $1 + $2 }' "$work/time")"
    if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then best="$t"; fi
  done
  echo "$best"
}

echo "| compiler | baseline (s) | asyncstate.hpp (s) | ratio |"
echo "|---|---|---|---|"
for cxx in clang++-19 g++-12; do
  base="$(best_cpu_seconds "$cxx" "$work/baseline.cpp")"
  umbrella="$(best_cpu_seconds "$cxx" "$work/umbrella.cpp")"
  echo "| $cxx | $base | $umbrella | $(awk -v u="$umbrella" -v b="$base" 'BEGIN { printf "%.2fx", u / b }') |"
done
