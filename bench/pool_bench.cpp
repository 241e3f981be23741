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
// process's: counters wall_ms and peak_rss_MiB. They take ~0.3-3 s each; Iterations(1).
// Run: build/pool/bench/colony_pool_bench [--benchmark_repetitions=3]
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

// in_child: runs `work` (which returns its wall time in ms) in a forked child process; returns
// {wall_ms, peak RSS of the child in KiB}. Exits the benchmark on failure.
std::pair<double, long> in_child(const std::function<double()>& work) {
  int fds[2];
  if (::pipe(fds) != 0) std::abort();
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    ::close(fds[0]);
    double ms = work();
    if (::write(fds[1], &ms, sizeof ms) != sizeof ms) ::_exit(2);
    ::_exit(0);
  }
  ::close(fds[1]);
  double ms = -1;
  if (::read(fds[0], &ms, sizeof ms) != sizeof ms) ms = -1;
  ::close(fds[0]);
  int status = 0;
  rusage ru{};
  ::wait4(pid, &status, 0, &ru);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || ms < 0) {
    std::fprintf(stderr, "colony_pool_bench: child failed (status %d)\n", status);
    std::exit(1);
  }
  return {ms, ru.ru_maxrss};
}

void report(benchmark::State& state, std::pair<double, long> r) {
  state.SetIterationTime(r.first / 1e3);
  state.counters["wall_ms"] = r.first;
  state.counters["peak_rss_MiB"] = static_cast<double>(r.second) / 1024.0;
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

void BM_PoolSleep(benchmark::State& state) {
  for (auto _ : state) {
    report(state, in_child([] {
             double ms = 0;
             colony::run([&] {
               colony::Pool pool(kSleepCap);
               colony::WaitGroup wg;
               const auto t0 = Clock::now();
               for (int i = 0; i < kSleepTasks; ++i) {
                 wg.add(1);
                 if (pool.submit([&wg] {
                       colony::this_fiber::sleep_for(kSleep);
                       wg.done();
                     }))
                   std::abort();
               }
               wg.wait();
               ms = ms_since(t0);
             });
             return ms;
           }));
  }
}
BENCHMARK(BM_PoolSleep)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_RawGoSleep(benchmark::State& state) {
  for (auto _ : state) {
    report(state, in_child([] {
             double ms = 0;
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
             });
             return ms;
           }));
  }
}
BENCHMARK(BM_RawGoSleep)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_ChanSemaphoreSleep(benchmark::State& state) {
  for (auto _ : state) {
    report(state, in_child([] {
             double ms = 0;
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
             });
             return ms;
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
