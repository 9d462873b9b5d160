#!/usr/bin/env bash
# Runs asyncstate-tidy over the example job (called by scripts/demo.sh after the job
# ran): the migration report for the synchronous version, then a clean result for
# the asynchronous one (warnings there would fail the demo).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build="$root/build/release"
if [ ! -f "$build/CMakeCache.txt" ]; then
  configure release g++
fi
cmake --build "$build" -j "$jobs" --target asyncstate-tidy
tidy="$build/bin/asyncstate-tidy"
example="$root/examples/ecommerce"
# The job's functions live in headers; analyse them as the main files.
compiler_args=(-- -x c++ -std=c++20 -I "$root/include" -I "$example")

echo
echo "== asyncstate-tidy: synchronous version (examples/ecommerce/sync_job.hpp)"
"$tidy" --checks='-*,asyncstate-*' --quiet --migration-report "$example/sync_job.hpp" "${compiler_args[@]}" 2>/dev/null

echo
echo "== asyncstate-tidy: asynchronous version (examples/ecommerce/async_job.hpp)"
"$tidy" --checks='-*,asyncstate-*' --quiet --warnings-as-errors='asyncstate-*' --migration-report \
  "$example/async_job.hpp" "${compiler_args[@]}" 2>/dev/null
echo "async version: no asyncstate-* findings"
