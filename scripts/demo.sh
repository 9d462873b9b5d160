#!/usr/bin/env bash
# Builds and runs the example job (sync "before" and async "after" versions on the
# memory backend, then on simulated remote storage replayed live), compares their output,
# plots the remote runs' progress side by side, then runs the analyzer over both versions.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$root/scripts/deps.sh"
mkdir -p "$root/build"
configure release g++
cmake --build "$root/build/release" -j "$jobs" --target ecommerce_job
timeline="$root/build/demo-timeline.csv"
"$root/build/release/examples/ecommerce_job" --events "${EVENTS:-200000}" --remote-events "${REMOTE_EVENTS:-3000}" \
  --cache-kib 64 --replay-speed 4 --timeline "$timeline" "$@"
# Debian's matplotlib (scripts/deps.sh) lives with the system interpreter.
python=/usr/bin/python3
[ -x "$python" ] || python=python3
"$python" "$root/scripts/plot_timeline.py" "$timeline" "$root/build/demo-timeline.png" \
  || echo "plot skipped: plotting $timeline failed (see above)"
if [ -x "$root/scripts/demo-analyzer.sh" ]; then
  "$root/scripts/demo-analyzer.sh"
fi
