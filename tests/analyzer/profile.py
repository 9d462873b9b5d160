#!/usr/bin/env python3
"""The checks' own time over a set of files, from clang-tidy's
--enable-check-profile --store-check-profile output (one JSON per file), summed
per check, against the CPU time of the whole runs (parsing included): the ratio
checks / (total - checks) is what the checks add to clang-tidy's own parse. Used
for the table in docs/analyzer.md.

usage: profile.py <asyncstate-tidy> <include dir> [--<clang-tidy option>...] <file>...
  e.g. --config="{CheckOptions: {TraverseUserCodeOnly: false}}" for the whole-TU traversal
"""
import json
import pathlib
import resource
import subprocess
import sys
import tempfile


def main():
    tidy, include, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    options = [arg for arg in rest if arg.startswith("--")]
    files = [arg for arg in rest if not arg.startswith("--")]
    totals, checks = {}, 0.0
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as store:
        for path in files:
            extra = ["-x", "c++"] if path.endswith((".hpp", ".h")) else []
            subprocess.run([tidy, "--checks=-*,asyncstate-*", "--quiet", *options, "--enable-check-profile",
                            f"--store-check-profile={store}", path, "--", *extra, "-std=c++20", "-I", include,
                            "-I", str(pathlib.Path(path).parent)], capture_output=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        for profile in pathlib.Path(store).glob("*.json"):
            data = json.loads(profile.read_text())
            for key, seconds in data["profile"].items():
                # keys look like "time.clang-tidy.<check>.{wall,user,sys}"; CPU time
                # (user + sys) is what the whole runs are measured in too
                parts = key.split(".")
                if parts[-1] in ("user", "sys"):
                    check = ".".join(parts[2:-1])
                    totals[check] = totals.get(check, 0.0) + seconds
                    checks += seconds
    print(f"{len(files)} files")
    print("| check | CPU time (s) |")
    print("|---|---|")
    for check, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"| {check} | {seconds:.3f} |")
    print(f"| **all asyncstate checks** | **{checks:.3f}** |")
    print(f"whole runs: {total:.3f} s CPU; the checks add {100 * checks / (total - checks):.2f} % to the rest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
