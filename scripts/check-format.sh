#!/usr/bin/env bash
# Checks that the tree's C++ files follow the house style (.clang-format), with
# clang-format-19 because another version formats some constructs differently.
#   check-format.sh            check; lists every file that differs and fails
#   check-format.sh --fix      format those files in place
#   check-format.sh --fix-all  also format what .clang-format-ignore holds back until it
#                              is in the style, and stop holding it back
# .clang-format-ignore (read by clang-format itself) lists what stays unformatted.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
clang_format="${CLANG_FORMAT:-clang-format-19}"
command -v "$clang_format" >/dev/null || { echo "check-format: $clang_format not found (apt-get install clang-format-19)" >&2; exit 2; }

case "${1:-}" in
  --fix-all) sed -i '/^# Not yet in the house style/,$d' .clang-format-ignore ;;
esac

# Every C++ file git knows or would add (build output is ignored).
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.cpp' '*.hpp' '*.h' '*.cc' | sort -u |
  while read -r f; do [ -f "$f" ] && echo "$f"; done)

case "${1:-}" in
  --fix | --fix-all) "$clang_format" -i "${files[@]}" ;;
  "")
    if ! "$clang_format" --dry-run --Werror "${files[@]}" 2>"$root/build/check-format.log"; then
      grep -o '^[^:]*:[0-9]*:[0-9]*: error' "$root/build/check-format.log" | cut -d: -f1 | sort -u |
        sed 's/^/not in the house style: /' >&2
      echo "check-format: run scripts/check-format.sh --fix" >&2
      exit 1
    fi
    echo "check-format: ${#files[@]} files in the house style or in .clang-format-ignore" ;;
  *) echo "usage: $0 [--fix | --fix-all]" >&2; exit 2 ;;
esac
