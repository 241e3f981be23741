// colony_compare_tbb: the workloads on oneTBB task_group, inside a task_arena of --procs threads
// (the calling thread is one of them). task_group::wait() runs other tasks while it waits, so the
// tree workloads (skynet, fib) are plain fork-join. Tasks that block (parked, sleep) hold a
// thread each and are reported as not runnable; pingpong blocks exactly two tasks (mutex +
// condition variable). TBB tasks cannot yield: a task spawned by a task goes to the front of the
// spawning thread's deque (LIFO), so re-spawning would not switch between two tasks.
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

#include "common.hpp"

namespace {

using compare::Args;
using compare::Clock;
using compare::Result;

const std::string kSystem = "TBB";

template <class F>
Result in_arena(const Args& a, F&& f) {
  tbb::task_arena arena(a.procs);
  Result r;
  arena.execute([&] { r = f(); });
  r.note +=
      (r.note.empty() ? "" : ", ") + std::string("task_arena(") + std::to_string(a.procs) + ")";
  return r;
}

// spawn: n empty tasks run from the main thread, then wait().
Result spawn(const Args& a) {
  return in_arena(a, [&] {
    return compare::first_and_warm(a, [&] {
      std::atomic<long> ran{0};
      tbb::task_group tg;
      auto t0 = Clock::now();
      for (long i = 0; i < a.n; ++i) tg.run([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
      tg.wait();
      double ns = compare::ns_since(t0);
      if (ran.load() != a.n) compare::fail(kSystem, "spawn: lost tasks");
      return compare::per_op(ns, static_cast<double>(a.n), std::to_string(a.n) + " done");
    });
  });
}

// skynet: each node runs its ten children in a task_group and waits for them.
std::int64_t skynet_node(std::int64_t num, std::int64_t size) {
  if (size == 1) return num;
  std::int64_t sums[10];
  size /= 10;
  tbb::task_group tg;
  for (std::int64_t i = 0; i < 10; ++i)
    tg.run([&sums, num, i, size] { sums[i] = skynet_node(num + i * size, size); });
  tg.wait();
  std::int64_t sum = 0;
  for (std::int64_t s : sums) sum += s;
  return sum;
}

Result skynet(const Args& a) {
  return in_arena(a, [&] {
    return compare::first_and_warm(a, [&] {
      auto t0 = Clock::now();
      std::int64_t sum = skynet_node(0, a.n);
      double ms = compare::ms_since(t0);
      if (sum != compare::skynet_expected(a.n))
        compare::fail(kSystem, "skynet sum " + std::to_string(sum));
      Result r = compare::in_ms(ms, "sum=" + std::to_string(sum));
      r.note = "fork-join (wait() runs other tasks)";
      return r;
    });
  });
}


// pingpong: two tasks of one task_group, each holding an arena thread while it blocks.
Result pingpong(const Args& a) {
  if (a.procs < 2) compare::fail(kSystem, "pingpong needs --procs >= 2");
  return in_arena(a, [&] {
    compare::MailboxPingPong pp(a.n);
    tbb::task_group tg;
    tg.run([&] { pp.partner(); });
    tg.run([&] { pp.driver(); });
    tg.wait();
    return pp.result(kSystem, "two blocking tasks, mutex + condition_variable");
  });
}

// fib: fork one branch into the task_group, compute the other inline, wait.
std::int64_t pfib(int n, int cutoff) {
  if (n <= cutoff) return compare::fib_seq(n);
  std::int64_t left = 0;
  tbb::task_group tg;
  tg.run([&left, n, cutoff] { left = pfib(n - 1, cutoff); });
  std::int64_t right = pfib(n - 2, cutoff);
  tg.wait();
  return left + right;
}

Result fib(const Args& a) {
  return in_arena(
      a, [&] { return compare::fib_result(kSystem, a, [&] { return pfib(a.fib, a.cutoff); }); });
}

}  // namespace

int main(int argc, char** argv) {
  return compare::main(
      argc, argv, kSystem,
      {{"spawn", spawn, {}},
       {"skynet", skynet, {}},
       {"pingpong", pingpong, {}},
       {"yield", {}, "TBB tasks cannot yield (a re-spawned task runs again at once, LIFO)"},
       {"parked", {}, "a parked task holds an arena thread: P threads park at most P tasks"},
       {"sleep",
        {},
        "a sleeping task holds an arena thread: 50,000 concurrent sleepers need 50,000 threads"},
       {"fib", fib, {}}});
}
