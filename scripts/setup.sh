#!/usr/bin/env bash
# scripts/setup.sh: install the Debian 12 packages colony needs to build, test and benchmark.
#
# Idempotent: packages already installed are left alone, and when nothing is missing the script
# does nothing at all (no apt-get update). Runs apt-get through sudo unless it is already root.
#
#   required  build-essential cmake ninja-build libboost-context-dev libboost-fiber-dev
#             libboost-dev libgtest-dev libbenchmark-dev python3 libssl-dev (OpenSSL: the TLS
#             glue <colony/net/tls.hpp> and its test; colony::runtime never links it)
#             libhiredis-dev redis-server (the hooks' tests: hiredis's synchronous client against
#             a redis-server the test starts itself)
#             libpq-dev postgresql (the hooks' tests: libpq's synchronous client against a
#             private cluster the test makes with initdb and starts itself, as the `postgres`
#             user the package creates when run as root; the package's own cluster is not used)
#   optional  golang-go (the Go peer of the benchmarks), clang (a second compiler), libtbb-dev
#             (the TBB peer of bench/compare), wrk (the HTTP load generator of bench/run.sh server)
#             A failure to install these is reported and ignored.
set -euo pipefail

required=(build-essential cmake ninja-build libboost-dev libboost-context-dev
          libboost-fiber-dev libgtest-dev libbenchmark-dev python3 libssl-dev libhiredis-dev
          redis-server libpq-dev postgresql)
optional=(golang-go clang libtbb-dev wrk)

installed() {
  dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
}

missing_of() {
  local p
  for p in "$@"; do
    installed "$p" || printf '%s\n' "$p"
  done
}

mapfile -t missing_req < <(missing_of "${required[@]}")
mapfile -t missing_opt < <(missing_of "${optional[@]}")

if [ ${#missing_req[@]} -eq 0 ] && [ ${#missing_opt[@]} -eq 0 ]; then
  echo "setup: all packages present, nothing to do"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: apt-get not found; install by hand: ${missing_req[*]} ${missing_opt[*]}" >&2
  exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "setup: not root and sudo is not installed; run as root or install: ${missing_req[*]} ${missing_opt[*]}" >&2
    exit 1
  fi
fi
apt_get() {
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@"
}
export DEBIAN_FRONTEND=noninteractive

echo "setup: apt-get update"
apt_get update -q

if [ ${#missing_req[@]} -gt 0 ]; then
  echo "setup: installing ${missing_req[*]}"
  apt_get install -y -q --no-install-recommends "${missing_req[@]}"
fi

if [ ${#missing_opt[@]} -gt 0 ]; then
  echo "setup: installing optional ${missing_opt[*]}"
  if ! apt_get install -y -q --no-install-recommends "${missing_opt[@]}"; then
    # One at a time, so that one unavailable package does not keep out the others.
    for p in "${missing_opt[@]}"; do
      installed "$p" && continue
      apt_get install -y -q --no-install-recommends "$p" ||
        echo "setup: warning: optional package $p could not be installed; continuing without it" >&2
    done
  fi
fi

mapfile -t still_missing < <(missing_of "${required[@]}")
if [ ${#still_missing[@]} -gt 0 ]; then
  echo "setup: still missing after install: ${still_missing[*]}" >&2
  exit 1
fi
echo "setup: done"
