#!/usr/bin/env bash
# Instructions per future operation, counted with callgrind (deterministic, unlike time
# on a shared machine): bench/instructions_driver.cpp built as the benchmarks are (g++ 12,
# -O2 -g -DNDEBUG), each case run with N and 2N operations, (I(2N) - I(N)) / N recorded in
# docs/bench/futures_instructions.json for bench/report.py.
#
#   bench/instructions.sh [include-dir]   # default: this checkout's include/
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
include="${1:-$root/include}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
g++-12 -std=c++20 -O2 -g -DNDEBUG -I"$include" "$root/bench/instructions_driver.cpp" -o "$work/driver"

n=20480  # a multiple of inflight64's 64 futures a round
count() {  # count <case> <ops> <policy>
  valgrind --tool=callgrind --callgrind-out-file="$work/out" "$work/driver" "$1" "$2" "$3" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
rows=()
for policy in pooled heap; do
  for case in ready pending chain16 failure4 inflight64; do
    once="$(count "$case" "$n" "$policy")"
    twice="$(count "$case" $((2 * n)) "$policy")"
    rows+=("{\"case\": \"$case\", \"policy\": \"$policy\", \"instructions_per_op\": $(((twice - once) / n))}")
    echo "$policy $case $(((twice - once) / n))"
  done
done
out="$root/docs/bench/futures_instructions.json"
{
  echo "{\"sources\": \"$(git -C "$root" rev-parse --short HEAD)\", \"compiler\": \"$(g++-12 --version | head -1)\", \"cases\": ["
  (IFS=$'\n'; echo "${rows[*]}" | sed '$!s/$/,/')
  echo "]}"
} >"$out"
echo "wrote ${out#"$root"/}"
