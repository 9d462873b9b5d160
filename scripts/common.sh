# Shared by the demo and test commands: one place decides build directories and compilers.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="$(nproc)"
# ccache's own default directory (~/.cache/ccache) survives fresh clones on the same
# machine; relative paths and an unhashed working directory let a clone at another path
# hit the same cache entries.
export CCACHE_BASEDIR="$root"
export CCACHE_NOHASHDIR=true
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
# The sanitizer builds' tests share a precompiled header; ccache caches their compiles only
# when told that the header's macros and timestamps are accounted for (its manual's setting).
export CCACHE_SLOPPINESS=pch_defines,time_macros

# configure <dir> <c++ compiler> [cmake args...]
# Debug info is line tables only (-g1): enough for sanitizer reports, backtraces and
# callgrind, and a quarter to a third less compile time than full -g on these sources.
configure() {
  local dir="$1" cxx="$2"
  shift 2
  cmake -S "$root" -B "$root/build/$dir" -G Ninja \
    -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
    "$@" >"$root/build/$dir.configure.log" 2>&1 \
    || { cat "$root/build/$dir.configure.log"; return 1; }
}
