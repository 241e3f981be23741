#!/usr/bin/env python3
"""bench/compare.py: colony's benchmark figures next to their peers', measured in the same run.

    compare.py --colony colony.json [--peers peers.json] [--go go.jsonl] [--markdown FILE]
               [--note TEXT]...

Inputs (any of them may be missing: the figures show as "n/a"):
  --colony  google-benchmark JSON of build/*/bench/colony_bench
  --peers   google-benchmark JSON of build/*/bench/colony_bench_peers (Boost.Fiber, Boost.Context)
  --go      JSON lines of bench/go/run.sh; the "rep": "median" record of each workload is used

Prints a table (lower is better everywhere; a ratio below 1 means colony is faster or smaller)
and, with --markdown, writes it as Markdown with the date and the hardware. Exit status 1 if a
colony figure is missing or its benchmark reported an error. Standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys

NS_PER = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


class Missing(Exception):
    """A figure is not available; the message says why."""


# ---------------------------------------------------------------- inputs

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
    """{bench: median record} from bench/go/run.sh output, or an error string."""
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


# ---------------------------------------------------------------- the table

S_TO_NS = 1e9

# workload, unit, colony, Go, Boost.Fiber, raw jump; each a function of (colony, peers, go).
ROWS = [
    ("yield", "ns/yield",
     lambda c, p, g: gbench_counter(c, "BM_Colony_Yield", "per_yield", S_TO_NS),
     lambda c, p, g: go_value(g, "gosched", "ns/op"),
     lambda c, p, g: gbench_counter(p, "BM_BoostFiber_Yield", "per_yield", S_TO_NS),
     lambda c, p, g: gbench_counter(p, "BM_BoostContext_Jump", "per_jump", S_TO_NS)),
    ("spawn", "ns/fiber",
     lambda c, p, g: gbench_counter(c, "BM_Colony_Spawn", "per_spawn", S_TO_NS),
     lambda c, p, g: go_value(g, "spawn", "ns/op"),
     None, None),
    ("skynet 1M", "ms/tree",
     lambda c, p, g: gbench_time(c, "BM_Colony_Skynet", "ms"),
     lambda c, p, g: go_value(g, "skynet", "ms"),
     lambda c, p, g: gbench_time(p, "BM_BoostFiber_Skynet", "ms"),
     None),
    ("pingpong", "ns/round trip",
     lambda c, p, g: gbench_time(c, "BM_Colony_ChanPingPong", "ns"),
     lambda c, p, g: go_value(g, "pingpong", "ns/op"),
     None, None),
    ("select, 2 cases", "ns/select",
     lambda c, p, g: gbench_time(c, "BM_Colony_Select", "ns"),
     lambda c, p, g: go_value(g, "select", "ns/op"),
     None, None),
    ("dynamic select, 2 cases", "ns/select",
     lambda c, p, g: gbench_time(c, "BM_Colony_SelectDynamic", "ns", arg=2),
     lambda c, p, g: go_value(g, "selectdyn2", "ns/op"),
     None, None),
    ("dynamic select, 100 cases", "ns/select",
     lambda c, p, g: gbench_time(c, "BM_Colony_SelectDynamic", "ns", arg=100),
     lambda c, p, g: go_value(g, "selectdyn100", "ns/op"),
     None, None),
    ("chan buffered, 1 producer", "ns/value",
     lambda c, p, g: gbench_counter(c, "BM_Colony_ChanBuffered", "per_value", S_TO_NS, arg=1),
     lambda c, p, g: go_value(g, "chanbuf1", "ns/op"),
     None, None),
    ("chan buffered, 4 producers", "ns/value",
     lambda c, p, g: gbench_counter(c, "BM_Colony_ChanBuffered", "per_value", S_TO_NS, arg=4),
     lambda c, p, g: go_value(g, "chanbuf4", "ns/op"),
     None, None),
    ("mutex, 8 contenders", "ns/lock",
     lambda c, p, g: gbench_counter(c, "BM_Colony_MutexContended", "per_lock", S_TO_NS),
     lambda c, p, g: go_value(g, "mutex", "ns/op"),
     None, None),
    ("waitgroup fan-in 100k", "ns/fiber",
     lambda c, p, g: gbench_counter(c, "BM_Colony_WaitGroupFanIn", "per_fiber", S_TO_NS),
     lambda c, p, g: go_value(g, "wgfanin", "ns/op"),
     None, None),
    ("parked 1M", "bytes/fiber",
     lambda c, p, g: gbench_counter(c, "BM_Colony_Parked", "bytes_per_fiber", arg=1000000),
     lambda c, p, g: go_value(g, "parked", "bytes/op"),
     None, None),
]

HEADER = ["workload", "unit", "colony", "Go", "Boost.Fiber", "raw jump",
          "colony/Go", "colony/Boost.Fiber", "colony/raw"]

LEGEND = [
    "yield: two fibers yielding to each other on one processor (colony max_procs=1, "
    "Go GOMAXPROCS(1) runtime.Gosched, Boost.Fiber round_robin on one thread); "
    "raw jump = one Boost.Context jump_fcontext, the floor",
    "spawn: 1M empty fibers started from one fiber and waited for, per fiber",
    "skynet 1M: 10-way tree of 1,111,111 fibers, each returning its subtree's sum, wall time per tree",
    "pingpong: two fibers handing a value back and forth over two unbuffered channels "
    "(colony::Chan, Go chan), per round trip",
    "select: Go's BenchmarkSelectUncontended on one fiber, two 1-slot channels, one holding a "
    "value; each select takes it and sends one to the other (select + one buffered send)",
    "dynamic select: the same over 2 or 100 channels as a run-time set of cases "
    "(colony::SelectCase, Go reflect.Select)",
    "chan buffered: 1M values through a 128-slot channel from 1 or 4 producer fibers to one receiver",
    "mutex: 8 fibers (goroutines) taking one colony::Mutex (sync.Mutex) 100k times each",
    "waitgroup fan-in: 100k fibers each calling done() on one WaitGroup, one waiter",
    "parked 1M: resident memory per parked fiber with 1M fibers blocked (VmRSS delta)",
]


def fmt(v):
    if v is None:
        return "n/a"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


def build_table(colony, peers, go):
    rows, problems, colony_bad = [], [], False
    # A whole input missing is reported once, not once per cell.
    sources = {"colony": colony, "Go": go, "Boost.Fiber": peers, "raw jump": peers}
    absent = {who for who, src in sources.items() if isinstance(src, str)}
    for who, label in (("colony", "colony"), ("Go", "Go"), ("Boost.Fiber", "Boost.Fiber / raw jump")):
        if who in absent:
            problems.append(f"{label}: {sources[who]}")
    colony_bad = "colony" in absent
    for name, unit, *getters in ROWS:
        values = []
        for who, get in zip(("colony", "Go", "Boost.Fiber", "raw jump"), getters):
            v = None
            if get is not None and who not in absent:
                try:
                    v = get(colony, peers, go)
                except Missing as e:
                    problems.append(f"{name}: {who}: {e}")
                    colony_bad |= who == "colony"
                except (KeyError, TypeError, ValueError) as e:
                    problems.append(f"{name}: {who}: malformed result ({e!r})")
                    colony_bad |= who == "colony"
            values.append(v)
        c, g, bf, raw = values
        rows.append([name, unit, fmt(c), fmt(g), fmt(bf), fmt(raw),
                     ratio(c, g), ratio(c, bf), ratio(c, raw)])
    return rows, problems, colony_bad


# ---------------------------------------------------------------- context

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
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = "? GiB"
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / (1024 * 1024):.1f} GiB"
                    break
    except (OSError, ValueError):
        pass
    return f"{model}, nproc {ncpu}, MemTotal {mem}, Linux {platform.release()}"


def go_version():
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None)
    if not go:
        return None
    try:
        out = subprocess.run([go, "version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def procs_line(go):
    maxprocs = os.environ.get("COLONY_MAXPROCS")
    colony = f"colony max_procs {maxprocs} (COLONY_MAXPROCS)" if maxprocs else \
        f"colony max_procs {os.cpu_count()} (default: hardware_concurrency)"
    if isinstance(go, dict) and "skynet" in go:
        return f"{colony}, Go GOMAXPROCS {go['skynet'].get('procs', '?')} (yield: 1)"
    return colony


# ---------------------------------------------------------------- output

def text_table(rows):
    widths = [max(len(r[i]) for r in [HEADER] + rows) for i in range(len(HEADER))]
    line = lambda r: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([line(HEADER), line(["-" * w for w in widths])] + [line(r) for r in rows])


def markdown(rows, context, notes, problems):
    out = ["| " + " | ".join(HEADER) + " |",
           "|" + "|".join([":--", ":--"] + ["--:"] * (len(HEADER) - 2)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    md = ["# colony benchmarks", ""]
    md += [f"- {c}" for c in context]
    md += ["", "Lower is better everywhere; a ratio below 1 means colony is faster (or smaller).", ""]
    md += out
    md += [""] + [f"- {l}" for l in LEGEND]
    if notes:
        md += [""] + [f"- {n}" for n in notes]
    if problems:
        md += ["", "Not available:", ""] + [f"- {p}" for p in problems]
    return "\n".join(md) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--colony", required=True, help="colony_bench JSON")
    ap.add_argument("--peers", help="colony_bench_peers JSON")
    ap.add_argument("--go", help="bench/go/run.sh JSON lines")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown here")
    ap.add_argument("--note", action="append", default=[], help="a line added under the table")
    args = ap.parse_args()

    colony, peers, go = load_gbench(args.colony), load_gbench(args.peers), load_go(args.go)
    rows, problems, colony_bad = build_table(colony, peers, go)

    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    context = [f"date: {now}", f"hardware: {hardware()}", procs_line(go)]
    gv = go_version()
    if gv:
        context.append(gv)

    for c in context:
        print(c)
    print("lower is better; ratio < 1: colony faster/smaller")
    print()
    print(text_table(rows))
    if problems:
        print()
        print("not available:")
        for p in problems:
            print(f"  {p}")

    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(markdown(rows, context, args.note, problems))
        print()
        print(f"Markdown: {args.markdown}")
    return 1 if colony_bad else 0


if __name__ == "__main__":
    sys.exit(main())
