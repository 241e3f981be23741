#!/usr/bin/env bash
# bench/run.sh: run colony's micro-benchmarks and their peers in one go, then print the
# comparison table (bench/compare.py).
#
#   bench/run.sh [BUILD_DIR]        BUILD_DIR defaults to build/release
#
# Runs, each writing JSON into OUT_DIR:
#   BUILD_DIR/bench/colony_bench        -> colony.json  (google-benchmark JSON)
#   BUILD_DIR/bench/colony_bench_peers  -> peers.json   (Boost.Fiber, raw Boost.Context)
#   bench/go/run.sh                     -> go.jsonl     (one JSON object per line)
# A missing peer (no Boost.Fiber, no Go) shows as "n/a" in the table. The sleep and sleep_raw
# Go workloads are not run here (they have no colony counterpart yet).
#
# Environment:
#   COLONY_BENCH_OUT       OUT_DIR (default BUILD_DIR/bench-results); the Markdown table goes
#                          to OUT_DIR/results.md
#   COLONY_BENCH_MIN_TIME  --benchmark_min_time in seconds for the benchmarks without a fixed
#                          iteration count (default 0.5)
#   COLONY_BENCH_GO_REPS   repetitions of the quick Go workloads (default 3)
#
# Exit status: non-zero if a colony benchmark failed; peer failures are reported and skipped.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${1:-$ROOT/build/release}
OUT_DIR=${COLONY_BENCH_OUT:-$BUILD_DIR/bench-results}
MIN_TIME=${COLONY_BENCH_MIN_TIME:-0.5}
GO_REPS=${COLONY_BENCH_GO_REPS:-3}

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
rm -f "$OUT_DIR/colony.json" "$OUT_DIR/peers.json" "$OUT_DIR/go.jsonl" "$OUT_DIR/results.md"

status=0
start=$SECONDS

# gbench NAME BINARY OUT: console output for the log, JSON into OUT.
gbench() {
  local name=$1 bin=$2 out=$3
  echo "-- $name: $bin"
  "$bin" --benchmark_min_time="$MIN_TIME" --benchmark_format=console \
         --benchmark_out="$out" --benchmark_out_format=json
}

colony_bin=$BUILD_DIR/bench/colony_bench
if [ -x "$colony_bin" ]; then
  if ! gbench colony "$colony_bin" "$OUT_DIR/colony.json"; then
    echo "bench/run.sh: colony_bench failed" >&2
    status=1
  fi
else
  echo "bench/run.sh: $colony_bin not found (build the release preset first)" >&2
  status=1
fi

peers_bin=$BUILD_DIR/bench/colony_bench_peers
if [ -x "$peers_bin" ]; then
  gbench "Boost.Fiber / Boost.Context" "$peers_bin" "$OUT_DIR/peers.json" ||
    echo "bench/run.sh: warning: colony_bench_peers failed; its figures are left out" >&2
else
  echo "-- Boost.Fiber peers: $peers_bin not built (libboost-fiber-dev missing?), skipped"
fi

echo "-- Go: bench/go/run.sh"
go_dir=$OUT_DIR/go
: >"$OUT_DIR/go.jsonl"
for b in skynet spawn gosched pingpong chanbuf1 chanbuf4 mutex wgfanin parked; do
  reps=(-reps "$GO_REPS")
  [ "$b" = parked ] && reps=()  # heavy: one repetition in a fresh process (its default)
  if ! sh "$ROOT/bench/go/run.sh" "$go_dir" -bench "$b" "${reps[@]}" >>"$OUT_DIR/go.jsonl"; then
    echo "bench/run.sh: warning: Go workload $b failed" >&2
  fi
  if grep -q '"skipped"' "$OUT_DIR/go.jsonl"; then
    echo "   Go not installed: Go figures skipped"
    break
  fi
done

echo "-- benchmarks took $((SECONDS - start)) s"
echo
python3 "$ROOT/bench/compare.py" --colony "$OUT_DIR/colony.json" --peers "$OUT_DIR/peers.json" \
  --go "$OUT_DIR/go.jsonl" --markdown "$OUT_DIR/results.md" \
  --note "google-benchmark --benchmark_min_time=$MIN_TIME (fixed-iteration benchmarks ignore it); Go: -reps $GO_REPS, median; parked: 1 run" ||
  status=1
echo
echo "JSON and Markdown in $OUT_DIR"
exit $status
