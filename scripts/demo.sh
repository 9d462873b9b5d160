#!/usr/bin/env bash
# Builds and runs the example job (sync "before" and async "after" versions on the
# memory backend), compares their output, then runs the analyzer over both versions.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$root/scripts/deps.sh"
mkdir -p "$root/build"
configure release g++
cmake --build "$root/build/release" -j "$jobs" --target ecommerce_job
"$root/build/release/examples/ecommerce_job" --events "${EVENTS:-200000}" "$@"
if [ -x "$root/scripts/demo-analyzer.sh" ]; then
  "$root/scripts/demo-analyzer.sh"
fi
