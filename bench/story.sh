#!/usr/bin/env bash
# The story's before/after table (issue 13): builds bench/story_bench.cpp (g++ 12,
# RelWithDebInfo, build/bench), runs it on keyed state of 10 MB, 100 MB and 1 GB against
# RocksDB (full snapshots, incremental checkpoints) and a private redis-server on a free
# loopback port (lightweight checkpoints behind the local cache), writes
# docs/bench/story.json and regenerates docs/benchmarks.md with its plot.
#
#   bench/story.sh                 # the recorded run (~10 min; needs ~6 GB of free disk)
#   bench/story.sh --sizes=10,100  # smaller states (MB), e.g. to try a change
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
out="$root/docs/bench"
mkdir -p "$out" "$root/build"

configure bench g++ -DASYNCSTATE_BUILD_TESTS=OFF -DASYNCSTATE_BUILD_EXAMPLES=OFF -DASYNCSTATE_BUILD_ANALYZER=OFF
nice cmake --build "$root/build/bench" -j "$jobs" --target asyncstate_bench_story

# Scratch space on the disk the build is on: the 1 GB case keeps a database, its
# checkpoints, a savepoint and restored copies at once.
work="$root/build/bench/story-work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
raw="$work/story.json"
nice "$root/build/bench/bench/asyncstate_bench_story" --out="$raw" --work="$work" "$@"

# The run's context next to its numbers.
/usr/bin/python3 - "$raw" "$out/story.json" "$@" <<PY
import json, os, subprocess, sys, datetime
data = json.load(open(sys.argv[1]))
data["run"] = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "commit": subprocess.run(["git", "-C", "$root", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip(),
    "load_avg": list(os.getloadavg()),
    "command": "bench/story.sh" + "".join(" " + a for a in sys.argv[3:]),
}
json.dump(data, open(sys.argv[2], "w"), indent=1)
PY
/usr/bin/python3 "$root/bench/report.py"
