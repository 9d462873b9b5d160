#!/usr/bin/env python3
"""Precision figures for docs/analyzer.md.

1. For every check, the warnings it emits on its must-warn fixture (against the
   CHECK-MESSAGES lines there) and on its must-not-warn fixture (should be 0).
2. Precision and recall of all checks together on sets of realistic UDF files
   (fixtures/udf, fixtures/eval2, fixtures/eval3): every `// CHECK-MESSAGES: :[[@LINE-N]]:...
   [asyncstate-x]` line is one expected finding at that line; a diagnostic of an
   asyncstate check at an expected (line, check) is a true positive, any other
   asyncstate diagnostic a false positive, an expected finding nobody reported a
   false negative. Misses and false positives are listed, so a regression names
   its line.

usage: precision.py <asyncstate-tidy> <include dir> <fixtures dir> [set...]
"""
import json
import pathlib
import re
import subprocess
import sys

CHECKS = ["sync-state-access", "raw-future", "swallowed-exception", "dangling-capture", "blocking-callback",
          "dangling-coroutine-reference", "member-scratch-across-suspension", "mixed-state-access"]
EXPECTATION = re.compile(r"//\s*CHECK-MESSAGES(?:-DAG)?:\s*:(?:\[\[@LINE([+-]\d+)?\]\]|(\d+)):.*?"
                         r"(?:\[(asyncstate-[a-z-]+)\])?\s*$")


def run(tidy, include, path, checks):
    command = [tidy, f"--checks=-*,{checks}", "--format=json", str(path), "--", "-std=c++20", "-I", include,
               "-I", str(path.parent)]
    run = subprocess.run(command, capture_output=True, text=True)
    if not run.stdout.strip():
        sys.exit(f"no output from {' '.join(command)} (exit {run.returncode}):\n{run.stderr}")
    return [d for d in json.loads(run.stdout)["diagnostics"] if d["check"].startswith("asyncstate-")]


def expectations(path):
    """[(line, check or None)] from the CHECK-MESSAGES lines of a fixture."""
    found = []
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        match = EXPECTATION.search(text)
        # A note belongs to the warning it follows: it is not a finding of its own.
        if match and ": note:" not in text:
            offset, absolute, check = match.groups()
            found.append((int(absolute) if absolute else number + int(offset or 0), check))
    return found


def score(tidy, include, path):
    expected = expectations(path)
    got = [(d["line"], d["check"], d["message"]) for d in run(tidy, include, path, "asyncstate-*")
           if pathlib.Path(d["file"]).name == path.name]
    unmatched = list(expected)
    true_positives, false_positives = 0, []
    for line, check, message in got:
        hit = next((e for e in unmatched if e[0] == line and e[1] in (None, check)), None)
        if hit:
            unmatched.remove(hit)
            true_positives += 1
        else:
            false_positives.append(f"{path.name}:{line}: [{check}] {message}")
    misses = [f"{path.name}:{line}: expected [{check or 'any'}]" for line, check in unmatched]
    return len(expected), true_positives, false_positives, misses


def main():
    tidy, include, fixtures = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    sets = sys.argv[4:] or ["udf", "eval2", "eval3"]
    print("| check | must-warn cases (CHECK-MESSAGES) | warnings there | must-not-warn file: warnings |")
    print("|---|---|---|---|")
    for check in CHECKS:
        warn, ok = fixtures / check / "warn.cpp", fixtures / check / "ok.cpp"
        if not warn.exists():
            continue
        got_warn = run(tidy, include, warn, f"asyncstate-{check}")
        got_ok = run(tidy, include, ok, f"asyncstate-{check}")
        print(f"| asyncstate-{check} | {len(expectations(warn))} | {len(got_warn)} | {len(got_ok)} |")
    for name in sets:
        print()
        print(f"| {name}/ file (all checks) | expected | found | false positives | missed |")
        print("|---|---|---|---|---|")
        totals, notes = [0, 0, 0, 0], []
        for path in sorted((fixtures / name).glob("*.cpp")):
            expected, true_positives, false_positives, misses = score(tidy, include, path)
            print(f"| {path.name} | {expected} | {true_positives} | {len(false_positives)} | {len(misses)} |")
            for i, value in enumerate((expected, true_positives, len(false_positives), len(misses))):
                totals[i] += value
            notes += false_positives + misses
        expected, true_positives, false_positives, _ = totals
        reported = true_positives + false_positives
        precision = true_positives / reported if reported else 1.0
        recall = true_positives / expected if expected else 1.0
        print(f"| **{name}/ total** | {expected} | {true_positives} | {false_positives} | {totals[3]} |")
        print()
        print(f"{name}/: precision {precision:.3f}, recall {recall:.3f}")
        for note in notes:
            print(f"  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
