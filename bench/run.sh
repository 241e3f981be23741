#!/usr/bin/env bash
# bench/run.sh: the one entry point of colony's benchmarks. Builds what a mode needs (only those
# targets), runs it next to its peers, and prints the table (bench/compare/compare.py).
#
#   bench/run.sh [MODE] [--quick | --full] [--build DIR] [--out DIR] [ARGS...]
#
# MODE (default: suite)
#   suite   the comparison suite: colony go, colony Pool, Boost.Fiber, Boost.Asio, TBB,
#           std::thread and Go on spawn, skynet, ping-pong, yield, parked, sleep-bound, fib
#           fan-out and an HTTP server, each repetition in its own process (cold: first-touch
#           costs included). --quick (default) is under 3 minutes of runs on 2 cores, --full
#           the full sizes (about 20 minutes). ARGS go to `compare.py suite` (--reps N,
#           --procs P, --systems A,B, --workloads A,B, --timeout S).
#           Output: table.txt, results.md, results.json, chart.svg.
#   micro   Google Benchmark micro-benchmarks (bench/micro; warm: stacks faulted in by a
#           warm-up) against Go (bench/go -bench) and Boost.Fiber / a raw Boost.Context jump
#           (colony_bench_peers), per operation. ARGS go to both Google Benchmark binaries
#           (e.g. --benchmark_filter=Yield). --quick: --benchmark_min_time=0.05 and one Go
#           repetition, instead of 0.5 s and 3. Output: colony.json, peers.json, go.jsonl,
#           results.md.
#   pool    ants' benchmark (bench/micro/pool_bench.cpp: 1M tasks sleeping 10 ms, Pool against
#           raw fibers and a channel semaphore; submit cost) against Go's sleep, sleep_raw and
#           spawn. 3 repetitions, randomly interleaved (--quick: 1, --full: 10); ARGS go to
#           colony_pool_bench. Output: pool.json, go.jsonl, results.md.
#   server  colony's HTTP (plain and HTTPS) and echo servers (examples/) against Go's
#           (bench/go/servers) under wrk, on loopback, alternating colony and Go; the Redis
#           service (examples/redis_kv_server.cpp) beside redis-benchmark; the RSS of an idle
#           connection, plain and HTTPS (bench/server/idle_rss.py). Medians of REPS runs
#           (--quick: 1 run of 3 s). Needs wrk and openssl (redis-server and hiredis for the
#           Redis rows). Output: logs, raw wrk output and results.md. Settings (environment):
#           PROCS [nproc] (server processors), WRK_THREADS [2], WRK_CONNS [100],
#           WRK_DURATION [10s | 3s], REPS [3 | 1], ECHO_CONNS [100], ECHO_SIZE [64],
#           ECHO_MS [10000 | 3000], IDLE_CONNS [1000 | 300], REDIS_N [500000 | 100000]
#           (redis-benchmark requests), PORT_BASE [18080]: nine ports from there on 127.0.0.1.
#
# --build DIR  the CMake build directory (default build/release, the release preset:
#              RelWithDebInfo, the pool library at -O3). Configured here if it does not exist
#              (with `cmake --preset release` for the default one; otherwise RelWithDebInfo,
#              benchmarks and examples on, tests off).
# --out DIR    where the results go (default BUILD/bench-results/MODE)
#
# Environment: COLONY_BENCH_JOBS, parallel build jobs (default 2); COLONY_BENCH_MIN_TIME
# (micro: --benchmark_min_time in seconds) and COLONY_BENCH_GO_REPS (micro, pool: repetitions of
# the Go workloads) override the mode's defaults.
# Missing peers (no Boost.Fiber, TBB, Go, wrk) are reported and shown as n/a or skipped.
# Exit status: non-zero if a colony benchmark failed or a colony figure is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

MODE=suite
case ${1:-} in
  suite|micro|pool|server) MODE=$1; shift ;;
  -h|--help) usage 0 ;;
esac
SPEED=default BUILD=$ROOT/build/release OUT= ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    --quick) SPEED=quick; shift ;;
    --full) SPEED=full; shift ;;
    --build) BUILD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
OUT=${OUT:-$BUILD/bench-results/$MODE}
JOBS=${COLONY_BENCH_JOBS:-2}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# ---------------------------------------------------------------------------------- building

configure() {
  [ -f "$BUILD/CMakeCache.txt" ] && return 0
  echo "-- configuring $BUILD" >&2
  if [ "$BUILD" = "$ROOT/build/release" ]; then
    (cd "$ROOT" && cmake --preset release) >&2
  else
    local gen=()
    command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
    cmake -S "$ROOT" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCOLONY_BUILD_BENCH=ON -DCOLONY_BUILD_EXAMPLES=ON -DCOLONY_BUILD_TESTS=OFF >&2
  fi
}

# build TARGET...: builds the targets (log: BUILD/bench-build.log); fails if one does not build.
build() {
  echo "-- building $* (-j$JOBS; log: $BUILD/bench-build.log)" >&2
  if ! cmake --build "$BUILD" --target "$@" -j "$JOBS" >>"$BUILD/bench-build.log" 2>&1 </dev/null; then
    grep -E "error|FAILED" "$BUILD/bench-build.log" | tail -5 >&2 || true
    return 1
  fi
}

# build_go: the Go side (bench/go: colonybench, and the hello and echo servers) into BUILD/go.
# Sets GO_OK=1 if Go is installed and they built.
GO_DIR=$BUILD/go
GO_OK=0
build_go() {
  local go
  go=$(command -v go 2>/dev/null || true)
  if [ -z "$go" ] && [ -x /usr/local/go/bin/go ]; then go=/usr/local/go/bin/go; fi
  if [ -z "$go" ]; then
    echo "-- go not installed: the Go figures are skipped" >&2
    rm -f "$GO_DIR/colonybench" "$GO_DIR/go_hello" "$GO_DIR/go_echo"
    return 0
  fi
  mkdir -p "$GO_DIR"
  # The go command needs a cache directory; without HOME it cannot derive one.
  if [ -z "${HOME:-}" ]; then
    : "${GOCACHE:=$GO_DIR/cache}" "${GOPATH:=$GO_DIR/gopath}"
    export GOCACHE GOPATH
  fi
  echo "-- building bench/go ($("$go" version | awk '{print $3}'))" >&2
  # Standard library only: never consult a module proxy, the environment's workspace or VCS.
  if (cd "$ROOT/bench/go" && export GO111MODULE=on GOFLAGS=-buildvcs=false GOWORK=off \
        GOPROXY=off GOTOOLCHAIN=local &&
      "$go" build -o "$GO_DIR/colonybench" . &&
      "$go" build -o "$GO_DIR/go_hello" ./servers/hello &&
      "$go" build -o "$GO_DIR/go_echo" ./servers/echo) >&2; then
    GO_OK=1
  else
    echo "-- WARNING: bench/go failed to build; the Go figures are skipped" >&2
    rm -f "$GO_DIR/colonybench" "$GO_DIR/go_hello" "$GO_DIR/go_echo"
  fi
}

# go_bench OUT NAME...: colonybench -bench NAME for each NAME, JSON lines appended to OUT.
go_bench() {
  local out=$1 b reps
  shift
  : >"$out"
  if [ "$GO_OK" != 1 ]; then
    echo '{"system":"go","skipped":"go not installed or bench/go did not build"}' >"$out"
    return 0
  fi
  for b in "$@"; do
    reps=(-reps "$GO_REPS")
    [ "$b" = parked ] && reps=()  # heavy: one repetition in a fresh process (its default)
    echo "-- Go: colonybench -bench $b ${reps[*]}" >&2
    "$GO_DIR/colonybench" -bench "$b" "${reps[@]}" >>"$out" ||
      echo "bench/run.sh: warning: Go workload $b failed" >&2
  done
}

start=$SECONDS
status=0
configure
: >"$BUILD/bench-build.log"

# ---------------------------------------------------------------------------------- micro

run_micro() {
  local min_time=0.5
  GO_REPS=3
  if [ "$SPEED" = quick ]; then min_time=0.05; GO_REPS=1; fi
  min_time=${COLONY_BENCH_MIN_TIME:-$min_time}
  GO_REPS=${COLONY_BENCH_GO_REPS:-$GO_REPS}
  rm -f "$OUT/colony.json" "$OUT/peers.json" "$OUT/go.jsonl" "$OUT/results.md"
  build colony_bench || { echo "bench/run.sh: colony_bench failed to build" >&2; exit 1; }
  local peers=0
  if build colony_bench_peers 2>/dev/null; then peers=1; else
    echo "-- colony_bench_peers not built (libboost-fiber-dev missing?): Boost.Fiber skipped" >&2
  fi
  build_go
  local gb=(--benchmark_min_time="$min_time" --benchmark_format=console
            --benchmark_out_format=json ${ARGS[@]+"${ARGS[@]}"})
  echo "-- colony: bench/micro/colony_bench" >&2
  "$BUILD/bench/micro/colony_bench" "${gb[@]}" --benchmark_out="$OUT/colony.json" || {
    echo "bench/run.sh: colony_bench failed" >&2; status=1; }
  if [ $peers = 1 ]; then
    echo "-- Boost.Fiber / Boost.Context: bench/micro/colony_bench_peers" >&2
    "$BUILD/bench/micro/colony_bench_peers" "${gb[@]}" --benchmark_out="$OUT/peers.json" ||
      echo "bench/run.sh: warning: colony_bench_peers failed; its figures are left out" >&2
  fi
  go_bench "$OUT/go.jsonl" skynet spawn gosched pingpong select selectdyn2 selectdyn100 \
    chanbuf1 chanbuf4 mutex wgfanin parked
  echo "-- benchmarks took $((SECONDS - start)) s"
  echo
  python3 "$ROOT/bench/compare/compare.py" micro --colony "$OUT/colony.json" \
    --peers "$OUT/peers.json" --go "$OUT/go.jsonl" --markdown "$OUT/results.md" \
    --note "bench/run.sh micro$([ "$SPEED" = quick ] && echo " --quick"): google-benchmark --benchmark_min_time=$min_time (fixed-iteration benchmarks ignore it); Go: -reps $GO_REPS, median; parked: 1 run" ||
    status=1
}

# ---------------------------------------------------------------------------------- pool

run_pool() {
  local reps=3
  GO_REPS=3
  if [ "$SPEED" = quick ]; then reps=1; GO_REPS=1; fi
  if [ "$SPEED" = full ]; then reps=10; fi
  GO_REPS=${COLONY_BENCH_GO_REPS:-$GO_REPS}
  rm -f "$OUT/pool.json" "$OUT/go.jsonl" "$OUT/results.md"
  build colony_pool_bench || { echo "bench/run.sh: colony_pool_bench failed to build" >&2; exit 1; }
  build_go
  echo "-- colony: bench/micro/colony_pool_bench, $reps repetition(s)" >&2
  "$BUILD/bench/micro/colony_pool_bench" --benchmark_repetitions="$reps" \
    --benchmark_enable_random_interleaving=true --benchmark_format=console \
    --benchmark_out="$OUT/pool.json" --benchmark_out_format=json ${ARGS[@]+"${ARGS[@]}"} || {
    echo "bench/run.sh: colony_pool_bench failed" >&2; status=1; }
  go_bench "$OUT/go.jsonl" sleep sleep_raw spawn
  echo "-- benchmarks took $((SECONDS - start)) s"
  echo
  python3 "$ROOT/bench/compare/compare.py" pool --pool "$OUT/pool.json" --go "$OUT/go.jsonl" \
    --markdown "$OUT/results.md" \
    --note "bench/run.sh pool$([ "$SPEED" != default ] && echo " --$SPEED"): colony_pool_bench --benchmark_repetitions=$reps --benchmark_enable_random_interleaving=true, medians; Go: -reps $GO_REPS, median" ||
    status=1
}

# ---------------------------------------------------------------------------------- suite

run_suite() {
  # The workers CMake configured (bench/compare/CMakeLists.txt lists them in workers.txt), built
  # one by one: a worker that fails to compile (e.g. a peer library's headers are broken) is
  # removed, recorded in build-failures.txt and reported by the driver; the others still run.
  local bin=$BUILD/bench/compare worker
  # Picks up new peers; the server workload needs the HTTP example.
  if ! cmake "$BUILD" -DCOLONY_BUILD_BENCH=ON -DCOLONY_BUILD_EXAMPLES=ON \
       >"$BUILD/bench-configure.log" 2>&1; then
    cat "$BUILD/bench-configure.log" >&2
    echo "bench/run.sh: configuring $BUILD failed" >&2
    exit 1
  fi
  : >"$bin/build-failures.txt"
  while read -r worker; do
    [ -n "$worker" ] || continue
    if ! build "$worker"; then
      echo "-- WARNING: $worker failed to build; its system is skipped" >&2
      rm -f "$bin/$worker"
      echo "$worker" >>"$bin/build-failures.txt"
    fi
  done <"$bin/workers.txt"
  build colony_http_server ||
    echo "-- colony_http_server not built (examples off?); the server workload skips colony" >&2
  build_go
  local mode=--quick
  [ "$SPEED" = full ] && mode=--full
  python3 "$ROOT/bench/compare/compare.py" suite "$mode" --bin "$bin" \
    --go-bin "$GO_DIR/colonybench" --go-http-server "$GO_DIR/go_hello" --out "$OUT" \
    ${ARGS[@]+"${ARGS[@]}"} || status=1
}

# ---------------------------------------------------------------------------------- server

run_server() {
  local procs=${PROCS:-$(nproc)} wrk_threads=${WRK_THREADS:-2} wrk_conns=${WRK_CONNS:-100}
  local echo_conns=${ECHO_CONNS:-100} echo_size=${ECHO_SIZE:-64} port_base=${PORT_BASE:-18080}
  local wrk_duration reps echo_ms idle_conns redis_n
  if [ "$SPEED" = quick ]; then
    wrk_duration=${WRK_DURATION:-3s}; reps=${REPS:-1}; echo_ms=${ECHO_MS:-3000}
    idle_conns=${IDLE_CONNS:-300}; redis_n=${REDIS_N:-100000}
  else
    wrk_duration=${WRK_DURATION:-10s}; reps=${REPS:-3}; echo_ms=${ECHO_MS:-10000}
    idle_conns=${IDLE_CONNS:-1000}; redis_n=${REDIS_N:-500000}
  fi
  command -v wrk >/dev/null || { echo "wrk not found (Debian: apt-get install wrk)" >&2; exit 1; }
  command -v openssl >/dev/null || { echo "openssl not found (the HTTPS rows need it)" >&2; exit 1; }
  build colony_http_server colony_echo_server colony_echo_client ||
    { echo "bench/run.sh: the example servers failed to build" >&2; exit 1; }
  # The Redis service needs hiredis; without it (no such target) its rows are skipped.
  local KV_OK=0
  if build colony_redis_kv_server 2>/dev/null; then KV_OK=1; fi
  build_go
  [ "$GO_OK" = 1 ] || { echo "bench/run.sh: the server mode needs Go" >&2; exit 1; }
  local ex=$BUILD/examples

  SERVER_PIDS=()
  trap 'for p in ${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}; do kill -TERM "$p" 2>/dev/null || true; done' EXIT

  # start NAME LOG CMD...: starts a server, waits for its "listening on" line; sets SERVER_PID.
  start_server() {
    local name=$1 log=$2
    shift 2
    "$@" >"$log" 2>&1 &
    SERVER_PID=$!
    SERVER_PIDS+=("$SERVER_PID")
    for _ in $(seq 100); do
      grep -q "listening on" "$log" 2>/dev/null && return 0
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    echo "$name did not start:" >&2
    cat "$log" >&2
    exit 1
  }
  # stop_server: SIGTERM (graceful shutdown) to SERVER_PID and wait for it.
  stop_server() {
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
  median() {
    printf '%s\n' "$@" | sort -g |
      awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
  }
  # wrk_run URL LOG: prints "RPS P99MS" (the URL may be https://).
  wrk_run() {
    wrk -t"$wrk_threads" -c"$wrk_conns" -d"$wrk_duration" --latency "$1" >"$2" 2>&1
    local rps p99
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$2")
    p99=$(awk '$1 == "99%" { print $2 }' "$2")
    if grep -q "Non-2xx\|Socket errors" "$2"; then
      echo "note: $(grep -h 'Non-2xx\|Socket errors' "$2")" >&2
    fi
    echo "$rps $(to_ms "$p99")"
  }

  local http_c=$port_base http_go=$((port_base + 1)) echo_c=$((port_base + 2))
  local echo_go=$((port_base + 3)) tls_c=$((port_base + 4)) tls_go=$((port_base + 5))
  local redis_port=$((port_base + 6)) kv_c=$((port_base + 7)) idle_port=$((port_base + 8))
  local rep who port line msgs
  echo "-- settings: procs=$procs (of $(nproc) cores, shared with wrk and the load client)," \
       "wrk -t$wrk_threads -c$wrk_conns -d$wrk_duration --latency, reps=$reps;" \
       "echo: $echo_conns connections x $echo_size-byte messages for ${echo_ms} ms;" \
       "load average $(cut -d' ' -f1-3 /proc/loadavg)"

  # The HTTPS certificate, made for this run: ECDSA P-256, self-signed for 127.0.0.1.
  local cert=$OUT/tls_cert.pem key=$OUT/tls_key.pem
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout "$key" -out "$cert" \
    >/dev/null 2>&1 || { echo "bench/run.sh: openssl could not make a certificate" >&2; exit 1; }

  # hello_bench LABEL SCHEME PORT PORT_GO ARGS...: wrk against examples/http_server.cpp and Go's
  # net/http, both "Hello, World!\n", REPS times alternating (ARGS to both servers: both read
  # "--tls-cert FILE"). Appends "LABEL WHO RPS P99MS" lines to OUT/hello.txt.
  hello_bench() {
    local label=$1 scheme=$2 pc=$3 pg=$4 rep who url rps p99
    shift 4
    for rep in $(seq "$reps"); do
      for who in colony go; do
        if [ $who = colony ]; then
          start_server colony_http_server "$OUT/colony_$label.log" "$ex/colony_http_server" \
            --addr=127.0.0.1:$pc --procs="$procs" "$@"
          url=$scheme://127.0.0.1:$pc/
        else
          start_server go_hello "$OUT/go_$label.log" "$GO_DIR/go_hello" -addr 127.0.0.1:$pg \
            -procs "$procs" "$@"
          url=$scheme://127.0.0.1:$pg/
        fi
        wrk -t"$wrk_threads" -c"$wrk_conns" -d1s "$url" >/dev/null 2>&1  # warm-up
        read -r rps p99 < <(wrk_run "$url" "$OUT/wrk_${label}_${who}_$rep.txt")
        echo "   $label $who rep $rep: $rps req/s, p99 $p99 ms"
        echo "$label $who $rps $p99" >>"$OUT/hello.txt"
        stop_server
      done
    done
  }
  # pick LABEL WHO FIELD: the median of a column of OUT/hello.txt (3: req/s, 4: p99 ms).
  pick() {
    # shellcheck disable=SC2046
    median $(awk -v l="$1" -v w="$2" -v f="$3" '$1 == l && $2 == w { print $f }' "$OUT/hello.txt")
  }
  : >"$OUT/hello.txt"
  hello_bench http http "$http_c" "$http_go"
  # HTTPS: the same servers with the certificate (Go: http.Server.ServeTLS; colony: TlsStream).
  hello_bench https https "$tls_c" "$tls_go" --tls-cert "$cert" --tls-key "$key"

  # Echo: examples/echo_client.cpp (one message in flight per connection) against
  # examples/echo_server.cpp and Go's goroutine-per-connection echo server.
  local c_msg=() g_msg=()
  for rep in $(seq "$reps"); do
    for who in colony go; do
      if [ $who = colony ]; then
        start_server colony_echo_server "$OUT/colony_echo.log" "$ex/colony_echo_server" \
          --addr=127.0.0.1:$echo_c --procs="$procs"
        port=$echo_c
      else
        start_server go_echo "$OUT/go_echo.log" "$GO_DIR/go_echo" -addr 127.0.0.1:$echo_go \
          -procs "$procs"
        port=$echo_go
      fi
      line=$("$ex/colony_echo_client" --addr=127.0.0.1:$port --conns="$echo_conns" \
               --size="$echo_size" --duration-ms="$echo_ms" --procs="$procs" |
             tee "$OUT/echo_${who}_$rep.txt")
      msgs=$(sed -n 's/.*msgs_per_sec=\([0-9.]*\).*/\1/p' <<<"$line")
      echo "   echo $who rep $rep: $msgs msgs/s"
      if [ $who = colony ]; then c_msg+=("$msgs"); else g_msg+=("$msgs"); fi
      stop_server
    done
  done

  # Redis: examples/redis_kv_server.cpp answering GET /kv/bench from a redis-server started here
  # (persistence off) under wrk, and redis-benchmark's GET with as many connections against the
  # same redis-server (Redis alone, no HTTP: the ceiling of the service). The value is
  # "Hello, World!\n", so the HTTP answers are as large as the hello rows'. Skipped when
  # redis-server or the example (it needs hiredis) is missing.
  local kv_rps=() kv_p99=() rb_rps=() rb_p99=() rps p99
  if [ "$KV_OK" = 1 ] && command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize no --logfile "$OUT/redis.log" --maxclients 10000 &
    local redis_pid=$!
    SERVER_PIDS+=("$redis_pid")
    for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    for k in bench key:__rand_int__; do  # the service's key, and redis-benchmark's GET key
      printf 'Hello, World!\n' | redis-cli -p "$redis_port" -x set "$k" >/dev/null
    done
    for rep in $(seq "$reps"); do
      start_server colony_redis_kv_server "$OUT/colony_redis_kv.log" \
        "$ex/colony_redis_kv_server" --addr=127.0.0.1:$kv_c --procs="$procs" \
        --redis=127.0.0.1:$redis_port
      if [ "$(curl -s "http://127.0.0.1:$kv_c/kv/bench")" != "Hello, World!" ]; then
        echo "bench/run.sh: colony_redis_kv_server does not answer GET /kv/bench" >&2
        exit 1
      fi
      wrk -t"$wrk_threads" -c"$wrk_conns" -d1s "http://127.0.0.1:$kv_c/kv/bench" >/dev/null 2>&1
      read -r rps p99 < <(wrk_run "http://127.0.0.1:$kv_c/kv/bench" "$OUT/wrk_redis_kv_$rep.txt")
      echo "   redis_kv colony rep $rep: $rps req/s, p99 $p99 ms"
      kv_rps+=("$rps"); kv_p99+=("$p99")
      stop_server
      redis-benchmark -p "$redis_port" -t get -c "$wrk_conns" -n "$redis_n" --csv \
        >"$OUT/redis_benchmark_$rep.csv" 2>&1
      read -r rps p99 < <(awk -F'","' '$1 == "\"GET" { print $2, $7 }' "$OUT/redis_benchmark_$rep.csv")
      echo "   redis-benchmark GET rep $rep: $rps req/s, p99 $p99 ms"
      rb_rps+=("$rps"); rb_p99+=("$p99")
    done
    kill -TERM "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  else
    echo "-- redis-server or colony_redis_kv_server missing: the Redis rows are skipped" >&2
  fi

  # Memory per idle connection (bench/server/idle_rss.py): IDLE_CONNS keep-alive connections,
  # one GET / each, then idle; the servers' VmRSS growth per connection, plain and HTTPS.
  local idle=() kind v bin flags
  for kind in http https; do
    for who in colony go; do
      bin=$ex/colony_http_server flags=()
      [ $who = go ] && { bin=$GO_DIR/go_hello; flags+=(--go); }
      [ $kind = https ] && flags+=(--tls)
      v=$(python3 "$ROOT/bench/server/idle_rss.py" "$bin" --conns="$idle_conns" --size=0 \
            --path=/ --procs="$procs" --port="$idle_port" "${flags[@]}" |
          tee "$OUT/idle_${kind}_$who.txt" |
          sed -n 's/.*(+\([0-9.-]*\) KiB per idle connection).*/\1/p')
      echo "   idle $kind $who: ${v:-?} KiB per connection"
      idle+=("${v:-nan}")
    done
  done

  local crps cp99 grps gp99 trps tp99 tgrps tgp99 cmsg gmsg
  crps=$(pick http colony 3); cp99=$(pick http colony 4)
  grps=$(pick http go 3); gp99=$(pick http go 4)
  trps=$(pick https colony 3); tp99=$(pick https colony 4)
  tgrps=$(pick https go 3); tgp99=$(pick https go 4)
  cmsg=$(median "${c_msg[@]}"); gmsg=$(median "${g_msg[@]}")
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
  {
    echo "Loopback, $(nproc) cores shared by server, wrk and load client; server procs=$procs (colony max_procs, Go GOMAXPROCS); $(go version 2>/dev/null | awk '{print $3}'); medians of $reps run(s); load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| benchmark | colony | Go | colony / Go |"
    echo "|---|---:|---:|---:|"
    printf "| HTTP hello, wrk -t%s -c%s -d%s: requests/s | %.0f | %.0f | %s |\n" \
      "$wrk_threads" "$wrk_conns" "$wrk_duration" "$crps" "$grps" "$(ratio "$crps" "$grps")"
    printf "| HTTP hello: p99 latency (ms) | %.2f | %.2f | %s |\n" "$cp99" "$gp99" "$(ratio "$cp99" "$gp99")"
    printf "| HTTPS hello (TLS 1.3, ECDSA P-256), same wrk: requests/s | %.0f | %.0f | %s |\n" \
      "$trps" "$tgrps" "$(ratio "$trps" "$tgrps")"
    printf "| HTTPS hello: p99 latency (ms) | %.2f | %.2f | %s |\n" "$tp99" "$tgp99" "$(ratio "$tp99" "$tgp99")"
    printf "| echo, %s conns x %s B, one in flight each: messages/s | %.0f | %.0f | %s |\n" \
      "$echo_conns" "$echo_size" "$cmsg" "$gmsg" "$(ratio "$cmsg" "$gmsg")"
    printf "| idle keep-alive connection, HTTP (%s conns): KiB of RSS each | %s | %s | %s |\n" \
      "$idle_conns" "${idle[0]}" "${idle[1]}" "$(ratio "${idle[0]}" "${idle[1]}")"
    printf "| idle keep-alive connection, HTTPS: KiB of RSS each | %s | %s | %s |\n" \
      "${idle[2]}" "${idle[3]}" "$(ratio "${idle[2]}" "${idle[3]}")"
    if [ ${#kv_rps[@]} -gt 0 ]; then
      echo
      echo "| Redis (GET of a 14-byte value, $wrk_conns connections) | requests/s | p99 (ms) |"
      echo "|---|---:|---:|"
      printf "| colony redis_kv_server: HTTP GET /kv/KEY, wrk -t%s -c%s -d%s | %.0f | %.2f |\n" \
        "$wrk_threads" "$wrk_conns" "$wrk_duration" "$(median "${kv_rps[@]}")" "$(median "${kv_p99[@]}")"
      printf "| redis-benchmark -t get -c %s -n %s (Redis alone, no HTTP) | %.0f | %.2f |\n" \
        "$wrk_conns" "$redis_n" "$(median "${rb_rps[@]}")" "$(median "${rb_p99[@]}")"
    fi
  } | tee "$OUT/results.md"
}

"run_$MODE"
echo
echo "bench/run.sh $MODE: took $((SECONDS - start)) s; results in $OUT"
exit $status
