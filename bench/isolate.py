#!/usr/bin/env python3
"""Runs every case of a google-benchmark binary in a process of its own, the cases of each
repetition in a new random order, and writes one JSON file in google-benchmark's format
with each case's aggregates over its repetitions (mean, median, stddev, min), as
--benchmark_report_aggregates_only writes them.

Why a process per case: in one process a case inherits the heap the cases before it left
behind, and with random interleaving those are different cases in every run. malloc's
speed depends on that history, so the heap policy's time per future at 65 536 in flight
took 18.8 ns run alone and 27-37 ns in full runs of the same binary (bench/analysis.md,
tenth round). JMH forks a JVM per benchmark for the same reason.

    bench/isolate.py --repetitions 5 --out futures.json -- BINARY [BENCHMARK FLAGS...]
"""

import argparse
import json
import random
import re
import statistics
import subprocess
import sys

# Fields of a run record that are not user counters.
STANDARD_FIELDS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
    "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit",
    "aggregate_name", "aggregate_unit", "label", "error_occurred", "error_message",
}
AGGREGATES = {"mean": statistics.mean, "median": statistics.median, "stddev": statistics.stdev, "min": min}


def run_case(command, case):
    """The run record of one case, run once in a fresh process."""
    argv = command + [f"--benchmark_filter=^{re.escape(case)}$", "--benchmark_repetitions=1",
                      "--benchmark_format=json"]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"isolate.py: {case} failed (exit {result.returncode}):\n{result.stderr}")
    data = json.loads(result.stdout)
    runs = [b for b in data["benchmarks"] if b.get("run_type") == "iteration"]
    if len(runs) != 1 or runs[0].get("error_occurred"):
        sys.exit(f"isolate.py: {case} gave {len(runs)} runs, expected one without error:\n{result.stdout}")
    return data["context"], runs[0]


def aggregate(runs, name):
    """A google-benchmark aggregate record: each time and counter aggregated on its own."""
    first = runs[0]
    record = {key: value for key, value in first.items() if key in STANDARD_FIELDS}
    record.pop("repetition_index", None)
    record.update(name=f"{first['run_name']}_{name}", run_type="aggregate", aggregate_name=name,
                  aggregate_unit="time", repetitions=len(runs), iterations=len(runs))
    fold = AGGREGATES[name]
    for key in first:
        if key in ("real_time", "cpu_time") or (key not in STANDARD_FIELDS and isinstance(first[key], (int, float))):
            record[key] = fold([r[key] for r in runs])
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--out", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- BINARY [FLAGS...]")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no benchmark binary given")
    if args.repetitions < 2:
        parser.error("--repetitions must be at least 2: the aggregates include a standard deviation")

    listed = subprocess.run(command + ["--benchmark_list_tests=true"], capture_output=True, text=True, check=True)
    cases = listed.stdout.split()
    context, by_case = None, {case: [] for case in cases}
    for _ in range(args.repetitions):
        for case in random.sample(cases, len(cases)):
            case_context, run = run_case(command, case)
            context = context or case_context
            by_case[case].append(run)

    benchmarks = []
    for case in cases:
        benchmarks += [aggregate(by_case[case], name) for name in AGGREGATES]
    context["isolation"] = "one process per case and repetition (bench/isolate.py)"
    with open(args.out, "w") as f:
        json.dump({"context": context, "benchmarks": benchmarks}, f, indent=1)
    print(f"isolate.py: {len(cases)} cases x {args.repetitions} repetitions, one process each -> {args.out}")


if __name__ == "__main__":
    main()
