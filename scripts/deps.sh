#!/usr/bin/env bash
# Installs the Debian 12 packages the build, tests, demo and benchmarks need.
# Idempotent and quiet when everything is already present.
set -euo pipefail
packages=(
  cmake ninja-build ccache pkg-config g++ python3 python3-matplotlib
  stunnel4 openssl
  clang-19 clang-tidy-19 clang-format-19 libclang-19-dev llvm-19-dev llvm-19-tools libclang-rt-19-dev
  libgtest-dev libgmock-dev libbenchmark-dev librange-v3-dev libboost-dev libboost-thread-dev
  librocksdb-dev libhiredis-dev redis-server
  libcpp-httplib-dev prometheus
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
# The packages' scripts would start redis-server and prometheus as system services on their
# default ports; the tests start their own on free loopback ports, so forbid service starts
# for the duration of the install, as container images do.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
  "${sudo_cmd[@]}" chmod 755 "$policy"
  trap '"${sudo_cmd[@]}" rm -f "$policy"' EXIT
fi
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
