// colony::Pool benchmarks (colony_pool_bench): ants' own benchmark scenario and submit cost.
//
//   PoolSleep           1,000,000 tasks, each sleeping 10 ms, on a Pool of capacity 50,000
//                       (ants' BenchmarkAntsPool scenario)
//   RawGoSleep          the same 1,000,000 sleeps as colony::go fibers and a WaitGroup, no cap
//                       (Go peer: bench/go `sleep_raw`)
//   ChanSemaphoreSleep  one fiber per task, at most 50,000 at a time, a buffered Chan as the
//                       semaphore (Go peer: bench/go `sleep`, ants' BenchmarkSemaphore)
//   SubmitEmpty         1,000,000 empty tasks submitted from one fiber, then pool.wait():
//                       ns per submit (Go peer: bench/go `spawn`, go func(){wg.Done()}())
//   RawGoEmpty          1,000,000 empty colony::go fibers and a WaitGroup: ns per fiber
//
// The sleep workloads run each repetition in a fresh child process (fork), so that peak RSS is
// that child's own high-water mark (wait4's ru_maxrss, i.e. VmHWM), not the benchmark
// process's: counters wall_ms and peak_rss_MiB, and stacks_mapped_MiB, the address space the
// runtime had reserved for fiber stacks at the end (256 KiB a fiber, carved in slabs; it never
// shrinks, so it tells how many fibers were alive at the peak, not what they committed). They
// take ~0.3-3 s each; Iterations(1).
// Run: bench/run.sh pool (with the Go peers and a table), or
// build/release/bench/micro/colony_pool_bench [--benchmark_repetitions=3]
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/pool.hpp>
#include <cstdio>
#include <cstdlib>
#include <functional>

using namespace std::chrono_literals;

namespace {

#if defined(COLONY_ASAN) || defined(COLONY_TSAN)
const bool kWarned = [] {
  std::fprintf(
      stderr,
      "*** WARNING: colony benchmarks built with a sanitizer: figures are meaningless ***\n");
  return true;
}();
#endif

constexpr int kSleepTasks = 1'000'000;
constexpr int kSleepCap = 50'000;
constexpr auto kSleep = 10ms;
constexpr int kEmptyTasks = 1'000'000;

using Clock = std::chrono::steady_clock;

// ChildResult: what a forked run reports: its wall time, the bytes of stack its runtime had
// mapped at the end (every stack it ever needed at once: the cache keeps them), and its peak RSS
// in KiB.
struct ChildResult {
  double ms = -1;
  double stacks = 0;
  long peak_kib = 0;
};

// in_child: runs `work` (which returns {wall ms, stack bytes mapped}) in a forked child process.
// Exits the benchmark on failure.
ChildResult in_child(const std::function<std::pair<double, double>()>& work) {
  int fds[2];
  if (::pipe(fds) != 0) std::abort();
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    ::close(fds[0]);
    const std::pair<double, double> r = work();
    if (::write(fds[1], &r, sizeof r) != sizeof r) ::_exit(2);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::pair<double, double> r{-1, 0};
  if (::read(fds[0], &r, sizeof r) != sizeof r) r.first = -1;
  ::close(fds[0]);
  int status = 0;
  rusage ru{};
  ::wait4(pid, &status, 0, &ru);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || r.first < 0) {
    std::fprintf(stderr, "colony_pool_bench: child failed (status %d)\n", status);
    std::exit(1);
  }
  return {r.first, r.second, ru.ru_maxrss};
}

void report(benchmark::State& state, const ChildResult& r) {
  state.SetIterationTime(r.ms / 1e3);
  state.counters["wall_ms"] = r.ms;
  state.counters["stacks_mapped_MiB"] = r.stacks / (1024.0 * 1024.0);
  state.counters["peak_rss_MiB"] = static_cast<double>(r.peak_kib) / 1024.0;
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// pool_sleep: ants' scenario with a pool of `cap` workers.
void pool_sleep(benchmark::State& state, int cap) {
  for (auto _ : state) {
    report(state, in_child([cap] {
             double ms = 0, stacks = 0;
             colony::run([&] {
               colony::Pool pool(cap);
               colony::WaitGroup wg;
               const auto t0 = Clock::now();
               wg.add(kSleepTasks);  // once, as ants' BenchmarkAntsPool does
               for (int i = 0; i < kSleepTasks; ++i) {
                 if (pool.submit([&wg] {
                       colony::this_fiber::sleep_for(kSleep);
                       wg.done();
                     }))
                   std::abort();
               }
               wg.wait();
               ms = ms_since(t0);
               stacks = static_cast<double>(colony::stats().stack_bytes_mapped);
             });
             return std::pair{ms, stacks};
           }));
  }
}
void BM_PoolSleep(benchmark::State& state) { pool_sleep(state, kSleepCap); }
BENCHMARK(BM_PoolSleep)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

// The same with capacities that bind: in ants' scenario on two processors about 12,000 tasks
// sleep at once on average (1M x 10 ms in ~0.85 s) and ~25,000 at the peak, so a capacity of
// 50,000 never stops a submit. With one that does, the pool trades time for memory (Little's
// law: at most `cap` tasks per 10 ms). Not part of the targets; it shows where ants' "a fraction
// of the memory" comes from.
void BM_PoolSleepCapped(benchmark::State& state) {
  pool_sleep(state, static_cast<int>(state.range(0)));
}
BENCHMARK(BM_PoolSleepCapped)
    ->Arg(20'000)
    ->Arg(10'000)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_RawGoSleep(benchmark::State& state) {
  for (auto _ : state) {
    report(state, in_child([] {
             double ms = 0, stacks = 0;
             colony::run([&] {
               colony::WaitGroup wg;
               const auto t0 = Clock::now();
               wg.add(kSleepTasks);
               for (int i = 0; i < kSleepTasks; ++i)
                 colony::go([&wg] {
                   colony::this_fiber::sleep_for(kSleep);
                   wg.done();
                 });
               wg.wait();
               ms = ms_since(t0);
               stacks = static_cast<double>(colony::stats().stack_bytes_mapped);
             });
             return std::pair{ms, stacks};
           }));
  }
}
BENCHMARK(BM_RawGoSleep)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_ChanSemaphoreSleep(benchmark::State& state) {
  for (auto _ : state) {
    report(state, in_child([] {
             double ms = 0, stacks = 0;
             colony::run([&] {
               colony::Chan<char> sema(kSleepCap);
               colony::WaitGroup wg;
               const auto t0 = Clock::now();
               wg.add(kSleepTasks);
               for (int i = 0; i < kSleepTasks; ++i) {
                 sema.send(0);
                 colony::go([&wg, sema] {
                   colony::this_fiber::sleep_for(kSleep);
                   (void)sema.recv();
                   wg.done();
                 });
               }
               wg.wait();
               ms = ms_since(t0);
               stacks = static_cast<double>(colony::stats().stack_bytes_mapped);
             });
             return std::pair{ms, stacks};
           }));
  }
}
BENCHMARK(BM_ChanSemaphoreSleep)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

// SubmitEmpty/<capacity>: -1 is an unbounded pool (as ants' default pool).
void BM_SubmitEmpty(benchmark::State& state) {
  const int capacity = static_cast<int>(state.range(0));
  for (auto _ : state) {
    double ns = 0;
    colony::run([&] {
      colony::Pool pool(capacity);
      std::atomic<long> ran{0};
      // Warm up: workers started, stacks cached.
      for (int i = 0; i < 10000; ++i) (void)pool.submit([&ran] { ran.fetch_add(1); });
      pool.wait();
      const auto t0 = Clock::now();
      for (int i = 0; i < kEmptyTasks; ++i)
        if (pool.submit([&ran] { ran.fetch_add(1, std::memory_order_relaxed); })) std::abort();
      pool.wait();
      ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kEmptyTasks;
      state.counters["workers_started"] = static_cast<double>(pool.stats().workers_started);
    });
    state.SetIterationTime(ns * kEmptyTasks / 1e9);
    state.counters["ns_per_submit"] = ns;
  }
}
BENCHMARK(BM_SubmitEmpty)
    ->Arg(1000)
    ->Arg(-1)
    ->Iterations(1)
    ->Repetitions(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_RawGoEmpty(benchmark::State& state) {
  for (auto _ : state) {
    double ns = 0;
    colony::run([&] {
      colony::WaitGroup wg;
      const auto t0 = Clock::now();
      wg.add(kEmptyTasks);
      for (int i = 0; i < kEmptyTasks; ++i) colony::go([&wg] { wg.done(); });
      wg.wait();
      ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kEmptyTasks;
    });
    state.SetIterationTime(ns * kEmptyTasks / 1e9);
    state.counters["ns_per_fiber"] = ns;
  }
}
BENCHMARK(BM_RawGoEmpty)
    ->Iterations(1)
    ->Repetitions(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
