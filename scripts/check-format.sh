#!/usr/bin/env bash
# Checks that the tree's C++ files follow the house style (.clang-format), with
# clang-format-19 because another version formats some constructs differently.
#   check-format.sh            check; lists every file that differs and fails
#   check-format.sh --fix      format those files in place
#   check-format.sh --fix-all  also format what .clang-format-ignore holds back until it
#                              is in the style, and stop holding it back
#   check-format.sh --tidy <build dir>
#                              run clang-tidy-19 (.clang-tidy) over every header of the
#                              library and the example, through the one translation
#                              unit that includes them all (tests/docs builds it)
# .clang-format-ignore (read by clang-format itself) lists what stays unformatted.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
clang_format="${CLANG_FORMAT:-clang-format-19}"
command -v "$clang_format" >/dev/null || { echo "check-format: $clang_format not found (apt-get install clang-format-19)" >&2; exit 2; }

# Headers with clang-tidy findings that their owners have not fixed yet; empty this
# once they are clean.
tidy_pending=''

if [ "${1:-}" = --tidy ]; then
  build="$(cd "${2:?usage: $0 --tidy <build dir>}" && pwd)"
  tidy="${CLANG_TIDY:-clang-tidy-19}"
  exclude=()
  [ -z "$tidy_pending" ] || exclude=(--exclude-header-filter="^$root/($tidy_pending)$")
  "$tidy" -p "$build" --quiet --warnings-as-errors='*' --header-filter="^$root/(include|examples)/" "${exclude[@]}" \
    "$build/tests/docs/house_style.cpp"
  echo "check-format: clang-tidy found nothing in the library's and the example's headers"
  exit 0
fi

case "${1:-}" in
  --fix-all) sed -i '/^# Not yet in the house style/,$d' .clang-format-ignore ;;
esac

# Every C++ file git knows or would add (build output is ignored).
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.cpp' '*.hpp' '*.h' '*.cc' | sort -u |
  while read -r f; do [ -f "$f" ] && echo "$f"; done)

case "${1:-}" in
  --fix | --fix-all) "$clang_format" -i "${files[@]}" ;;
  "")
    mkdir -p "$root/build"
    if ! "$clang_format" --dry-run --Werror "${files[@]}" 2>"$root/build/check-format.log"; then
      grep -o '^[^:]*:[0-9]*:[0-9]*: error' "$root/build/check-format.log" | cut -d: -f1 | sort -u |
        sed 's/^/not in the house style: /' >&2
      echo "check-format: run scripts/check-format.sh --fix" >&2
      exit 1
    fi
    # The documentation's programs are code too (fixed by hand: they live in Markdown).
    docs="$root/build/check-format-docs"
    rm -rf "$docs"
    for page in docs/guide.md docs/migration.md; do
      python3 tests/docs/doc_blocks.py cpp "$page" "$docs" >/dev/null
    done
    if ! "$clang_format" --style="file:$root/.clang-format" --dry-run --Werror "$docs"/*.cpp; then
      echo "check-format: a program in docs/ (<page>_<N>.cpp is the page's Nth cpp program) is not in the house style" >&2
      exit 1
    fi
    echo "check-format: ${#files[@]} files and the programs in docs/ are in the house style (or in .clang-format-ignore)" ;;
  *) echo "usage: $0 [--fix | --fix-all | --tidy <build dir>]" >&2; exit 2 ;;
esac
