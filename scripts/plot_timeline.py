#!/usr/bin/env python3
"""Plots the example job's timeline (ecommerce_job --timeline FILE.csv): records/s, records
in flight, cache hit rate and watermark lag over time, one column per run, side by side.

usage: plot_timeline.py TIMELINE.csv OUT.png [RUN ...]   (default runs: sync_remote async_remote)

Exits 0 without a plot, saying why, when matplotlib is missing: the plot is a picture
for people, not a result anything depends on.
"""
import csv
import sys

PANELS = [
    ("records_per_second", "records/s"),
    ("in_flight", "records in flight"),
    ("cache_hit_rate", "cache hit rate"),
    ("watermark_lag_seconds", "watermark lag (s)"),
]


def read_runs(path):
    runs = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            runs.setdefault(row["run"], []).append(row)
    return runs


def column(rows, name):
    return [float(r[name]) if r[name] != "" else float("nan") for r in rows]


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    timeline, out = argv[1], argv[2]
    wanted = argv[3:] or ["sync_remote", "async_remote"]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "plot skipped: python3-matplotlib is not installed (scripts/deps.sh installs it); "
            f"the timeline is in {timeline}",
            file=sys.stderr,
        )
        return 0
    runs = read_runs(timeline)
    missing = [r for r in wanted if r not in runs]
    if missing:
        print(f"plot: {timeline} has no rows for run(s) {', '.join(missing)}", file=sys.stderr)
        return 1
    fig, axes = plt.subplots(len(PANELS), len(wanted), figsize=(5 * len(wanted), 2.2 * len(PANELS)),
                             sharex=True, squeeze=False)
    for col, run in enumerate(wanted):
        rows = runs[run]
        seconds = column(rows, "seconds")
        for row, (name, label) in enumerate(PANELS):
            ax = axes[row][col]
            ax.plot(seconds, column(rows, name), drawstyle="steps-post", color=f"C{col}")
            ax.grid(True, alpha=0.3)
            if col == 0:
                ax.set_ylabel(label)
            if row == 0:
                ax.set_title(run.replace("_", ", "))
            if name == "cache_hit_rate":
                ax.set_ylim(0, 1.05)
        axes[-1][col].set_xlabel("seconds since the run started")
    # Same scale left and right, so the runs compare at a glance.
    for row in range(len(PANELS)):
        lows, highs = zip(*(axes[row][c].get_ylim() for c in range(len(wanted))))
        for c in range(len(wanted)):
            axes[row][c].set_ylim(min(lows), max(highs))
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"plot: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
