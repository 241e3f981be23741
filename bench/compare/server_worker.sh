#!/usr/bin/env bash
# bench/compare/server_worker.sh: the comparison suite's "server" workload for one system, run by
# compare.py like the other workers (one run per process, one JSON line on stdout).
#
#   server_worker.sh --kind colony|go --server PATH --port N [--procs P] [--duration 3s]
#                    [--conns 100] [--threads 2] [--server-arg ARG]... [--workload server]
#
# Starts the HTTP server (colony: examples/http_server.cpp; Go: bench/go/servers/hello, net/http),
# both answering "Hello, World!\n", waits for its "listening on" line, warms it up with wrk for
# one second, then measures with `wrk -t THREADS -c CONNS -d DURATION --latency` and stops the
# server with SIGTERM (graceful shutdown). Prints
#   {"value": <ns per request = 1e9 / requests per second>, "unit": "ns/req", "n": <requests>,
#    "note": "<req/s> req/s, p99 <ms> ms", "maxrss_kib": <the server's VmHWM>}
# or {"na": "..."} when wrk is not installed. wrk and the server share the machine's cores.
set -euo pipefail

KIND= SERVER= PORT= PROCS=$(nproc) DURATION=3s CONNS=100 THREADS=2
EXTRA=()  # --server-arg: passed on to the server (colony Pool: --pool=N)
while [ $# -gt 0 ]; do
  case $1 in
    --kind) KIND=$2; shift 2 ;;
    --server) SERVER=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --procs) PROCS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --server-arg) EXTRA+=("$2"); shift 2 ;;
    --workload) shift 2 ;;
    *) echo "server_worker.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$KIND" ] || [ -z "$SERVER" ] || [ -z "$PORT" ]; then
  echo "server_worker.sh: --kind, --server and --port are required" >&2
  exit 2
fi
if ! command -v wrk >/dev/null 2>&1; then
  echo '{"na": "wrk not installed (apt-get install wrk)"}'
  exit 0
fi
if [ ! -x "$SERVER" ]; then
  echo "server_worker.sh: no server executable at $SERVER" >&2
  exit 1
fi

LOG=$(mktemp /tmp/colony-compare-server.XXXXXX)
WRK_OUT=$(mktemp /tmp/colony-compare-wrk.XXXXXX)
PID=
cleanup() {
  if [ -n "$PID" ]; then kill -KILL "$PID" 2>/dev/null || true; fi
  rm -f "$LOG" "$WRK_OUT"
}
trap cleanup EXIT

case $KIND in
  colony) "$SERVER" --addr=127.0.0.1:"$PORT" --procs="$PROCS" ${EXTRA[@]+"${EXTRA[@]}"} >"$LOG" 2>&1 & ;;
  go) "$SERVER" -addr 127.0.0.1:"$PORT" -procs "$PROCS" ${EXTRA[@]+"${EXTRA[@]}"} >"$LOG" 2>&1 & ;;
  *) echo "server_worker.sh: --kind must be colony or go" >&2; exit 2 ;;
esac
PID=$!
for _ in $(seq 100); do
  grep -q "listening on" "$LOG" 2>/dev/null && break
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "server_worker.sh: the server exited: $(tail -1 "$LOG")" >&2
    exit 1
  fi
  sleep 0.1
done
grep -q "listening on" "$LOG" || { echo "server_worker.sh: the server did not start" >&2; exit 1; }

URL=http://127.0.0.1:$PORT/
wrk -t"$THREADS" -c"$CONNS" -d1s "$URL" >/dev/null 2>&1  # warm-up
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$URL" >"$WRK_OUT" 2>&1
HWM=$(awk '/^VmHWM:/ { print $2 }' /proc/"$PID"/status 2>/dev/null || echo 0)
kill -TERM "$PID" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID" 2>/dev/null; then
  echo "server_worker.sh: the server ignored SIGTERM for 10 s" >&2
  exit 1
fi
PID=

if grep -q "Non-2xx\|Socket errors" "$WRK_OUT"; then
  echo "server_worker.sh: wrk saw errors: $(grep -h 'Non-2xx\|Socket errors' "$WRK_OUT")" >&2
  exit 1
fi
RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$WRK_OUT")
REQS=$(awk '/requests in/ { print $1 }' "$WRK_OUT")
P99=$(awk '$1 == "99%" { print $2 }' "$WRK_OUT")
if [ -z "$RPS" ] || [ -z "$P99" ]; then
  echo "server_worker.sh: could not parse wrk's output: $(tr '\n' ' ' <"$WRK_OUT")" >&2
  exit 1
fi
awk -v rps="$RPS" -v reqs="${REQS:-0}" -v p99="$P99" -v hwm="${HWM:-0}" 'BEGIN {
  ms = p99
  if (ms ~ /us$/) { sub(/us$/, "", ms); ms = ms / 1000 }
  else if (ms ~ /ms$/) { sub(/ms$/, "", ms) }
  else if (ms ~ /s$/) { sub(/s$/, "", ms); ms = ms * 1000 }
  printf "{\"value\": %.3f, \"unit\": \"ns/req\", \"n\": %d, \"note\": \"%.0f req/s, p99 %.2f ms\", \"maxrss_kib\": %d}\n",
         1e9 / rps, reqs, rps, ms, hwm
}'
