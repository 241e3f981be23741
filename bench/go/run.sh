#!/bin/sh
# Build and run the Go peer-reference benchmarks (bench/go/main.go).
#
#   bench/go/run.sh [BUILD_DIR] [colonybench args...]
#
# BUILD_DIR defaults to /tmp/colony-go-bench; the binary is built there as
# BUILD_DIR/colonybench. Extra arguments (e.g. -reps 3, -parked 100000) are
# forwarded to every run. Each workload runs in its own process so that
# process-wide figures (VmHWM peak RSS, VmRSS deltas) belong to that workload
# alone; if the extra arguments contain -bench, only that one run is made.
# stdout carries only the JSON lines; build output goes to stderr.
# If Go is not installed a single {"system":"go","skipped":...} line is printed
# and the exit status is 0.
set -eu

BUILD_DIR=${1:-/tmp/colony-go-bench}
[ $# -gt 0 ] && shift

SRC_DIR=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)

GO=$(command -v go 2>/dev/null || true)
if [ -z "$GO" ] && [ -x /usr/local/go/bin/go ]; then
    GO=/usr/local/go/bin/go
fi
if [ -z "$GO" ]; then
    echo '{"system":"go","skipped":"go not installed"}'
    exit 0
fi

mkdir -p "$BUILD_DIR"
BUILD_DIR=$(CDPATH= cd -- "$BUILD_DIR" && pwd)

# The go command needs a cache directory; without HOME it cannot derive one.
if [ -z "${HOME:-}" ]; then
    : "${GOCACHE:=$BUILD_DIR/gocache}"
    : "${GOPATH:=$BUILD_DIR/gopath}"
    export GOCACHE GOPATH
fi
# Standard library only: never consult a module proxy, never use vendor or
# workspace settings from the environment.
(cd "$SRC_DIR" && GO111MODULE=on GOFLAGS= GOWORK=off GOPROXY=off GOTOOLCHAIN=local \
    "$GO" build -o "$BUILD_DIR/colonybench" .) >&2

BIN=$BUILD_DIR/colonybench

for arg in "$@"; do
    case "$arg" in
        -bench|--bench|-bench=*|--bench=*)
            exec "$BIN" "$@"
            ;;
    esac
done

status=0
for bench in skynet spawn gosched pingpong parked sleep sleep_raw; do  # -bench all: every one
    "$BIN" -bench "$bench" "$@" || status=$?
done
exit $status
