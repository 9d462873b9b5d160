#!/usr/bin/env python3
"""Extracts the fenced code blocks of a Markdown page, so the page's code can be
compiled and its commands run by the test suite.

  doc_blocks.py cpp <page.md> <out dir>   writes block N of language cpp to
      <out dir>/<page>_<N>.cpp and prints "<file>|<tags>" per block, where tags are
      the words after "cpp" in the fence (rocksdb: needs RocksDB); blocks tagged
      excerpt=<path> are quotes, not programs
  doc_blocks.py excerpts <page.md> <root> checks that every cpp block tagged
      excerpt=<path> appears, line for line, in <root>/<path>
  doc_blocks.py sh <page.md>              runs every sh block in order, from the
      current directory, with bash -euo pipefail, echoing each block first
"""
import pathlib
import re
import subprocess
import sys

FENCE = re.compile(r"^```([a-z+]+)([^\n]*)\n(.*?)^```\s*$", re.M | re.S)


def blocks(page, language):
    text = pathlib.Path(page).read_text()
    return [(m.group(2).split(), m.group(3)) for m in FENCE.finditer(text) if m.group(1) == language]


def write_cpp(page, out_dir):
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = pathlib.Path(page).stem
    found = [(tags, code) for tags, code in blocks(page, "cpp") if not excerpt_of(tags)]
    if not found:
        sys.exit(f"{page}: no cpp programs")
    for n, (tags, code) in enumerate(found, 1):
        path = out / f"{stem}_{n}.cpp"
        # Rewriting only on change keeps the build from recompiling untouched blocks.
        if not path.exists() or path.read_text() != code:
            path.write_text(code)
        print(f"{path}|{','.join(tags)}")


def excerpt_of(tags):
    return next((tag.split("=", 1)[1] for tag in tags if tag.startswith("excerpt=")), None)


def check_excerpts(page, root):
    checked = 0
    for tags, code in blocks(page, "cpp"):
        source = excerpt_of(tags)
        if source is None:
            continue
        text = pathlib.Path(root, source).read_text()
        # Indentation may differ (an excerpt of a class body is shown unindented).
        lines = [line.strip() for line in text.splitlines()]
        wanted = [line.strip() for line in code.splitlines()]
        if not any(lines[i:i + len(wanted)] == wanted for i in range(len(lines) - len(wanted) + 1)):
            sys.exit(f"{page}: this excerpt is not in {source} (update the page):\n{code}")
        checked += 1
    if checked == 0:
        sys.exit(f"{page}: no excerpt blocks")
    print(f"{page}: {checked} excerpts match their sources")


def run_sh(page):
    found = blocks(page, "sh")
    if not found:
        sys.exit(f"{page}: no sh blocks")
    for n, (_, code) in enumerate(found, 1):
        print(f"--- {page} sh block {n}:\n{code}", flush=True)
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", code])
        if result.returncode != 0:
            sys.exit(f"{page}: sh block {n} failed with exit code {result.returncode}")
    print(f"{page}: {len(found)} sh blocks ran")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "cpp":
        write_cpp(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "excerpts":
        check_excerpts(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "sh":
        run_sh(sys.argv[2])
    else:
        sys.exit(__doc__)
