// colony_compare_pool: the workloads on colony::Pool (the ants-style pool of worker fibers):
//
//   colony::Pool pool(cap, {});        // at most `cap` tasks run at once, on reused fibers
//   std::error_code ec = pool.submit(f);
//   pool.wait();                       // every submitted task has finished
//   pool.release();
//
// Everything runs inside colony::run(main, {.max_procs = P}). Tasks are fibers, so they may
// block (on channels, sleeps): the pool's capacity bounds how many are in flight, and submit()
// waits while the pool is full. A task that submits tasks and waits for them (skynet, fib)
// could deadlock a bounded pool whose workers all do the same (ants' nested-submit deadlock),
// so those two use an unbounded pool (capacity -1), and say so.
#if __has_include(<colony/pool.hpp>)
#include <colony/pool.hpp>
#define COLONY_COMPARE_HAVE_POOL 1
#elif __has_include(<colony/pool/pool.hpp>)
#include <colony/pool/pool.hpp>
#define COLONY_COMPARE_HAVE_POOL 1
#endif

#ifdef COLONY_COMPARE_HAVE_POOL

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <cstdint>
#include <string>
#include <system_error>

#include "common.hpp"

namespace {

using compare::Args;
using compare::Clock;
using compare::Result;

const std::string kSystem = "colony-Pool";

// Capacity for the spawn workload: a pool's usual size, far below the task count.
constexpr int kSpawnCap = 10'000;
// Capacity of the pools whose tasks submit tasks and wait for them: unbounded.
constexpr int kUnbounded = -1;

template <class F>
Result in_runtime(int procs, F&& f) {
  Result r;
  colony::run([&] { r = f(); }, {.max_procs = procs});
  return r;
}

template <class F>
void submit(colony::Pool& pool, F&& f) {
  std::error_code ec = pool.submit(std::forward<F>(f));
  if (ec) compare::fail(kSystem, "submit: " + ec.message());
}

std::string cap_note(long cap) {
  return cap < 0 ? "unbounded Pool" : "Pool(" + std::to_string(cap) + ")";
}

// spawn: n empty tasks submitted from one fiber, then pool.wait().
Result spawn(const Args& a) {
  return in_runtime(a.procs, [&] {
    return compare::first_and_warm(a, [&] {
      std::atomic<long> ran{0};
      colony::Pool pool(kSpawnCap, {});
      auto t0 = Clock::now();
      for (long i = 0; i < a.n; ++i)
        submit(pool, [&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
      pool.wait();
      double ns = compare::ns_since(t0);
      pool.release();
      if (ran.load() != a.n) compare::fail(kSystem, "spawn: lost tasks");
      Result r = compare::per_op(ns, static_cast<double>(a.n), std::to_string(a.n) + " done");
      r.note = cap_note(kSpawnCap);
      return r;
    });
  });
}

// skynet: the colony-go tree with every node a pool task (an unbounded pool: nodes wait for the
// tasks they submitted).
void skynet_node(colony::Pool& pool, colony::Chan<std::int64_t> parent, std::int64_t num,
                 std::int64_t size) {
  if (size == 1) {
    parent.send(num);
    return;
  }
  colony::Chan<std::int64_t> children(10);
  size /= 10;
  for (std::int64_t i = 0; i < 10; ++i)
    submit(pool,
           [&pool, children, num, i, size] { skynet_node(pool, children, num + i * size, size); });
  std::int64_t sum = 0;
  for (int i = 0; i < 10; ++i) sum += *children.recv();
  parent.send(sum);
}

Result skynet(const Args& a) {
  return in_runtime(a.procs, [&] {
    return compare::first_and_warm(a, [&] {
      colony::Pool pool(kUnbounded, {});
      colony::Chan<std::int64_t> root(1);
      auto t0 = Clock::now();
      submit(pool, [&pool, root, &a] { skynet_node(pool, root, 0, a.n); });
      std::int64_t sum = *root.recv();
      double ms = compare::ms_since(t0);
      pool.wait();
      pool.release();
      if (sum != compare::skynet_expected(a.n))
        compare::fail(kSystem, "skynet sum " + std::to_string(sum));
      Result r = compare::in_ms(ms, "sum=" + std::to_string(sum));
      r.note = cap_note(kUnbounded) + " (a node waits for its children)";
      return r;
    });
  });
}

// pingpong: two pool tasks, two unbuffered channels.
Result pingpong(const Args& a) {
  return in_runtime(a.procs, [&] {
    colony::Pool pool(2, {});
    colony::Chan<long> ping, pong;
    double ns = 0;
    bool ok = true;
    submit(pool, [&] {
      while (auto v = ping.recv()) pong.send(*v + 1);
    });
    submit(pool, [&] {
      auto t0 = Clock::now();
      for (long i = 0; i < a.n; ++i) {
        ping.send(i);
        if (*pong.recv() != i + 1) ok = false;
      }
      ns = compare::ns_since(t0);
      ping.close();
    });
    pool.wait();
    pool.release();
    if (!ok) compare::fail(kSystem, "pingpong: wrong answer");
    Result r = compare::per_op(ns, static_cast<double>(a.n), std::to_string(a.n) + " round trips");
    r.note = cap_note(2);
    return r;
  });
}

// yield: one processor, two pool tasks each yielding n/2 times.
Result yield(const Args& a) {
  return in_runtime(1, [&] {
    const long each = a.n / 2;
    colony::Pool pool(2, {});
    auto t0 = Clock::now();
    for (int f = 0; f < 2; ++f)
      submit(pool, [each] {
        for (long i = 0; i < each; ++i) colony::this_fiber::yield();
      });
    pool.wait();
    Result r = compare::per_op(compare::ns_since(t0), 2.0 * static_cast<double>(each),
                               std::to_string(2 * each) + " yields");
    pool.release();
    r.note = "max_procs 1, " + cap_note(2);
    return r;
  });
}

// parked: n pool tasks blocked receiving from one channel (capacity n).
Result parked(const Args& a) {
  return in_runtime(a.procs, [&] {
    colony::Chan<char> gate;
    colony::WaitGroup started;
    started.add(a.n);
    const long rss0 = compare::status_kib("VmRSS");
    auto t0 = Clock::now();
    colony::Pool pool(static_cast<int>(a.n), {});
    for (long i = 0; i < a.n; ++i)
      submit(pool, [&] {
        started.done();
        gate.recv();
      });
    started.wait();
    colony::this_fiber::sleep_for(std::chrono::milliseconds(5));  // the last ones park
    const long rss1 = compare::status_kib("VmRSS");
    gate.close();
    pool.wait();
    const double ms = compare::ms_since(t0);
    pool.release();
    Result r;
    compare::rss_per_task(r, rss0, rss1, a.n, ms);
    r.check = std::to_string(a.n) + " woken";
    r.note = cap_note(a.n);
    return r;
  });
}

// sleep: ants' benchmark itself: a pool of capacity cap, n tasks each sleeping sleep_ms.
Result sleep_bound(const Args& a) {
  return in_runtime(a.procs, [&] {
    std::atomic<long> slept{0};
    const auto d = std::chrono::milliseconds(a.sleep_ms);
    colony::Pool pool(static_cast<int>(a.cap), {});
    auto t0 = Clock::now();
    for (long i = 0; i < a.n; ++i)
      submit(pool, [&slept, d] {
        colony::this_fiber::sleep_for(d);
        slept.fetch_add(1, std::memory_order_relaxed);
      });
    pool.wait();
    double ms = compare::ms_since(t0);
    pool.release();
    if (slept.load() != a.n) compare::fail(kSystem, "sleep: lost tasks");
    Result r = compare::in_ms(ms, std::to_string(a.n) + " slept");
    r.note = cap_note(a.cap);
    return r;
  });
}

// fib: one branch submitted to the pool (result over a one-slot channel), the other inline.
std::int64_t pfib(colony::Pool& pool, int n, int cutoff) {
  if (n <= cutoff) return compare::fib_seq(n);
  colony::Chan<std::int64_t> left(1);
  submit(pool, [&pool, left, n, cutoff] { left.send(pfib(pool, n - 1, cutoff)); });
  std::int64_t right = pfib(pool, n - 2, cutoff);
  return *left.recv() + right;
}

Result fib(const Args& a) {
  return in_runtime(a.procs, [&] {
    colony::Pool pool(kUnbounded, {});
    Result r = compare::fib_result(kSystem, a, [&] { return pfib(pool, a.fib, a.cutoff); });
    pool.wait();
    pool.release();
    r.note += ", " + cap_note(kUnbounded);
    return r;
  });
}

}  // namespace

int main(int argc, char** argv) {
  return compare::main(argc, argv, kSystem,
                       {{"spawn", spawn, {}},
                        {"skynet", skynet, {}},
                        {"pingpong", pingpong, {}},
                        {"yield", yield, {}},
                        {"parked", parked, {}},
                        {"sleep", sleep_bound, {}},
                        {"fib", fib, {}}});
}

#else  // no pool header: CMake does not build this worker then, and the driver skips it

#include <cstdio>
int main() {
  std::fprintf(stderr, "colony_compare_pool: built without <colony/pool.hpp>\n");
  return 69;
}

#endif
