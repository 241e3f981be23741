// The comparison suite's worker harness, shared by every C++ system (one executable per system,
// so that a missing peer library only removes its own executable).
//
//   colony_compare_<system> --workload W [--n N] [--procs P] [--cap C] [--sleep-ms MS]
//                           [--fib N] [--cutoff N] [--thread-cap T]
//
// A worker runs ONE repetition of ONE workload in its own process and prints one JSON line on
// stdout (bench/compare/compare.py collects them):
//
//   {"system":S,"workload":W,"n":N,"procs":P,"value":X,"unit":U,"check":"...",
//    "maxrss_kib":K,"note":"...","extra":{...}}
//
// or, when the system cannot run the workload, {"system":S,"workload":W,"na":"why"} with exit
// status 0. A wrong result (skynet sum, fib value, lost tasks) is reported on stderr with exit
// status 2: the driver shows "failed" instead of a number.
//
// The workload definitions are the same for every system (bench/compare/README.md has them in
// full); the per-system files say how each is expressed there.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace compare {

// skynet_expected: the sum of 0 .. leaves-1 (499999500000 for 1,000,000 leaves).
inline std::int64_t skynet_expected(std::int64_t leaves) {
  return leaves * (leaves - 1) / 2;
}

// is_power_of_10: skynet needs a leaf count that a 10-way tree divides exactly.
inline bool is_power_of_10(long n) {
  while (n > 1 && n % 10 == 0) n /= 10;
  return n == 1;
}

struct Args {
  std::string workload;
  long n = 1'000'000;        // tasks / round trips / switches / leaves, per workload
  int procs = 0;             // processors / pool threads (0 = hardware_concurrency)
  long cap = 50'000;         // sleep: concurrency cap
  int sleep_ms = 10;         // sleep: duration of each task's sleep
  int fib = 32;              // fib: argument
  int cutoff = 20;           // fib: below or at this, compute sequentially
  long thread_cap = 10'000;  // std::thread: at most this many threads alive at once
  int warm = 0;              // spawn, skynet: repetitions after the first, in the same process
};

// Result: what one repetition measured. `value` in `unit` is the headline figure; `extra` holds
// other figures as (key, JSON value) pairs; `note` is shown in the table.
struct Result {
  double value = 0;
  std::string unit;
  std::string check;
  std::string note;
  std::vector<std::pair<std::string, std::string>> extra;
  void add(const std::string& key, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    extra.emplace_back(key, buf);
  }
};

// Workload: a name, and either a function or the reason this system cannot run it.
struct Workload {
  const char* name;
  std::function<Result(const Args&)> run;  // empty: not available, see `na`
  std::string na;
};

inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// status_kib: a "kB" field of /proc/self/status (VmRSS, VmHWM), or -1.
inline long status_kib(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::size_t len = std::strlen(field);
  while (std::getline(f, line))
    if (line.compare(0, len, field) == 0 && line.size() > len && line[len] == ':')
      return std::strtol(line.c_str() + len + 1, nullptr, 10);
  return -1;
}

inline long peak_rss_kib() {
  long hwm = status_kib("VmHWM");
  if (hwm >= 0) return hwm;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

using Clock = std::chrono::steady_clock;
inline double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}
inline double ns_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}

[[noreturn]] inline void fail(const std::string& system, const std::string& what) {
  std::fprintf(stderr, "colony_compare %s: %s\n", system.c_str(), what.c_str());
  std::exit(2);
}

// fib_seq: the sequential baseline and the leaves of the parallel versions. Not inlined, and the
// argument comes from the command line, so the compiler cannot fold it.
[[gnu::noinline]] inline std::int64_t fib_seq(int n) {
  return n < 2 ? n : fib_seq(n - 1) + fib_seq(n - 2);
}

// fib_expected: fib(n) by iteration, to check the recursive results.
// Mailbox: a one-slot mailbox for the thread-based systems' ping-pong (mutex + condition
// variable, as the issue defines ping-pong for threads).
struct Mailbox {
  std::mutex m;
  std::condition_variable cv;
  long value = 0;
  bool full = false;
  void put(long v) {
    {
      std::lock_guard<std::mutex> lk(m);
      value = v;
      full = true;
    }
    cv.notify_one();
  }
  long take() {
    std::unique_lock<std::mutex> lk(m);
    cv.wait(lk, [this] { return full; });
    full = false;
    return value;
  }
};

inline std::int64_t fib_expected(int n) {
  std::int64_t a = 0, b = 1;
  for (int i = 0; i < n; ++i) {
    std::int64_t t = a + b;
    a = b;
    b = t;
  }
  return a;
}

// fib_result: the common part of every fib workload: time the sequential baseline, then the
// parallel run `par` (which returns fib(args.fib)), check both, report ms of the parallel run.
// The parallel run is tiny (milliseconds), so one untimed run of it comes first: the figure is
// then not the start-up of lazily created worker threads.
template <class Par>
Result fib_result(const std::string& system, const Args& a, Par&& par) {
  const std::int64_t want = fib_expected(a.fib);
  if (par() != want) fail(system, "fib: wrong result in the warm-up run");
  auto t0 = Clock::now();
  std::int64_t seq = fib_seq(a.fib);
  double seq_ms = ms_since(t0);
  t0 = Clock::now();
  std::int64_t got = par();
  double par_ms = ms_since(t0);
  if (seq != want || got != want)
    fail(system, "fib(" + std::to_string(a.fib) + ") = " + std::to_string(got) + ", want " +
                     std::to_string(want));
  Result r;
  r.value = par_ms;
  r.unit = "ms";
  r.check = "fib(" + std::to_string(a.fib) + ")=" + std::to_string(got);
  r.add("seq_ms", seq_ms);
  r.add("speedup", seq_ms / par_ms);
  char buf[96];
  std::snprintf(buf, sizeof buf, "sequential %.1f ms, speed-up %.2fx", seq_ms, seq_ms / par_ms);
  r.note = buf;
  return r;
}

// rss_per_task: the parked workload's figure, from the VmRSS (KiB) before spawning and with
// every task parked.
inline void rss_per_task(Result& r, long rss0_kib, long rss1_kib, long tasks, double total_ms) {
  r.value = static_cast<double>(rss1_kib - rss0_kib) * 1024.0 / static_cast<double>(tasks);
  r.unit = "B/task";
  r.add("rss_before_kib", static_cast<double>(rss0_kib));
  r.add("rss_parked_kib", static_cast<double>(rss1_kib));
  r.add("tasks", static_cast<double>(tasks));
  r.add("park_wake_ms", total_ms);
}

inline Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "colony_compare: %s needs a value\n", k.c_str());
        std::exit(64);
      }
      return argv[++i];
    };
    if (k == "--workload")
      a.workload = next();
    else if (k == "--n")
      a.n = std::strtol(next(), nullptr, 10);
    else if (k == "--procs")
      a.procs = static_cast<int>(std::strtol(next(), nullptr, 10));
    else if (k == "--cap")
      a.cap = std::strtol(next(), nullptr, 10);
    else if (k == "--sleep-ms")
      a.sleep_ms = static_cast<int>(std::strtol(next(), nullptr, 10));
    else if (k == "--fib")
      a.fib = static_cast<int>(std::strtol(next(), nullptr, 10));
    else if (k == "--cutoff")
      a.cutoff = static_cast<int>(std::strtol(next(), nullptr, 10));
    else if (k == "--thread-cap")
      a.thread_cap = std::strtol(next(), nullptr, 10);
    else if (k == "--warm")
      a.warm = static_cast<int>(std::strtol(next(), nullptr, 10));
    else {
      std::fprintf(stderr,
                   "usage: %s --workload W [--n N] [--procs P] [--cap C] [--sleep-ms MS] "
                   "[--fib N] [--cutoff N] [--thread-cap T] [--warm K]\n",
                   argv[0]);
      std::exit(64);
    }
  }
  if (a.procs <= 0) a.procs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (a.workload == "skynet" && !is_power_of_10(a.n)) {
    std::fprintf(stderr, "colony_compare: skynet needs --n a power of 10\n");
    std::exit(64);
  }
  if (a.n <= 0 || a.cap <= 0 || a.thread_cap <= 0 || a.fib < 0 || a.cutoff < 1 || a.warm < 0) {
    std::fprintf(stderr,
                 "colony_compare: --n, --cap, --thread-cap and --cutoff must be positive\n");
    std::exit(64);
  }
  return a;
}

// main: the body of every worker's main().
inline int main(int argc, char** argv, const std::string& system, const std::vector<Workload>& ws) {
  Args a = parse_args(argc, argv);
  for (const Workload& w : ws) {
    if (a.workload != w.name) continue;
    if (!w.run) {
      std::printf("{\"system\":%s,\"workload\":%s,\"na\":%s}\n", json_string(system).c_str(),
                  json_string(a.workload).c_str(), json_string(w.na).c_str());
      return 0;
    }
    Result r = w.run(a);
    std::string extra;
    for (auto& [k, v] : r.extra) {
      if (!extra.empty()) extra += ',';
      extra += json_string(k);
      extra += ':';
      extra += v;
    }
    std::printf(
        "{\"system\":%s,\"workload\":%s,\"n\":%ld,\"procs\":%d,\"value\":%.6g,\"unit\":%s,"
        "\"check\":%s,\"maxrss_kib\":%ld,\"note\":%s,\"extra\":{%s}}\n",
        json_string(system).c_str(), json_string(a.workload).c_str(), a.n, a.procs, r.value,
        json_string(r.unit).c_str(), json_string(r.check).c_str(), peak_rss_kib(),
        json_string(r.note).c_str(), extra.c_str());
    std::fflush(stdout);
    return 0;
  }
  std::fprintf(stderr, "colony_compare %s: unknown workload '%s'\n", system.c_str(),
               a.workload.c_str());
  return 64;
}

// first_and_warm: one repetition (`rep`, the first: cold, in a fresh process), then with
// --warm K K more in the same process and the same runtime or pool (warm: stacks, caches and
// threads already there); the first one's Result, with extra "warm_best" (the lowest of the
// K values, same unit) and "warm_reps". The table shows both (compare.py, column "warm").
template <class F>
Result first_and_warm(const Args& a, F&& rep) {
  Result r = rep();
  if (a.warm <= 0) return r;
  double best = rep().value;
  for (int k = 1; k < a.warm; ++k) best = std::min(best, rep().value);
  r.add("warm_best", best);
  r.add("warm_reps", a.warm);
  return r;
}

// Per-workload result helpers.
inline Result per_op(double total_ns, double ops, std::string check) {
  Result r;
  r.value = total_ns / ops;
  r.unit = "ns/op";
  r.check = std::move(check);
  r.add("total_ms", total_ns / 1e6);
  return r;
}
inline Result in_ms(double ms, std::string check) {
  Result r;
  r.value = ms;
  r.unit = "ms";
  r.check = std::move(check);
  return r;
}

// MailboxPingPong: the ping-pong of the thread-based systems (std::thread, Asio, TBB). partner()
// answers v + 1 to every v on `ping` until it reads -1; driver() sends n values, checks the
// answers and times the round trips. Each system runs the two its own way (two threads, two
// pool tasks), then calls result().
struct MailboxPingPong {
  explicit MailboxPingPong(long rounds) : n(rounds) {}
  void partner() {
    for (long v; (v = ping.take()) >= 0;) pong.put(v + 1);
  }
  void driver() {
    auto t0 = Clock::now();
    for (long i = 0; i < n; ++i) {
      ping.put(i);
      if (pong.take() != i + 1) ok = false;
    }
    ns = ns_since(t0);
    ping.put(-1);
  }
  Result result(const std::string& system, std::string note) const {
    if (!ok) fail(system, "pingpong: wrong answer");
    Result r = per_op(ns, static_cast<double>(n), std::to_string(n) + " round trips");
    r.note = std::move(note);
    return r;
  }

  long n;
  Mailbox ping, pong;
  double ns = 0;
  bool ok = true;
};

}  // namespace compare
