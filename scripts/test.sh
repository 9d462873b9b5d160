#!/usr/bin/env bash
# Builds and runs every test: the release build (g++ 12, everything incl. analyzer and
# benchmark smoke runs), the library tests under ASan+UBSan (clang 19), and the
# concurrent tests under TSan (clang 19). Prints how long each stage took at the end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

stage_names=()
stage_seconds=()
# timed <name> <command...>: runs the command and records its wall time.
timed() {
  local name="$1" start=$SECONDS
  shift
  "$@"
  stage_names+=("$name")
  stage_seconds+=($((SECONDS - start)))
}
print_stage_times() {
  local i
  echo "== stage times (wall clock, ${jobs} jobs)"
  for i in "${!stage_names[@]}"; do
    printf '   %-16s %4dm%02ds\n' "${stage_names[$i]}" $((stage_seconds[i] / 60)) $((stage_seconds[i] % 60))
  done
  printf '   %-16s %4dm%02ds\n' total $((SECONDS / 60)) $((SECONDS % 60))
}
# A failing run still says where its time went.
trap print_stage_times EXIT

timed deps "$root/scripts/deps.sh"
mkdir -p "$root/build"

# suite <dir> [ctest args...]: build the configured tree, then run its tests.
suite() {
  local dir="$1"
  shift
  echo "== build/$dir"
  timed "$dir build" cmake --build "$root/build/$dir" -j "$jobs"
  timed "$dir test" ctest --test-dir "$root/build/$dir" --output-on-failure -j "$jobs" "$@"
}

timed "release config" configure release g++
suite release

timed "asan config" configure asan clang++-19 -DASYNCSTATE_SANITIZER=address \
  -DASYNCSTATE_BUILD_BENCH=OFF -DASYNCSTATE_BUILD_ANALYZER=OFF -DASYNCSTATE_BUILD_EXAMPLES=OFF
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 suite asan -L library

timed "tsan config" configure tsan clang++-19 -DASYNCSTATE_SANITIZER=thread -DASYNCSTATE_CONCURRENT_TESTS_ONLY=ON \
  -DASYNCSTATE_BUILD_BENCH=OFF -DASYNCSTATE_BUILD_ANALYZER=OFF -DASYNCSTATE_BUILD_EXAMPLES=OFF
TSAN_OPTIONS="halt_on_error=1 suppressions=$root/tests/tsan.supp" suite tsan -L concurrent
echo "all test suites passed"
