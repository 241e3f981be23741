// colony_compare_colony: the workloads on colony fibers (colony::go, Chan, WaitGroup), written
// as the Go versions in bench/go/suite.go are. Everything runs inside
// colony::run(main, {.max_procs = P}); the time is taken on the main fiber.
#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <cstdint>
#include <string>

#include "common.hpp"

namespace {

using compare::Args;
using compare::Clock;
using compare::Result;

const std::string kSystem = "colony-go";

template <class F>
Result in_runtime(int procs, F&& f) {
  Result r;
  colony::run([&] { r = f(); }, {.max_procs = procs});
  return r;
}

// spawn: n empty fibers started from one fiber; each calls wg.done().
Result spawn(const Args& a) {
  return in_runtime(a.procs, [&] {
    return compare::first_and_warm(a, [&] {
      colony::WaitGroup wg;
      wg.add(a.n);
      auto t0 = Clock::now();
      for (long i = 0; i < a.n; ++i) colony::go([&wg] { wg.done(); });
      wg.wait();
      return compare::per_op(compare::ns_since(t0), static_cast<double>(a.n),
                             std::to_string(a.n) + " done");
    });
  });
}

// skynet: every node sends its subtree's sum to its parent on a channel the parent made with
// ten slots (one per child, so children never block).
void skynet_node(colony::Chan<std::int64_t> parent, std::int64_t num, std::int64_t size) {
  if (size == 1) {
    parent.send(num);
    return;
  }
  colony::Chan<std::int64_t> children(10);
  size /= 10;
  for (std::int64_t i = 0; i < 10; ++i) colony::go(skynet_node, children, num + i * size, size);
  std::int64_t sum = 0;
  for (int i = 0; i < 10; ++i) sum += *children.recv();
  parent.send(sum);
}

Result skynet(const Args& a) {
  return in_runtime(a.procs, [&] {
    return compare::first_and_warm(a, [&] {
      colony::Chan<std::int64_t> root(1);
      auto t0 = Clock::now();
      colony::go(skynet_node, root, std::int64_t{0}, static_cast<std::int64_t>(a.n));
      std::int64_t sum = *root.recv();
      double ms = compare::ms_since(t0);
      if (sum != compare::skynet_expected(a.n))
        compare::fail(kSystem, "skynet sum " + std::to_string(sum));
      return compare::in_ms(ms, "sum=" + std::to_string(sum));
    });
  });
}

// pingpong: two fibers, two unbuffered channels; the partner answers v + 1.
Result pingpong(const Args& a) {
  return in_runtime(a.procs, [&] {
    colony::Chan<long> ping, pong;
    colony::WaitGroup wg;
    wg.add(1);
    colony::go([&] {
      while (auto v = ping.recv()) pong.send(*v + 1);
      wg.done();
    });
    auto t0 = Clock::now();
    for (long i = 0; i < a.n; ++i) {
      ping.send(i);
      if (*pong.recv() != i + 1) compare::fail(kSystem, "pingpong: wrong answer");
    }
    double ns = compare::ns_since(t0);
    ping.close();
    wg.wait();
    return compare::per_op(ns, static_cast<double>(a.n), std::to_string(a.n) + " round trips");
  });
}

// yield: one processor, two fibers each yielding n/2 times; figure per switch.
Result yield(const Args& a) {
  return in_runtime(1, [&] {
    const long each = a.n / 2;
    colony::WaitGroup ready, done;
    ready.add(2);
    done.add(2);
    colony::Chan<char> gate;
    for (int f = 0; f < 2; ++f)
      colony::go([&] {
        ready.done();
        gate.recv();
        for (long i = 0; i < each; ++i) colony::this_fiber::yield();
        done.done();
      });
    ready.wait();
    auto t0 = Clock::now();
    gate.close();
    done.wait();
    Result r = compare::per_op(compare::ns_since(t0), 2.0 * static_cast<double>(each),
                               std::to_string(2 * each) + " yields");
    r.note = "max_procs 1";
    return r;
  });
}

// parked: n fibers blocked receiving from one channel; VmRSS with all parked; then close it.
Result parked(const Args& a) {
  return in_runtime(a.procs, [&] {
    colony::Chan<char> gate;
    colony::WaitGroup started, exited;
    started.add(a.n);
    exited.add(a.n);
    const long rss0 = compare::status_kib("VmRSS");
    auto t0 = Clock::now();
    for (long i = 0; i < a.n; ++i)
      colony::go([&] {
        started.done();
        gate.recv();
        exited.done();
      });
    started.wait();
    colony::this_fiber::sleep_for(std::chrono::milliseconds(5));  // the last ones park
    const long rss1 = compare::status_kib("VmRSS");
    gate.close();
    exited.wait();
    Result r;
    compare::rss_per_task(r, rss0, rss1, a.n, compare::ms_since(t0));
    r.check = std::to_string(a.n) + " woken";
    return r;
  });
}

// sleep: n fibers each sleeping sleep_ms; the spawning loop takes a slot of a channel used as a
// semaphore (capacity cap) before each spawn, the fiber gives it back when done.
Result sleep_bound(const Args& a) {
  return in_runtime(a.procs, [&] {
    colony::Chan<char> sema(static_cast<std::size_t>(a.cap));
    colony::WaitGroup wg;
    wg.add(a.n);
    std::atomic<long> slept{0};
    const auto d = std::chrono::milliseconds(a.sleep_ms);
    auto t0 = Clock::now();
    for (long i = 0; i < a.n; ++i) {
      sema.send(0);
      colony::go([&, d] {
        colony::this_fiber::sleep_for(d);
        slept.fetch_add(1, std::memory_order_relaxed);
        sema.recv();
        wg.done();
      });
    }
    wg.wait();
    double ms = compare::ms_since(t0);
    if (slept.load() != a.n) compare::fail(kSystem, "sleep: lost tasks");
    return compare::in_ms(ms, std::to_string(a.n) + " slept");
  });
}

// fib: fork one branch as a fiber, compute the other inline, join (colony::spawn's Future).
std::int64_t pfib(int n, int cutoff) {
  if (n <= cutoff) return compare::fib_seq(n);
  auto left = colony::spawn(pfib, n - 1, cutoff);
  std::int64_t right = pfib(n - 2, cutoff);
  return left.get() + right;
}

Result fib(const Args& a) {
  return in_runtime(a.procs, [&] {
    return compare::fib_result(kSystem, a, [&] { return pfib(a.fib, a.cutoff); });
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
