#!/usr/bin/env python3
"""bench/compare/compare.py: colony's one comparison driver, figures next to their peers'.

    compare.py suite [--quick | --full] [--out DIR] [--bin DIR] [--go-bin PATH] [--reps N]
                     [--procs P] [--systems A,B] [--workloads A,B] [--timeout S]
    compare.py micro --colony colony.json [--peers peers.json] [--go go.jsonl]
                     [--markdown FILE] [--note TEXT]...
    compare.py pool  --pool pool.json [--go go.jsonl] [--markdown FILE] [--note TEXT]...

bench/run.sh builds what each needs and calls it; lower is better everywhere, and a ratio below
1 means colony is faster (or smaller). Standard library only.

suite: the comparison suite, fibers versus thread pools and Go. Runs every workload on every
system, each repetition in its own child process (so the peak RSS is that run's, and no run
inherits another's warm caches), interleaving the systems within each repetition. Prints a
progress line while it runs, then the table: median and min over the repetitions (each the
first run of a fresh process: cold), for spawn and skynet the warm figure (the best of 4 more
runs in the same process and runtime, median over the repetitions), peak RSS (median), the
ratio of the median to colony go's median and a note. Writes into DIR:

    results.json   one record per system x workload x repetition, plus the run's context
    table.txt      the table as printed
    results.md     the table in Markdown, with the date and the hardware, for bench/RESULTS.md
    chart.svg      grouped bars per workload, log scale, one colour per system

The workers are the executables built by bench/compare/CMakeLists.txt (colony_compare_*; in
--bin), the Go program of bench/go run with -workload (--go-bin) and server_worker.sh for the
server row. A missing worker is reported as skipped, with the reason.

micro: the micro-benchmarks (bench/micro, warm, Google Benchmark) per operation: colony against
Go (bench/go -bench), Boost.Fiber and a raw Boost.Context jump.
  --colony  google-benchmark JSON of BUILD/bench/micro/colony_bench
  --peers   google-benchmark JSON of BUILD/bench/micro/colony_bench_peers
  --go      JSON lines of colonybench -bench; the "rep": "median" record of each workload
pool: ants' scenario (1M tasks sleeping 10 ms) and the submit cost: colony_pool_bench
(--pool) against Go's semaphore, raw goroutines and spawn (--go).
Any input of micro or pool may be missing: its figures show as "n/a". Exit status 1 if a
colony figure is missing or its benchmark reported an error.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, "build", "release")  # bench/run.sh's default build directory

# ================================================================== shared: the run's context


def nproc():
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def hardware():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / (1024 * 1024):.1f} GiB"
                    break
    except (OSError, ValueError):
        pass
    return f"{model}, nproc {nproc()}, MemTotal {mem}, Linux {platform.release()}"


def tool_version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        first = (out.stdout or out.stderr).strip().splitlines()
        return first[0] if first else None
    except (OSError, subprocess.SubprocessError):
        return None


def go_version():
    go = shutil.which("go") or ("/usr/local/go/bin/go"
                                if os.access("/usr/local/go/bin/go", os.X_OK) else None)
    return tool_version([go, "version"]) if go else None


def now():
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def fmt_num(v):
    if v is None:
        return "n/a"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_ratio(r):
    if r is None:
        return ""
    if r >= 10:
        return f"{r:,.0f}x"
    if r < 0.1:
        return f"{r:.3f}x"
    return f"{r:.2f}x"


# ================================================================== micro and pool: inputs

NS_PER = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


class Missing(Exception):
    """A figure is not available; the message says why."""


def load_gbench(path):
    """Benchmarks of a google-benchmark JSON file, or an error string."""
    if not path or not os.path.exists(path):
        return "not run"
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("benchmarks", [])
    except (OSError, ValueError) as e:
        return f"unreadable ({e})"


def load_go(path):
    """{bench: median record} from colonybench -bench output, or an error string."""
    if not path or not os.path.exists(path):
        return "not run"
    medians, skipped = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if "skipped" in rec:
                skipped = rec["skipped"]
            elif rec.get("rep") == "median" and "bench" in rec:
                medians[rec["bench"]] = rec
    if not medians:
        return skipped or "no results"
    return medians


def gbench_runs(benchmarks, family, arg=None):
    """The runs of one benchmark: name 'family[/arg]/...'. Aggregates preferred when present."""
    if isinstance(benchmarks, str):
        raise Missing(benchmarks)
    runs = []
    for b in benchmarks:
        parts = b.get("name", "").split("/")
        if parts[0] != family or (arg is not None and (len(parts) < 2 or parts[1] != str(arg))):
            continue
        runs.append(b)
    if not runs:
        raise Missing(f"{family} not in results")
    errors = [b for b in runs if b.get("error_occurred")]
    if errors:
        raise Missing(f"{family}: error: {errors[0].get('error_message', '?')}")
    medians = [b for b in runs if b.get("run_type") == "aggregate" and b.get("aggregate_name") == "median"]
    if medians:
        return medians
    return [b for b in runs if b.get("run_type", "iteration") == "iteration"]


def gbench_time(benchmarks, family, unit, arg=None):
    """real_time of a benchmark (median over repetitions) in `unit`."""
    values = [b["real_time"] * NS_PER[b.get("time_unit", "ns")] / NS_PER[unit]
              for b in gbench_runs(benchmarks, family, arg)]
    return statistics.median(values)


def gbench_counter(benchmarks, family, counter, scale=1.0, arg=None):
    """A user counter of a benchmark times `scale` (rate counters inverted are in seconds)."""
    values = []
    for b in gbench_runs(benchmarks, family, arg):
        if counter not in b:
            raise Missing(f"{family}: no counter {counter}")
        values.append(b[counter] * scale)
    return statistics.median(values)


def go_value(go, bench, unit):
    if isinstance(go, str):
        raise Missing(go)
    rec = go.get(bench)
    if rec is None:
        raise Missing(f"go {bench} not in results")
    if rec.get("unit") != unit:
        raise Missing(f"go {bench}: unit {rec.get('unit')}, expected {unit}")
    return float(rec["value"])


# ================================================================== micro and pool: the tables

S_TO_NS = 1e9
MIB = 1024.0 * 1024.0


class Table:
    """A per-operation table: rows of getters, one per column, over named inputs.

    columns: [(column, input key)]; ratios: [(numerator column, denominator column)];
    rows: [(workload, unit, {column: getter(inputs)})]; legend: lines under the table."""

    def __init__(self, title, columns, ratios, rows, legend):
        self.title, self.columns, self.ratios, self.rows, self.legend = \
            title, columns, ratios, rows, legend

    def header(self):
        return (["workload", "unit"] + [c for c, _ in self.columns] +
                [f"{a}/{b}" for a, b in self.ratios])


def ratio_cell(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return fmt_ratio(a / b)


def build_table(table, inputs):
    """(rows of cells, problems, colony_bad) for `inputs` {key: loaded input or error string}."""
    rows, problems = [], []
    # A whole input missing is reported once, not once per cell.
    absent = {key for _, key in table.columns if isinstance(inputs.get(key), str)}
    reported = set()
    for col, key in table.columns:
        if key in absent and key not in reported:
            reported.add(key)
            cols = [c for c, k in table.columns if k == key]
            problems.append(f"{' / '.join(cols)}: {inputs[key]}")
    colony_bad = "colony" in {c for c, k in table.columns if k in absent}
    for name, unit, getters in table.rows:
        values = {}
        for col, key in table.columns:
            get, v = getters.get(col), None
            if get is not None and key not in absent:
                try:
                    v = get(inputs)
                except Missing as e:
                    problems.append(f"{name}: {col}: {e}")
                    colony_bad |= col == "colony"
                except (KeyError, TypeError, ValueError) as e:
                    problems.append(f"{name}: {col}: malformed result ({e!r})")
                    colony_bad |= col == "colony"
            values[col] = v
        rows.append([name, unit] + [fmt_num(values[c]) for c, _ in table.columns] +
                    [ratio_cell(values[a], values[b]) for a, b in table.ratios])
    return rows, problems, colony_bad


# The micro table: colony_bench (colony), colony_bench_peers (Boost.Fiber, raw jump), Go.
MICRO = Table(
    "colony benchmarks",
    [("colony", "colony"), ("Go", "go"), ("Boost.Fiber", "peers"), ("raw jump", "peers")],
    [("colony", "Go"), ("colony", "Boost.Fiber"), ("colony", "raw jump")],
    [
        ("yield", "ns/yield", {
            "colony": lambda i: gbench_counter(i["colony"], "BM_Colony_Yield", "per_yield", S_TO_NS),
            "Go": lambda i: go_value(i["go"], "gosched", "ns/op"),
            "Boost.Fiber": lambda i: gbench_counter(i["peers"], "BM_BoostFiber_Yield", "per_yield",
                                                    S_TO_NS),
            "raw jump": lambda i: gbench_counter(i["peers"], "BM_BoostContext_Jump", "per_jump",
                                                 S_TO_NS)}),
        ("spawn", "ns/fiber", {
            "colony": lambda i: gbench_counter(i["colony"], "BM_Colony_Spawn", "per_spawn", S_TO_NS),
            "Go": lambda i: go_value(i["go"], "spawn", "ns/op")}),
        ("skynet 1M", "ms/tree", {
            "colony": lambda i: gbench_time(i["colony"], "BM_Colony_Skynet", "ms"),
            "Go": lambda i: go_value(i["go"], "skynet", "ms"),
            "Boost.Fiber": lambda i: gbench_time(i["peers"], "BM_BoostFiber_Skynet", "ms")}),
        ("pingpong", "ns/round trip", {
            "colony": lambda i: gbench_time(i["colony"], "BM_Colony_ChanPingPong", "ns"),
            "Go": lambda i: go_value(i["go"], "pingpong", "ns/op")}),
        ("select, 2 cases", "ns/select", {
            "colony": lambda i: gbench_time(i["colony"], "BM_Colony_Select", "ns"),
            "Go": lambda i: go_value(i["go"], "select", "ns/op")}),
        ("dynamic select, 2 cases", "ns/select", {
            "colony": lambda i: gbench_time(i["colony"], "BM_Colony_SelectDynamic", "ns", arg=2),
            "Go": lambda i: go_value(i["go"], "selectdyn2", "ns/op")}),
        ("dynamic select, 100 cases", "ns/select", {
            "colony": lambda i: gbench_time(i["colony"], "BM_Colony_SelectDynamic", "ns", arg=100),
            "Go": lambda i: go_value(i["go"], "selectdyn100", "ns/op")}),
        ("chan buffered, 1 producer", "ns/value", {
            "colony": lambda i: gbench_counter(i["colony"], "BM_Colony_ChanBuffered", "per_value",
                                               S_TO_NS, arg=1),
            "Go": lambda i: go_value(i["go"], "chanbuf1", "ns/op")}),
        ("chan buffered, 4 producers", "ns/value", {
            "colony": lambda i: gbench_counter(i["colony"], "BM_Colony_ChanBuffered", "per_value",
                                               S_TO_NS, arg=4),
            "Go": lambda i: go_value(i["go"], "chanbuf4", "ns/op")}),
        ("mutex, 8 contenders", "ns/lock", {
            "colony": lambda i: gbench_counter(i["colony"], "BM_Colony_MutexContended", "per_lock",
                                               S_TO_NS),
            "Go": lambda i: go_value(i["go"], "mutex", "ns/op")}),
        ("waitgroup fan-in 100k", "ns/fiber", {
            "colony": lambda i: gbench_counter(i["colony"], "BM_Colony_WaitGroupFanIn", "per_fiber",
                                               S_TO_NS),
            "Go": lambda i: go_value(i["go"], "wgfanin", "ns/op")}),
        ("parked 1M", "bytes/fiber", {
            "colony": lambda i: gbench_counter(i["colony"], "BM_Colony_Parked", "bytes_per_fiber",
                                               arg=1000000),
            "Go": lambda i: go_value(i["go"], "parked", "bytes/op")}),
    ],
    [
        "yield: two fibers yielding to each other on one processor (colony max_procs=1, "
        "Go GOMAXPROCS(1) runtime.Gosched, Boost.Fiber round_robin on one thread); "
        "raw jump = one Boost.Context jump_fcontext, the floor",
        "spawn: 1M empty fibers started from one fiber and waited for, per fiber",
        "skynet 1M: 10-way tree of 1,111,111 fibers, each returning its subtree's sum, wall time "
        "per tree",
        "pingpong: two fibers handing a value back and forth over two unbuffered channels "
        "(colony::Chan, Go chan), per round trip",
        "select: Go's BenchmarkSelectUncontended on one fiber, two 1-slot channels, one holding a "
        "value; each select takes it and sends one to the other (select + one buffered send)",
        "dynamic select: the same over 2 or 100 channels as a run-time set of cases "
        "(colony::SelectCase, Go reflect.Select)",
        "chan buffered: 1M values through a 128-slot channel from 1 or 4 producer fibers to one "
        "receiver",
        "mutex: 8 fibers (goroutines) taking one colony::Mutex (sync.Mutex) 100k times each",
        "waitgroup fan-in: 100k fibers each calling done() on one WaitGroup, one waiter",
        "parked 1M: resident memory per parked fiber with 1M fibers blocked (VmRSS delta)",
    ])


def pool_sleep(family, counter, scale=1.0, arg=None):
    return lambda i: gbench_counter(i["pool"], family, counter, scale, arg=arg)


# The pool table: colony_pool_bench against Go's sleep, sleep_raw and spawn.
POOL = Table(
    "colony Pool: ants' benchmark",
    [("colony", "pool"), ("Go", "go")],
    [("colony", "Go")],
    [
        ("sleep 1M, Pool(50,000) / Go chan semaphore", "ms", {
            "colony": pool_sleep("BM_PoolSleep", "wall_ms"),
            "Go": lambda i: go_value(i["go"], "sleep", "ms")}),
        ("  peak RSS", "MiB", {
            "colony": pool_sleep("BM_PoolSleep", "peak_rss_MiB"),
            "Go": lambda i: go_value(i["go"], "sleep_peak_rss", "bytes") / MIB}),
        ("  stacks mapped", "MiB", {
            "colony": pool_sleep("BM_PoolSleep", "stacks_mapped_MiB")}),
        ("sleep 1M, raw go + WaitGroup / raw goroutines", "ms", {
            "colony": pool_sleep("BM_RawGoSleep", "wall_ms"),
            "Go": lambda i: go_value(i["go"], "sleep_raw", "ms")}),
        ("  peak RSS", "MiB", {
            "colony": pool_sleep("BM_RawGoSleep", "peak_rss_MiB"),
            "Go": lambda i: go_value(i["go"], "sleep_raw_peak_rss", "bytes") / MIB}),
        ("  stacks mapped", "MiB", {
            "colony": pool_sleep("BM_RawGoSleep", "stacks_mapped_MiB")}),
        ("sleep 1M, go + Chan semaphore / Go chan semaphore", "ms", {
            "colony": pool_sleep("BM_ChanSemaphoreSleep", "wall_ms"),
            "Go": lambda i: go_value(i["go"], "sleep", "ms")}),
        ("  peak RSS", "MiB", {
            "colony": pool_sleep("BM_ChanSemaphoreSleep", "peak_rss_MiB"),
            "Go": lambda i: go_value(i["go"], "sleep_peak_rss", "bytes") / MIB}),
        ("sleep 1M, Pool(20,000)", "ms", {
            "colony": pool_sleep("BM_PoolSleepCapped", "wall_ms", arg=20000)}),
        ("  peak RSS", "MiB", {
            "colony": pool_sleep("BM_PoolSleepCapped", "peak_rss_MiB", arg=20000)}),
        ("sleep 1M, Pool(10,000)", "ms", {
            "colony": pool_sleep("BM_PoolSleepCapped", "wall_ms", arg=10000)}),
        ("  peak RSS", "MiB", {
            "colony": pool_sleep("BM_PoolSleepCapped", "peak_rss_MiB", arg=10000)}),
        ("submit empty, Pool(1,000) / go", "ns/task", {
            "colony": pool_sleep("BM_SubmitEmpty", "ns_per_submit", arg=1000),
            "Go": lambda i: go_value(i["go"], "spawn", "ns/op")}),
        ("submit empty, unbounded Pool / go", "ns/task", {
            "colony": pool_sleep("BM_SubmitEmpty", "ns_per_submit", arg=-1),
            "Go": lambda i: go_value(i["go"], "spawn", "ns/op")}),
        ("colony::go empty / go", "ns/task", {
            "colony": pool_sleep("BM_RawGoEmpty", "ns_per_fiber"),
            "Go": lambda i: go_value(i["go"], "spawn", "ns/op")}),
    ],
    [
        "sleep 1M: ants' scenario, 1,000,000 tasks each sleeping 10 ms; Pool(C): a colony::Pool "
        "of capacity C (ants' BenchmarkAntsPool), raw go: a fiber per task and a WaitGroup "
        "(Go: sleep_raw), Chan semaphore: a fiber per task, at most 50,000 at once (Go: sleep, "
        "ants' BenchmarkSemaphore); each run in a fresh process, peak RSS = that process's",
        "stacks mapped: the address space the runtime had reserved for stacks at the end "
        "(256 KiB each, never shrinks: it counts the fibers alive at the peak)",
        "submit empty: 1,000,000 empty tasks submitted from one fiber, then wait(), per task; Go: "
        "spawn, go func(){ wg.Done() }()",
    ])


def procs_line(go, key):
    maxprocs = os.environ.get("COLONY_MAXPROCS")
    colony = f"colony max_procs {maxprocs} (COLONY_MAXPROCS)" if maxprocs else \
        f"colony max_procs {os.cpu_count()} (default: hardware_concurrency)"
    if isinstance(go, dict) and key in go:
        extra = " (yield: 1)" if key == "skynet" else ""
        return f"{colony}, Go GOMAXPROCS {go[key].get('procs', '?')}{extra}"
    return colony


def plain_table(header, rows):
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

    def line(r):
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def plain_markdown(table, rows, context, notes, problems):
    header = table.header()
    md = [f"# {table.title}", ""]
    md += [f"- {c}" for c in context]
    md += ["", "Lower is better everywhere; a ratio below 1 means colony is faster (or smaller).", ""]
    md += ["| " + " | ".join(header) + " |",
           "|" + "|".join([":--", ":--"] + ["--:"] * (len(header) - 2)) + "|"]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += [""] + [f"- {line}" for line in table.legend]
    if notes:
        md += [""] + [f"- {n}" for n in notes]
    if problems:
        md += ["", "Not available:", ""] + [f"- {p}" for p in problems]
    return "\n".join(md) + "\n"


def table_main(table, inputs, go, procs_key, args):
    """micro and pool: prints the table (and writes --markdown); 1 if a colony figure is bad."""
    rows, problems, colony_bad = build_table(table, inputs)
    context = [f"date: {now()}", f"hardware: {hardware()}", procs_line(go, procs_key)]
    gv = go_version()
    if gv:
        context.append(gv)
    for c in context:
        print(c)
    print("lower is better; ratio < 1: colony faster/smaller")
    print()
    print(plain_table(table.header(), rows))
    if problems:
        print()
        print("not available:")
        for p in problems:
            print(f"  {p}")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(plain_markdown(table, rows, context, args.note, problems))
        print()
        print(f"Markdown: {args.markdown}")
    return 1 if colony_bad else 0


def micro_main(args):
    go = load_go(args.go)
    inputs = {"colony": load_gbench(args.colony), "peers": load_gbench(args.peers), "go": go}
    return table_main(MICRO, inputs, go, "skynet", args)


def pool_main(args):
    go = load_go(args.go)
    inputs = {"pool": load_gbench(args.pool), "go": go}
    return table_main(POOL, inputs, go, "sleep", args)


# ================================================================== suite: systems and workloads

# key, display name, worker executable (relative to --bin; None: --go-bin), chart colour,
# why it may be missing.
SYSTEMS = [
    ("colony-go", "colony go", "colony_compare_colony", "#d62728",
     "not built (build the colony_compare target)"),
    ("colony-Pool", "colony Pool", "colony_compare_pool", "#ff7f0e",
     "not built (colony::pool has not landed, or CMake did not find it)"),
    ("Boost.Fiber", "Boost.Fiber", "colony_compare_boost_fiber", "#1f77b4",
     "not built (Boost.Fiber not found: apt-get install libboost-fiber-dev)"),
    ("Boost.Asio", "Boost.Asio", "colony_compare_asio", "#17becf",
     "not built (boost/asio not found: apt-get install libboost-dev)"),
    ("TBB", "TBB", "colony_compare_tbb", "#9467bd",
     "not built (TBB not found: apt-get install libtbb-dev)"),
    ("std::thread", "std::thread", "colony_compare_thread", "#7f7f7f",
     "not built (build the colony_compare target)"),
    ("Go", "Go", None, "#2ca02c", "not built (go not installed: apt-get install golang-go)"),
]
BASELINE = "colony-go"

# Rows of the table: label, worker workload, what it measures (for the legend).
SUITE_ROWS = [
    ("spawn", "spawn", "N empty tasks started from one task, then wait for all; ns per task"),
    ("skynet", "skynet", "10-way tree of tasks down to 1,000,000 leaves (1,111,111 tasks), "
     "each returning its subtree's sum over a channel to its parent; the sum must be "
     "499999500000; ms per tree"),
    ("ping-pong", "pingpong", "N round trips between two tasks over two unbuffered channels "
     "(threads and thread pools: a mutex + condition variable mailbox); ns per round trip"),
    ("yield", "yield", "two tasks on one processor yielding to each other 1,000,000 times "
     "in all; ns per switch"),
    ("parked 100k", "parked", "100,000 tasks blocked on one event, then all woken; resident "
     "bytes per parked task (VmRSS growth / tasks)"),
    ("parked 1M", "parked", "as parked 100k, with 1,000,000 tasks"),
    ("sleep-bound", "sleep", "ants' benchmark: 1,000,000 tasks (quick mode: 200,000) each "
     "sleeping 10 ms, at most 50,000 at once (a semaphore taken before each spawn); ms"),
    ("fib fan-out", "fib", "recursive parallel fib(32), sequential at or below fib(20), one "
     "branch of every fork a new task; ms (the note gives the sequential time and speed-up)"),
    ("server", "server", "colony's HTTP/1.1 example server (a fiber per connection; colony Pool: its "
     "handlers on a nonblocking Pool(256)) and Go's net/http, both answering \"Hello, World!\\n\", under wrk -t2 -c100 on loopback (wrk "
     "shares the cores); ns per request = 1e9 / requests per second (the note gives both and "
     "the p99 latency); peak RSS is the server's"),
]

NOT_YET = {}

# The server row runs bench/compare/server_worker.sh against these servers only: system ->
# (kind, server key, extra server arguments). colony Pool: the same example with its handlers
# on a nonblocking Pool of 256 workers (more than wrk's 100 connections: nothing is shed).
SERVER_SYSTEMS = {
    "colony-go": ("colony", "colony", []),
    "colony-Pool": ("colony", "colony", ["--pool=256"]),
    "Go": ("go", "Go", []),
}
SERVER_NA = {}
SERVER_NA_DEFAULT = "no HTTP server of this system in the suite (the workload compares " \
                    "colony's example server with Go's net/http)"

# Sizes per mode: row label -> worker arguments; None = not run in this mode (with a reason).
MODES = {
    "quick": {
        "reps": 3,
        "timeout": 90,
        "rows": {
            "spawn": {"n": 100_000, "warm": 4},
            "skynet": {"n": 1_000_000, "warm": 4},
            "ping-pong": {"n": 50_000},
            "yield": {"n": 1_000_000},
            "parked 100k": {"n": 100_000},
            "parked 1M": None,
            "sleep-bound": {"n": 200_000, "cap": 50_000, "sleep-ms": 10},
            "fib fan-out": {"fib": 32, "cutoff": 20},
            "server": {"duration": "3s", "conns": 100, "threads": 2},
        },
        # (system, row) -> why it is left out of this mode
        "skip": {
            ("std::thread", "sleep-bound"):
                "full mode only (a thread per task: ~35 us per thread creation here)",
        },
        "skip_row": {"parked 1M": "full mode only"},
    },
    "full": {
        "reps": 5,
        "timeout": 600,
        "rows": {
            "spawn": {"n": 1_000_000, "warm": 4},
            "skynet": {"n": 1_000_000, "warm": 4},
            "ping-pong": {"n": 1_000_000},
            "yield": {"n": 1_000_000},
            "parked 100k": {"n": 100_000},
            "parked 1M": {"n": 1_000_000},
            "sleep-bound": {"n": 1_000_000, "cap": 50_000, "sleep-ms": 10},
            "fib fan-out": {"fib": 32, "cutoff": 20},
            "server": {"duration": "10s", "conns": 100, "threads": 2},
        },
        "skip": {},
        "skip_row": {},
    },
}

# ------------------------------------------------------------------ running one child


def run_child(argv, timeout):
    """Runs argv; returns (exit status or None on time-out, stdout, stderr, maxrss KiB, wall s)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        status, rusage, timed_out = None, None, False
        while True:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                status, rusage = st, ru
                break
            if time.monotonic() - t0 > timeout:
                os.kill(proc.pid, signal.SIGKILL)
                _, status, rusage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(0.005)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    code = None if timed_out else proc.returncode
    return code, stdout, stderr, rusage.ru_maxrss, wall


def worker_argv(exe, workload, args, procs):
    argv = [exe, "--workload", workload, "--procs", str(procs)]
    for k, v in args.items():
        argv += [f"--{k}", str(v)]
    return argv


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


def server_argv(kind, server, extra, args, procs):
    argv = [os.path.join(HERE, "server_worker.sh"), "--kind", kind, "--server", server,
            "--port", str(free_port()), "--workload", "server", "--procs", str(procs)]
    for a in extra:
        argv += ["--server-arg", a]
    for k, v in args.items():
        argv += [f"--{k}", str(v)]
    return argv


# ------------------------------------------------------------------ formatting


def fmt_rss(kib):
    if kib is None:
        return "n/a"
    if kib >= 1024 * 1024:
        return f"{kib / (1024 * 1024):.2f} GiB"
    if kib >= 1024:
        return f"{kib / 1024:.0f} MiB"
    return f"{kib} KiB"


def fmt_duration(s):
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}"


# ------------------------------------------------------------------ the table


def summarise(records, systems, rows):
    """One cell per (row, system): median, min, unit, rss, ratio, note."""
    cells = {}
    for label, workload, _ in rows:
        for key, *_ in systems:
            recs = [r for r in records if r["row"] == label and r["system"] == key]
            ok = [r for r in recs if "value" in r]
            cell = {"median": None, "min": None, "warm": None, "unit": "", "rss": None, "ratio": None,
                    "note": "", "reps": len(ok), "n": None}
            if ok:
                vals = [r["value"] for r in ok]
                cell.update(median=statistics.median(vals), min=min(vals), unit=ok[0]["unit"],
                            rss=int(statistics.median([r["maxrss_kib"] for r in ok])),
                            n=ok[0].get("n"))
                warm = [r.get("extra", {}).get("warm_best") for r in ok]
                warm = [w for w in warm if w is not None]
                if warm:
                    cell["warm"] = statistics.median(warm)
                notes = [r.get("note", "") for r in ok if r.get("note")]
                if label == "fib fan-out":
                    seq = [r.get("extra", {}).get("seq_ms") for r in ok]
                    seq = [s for s in seq if s]
                    if seq:
                        sm = statistics.median(seq)
                        rest = re.sub(r"^sequential [^,]*, speed-up [^,]*(, )?", "", notes[0]) \
                            if notes else ""
                        notes = [f"sequential {fmt_num(sm)} ms, speed-up "
                                 f"{sm / cell['median']:.2f}x" + (f", {rest}" if rest else "")]
                if label == "server":
                    # The run whose ns/req is the median (its own req/s and p99); with an even
                    # count, the upper middle one.
                    mid = sorted(ok, key=lambda r: r["value"])[len(ok) // 2]
                    notes = [f"median run: {mid['note']}"] if mid.get("note") else notes
                cell["note"] = notes[0] if notes else ""
                errs = [r for r in recs if "error" in r]
                if errs:
                    cell["note"] += f" ({len(errs)} failed run(s): {errs[0]['error']})"
            else:
                why = next((r.get("na") or r.get("skip") or r.get("error") for r in recs), None)
                cell["note"] = why or "not run"
                if any("error" in r for r in recs):
                    cell["note"] = "FAILED: " + cell["note"]
            cells[(label, key)] = cell
    for label, *_ in rows:
        base = cells.get((label, BASELINE))
        for key, *_ in systems:
            c = cells[(label, key)]
            if base and base["median"] and c["median"] is not None:
                c["ratio"] = c["median"] / base["median"]
    return cells


SUITE_HEADER = ["workload", "system", "median", "min", "warm", "unit", "peak RSS", "vs colony go",
                "note"]


def table_rows(cells, systems, rows):
    out = []
    for label, *_ in rows:
        row_cells = [cells[(label, key)] for key, *_ in systems]
        if all(c["median"] is None for c in row_cells) and len({c["note"] for c in row_cells}) == 1:
            out.append([label, "(all systems)", "n/a", "", "", "", "", "", row_cells[0]["note"]])
            continue
        for key, name, *_ in systems:
            c = cells[(label, key)]
            if c["median"] is None:
                out.append([label, name, "n/a", "", "", "", "", "", c["note"]])
            else:
                warm = fmt_num(c["warm"]) if c["warm"] is not None else ""
                out.append([label, name, fmt_num(c["median"]), fmt_num(c["min"]), warm, c["unit"],
                            fmt_rss(c["rss"]), fmt_ratio(c["ratio"]), c["note"]])
    return out


def suite_text_table(trows):
    widths = [max(len(r[i]) for r in [SUITE_HEADER] + trows) for i in range(len(SUITE_HEADER) - 1)]
    right = {2, 3, 4, 6, 7}

    def line(r):
        cols = [(c.rjust(w) if i in right else c.ljust(w)) for i, (c, w) in enumerate(zip(r, widths))]
        return ("  ".join(cols) + "  " + r[-1]).rstrip()

    lines = [line(SUITE_HEADER), line(["-" * w for w in widths] + ["----"])]
    prev = None
    for r in trows:
        if prev is not None and r[0] != prev:
            lines.append("")
        lines.append(line(r if r[0] != prev else [""] + r[1:]))
        prev = r[0]
    return "\n".join(lines)


def md_escape(s):
    return s.replace("|", "\\|")


def suite_markdown_table(trows):
    out = ["| " + " | ".join(SUITE_HEADER) + " |",
           "|:--|:--|--:|--:|--:|:--|--:|--:|:--|"]
    prev = None
    for r in trows:
        shown = [r[0] if r[0] != prev else ""] + r[1:]
        out.append("| " + " | ".join(md_escape(c) for c in shown) + " |")
        prev = r[0]
    return out


COLONY = {"colony-go", "colony-Pool"}


def not_fastest(cells, systems, rows):
    """Rows where a peer's median beats the best colony system's (colony go or colony Pool):
    [(row, [(system, ratio to colony go)])]."""
    out = []
    for label, *_ in rows:
        base = cells[(label, BASELINE)]
        if base["median"] is None:
            continue
        best = min(cells[(label, k)]["median"] for k, *_ in systems
                   if k in COLONY and cells[(label, k)]["median"] is not None)
        better = [(name, cells[(label, key)]["ratio"]) for key, name, *_ in systems
                  if key not in COLONY and cells[(label, key)]["median"] is not None
                  and cells[(label, key)]["median"] < best]
        if better:
            out.append((label, sorted(better, key=lambda x: x[1])))
    return out


# ------------------------------------------------------------------ the chart


def svg_chart(cells, systems, rows, title, subtitle):
    """Grouped bars per workload: each system's median divided by colony go's, log scale."""
    groups = [label for label, *_ in rows]
    nsys = len(systems)
    bar_w, bar_gap, group_gap = 14, 2, 26
    group_w = nsys * (bar_w + bar_gap) - bar_gap
    left, right, top, bottom = 78, 20, 70, 100
    plot_w = len(groups) * (group_w + group_gap) + group_gap
    plot_h = 360
    width = left + plot_w + right
    legend_h = 24 * math.ceil(nsys / 4)
    height = top + plot_h + bottom + legend_h

    ratios = [c["ratio"] for c in cells.values() if c["ratio"]]
    lo = math.floor(math.log10(min(ratios + [1.0]))) if ratios else -1
    hi = math.ceil(math.log10(max(ratios + [1.0]))) if ratios else 1
    if hi == lo:
        hi += 1
    lo = min(lo, -1)

    def y_of(r):
        f = (math.log10(r) - lo) / (hi - lo)
        return top + plot_h * (1 - f)

    def esc(s):
        return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                .replace('"', "&quot;"))

    e = []
    e.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif">')
    e.append(f'<rect width="{width}" height="{height}" fill="white"/>')
    e.append(f'<text x="{width / 2}" y="24" font-size="16" text-anchor="middle" '
             f'font-weight="bold">{esc(title)}</text>')
    e.append(f'<text x="{width / 2}" y="44" font-size="11" text-anchor="middle" '
             f'fill="#444">{esc(subtitle)}</text>')
    # Grid: decades, and 2x / 5x minor lines.
    for d in range(lo, hi + 1):
        y = y_of(10 ** d)
        label = f"{10 ** d:g}x"
        e.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                 f'stroke="#bbb" stroke-width="1"/>')
        e.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" '
                 f'text-anchor="end">{label}</text>')
        if d < hi:
            for m in (2, 5):
                ym = y_of(m * 10 ** d)
                e.append(f'<line x1="{left}" y1="{ym:.1f}" x2="{left + plot_w}" y2="{ym:.1f}" '
                         f'stroke="#eee" stroke-width="1"/>')
    ybase = top + plot_h
    e.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{ybase}" stroke="black"/>')
    e.append(f'<line x1="{left}" y1="{ybase}" x2="{left + plot_w}" y2="{ybase}" stroke="black"/>')
    y1 = y_of(1.0)
    e.append(f'<line x1="{left}" y1="{y1:.1f}" x2="{left + plot_w}" y2="{y1:.1f}" '
             f'stroke="{systems[0][3]}" stroke-width="1.5" stroke-dasharray="6,3"/>')
    ylab_x, ylab_y = 18, top + plot_h / 2
    e.append(f'<text x="{ylab_x}" y="{ylab_y}" font-size="12" text-anchor="middle" '
             f'transform="rotate(-90 {ylab_x} {ylab_y})">median / colony go median '
             f'(log scale, lower is better)</text>')

    for gi, label in enumerate(groups):
        gx = left + group_gap + gi * (group_w + group_gap)
        e.append(f'<text x="{gx + group_w / 2:.1f}" y="{ybase + 18}" font-size="12" '
                 f'text-anchor="middle" font-weight="bold">{esc(label)}</text>')
        unit = next((cells[(label, k)]["unit"] for k, *_ in systems if cells[(label, k)]["unit"]), "")
        if unit:
            e.append(f'<text x="{gx + group_w / 2:.1f}" y="{ybase + 32}" font-size="10" '
                     f'text-anchor="middle" fill="#555">({esc(unit)})</text>')
        if all(cells[(label, k)]["median"] is None for k, *_ in systems):
            e.append(f'<text x="{gx + group_w / 2:.1f}" y="{ybase - plot_h / 2:.1f}" '
                     f'font-size="11" text-anchor="middle" fill="#777" '
                     f'transform="rotate(-90 {gx + group_w / 2:.1f} {ybase - plot_h / 2:.1f})">'
                     f'{esc(cells[(label, systems[0][0])]["note"])}</text>')
            continue
        for si, (key, name, _, colour, _) in enumerate(systems):
            c = cells[(label, key)]
            x = gx + si * (bar_w + bar_gap)
            cx = x + bar_w / 2
            if c["ratio"] is None:
                e.append(f'<text x="{cx:.1f}" y="{ybase - 4}" font-size="9" fill="#888" '
                         f'text-anchor="start" transform="rotate(-90 {cx + 3:.1f} {ybase - 4})">'
                         f'n/a</text>')
                continue
            y = y_of(c["ratio"])
            tip = f"{name}: {fmt_num(c['median'])} {c['unit']} ({fmt_ratio(c['ratio'])} colony go)"
            e.append(f'<rect x="{x}" y="{y:.1f}" width="{bar_w}" height="{ybase - y:.1f}" '
                     f'fill="{colour}"><title>{esc(tip)}</title></rect>')
            ty = y - 4
            e.append(f'<text x="{cx + 3:.1f}" y="{ty:.1f}" font-size="9" text-anchor="start" '
                     f'transform="rotate(-90 {cx + 3:.1f} {ty:.1f})">{esc(fmt_num(c["median"]))}'
                     f'</text>')
    # Legend.
    ly = ybase + 60
    for si, (key, name, _, colour, _) in enumerate(systems):
        lx = left + (si % 4) * 220
        yy = ly + (si // 4) * 24
        e.append(f'<rect x="{lx}" y="{yy - 11}" width="14" height="14" fill="{colour}"/>')
        e.append(f'<text x="{lx + 20}" y="{yy}" font-size="12">{esc(name)}</text>')
    e.append(f'<text x="{left}" y="{ly + legend_h + 18}" font-size="10" fill="#555">'
             f'Numbers above the bars: the median in the workload\'s unit. '
             f'n/a: the system cannot run the workload or was not built (see the table).</text>')
    e.append("</svg>")
    return "\n".join(e) + "\n"


# ------------------------------------------------------------------ main


class Progress:
    def __init__(self, total):
        self.total, self.done, self.t0 = total, 0, time.monotonic()
        self.tty = sys.stderr.isatty()
        self.width = 0

    def show(self, what):
        el = time.monotonic() - self.t0
        msg = f"[{self.done + 1:3d}/{self.total}] {fmt_duration(el)}  {what}"
        if self.tty:
            pad = max(0, self.width - len(msg))
            sys.stderr.write("\r" + msg + " " * pad)
            self.width = len(msg)
        else:
            sys.stderr.write(msg + "\n")
        sys.stderr.flush()

    def step(self):
        self.done += 1

    def finish(self):
        if self.tty:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def suite_main(args, ap):
    """The comparison suite; `ap` is its argument parser (for errors)."""
    mode_name = args.mode or "quick"
    mode = MODES[mode_name]
    reps = args.reps or mode["reps"]
    timeout = args.timeout or mode["timeout"]

    systems = SYSTEMS
    if args.systems:
        want = [s.strip() for s in args.systems.split(",")]
        unknown = [w for w in want if w not in {s[0] for s in SYSTEMS}]
        if unknown:
            ap.error(f"unknown system(s): {', '.join(unknown)}")
        systems = [s for s in SYSTEMS if s[0] in want or s[0] == BASELINE]
    rows = SUITE_ROWS
    if args.workloads:
        want = [w.strip() for w in args.workloads.split(",")]
        unknown = [w for w in want if w not in {r[0] for r in SUITE_ROWS}]
        if unknown:
            ap.error(f"unknown workload(s): {', '.join(unknown)}")
        rows = [r for r in SUITE_ROWS if r[0] in want]

    # Which workers exist.
    exes, skipped = {}, {}
    failed_builds = set()
    try:
        with open(os.path.join(args.bin, "build-failures.txt"), encoding="utf-8") as f:
            failed_builds = {line.strip() for line in f if line.strip()}
    except OSError:
        pass
    for key, name, exe, _, why in systems:
        path = os.path.join(args.bin, exe) if exe else args.go_bin
        if os.access(path, os.X_OK):
            exes[key] = path
        elif exe in failed_builds:
            skipped[key] = f"failed to build ({exe}: see the build output of bench/run.sh)"
        else:
            skipped[key] = why

    # The server row's executables.
    servers = {
        "colony": args.http_server or os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(args.bin))), "examples",
            "colony_http_server"),
        "Go": args.go_http_server or os.path.join(os.path.dirname(args.go_bin),
                                                  "go_hello"),
    }
    server_missing = {
        "colony": "colony's HTTP example server is not built (COLONY_BUILD_EXAMPLES=ON, "
                  "target colony_http_server)",
        "Go": "Go's hello server is not built (go not installed: apt-get install golang-go)",
    }

    os.makedirs(args.out, exist_ok=True)
    records = []
    # Plan: per row, per repetition, every system (interleaved, so that a slow phase of a
    # shared machine does not land on one system only).
    plan = []
    for label, workload, _ in rows:
        for key, *_ in systems:
            base = {"system": key, "row": label, "workload": workload}
            if workload == "server" and label not in mode["skip_row"] and (
                    key not in SERVER_SYSTEMS
                    or not os.access(servers[SERVER_SYSTEMS[key][1]], os.X_OK)):
                why = (SERVER_NA.get(key, SERVER_NA_DEFAULT) if key not in SERVER_SYSTEMS
                       else server_missing[SERVER_SYSTEMS[key][1]])
                records.append(dict(base, rep=0, skip=why))
            elif workload is None:
                records.append(dict(base, rep=0, skip=NOT_YET.get(label, "not available")))
            elif label in mode["skip_row"]:
                records.append(dict(base, rep=0, skip=mode["skip_row"][label]))
            elif key in skipped:
                records.append(dict(base, rep=0, skip=skipped[key]))
            elif (key, label) in mode["skip"]:
                records.append(dict(base, rep=0, skip=mode["skip"][(key, label)]))
        if workload is None or label in mode["skip_row"]:
            continue
        for rep in range(reps):
            for key, *_ in systems:
                if workload == "server":
                    if key in SERVER_SYSTEMS and os.access(servers[SERVER_SYSTEMS[key][1]],
                                                           os.X_OK):
                        plan.append((label, workload, key, rep))
                elif key in exes and (key, label) not in mode["skip"]:
                    plan.append((label, workload, key, rep))

    context = {
        "date": now(),
        "hardware": hardware(),
        "mode": mode_name,
        "reps": reps,
        "procs": args.procs,
        "compiler": tool_version(["c++", "--version"]),
        "go": go_version(),
        "sizes": mode["rows"],
    }
    print(f"colony comparison suite, {mode_name} mode: {len(plan)} runs, {reps} repetitions, "
          f"{args.procs} processors", file=sys.stderr)
    for key in skipped:
        print(f"  skipped: {dict((s[0], s[1]) for s in SYSTEMS)[key]}: {skipped[key]}",
              file=sys.stderr)

    names = {s[0]: s[1] for s in SYSTEMS}
    dead = {}  # (row, system) -> the first failure or "na", so further repetitions are skipped
    prog = Progress(len(plan))
    t_start = time.monotonic()
    for label, workload, key, rep in plan:
        if (label, key) in dead:
            prog.step()
            continue
        prog.show(f"{label:<12} {names[key]:<12} rep {rep + 1}/{reps}")
        if workload == "server":
            kind, server, extra = SERVER_SYSTEMS[key]
            argv = server_argv(kind, servers[server], extra, mode["rows"][label], args.procs)
        else:
            argv = worker_argv(exes[key], workload, mode["rows"][label], args.procs)
        code, out, err, maxrss, wall = run_child(argv, timeout)
        rec = {"system": key, "row": label, "workload": workload, "rep": rep,
               "argv": argv[1:], "wall_s": round(wall, 3)}
        parsed = None
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    parsed = json.loads(line)
                except ValueError:
                    pass
        if code is None:
            rec["error"] = f"timed out after {timeout:g} s"
        elif code != 0 or parsed is None:
            last = (err.strip().splitlines() or ["no output"])[-1]
            why = f"exit {code}" if code >= 0 else f"signal {-code}"
            rec["error"] = f"{why}: {last[:200]}"
        elif "na" in parsed:
            rec["na"] = parsed["na"]
        else:
            for k in ("n", "procs", "value", "unit", "check", "note", "extra"):
                if k in parsed:
                    rec[k] = parsed[k]
            # The worker's own VmHWM: wait4's ru_maxrss also counts this (forking) process's
            # RSS at exec time, so it is only the fallback.
            rec["maxrss_kib"] = parsed.get("maxrss_kib") or maxrss
            rec["wait4_maxrss_kib"] = maxrss
        if "error" in rec or "na" in rec:
            dead[(label, key)] = True
            if "error" in rec:
                msg = f"{label} / {names[key]}: {rec['error']}"
                prog.finish()
                print(f"  FAILED {msg}", file=sys.stderr)
        records.append(rec)
        prog.step()
    prog.finish()
    elapsed = time.monotonic() - t_start
    context["elapsed_s"] = round(elapsed, 1)

    cells = summarise(records, systems, rows)
    trows = table_rows(cells, systems, rows)
    sizes = ", ".join(f"{k} " + " ".join(f"{a}={v:,}" if isinstance(v, int) else f"{a}={v}"
                                           for a, v in sz.items())
                      for k, sz in mode["rows"].items() if sz)
    head = [
        f"colony comparison suite, {mode_name} mode ({reps} repetitions per cell, each in its "
        f"own process; median and min over them; warm: spawn and skynet run 4 more times in "
        f"that process, the best of those, median over the repetitions)",
        f"date: {context['date']}",
        f"hardware: {context['hardware']}",
        f"processors: {args.procs} (colony max_procs, pool threads, Boost.Fiber threads, "
        f"GOMAXPROCS; yield runs on one)",
        f"sizes: {sizes}",
    ]
    if context["compiler"]:
        head.append(f"compiler: {context['compiler']}")
    if context["go"]:
        head.append(context["go"])
    head.append("lower is better everywhere; 'vs colony go' = median / colony go's median "
                "(< 1: faster or smaller than colony go); peak RSS = the run's whole process")
    table = suite_text_table(trows)
    print()
    print("\n".join(head))
    print()
    print(table)
    nf = not_fastest(cells, systems, rows)
    if nf:
        print()
        print("where colony is not the fastest (peers ahead of the best colony system; ratio to colony go):")
        for label, better in nf:
            print(f"  {label}: " + ", ".join(f"{n} {fmt_ratio(r)}" for n, r in better))
    failed = [r for r in records if "error" in r]

    with open(os.path.join(args.out, "table.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(head) + "\n\n" + table + "\n")
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"context": context, "records": records}, f, indent=1)
        f.write("\n")
    md = [f"## Comparison suite ({mode_name} mode)", ""]
    md += [f"- {h}" for h in head[1:]]
    md += ["", f"![comparison chart](chart.svg)", ""]
    md += suite_markdown_table(trows)
    md += ["", "Workloads (the same definitions for every system):", ""]
    md += [f"- **{label}**: {desc}" for label, _, desc in rows]
    if skipped:
        md += ["", "Skipped systems:", ""]
        md += [f"- {names[k]}: {why}" for k, why in skipped.items()]
    if nf:
        md += ["", "Where colony is not the fastest (peers ahead of both colony go and colony Pool; "
               "ratio = their median / colony go's):", ""]
        md += [f"- {label}: " + ", ".join(f"{n} {fmt_ratio(r)}" for n, r in better)
               for label, better in nf]
    md += ["", f"Reproduce: `bench/run.sh suite --{mode_name}` "
           f"(took {fmt_duration(elapsed)} for the runs)."]
    with open(os.path.join(args.out, "results.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    subtitle = (f"{mode_name} mode, {context['date']}, {context['hardware']}; "
                f"median of {reps} runs")
    with open(os.path.join(args.out, "chart.svg"), "w", encoding="utf-8") as f:
        f.write(svg_chart(cells, systems, rows,
                          "colony versus thread pools and Go (relative to colony go)", subtitle))

    print()
    print(f"runs took {fmt_duration(elapsed)}; results in {args.out}/: table.txt, results.md, "
          f"results.json, chart.svg")
    if failed:
        print(f"{len(failed)} run(s) FAILED (see the table notes)", file=sys.stderr)
        return 1
    return 0


# ================================================================== main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser("suite", help="the comparison suite, each run in its own process")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", const="quick", dest="mode",
                   help="smaller sizes, 3 repetitions (the default)")
    g.add_argument("--full", action="store_const", const="full", dest="mode",
                   help="the issue's sizes, 5 repetitions")
    s.add_argument("--out", default=os.path.join(BUILD, "bench-results", "suite"),
                   help="output directory (default build/release/bench-results/suite)")
    s.add_argument("--bin", default=os.path.join(BUILD, "bench", "compare"),
                   help="directory of the colony_compare_* workers")
    s.add_argument("--go-bin", default=os.path.join(BUILD, "go", "colonybench"),
                   help="the Go worker (bench/go, built by bench/run.sh)")
    s.add_argument("--http-server", help="colony's HTTP example server (default: "
                   "BUILD/examples/colony_http_server, BUILD being --bin's build directory)")
    s.add_argument("--go-http-server", help="Go's net/http hello server (default: "
                   "go_hello next to --go-bin)")
    s.add_argument("--reps", type=int, help="repetitions (default: 3 quick, 5 full)")
    s.add_argument("--procs", type=int, default=nproc(),
                   help="processors / pool threads / GOMAXPROCS (default: nproc)")
    s.add_argument("--systems", help="comma-separated subset of: " +
                   ", ".join(s[0] for s in SYSTEMS))
    s.add_argument("--workloads", help="comma-separated subset of: " +
                   ", ".join(r[0] for r in SUITE_ROWS))
    s.add_argument("--timeout", type=float, help="seconds per run before it is killed")

    m = sub.add_parser("micro", help="the micro-benchmarks per operation: colony, Go, "
                       "Boost.Fiber, raw jump")
    m.add_argument("--colony", required=True, help="colony_bench JSON")
    m.add_argument("--peers", help="colony_bench_peers JSON")
    m.add_argument("--go", help="colonybench -bench JSON lines")

    p = sub.add_parser("pool", help="ants' benchmark: colony_pool_bench against Go")
    p.add_argument("--pool", required=True, help="colony_pool_bench JSON")
    p.add_argument("--go", help="colonybench -bench JSON lines (sleep, sleep_raw, spawn)")
    for sp in (m, p):
        sp.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown here")
        sp.add_argument("--note", action="append", default=[], help="a line added under the table")

    args = ap.parse_args()
    if args.command == "micro":
        return micro_main(args)
    if args.command == "pool":
        return pool_main(args)
    return suite_main(args, s)


if __name__ == "__main__":
    sys.exit(main())
