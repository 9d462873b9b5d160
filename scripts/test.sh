#!/usr/bin/env bash
# Builds and runs every test: the release build (g++ 12, everything incl. analyzer and
# benchmark smoke runs), the library tests under ASan+UBSan (clang 19), and the
# concurrent tests under TSan (clang 19).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$root/scripts/deps.sh"
mkdir -p "$root/build"

run_suite() {
  local dir="$1"
  shift
  echo "== build/$dir"
  cmake --build "$root/build/$dir" -j "$jobs"
  (cd "$root/build/$dir" && ctest --output-on-failure -j "$jobs" "$@")
}

configure release g++
run_suite release

configure asan clang++-19 -DASYNCSTATE_SANITIZER=address \
  -DASYNCSTATE_BUILD_BENCH=OFF -DASYNCSTATE_BUILD_ANALYZER=OFF -DASYNCSTATE_BUILD_EXAMPLES=OFF
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 run_suite asan -L library

configure tsan clang++-19 -DASYNCSTATE_SANITIZER=thread -DASYNCSTATE_CONCURRENT_TESTS_ONLY=ON \
  -DASYNCSTATE_BUILD_BENCH=OFF -DASYNCSTATE_BUILD_ANALYZER=OFF -DASYNCSTATE_BUILD_EXAMPLES=OFF
TSAN_OPTIONS=halt_on_error=1 run_suite tsan -L concurrent
echo "all test suites passed"
