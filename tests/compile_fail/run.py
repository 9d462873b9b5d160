#!/usr/bin/env python3
"""Compiles each snippet in this directory and checks the FIRST error the compiler
reports: a mistake a Flink user makes must be answered by an error that names the fix,
not by pages of template backtrace.

Each snippet's first line is either
  // first-error: <regex>   the first line containing "error:" must match <regex>
  // compiles               the snippet must compile (with -Wall -Wextra -Werror)

usage: run.py <c++ compiler> <include dir> [snippet.cpp ...]
"""
import pathlib
import re
import subprocess
import sys

# The fix must be on screen: the first error within this many lines of output.
FIRST_ERROR_WITHIN = 8


def check(cxx, include, path):
    header = path.read_text().splitlines()[0]
    command = [cxx, "-std=c++20", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-I", include, str(path)]
    run = subprocess.run(command, capture_output=True, text=True)
    output = run.stderr
    if header.startswith("// compiles"):
        return None if run.returncode == 0 else f"expected to compile:\n{output}"
    match = re.match(r"// first-error: (.*)", header)
    if not match:
        return "first line must be '// first-error: <regex>' or '// compiles'"
    if run.returncode == 0:
        return "expected a compile error, it compiled"
    lines = output.splitlines()
    errors = [i for i, line in enumerate(lines) if "error:" in line]
    first = lines[errors[0]] if errors else "<no error line>"
    if not re.search(match.group(1), first):
        return f"first error does not match /{match.group(1)}/:\n  {first}\n(full output: {len(lines)} lines)"
    if errors[0] >= FIRST_ERROR_WITHIN:
        return f"the first error comes after {errors[0]} lines of context (at most {FIRST_ERROR_WITHIN})"
    return None


def main():
    cxx, include = sys.argv[1], sys.argv[2]
    here = pathlib.Path(__file__).parent
    snippets = [pathlib.Path(p) for p in sys.argv[3:]] or sorted(here.glob("*.cpp"))
    failed = 0
    for path in snippets:
        problem = check(cxx, include, path)
        print(f"{'FAIL' if problem else 'ok  '} {path.name}" + (f"\n{problem}" if problem else ""))
        failed += problem is not None
    print(f"{len(snippets) - failed}/{len(snippets)} snippets behave as expected with {cxx}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
