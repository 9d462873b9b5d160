#!/usr/bin/env python3
"""Precision figures for docs/analyzer.md: for every check, the warnings it emits
on its must-warn fixture (against the CHECK-MESSAGES lines there) and on its
must-not-warn fixture (should be 0), plus the realistic UDF files with all checks.

usage: precision.py <asyncstate-tidy> <include dir> <fixtures dir>
"""
import json
import pathlib
import re
import subprocess
import sys

CHECKS = ["sync-state-access", "raw-future", "swallowed-exception", "dangling-capture", "blocking-callback"]


def run(tidy, include, path, checks):
    command = [tidy, f"--checks=-*,{checks}", "--format=json", str(path), "--", "-std=c++20", "-I", include,
               "-I", str(path.parent)]
    run = subprocess.run(command, capture_output=True, text=True)
    if not run.stdout.strip():
        sys.exit(f"no output from {' '.join(command)} (exit {run.returncode}):\n{run.stderr}")
    return [d for d in json.loads(run.stdout)["diagnostics"] if d["check"].startswith("asyncstate-")]


def expected(path):
    return len(re.findall(r"//\s*CHECK-MESSAGES(-DAG)?:", path.read_text()))


def main():
    tidy, include, fixtures = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    print("| check | must-warn cases (CHECK-MESSAGES) | warnings there | must-not-warn file: warnings |")
    print("|---|---|---|---|")
    for check in CHECKS:
        warn, ok = fixtures / check / "warn.cpp", fixtures / check / "ok.cpp"
        got_warn = run(tidy, include, warn, f"asyncstate-{check}")
        got_ok = run(tidy, include, ok, f"asyncstate-{check}")
        print(f"| asyncstate-{check} | {expected(warn)} | {len(got_warn)} | {len(got_ok)} |")
    print()
    print("| realistic file (all checks) | expected | warnings |")
    print("|---|---|---|")
    for path in sorted((fixtures / "udf").glob("*.cpp")):
        print(f"| {path.name} | {expected(path)} | {len(run(tidy, include, path, 'asyncstate-*'))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
