#!/usr/bin/env bash
# bench/compare/run.sh: build the comparison suite's workers if needed, then run it.
#
#   bench/compare/run.sh [--quick | --full] [--out DIR] [compare.py options...]
#
#   --quick   (default) smaller sizes, 3 repetitions: under 3 minutes on 2 cores
#   --full    the issue's sizes, 5 repetitions (about half an hour on 2 cores: the thread
#             baselines dominate)
#   --out DIR where table.txt, results.md, results.json and chart.svg go
#             (default build/compare/results)
# Other options go to bench/compare/compare.py (--reps N, --procs P, --systems A,B,
# --workloads A,B, --timeout S; see compare.py --help).
#
# Environment:
#   COLONY_COMPARE_BUILD  the CMake build directory (default build/compare; configured here as
#                         Release with the benchmarks and examples on and the tests off, if it
#                         does not exist; the server workload needs examples/colony_http_server)
#   COLONY_COMPARE_JOBS   parallel build jobs (default 2)
#
# Builds only the colony_compare target (the C++ workers of every peer library that CMake
# found) and the Go worker (bench/go/compare, if go is installed). Missing peers are reported
# as skipped by the driver.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${COLONY_COMPARE_BUILD:-$ROOT/build/compare}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac  # the Go build runs in another directory
JOBS=${COLONY_COMPARE_JOBS:-2}

if [ ! -f "$BUILD/build.ninja" ] && [ ! -f "$BUILD/Makefile" ]; then
  gen=()
  command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  echo "-- configuring $BUILD" >&2
  cmake -S "$ROOT" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCOLONY_BUILD_BENCH=ON -DCOLONY_BUILD_TESTS=OFF -DCOLONY_BUILD_EXAMPLES=ON >&2
fi
# The workers CMake configured (bench/compare/CMakeLists.txt lists them in workers.txt), built one
# by one: a worker that fails to compile (e.g. a peer library's headers are broken) is removed,
# recorded in build-failures.txt and reported by the driver, and the others still run.
BIN=$BUILD/bench/compare
if ! cmake "$BUILD" -DCOLONY_BUILD_EXAMPLES=ON >"$BUILD/compare-configure.log" 2>&1; then  # picks up new peers / pool; the server workload needs the HTTP example
  cat "$BUILD/compare-configure.log" >&2
  echo "bench/compare/run.sh: configuring $BUILD failed" >&2
  exit 1
fi
: >"$BIN/build-failures.txt"
LOG=$BUILD/compare-build.log
: >"$LOG"
while read -r worker; do
  [ -n "$worker" ] || continue
  echo "-- building $worker (-j$JOBS; log: $LOG)" >&2
  if ! cmake --build "$BUILD" --target "$worker" -j "$JOBS" >>"$LOG" 2>&1 </dev/null; then
    grep -E "error|FAILED" "$LOG" | tail -5 >&2 || true
    echo "-- WARNING: $worker failed to build; its system is skipped" >&2
    rm -f "$BIN/$worker"
    echo "$worker" >>"$BIN/build-failures.txt"
  fi
done <"$BIN/workers.txt"
# The server workload's colony side: the HTTP example (skipped by compare.py if not built).
echo "-- building colony_http_server (the server workload; log: $LOG)" >&2
if ! cmake --build "$BUILD" --target colony_http_server -j "$JOBS" >>"$LOG" 2>&1 </dev/null; then
  echo "-- colony_http_server not built (examples off?); the server workload skips colony" >&2
fi

GO_BIN=$BUILD/go/colony_compare_go
GO=$(command -v go 2>/dev/null || true)
if [ -z "$GO" ] && [ -x /usr/local/go/bin/go ]; then
  GO=/usr/local/go/bin/go
fi
if [ -n "$GO" ]; then
  echo "-- building the Go worker (bench/go)" >&2
  mkdir -p "$BUILD/go"
  # The go command needs a cache directory; without HOME it cannot derive one.
  if [ -z "${HOME:-}" ]; then
    : "${GOCACHE:=$BUILD/go/cache}"
    export GOCACHE
  fi
  # Standard library only: never consult a module proxy or the environment's workspace.
  (cd "$ROOT/bench/go" && GO111MODULE=on GOFLAGS= GOWORK=off GOPROXY=off \
    GOTOOLCHAIN=local "$GO" build -o "$GO_BIN" .) >&2
  (cd "$ROOT/bench/go" && GO111MODULE=on GOFLAGS= GOWORK=off GOPROXY=off \
    GOTOOLCHAIN=local "$GO" build -o "$BUILD/go/colony_compare_go_hello" ./servers/hello) >&2
else
  echo "-- go not installed: the Go system is skipped" >&2
  rm -f "$GO_BIN" "$BUILD/go/colony_compare_go_hello"
fi

exec python3 "$ROOT/bench/compare/compare.py" --bin "$BIN" --go-bin "$GO_BIN" "$@"
