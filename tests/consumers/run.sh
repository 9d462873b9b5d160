#!/usr/bin/env bash
# Installs a build tree into a scratch prefix and builds two consumer projects outside
# the source tree against it: find_package against the install, FetchContent from a
# source tarball. Each compiles and runs a UDF; with the analyzer, each compile also
# runs the installed plugin through stock clang-tidy (CMake's CXX_CLANG_TIDY).
#
# usage: run.sh <source dir> <build dir> <work dir> <c++ compiler> <analyzer built: ON|OFF>
set -euo pipefail
src="$1" build="$2" work="$3" cxx="$4" analyzer="$5"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prefix="$work/prefix"
rm -rf "$work"
mkdir -p "$work"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "== $*"; }
# Configures and builds a copy of consumer project $1 in $work; extra args go to cmake.
build_consumer() {
  local name="$1"
  shift
  cp -r "$here/$name" "$work/$name"
  cmake -S "$work/$name" -B "$work/$name/build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCHECK_WITH_ASYNCSTATE_TIDY="$analyzer" "$@" >"$work/$name.configure.log" 2>&1 \
    || { cat "$work/$name.configure.log"; fail "$name: configure"; }
  cmake --build "$work/$name/build" >"$work/$name.build.log" 2>&1 \
    || { cat "$work/$name.build.log"; fail "$name: build"; }
}

step "install $build into $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; fail "install"; }
version="$(sed -n 's/^#define ASYNCSTATE_VERSION_STRING "\(.*\)"/\1/p' "$src/include/asyncstate/version.hpp")"
[ -n "$version" ] || fail "no ASYNCSTATE_VERSION_STRING in version.hpp"
for f in include/asyncstate/asyncstate.hpp include/asyncstate/version.hpp \
  lib/cmake/asyncstate/asyncstateConfig.cmake lib/cmake/asyncstate/asyncstateConfigVersion.cmake \
  lib/pkgconfig/asyncstate.pc lib/pkgconfig/asyncstate-rocksdb.pc lib/pkgconfig/asyncstate-redis.pc \
  lib/pkgconfig/asyncstate-http.pc; do
  [ -f "$prefix/$f" ] || fail "the install lacks $f"
done
plugin="$prefix/lib/asyncstate/libAsyncStateTidyModule.so"
if [ "$analyzer" = ON ]; then
  [ -f "$plugin" ] || fail "the analyzer was built but the install lacks its plugin ($plugin)"
  [ -x "$prefix/bin/asyncstate-tidy" ] || fail "the analyzer was built but the install lacks bin/asyncstate-tidy"
  "$prefix/bin/asyncstate-tidy" --version >"$work/tidy-version.log" 2>&1 \
    || { cat "$work/tidy-version.log"; fail "the installed asyncstate-tidy does not run"; }
else
  [ ! -e "$plugin" ] || fail "the analyzer was not built, yet a plugin was installed"
fi

step "pkg-config"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion asyncstate)" = "$version" ] || fail "pkg-config version is not $version"
"$cxx" -std=c++20 -o "$work/pc_counter" "$here/find_package/click_counter.cpp" -DPACKAGE_VERSION="\"$version\"" \
  $(pkg-config --cflags --libs asyncstate) || fail "compiling with pkg-config's flags"
"$work/pc_counter" >/dev/null || fail "the pkg-config build of click_counter"
if [ "$analyzer" = ON ]; then
  [ "$(pkg-config --variable=tidy_plugin asyncstate)" -ef "$plugin" ] || fail "pkg-config's tidy_plugin is not $plugin"
fi

step "components are found or reported missing by name"
mkdir -p "$work/components"
cat >"$work/components/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(components LANGUAGES CXX)
find_package(asyncstate CONFIG REQUIRED OPTIONAL_COMPONENTS RocksDB Redis HTTP Analyzer)
set(components RocksDB Redis HTTP Analyzer)
set(targets rocksdb redis metrics_http tidy-plugin)
foreach(component target IN ZIP_LISTS components targets)
  if(asyncstate_${component}_FOUND AND NOT TARGET asyncstate::${target})
    message(FATAL_ERROR "${component} is found but asyncstate::${target} is missing")
  endif()
  message(STATUS "component ${component}: ${asyncstate_${component}_FOUND}")
endforeach()
find_package(asyncstate CONFIG REQUIRED COMPONENTS ${EXTRA_COMPONENT})
# A found component's target must be enough to compile and link what it is for.
foreach(backend IN ITEMS rocksdb redis metrics_http)
  if(TARGET asyncstate::${backend})
    add_executable(${backend}_probe ${backend}_probe.cpp)
    target_link_libraries(${backend}_probe PRIVATE asyncstate::${backend})
  endif()
endforeach()
CMAKE
cat >"$work/components/rocksdb_probe.cpp" <<'CPP'
#include <asyncstate/backend/rocksdb.hpp>
int main(int argc, char** argv) {
  if (argc > 1) asyncstate::RocksDbBackend backend(asyncstate::RocksDbOptions{argv[1]});
}
CPP
cat >"$work/components/redis_probe.cpp" <<'CPP'
#include <asyncstate/backend/redis.hpp>
int main(int argc, char**) {
  if (argc > 1) asyncstate::RedisBackend backend(asyncstate::RedisOptions{});
}
CPP
cat >"$work/components/metrics_http_probe.cpp" <<'CPP'
#include <asyncstate/metrics_http.hpp>
int main() {
  asyncstate::MetricsRegistry registry;
  registry.counter("probe_scrapes_total", "Scrapes of the probe.").inc();
  asyncstate::MetricsHttpServer endpoint(registry);  // a free loopback port
  httplib::Client client(endpoint.host(), endpoint.port());
  const auto response = client.Get("/metrics");
  return response && response->status == 200 && response->body.find("probe_scrapes_total 1") != std::string::npos ? 0 : 1;
}
CPP
components() {
  cmake -S "$work/components" -B "$work/components/build-$1" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_PREFIX_PATH="$prefix" -DEXTRA_COMPONENT="$1" >"$work/components-$1.log" 2>&1
}
components Redis || { cat "$work/components-Redis.log"; fail "the optional components probe"; }
cmake --build "$work/components/build-Redis" >"$work/components-build.log" 2>&1 \
  || { cat "$work/components-build.log"; fail "building the backends with the components' targets"; }
for c in RocksDB Redis HTTP Analyzer; do
  grep -q -e "component $c: TRUE" -e "optional component $c not found: " "$work/components-Redis.log" \
    || { cat "$work/components-Redis.log"; fail "component $c was neither found nor reported missing"; }
done
if [ "$analyzer" = ON ]; then
  grep -q "component Analyzer: TRUE" "$work/components-Redis.log" || fail "the Analyzer component was not found"
fi
if pkg-config --exists cpp-httplib; then
  grep -q "component HTTP: TRUE" "$work/components-Redis.log" || fail "cpp-httplib is installed but the HTTP component was not found"
  "$work/components/build-Redis/metrics_http_probe" || fail "the HTTP component's consumer did not serve /metrics"
fi
! components NoSuchPart || fail "a required unknown component did not fail find_package"
grep -q "component NoSuchPart not found: no such component" "$work/components-NoSuchPart.log" \
  || { cat "$work/components-NoSuchPart.log"; fail "the unknown component was not named"; }

step "pkg-config components: each backend compiles and links with its module's flags alone"
cat >"$work/components/http_probe.cpp" <<'CPP'
#include <asyncstate/metrics_http.hpp>
int main(int argc, char**) {
  asyncstate::MetricsRegistry registry;
  if (argc > 1) asyncstate::MetricsHttpServer server(registry);
}
CPP
# module|probe|pkg-config module of the dependency (the probe is built when that one is installed)
for entry in rocksdb:rocksdb_probe:rocksdb redis:redis_probe:hiredis http:http_probe:cpp-httplib; do
  IFS=: read -r component probe dependency <<<"$entry"
  [ "$(pkg-config --modversion "asyncstate-$component")" = "$version" ] || fail "asyncstate-$component is not version $version"
  pkg-config --print-requires "asyncstate-$component" | grep -q "^$dependency\b" \
    || fail "asyncstate-$component does not require $dependency"
  if ! pkg-config --exists "$dependency"; then
    echo "   $dependency is not installed: asyncstate-$component not built"
    continue
  fi
  # shellcheck disable=SC2046 # pkg-config's flags are meant to be split
  "$cxx" -std=c++20 -o "$work/pc_$probe" "$work/components/$probe.cpp" $(pkg-config --cflags --libs "asyncstate-$component") \
    >"$work/pc_$probe.log" 2>&1 || { cat "$work/pc_$probe.log"; fail "compiling $probe with asyncstate-$component's flags"; }
  "$work/pc_$probe" >/dev/null || fail "$probe built with asyncstate-$component's flags does not run"
done
# A dependency that is not installed is named, as find_package names a missing component.
mkdir -p "$work/pc-missing"
sed 's/^Requires: \(asyncstate = [^,]*\), .*/Requires: \1, asyncstate-absent-dependency/' \
  "$prefix/lib/pkgconfig/asyncstate-rocksdb.pc" >"$work/pc-missing/asyncstate-broken.pc"
if PKG_CONFIG_PATH="$work/pc-missing:$PKG_CONFIG_PATH" pkg-config --cflags asyncstate-broken >"$work/pc-missing.log" 2>&1; then
  fail "a component whose dependency is missing resolved"
fi
grep -q "asyncstate-absent-dependency" "$work/pc-missing.log" || { cat "$work/pc-missing.log"; fail "the missing dependency was not named"; }

step "consumer: find_package"
build_consumer find_package
"$work/find_package/build/click_counter" || fail "click_counter (find_package) failed"
if [ "$analyzer" = ON ]; then
  grep -q -- "-load=$plugin" "$work/find_package/build/CMakeFiles/rules.ninja" || fail "the compile did not run clang-tidy with the plugin"
  # The checks must fire, not merely load: blocking_counter.cpp has two sync calls.
  if cmake --build "$work/find_package/build" --target blocking_counter >"$work/blocking.log" 2>&1; then
    cat "$work/blocking.log"
    fail "blocking_counter.cpp compiled although the analyzer should reject its sync state access"
  fi
  [ "$(grep -c "\[asyncstate-sync-state-access" "$work/blocking.log")" -ge 2 ] \
    || { cat "$work/blocking.log"; fail "the analyzer did not report both sync calls in blocking_counter.cpp"; }
fi

step "consumer: FetchContent"
# What a release tarball holds: the library, its CMake and packaging files.
tar -C "$src" -czf "$work/asyncstate-$version.tar.gz" CMakeLists.txt include cmake asyncstate.pc.in \
  asyncstate-component.pc.in
build_consumer fetchcontent -DASYNCSTATE_URL="$work/asyncstate-$version.tar.gz"
"$work/fetchcontent/build/cart_totals" || fail "cart_totals (FetchContent) failed"
if [ "$analyzer" = ON ]; then
  grep -q -- "-load=$plugin" "$work/fetchcontent/build/CMakeFiles/rules.ninja" || fail "the compile did not run clang-tidy with the plugin"
fi
echo "consumers: all checks passed"
