#!/usr/bin/env python3
"""Runs one asyncstate-* check over one fixture and verifies it, following the
conventions of clang-tidy's own test runner (check_clang_tidy.py, not shipped by
Debian):

  // CHECK-MESSAGES: :[[@LINE+1]]:3: warning: ... [asyncstate-x]
      every diagnostic must be matched; an unexpected warning or error fails
  // CHECK-FIXES: expected line after --fix
      the fixed file must match, and must still compile
  a fixture without CHECK-MESSAGES must produce no diagnostic at all, and a
  fixture without CHECK-FIXES must not be changed by --fix.
  A fixture must compile against the real library headers: one that only "passes"
  because it does not compile tests nothing.

usage (from a lit RUN line):
  %check_tidy [--check-suffix=S] <fixture> <checks> [-- <clang-tidy args> [-- <compiler args>]]

With --check-suffix=S the prefixes are CHECK-MESSAGES-S and CHECK-FIXES-S, so
one fixture can be run several ways (with and without options, header filters).
Sibling headers are copied along with the fixture, so --fix never edits the
source tree.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

CHECK_LINE = re.compile(r"//\s*CHECK-(MESSAGES|FIXES)[A-Z0-9-]*:[^\r\n]*")
CRASH_MARKERS = ("PLEASE submit a bug report", "Stack dump:", "Segmentation fault")


def fail(message, output=""):
    sys.stderr.write(f"check_tidy: FAIL: {message}\n")
    if output:
        sys.stderr.write("---- tool output ----\n" + output + "\n---------------------\n")
    sys.exit(1)


def split_extra(rest):
    """[-- tidy args [-- compiler args]] -> (tidy args, compiler args)."""
    if not rest:
        return [], []
    if rest[0] == "--":
        rest = rest[1:]
    if "--" in rest:
        i = rest.index("--")
        return rest[:i], rest[i + 1:]
    return rest, []


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", choices=["plugin", "driver"], required=True)
    parser.add_argument("--clang-tidy", required=True)
    parser.add_argument("--plugin", required=True)
    parser.add_argument("--driver", required=True)
    parser.add_argument("--filecheck", required=True)
    parser.add_argument("--cxx", required=True)
    parser.add_argument("--include", required=True)
    parser.add_argument("--pch", default="", help="precompiled asyncstate.hpp to load before the fixture")
    parser.add_argument("--check-suffix", default="")
    parser.add_argument("fixture")
    parser.add_argument("checks")
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()

    with open(args.fixture, encoding="utf-8") as f:
        original = f.read()
    suffix = f"-{args.check_suffix}" if args.check_suffix else ""
    messages_prefix, fixes_prefix = f"CHECK-MESSAGES{suffix}", f"CHECK-FIXES{suffix}"
    has_messages = re.search(rf"{messages_prefix}(-DAG|-NEXT|-SAME|-NOT)?:", original) is not None
    has_fixes = re.search(rf"{fixes_prefix}(-NEXT|-SAME|-NOT)?:", original) is not None
    tidy_extra, cxx_extra = split_extra(args.rest)

    workdir = tempfile.mkdtemp(prefix="asyncstate-tidy-test-")
    try:
        # CHECK lines are blanked (not removed) so line numbers stay valid and
        # CHECK-FIXES patterns cannot match themselves in the fixed file.
        fixture_dir = os.path.dirname(os.path.abspath(args.fixture))
        for sibling in os.listdir(fixture_dir):
            if sibling.endswith((".h", ".hpp")):
                shutil.copy(os.path.join(fixture_dir, sibling), workdir)
        fixed_path = os.path.join(workdir, os.path.basename(args.fixture))
        with open(fixed_path, "w", encoding="utf-8") as f:
            f.write(CHECK_LINE.sub("//", original))
        with open(fixed_path, encoding="utf-8") as f:
            before_fix = f.read()

        compiler = ["-std=c++20", "-I", args.include, "-I", fixture_dir]
        if args.pch:
            compiler += ["-include-pch", args.pch]
        compiler += cxx_extra
        if args.tool == "plugin":
            command = [args.clang_tidy, f"-load={args.plugin}"]
        else:
            command = [args.driver]
        command += [f"--checks=-*,{args.checks}", "--fix", "--quiet", *tidy_extra, fixed_path, "--", *compiler]
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            fail("timed out: " + " ".join(command))
        output = run.stdout + run.stderr
        if run.returncode < 0 or any(marker in output for marker in CRASH_MARKERS):
            fail(f"tool crashed (exit {run.returncode}): " + " ".join(command), output)
        if "[clang-diagnostic-error]" in output:
            fail("the fixture does not compile against the library's headers", output)
        output_path = os.path.join(workdir, "output.txt")
        with open(output_path, "w", encoding="utf-8") as f:
            f.write(output)

        if has_messages:
            check = subprocess.run([args.filecheck, f"-input-file={output_path}", args.fixture,
                                    f"-check-prefix={messages_prefix}", "-implicit-check-not={{warning|error}}:"],
                                   capture_output=True, text=True)
            if check.returncode != 0:
                fail(f"{messages_prefix} did not match:\n" + check.stderr, output)
        elif re.search(r"\b(warning|error):", output):
            fail("expected no diagnostics", output)

        with open(fixed_path, encoding="utf-8") as f:
            after_fix = f.read()
        if has_fixes:
            check = subprocess.run([args.filecheck, f"-input-file={fixed_path}", args.fixture,
                                    f"-check-prefix={fixes_prefix}", "-strict-whitespace"],
                                   capture_output=True, text=True)
            if check.returncode != 0:
                fail(f"{fixes_prefix} did not match:\n" + check.stderr, after_fix)
            # A fix-it that does not compile (or trips [[nodiscard]]) is worse than none.
            build = subprocess.run([args.cxx, "-fsyntax-only", "-Werror=unused-result", *compiler, fixed_path],
                                   capture_output=True, text=True)
            if build.returncode != 0:
                fail("the fixed file does not compile:\n" + build.stderr, after_fix)
        elif after_fix != before_fix:
            fail("--fix changed a fixture that has no CHECK-FIXES lines", after_fix)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
