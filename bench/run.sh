#!/usr/bin/env bash
# Records the numbers in docs/benchmarks.md: builds the benchmarks (g++ 12,
# RelWithDebInfo, build/bench), describes the machine, runs both binaries with
# repetitions in random interleaving (so drift on a shared machine hits every
# contender alike), each case in a process of its own (bench/isolate.py),
# counts instructions per future operation (bench/instructions.sh), and regenerates
# the report and plots.
#
#   bench/run.sh                 # everything (~5 min)
#   bench/run.sh --futures-only  # the futures binary and instruction counts (~2.5 min); the state
#                                # numbers in the report stay those of docs/bench/state.json
#   bench/run.sh --state-only    # the state binary only; the futures numbers stay those of
#                                # docs/bench/futures*.json
set -euo pipefail
futures_only=false
state_only=false
case "${1:-}" in
  --futures-only) futures_only=true ;;
  --state-only) state_only=true ;;
  "") ;;
  *) echo "usage: bench/run.sh [--futures-only | --state-only]" >&2; exit 2 ;;
esac
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
out="$root/docs/bench"
mkdir -p "$out" "$root/build"

configure bench g++ -DASYNCSTATE_BUILD_TESTS=OFF -DASYNCSTATE_BUILD_EXAMPLES=OFF -DASYNCSTATE_BUILD_ANALYZER=OFF
targets=()
$state_only || targets+=(asyncstate_bench_futures)
$futures_only || targets+=(asyncstate_bench_state)
cmake --build "$root/build/bench" -j "$jobs" --target "${targets[@]}"

# A state-only run keeps the recorded machine description (it names the futures run's sources).
# "Uncommitted changes" means changes to what is measured: the analysis and the report's
# code do not change a number.
if ! $state_only; then
  {
    lscpu | grep -E '^(Model name|CPU\(s\)|Thread\(s\) per core|Core\(s\) per socket|Socket\(s\)|Hypervisor vendor|L1d cache|L2 cache|L3 cache)'
    echo "Kernel:                                  $(uname -srm)"
    echo "Compiler:                                $(g++ --version | head -1)"
    echo "Memory:                                  $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "Sources:                                 commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)$(git -C "$root" diff --quiet HEAD -- include bench examples ':!bench/*.md' ':!bench/report.py' 2>/dev/null || echo ' plus uncommitted changes')"
  } >"$out/machine.txt"
fi

if ! $state_only; then
  # A process per case: in a shared one, a case's heap is what the cases before it left.
  /usr/bin/python3 "$root/bench/isolate.py" --repetitions 5 --out "$out/futures.json" -- \
    "$root/build/bench/bench/asyncstate_bench_futures" --benchmark_min_time=0.05 --benchmark_min_warmup_time=0.01
  "$root/bench/instructions.sh"
fi
if ! $futures_only; then
  # Also a process per case: the sync job's time per record moved 1.05 us -> 892 ns between
  # two shared-process recordings of the same code (bench/analysis.md, item 4).
  /usr/bin/python3 "$root/bench/isolate.py" --repetitions 5 --out "$out/state.json" -- \
    "$root/build/bench/bench/asyncstate_bench_state" --benchmark_min_time=0.2
fi
/usr/bin/python3 "$root/bench/report.py"
