#!/usr/bin/env python3
"""Every fixture must be valid C++ against the real library headers: a fixture
that only "works" because it does not compile would test nothing.

usage: compile_fixtures.py <clang++> <include dir> <fixtures dir> [<asyncstate.pch>]

With the precompiled umbrella header (the one the lit suites load), the library is
parsed once instead of once per fixture.
"""
import concurrent.futures
import os
import pathlib
import subprocess
import sys


def compile_one(cxx, include, pch, path):
    command = [cxx, "-std=c++20", "-fsyntax-only", "-I", include, "-I", str(path.parent)]
    if pch:
        command += ["-include-pch", pch]
    command.append(str(path))
    run = subprocess.run(command, capture_output=True, text=True)
    return path, run.returncode, run.stderr


def main():
    cxx, include, fixtures = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    pch = sys.argv[4] if len(sys.argv) > 4 else ""
    sources = sorted(p for p in fixtures.rglob("*.cpp") if "Inputs" not in p.parts)
    if not sources:
        print(f"no fixtures under {fixtures}")
        return 1
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for path, code, stderr in pool.map(lambda p: compile_one(cxx, include, pch, p), sources):
            rel = os.path.relpath(path, fixtures)
            if code != 0:
                failed += 1
                print(f"FAIL {rel}\n{stderr}")
            else:
                print(f"ok   {rel}")
    print(f"{len(sources) - failed}/{len(sources)} fixtures compile")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
