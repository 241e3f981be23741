#!/usr/bin/env bash
# bench/server/run.sh: colony's network servers against Go's, on loopback, in one run.
#
#   bench/server/run.sh [--quick] [BUILD_DIR]
#
#  1. HTTP: wrk (same settings for both) against examples/http_server.cpp (colony) and
#     bench/go/servers/hello (Go net/http), both answering "Hello, World!\n":
#     requests/s and p99 latency.
#  2. Echo: examples/echo_client.cpp (colony fibers, one 64-byte message in flight per
#     connection) against examples/echo_server.cpp and bench/go/servers/echo: messages/s.
# Each measurement is repeated REPS times, alternating colony and Go; the table shows medians.
#
# BUILD_DIR (default build/net-bench) must hold examples/colony_{http_server,echo_server,
# echo_client}; if it does not, the script configures (RelWithDebInfo) and builds them there.
# The servers run with the same processor count (colony: --procs, Go: GOMAXPROCS). wrk, the
# load client and the server share the machine's cores: on a small machine that is part of
# what is measured (say so when quoting the figures).
#
# Environment (defaults in brackets; --quick shortens durations and uses REPS=1):
#   PROCS [nproc]   server processors        WRK_THREADS [2]  WRK_CONNS [100]
#   WRK_DURATION [10s | 3s]                  REPS [3 | 1]
#   ECHO_CONNS [100]  ECHO_SIZE [64]  ECHO_MS [10000 | 3000]
#   PORT_BASE [18080]: uses PORT_BASE .. PORT_BASE+3 on 127.0.0.1
#   OUT [BUILD_DIR/server-bench]: logs and results.md
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
QUICK=0
if [[ "${1:-}" == "--quick" ]]; then QUICK=1; shift; fi
BUILD_DIR=${1:-$ROOT/build/net-bench}
PROCS=${PROCS:-$(nproc)}
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-100}
ECHO_CONNS=${ECHO_CONNS:-100}
ECHO_SIZE=${ECHO_SIZE:-64}
if (( QUICK )); then
  WRK_DURATION=${WRK_DURATION:-3s}; REPS=${REPS:-1}; ECHO_MS=${ECHO_MS:-3000}
else
  WRK_DURATION=${WRK_DURATION:-10s}; REPS=${REPS:-3}; ECHO_MS=${ECHO_MS:-10000}
fi
PORT_BASE=${PORT_BASE:-18080}
OUT=${OUT:-$BUILD_DIR/server-bench}

command -v wrk >/dev/null || { echo "wrk not found (Debian: apt-get install wrk)" >&2; exit 1; }
command -v go >/dev/null || { echo "go not found" >&2; exit 1; }

# --- build -----------------------------------------------------------------------------------
EX=$BUILD_DIR/examples
if [[ ! -x $EX/colony_http_server || ! -x $EX/colony_echo_server || ! -x $EX/colony_echo_client ]]; then
  echo "-- building the examples in $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCOLONY_BUILD_TESTS=OFF -DCOLONY_BUILD_BENCH=OFF >/dev/null
  cmake --build "$BUILD_DIR" -j2 --target colony_http_server colony_echo_server colony_echo_client
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
echo "-- building the Go servers ($(go version | awk '{print $3}'))"
(cd "$ROOT/bench/go" && go build -o "$OUT/go_hello" ./servers/hello && go build -o "$OUT/go_echo" ./servers/echo)

# --- helpers ---------------------------------------------------------------------------------
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# start NAME LOG CMD...: starts a server, waits for its "listening on" line; sets SERVER_PID.
start() {
  local name=$1 log=$2; shift 2
  "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 100); do
    grep -q "listening on" "$log" 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not start:" >&2; cat "$log" >&2; exit 1
}

# stop: SIGTERM (graceful shutdown) to SERVER_PID and wait for it.
stop() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || return 0; sleep 0.1; done
  echo "server $SERVER_PID ignored SIGTERM for 10 s; killing it" >&2
  kill -KILL "$SERVER_PID" 2>/dev/null || true
}

# to_ms: wrk latency ("812.00us", "1.25ms", "2.01s") in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "nan" }'
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# wrk_run URL LOG: prints "RPS P99MS".
wrk_run() {
  wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WRK_DURATION" --latency "$1" >"$2" 2>&1
  local rps p99
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$2")
  p99=$(awk '$1 == "99%" { print $2 }' "$2")
  if grep -q "Non-2xx\|Socket errors" "$2"; then echo "note: $(grep -h 'Non-2xx\|Socket errors' "$2")" >&2; fi
  echo "$rps $(to_ms "$p99")"
}

HTTP_C=$PORT_BASE; HTTP_GO=$((PORT_BASE + 1)); ECHO_C=$((PORT_BASE + 2)); ECHO_GO=$((PORT_BASE + 3))
echo "-- settings: procs=$PROCS (of $(nproc) cores, shared with wrk and the load client)," \
     "wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION --latency, reps=$REPS;" \
     "echo: $ECHO_CONNS connections x $ECHO_SIZE-byte messages for ${ECHO_MS} ms"

# --- HTTP --------------------------------------------------------------------------------------
declare -a C_RPS C_P99 G_RPS G_P99
for rep in $(seq "$REPS"); do
  for who in colony go; do
    if [[ $who == colony ]]; then
      start colony_http_server "$OUT/colony_http.log" "$EX/colony_http_server" \
        --addr=127.0.0.1:$HTTP_C --procs="$PROCS"
      url=http://127.0.0.1:$HTTP_C/
    else
      start go_hello "$OUT/go_http.log" "$OUT/go_hello" -addr 127.0.0.1:$HTTP_GO -procs "$PROCS"
      url=http://127.0.0.1:$HTTP_GO/
    fi
    wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d1s "$url" >/dev/null 2>&1  # warm-up
    read -r rps p99 < <(wrk_run "$url" "$OUT/wrk_${who}_$rep.txt")
    echo "   http $who rep $rep: $rps req/s, p99 $p99 ms"
    if [[ $who == colony ]]; then C_RPS+=("$rps"); C_P99+=("$p99"); else G_RPS+=("$rps"); G_P99+=("$p99"); fi
    stop
  done
done

# --- echo --------------------------------------------------------------------------------------
declare -a C_MSG G_MSG
for rep in $(seq "$REPS"); do
  for who in colony go; do
    if [[ $who == colony ]]; then
      start colony_echo_server "$OUT/colony_echo.log" "$EX/colony_echo_server" \
        --addr=127.0.0.1:$ECHO_C --procs="$PROCS"
      port=$ECHO_C
    else
      start go_echo "$OUT/go_echo.log" "$OUT/go_echo" -addr 127.0.0.1:$ECHO_GO -procs "$PROCS"
      port=$ECHO_GO
    fi
    line=$("$EX/colony_echo_client" --addr=127.0.0.1:$port --conns="$ECHO_CONNS" \
             --size="$ECHO_SIZE" --duration-ms="$ECHO_MS" --procs="$PROCS" | tee "$OUT/echo_${who}_$rep.txt")
    msgs=$(sed -n 's/.*msgs_per_sec=\([0-9.]*\).*/\1/p' <<<"$line")
    echo "   echo $who rep $rep: $msgs msgs/s"
    if [[ $who == colony ]]; then C_MSG+=("$msgs"); else G_MSG+=("$msgs"); fi
    stop
  done
done

# --- table -------------------------------------------------------------------------------------
crps=$(median "${C_RPS[@]}"); cp99=$(median "${C_P99[@]}")
grps=$(median "${G_RPS[@]}"); gp99=$(median "${G_P99[@]}")
cmsg=$(median "${C_MSG[@]}"); gmsg=$(median "${G_MSG[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
{
  echo "Loopback, $(nproc) cores shared by server, wrk and load client; server procs=$PROCS (colony max_procs, Go GOMAXPROCS); $(go version | awk '{print $3}'); medians of $REPS run(s)."
  echo
  echo "| benchmark | colony | Go | colony / Go |"
  echo "|---|---:|---:|---:|"
  printf "| HTTP hello, wrk -t%s -c%s -d%s: requests/s | %.0f | %.0f | %s |\n" \
    "$WRK_THREADS" "$WRK_CONNS" "$WRK_DURATION" "$crps" "$grps" "$(ratio "$crps" "$grps")"
  printf "| HTTP hello: p99 latency (ms) | %.2f | %.2f | %s |\n" "$cp99" "$gp99" "$(ratio "$cp99" "$gp99")"
  printf "| echo, %s conns x %s B, one in flight each: messages/s | %.0f | %.0f | %s |\n" \
    "$ECHO_CONNS" "$ECHO_SIZE" "$cmsg" "$gmsg" "$(ratio "$cmsg" "$gmsg")"
} | tee "$OUT/results.md"
echo "-- logs and results.md in $OUT"
