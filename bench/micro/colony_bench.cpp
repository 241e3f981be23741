// colony's micro-benchmarks. Peers measured by the same harness live in boost_fiber_bench.cpp
// (Boost.Fiber, raw Boost.Context) and bench/go (Go, -bench); `bench/run.sh micro` runs them
// all and prints the ratios (bench/compare/compare.py micro). Each benchmark starts its own
// runtime with colony::run.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <colony/colony.hpp>

#include "colony/sched/wait.hpp"

namespace {

#if defined(COLONY_ASAN) || defined(COLONY_TSAN)
const bool kWarned = [] {
  std::fprintf(stderr, "*** WARNING: colony benchmarks built with a sanitizer: figures are meaningless ***\n");
  return true;
}();
#endif

// Latch: the benchmarks' way of waiting for N fibers (parks the waiting fiber).
class Latch {
 public:
  explicit Latch(long n) : n_(n) {}
  void count_down() {
    if (n_.fetch_sub(1, std::memory_order_acq_rel) == 1) st_.set_value();
  }
  void wait() { st_.wait(); }

 private:
  std::atomic<long> n_;
  colony::detail::FutureState<void> st_;
};

// Baton: hand-off between two fibers built on the scheduler's Waiter (one waiter at most).
class Baton {
 public:
  void post() {
    lock_.lock();
    if (colony::sched::Waiter* w = list_.pop_front()) {
      lock_.unlock();
      colony::sched::notify(*w);
      return;
    }
    set_ = true;
    lock_.unlock();
  }
  void wait() {
    lock_.lock();
    if (set_) {
      set_ = false;
      lock_.unlock();
      return;
    }
    colony::sched::Waiter w;
    list_.push_back(&w);
    colony::sched::wait(w, lock_, colony::sched::WaitReason::event);
  }

 private:
  colony::sched::SpinLock lock_;
  colony::sched::WaitList list_;
  bool set_ = false;
};

long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// Two fibers on one P yielding to each other: one iteration = two yields (two switches).
void BM_Colony_Yield(benchmark::State& state) {
  colony::run(
      [&] {
        std::atomic<bool> stop{false};
        colony::go([&] {
          while (!stop.load(std::memory_order_relaxed)) colony::this_fiber::yield();
        });
        colony::this_fiber::yield();  // let the partner start
        for (auto _ : state) colony::this_fiber::yield();
        stop = true;
      },
      {.max_procs = 1});
  state.counters["per_yield"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 2, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Colony_Yield)->UseRealTime();

// 1M empty fibers spawned from one fiber, run and exited on all Ps (Go: go func(){wg.Done()}).
void BM_Colony_Spawn(benchmark::State& state) {
  constexpr long kN = 1'000'000;
  colony::run([&] {
    auto once = [] {
      Latch done(kN);
      for (long i = 0; i < kN; ++i) colony::go([&done] { done.count_down(); });
      done.wait();
    };
    once();  // warm-up: the first round maps and faults in the stacks
    for (auto _ : state) once();
    state.counters["stack_MiB_mapped"] = static_cast<double>(colony::stats().stack_bytes_mapped >> 20);
  });
  state.counters["per_spawn"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kN, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Colony_Spawn)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

// skynet: a 10-way tree of fibers down to 1M leaves; each node returns the sum of its subtree.
long skynet(long num, long size) {
  if (size == 1) return num;
  colony::Future<long> kids[10];
  const long sub = size / 10;
  for (long i = 0; i < 10; ++i) kids[i] = colony::spawn(skynet, num + i * sub, sub);
  long sum = 0;
  for (auto& k : kids) sum += k.get();
  return sum;
}

void BM_Colony_Skynet(benchmark::State& state) {
  colony::run([&] {
    colony::spawn(skynet, 0L, 1'000'000L).get();  // warm-up: maps and faults in the stacks
    for (auto _ : state) {
      long s = colony::spawn(skynet, 0L, 1'000'000L).get();
      if (s != 499999500000L) state.SkipWithError("wrong skynet sum");
    }
  });
}
BENCHMARK(BM_Colony_Skynet)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

// Two fibers handing a baton back and forth: one iteration = one round trip (two hand-offs).
void BM_Colony_PingPong(benchmark::State& state) {
  colony::run([&] {
    Baton ping, pong;
    std::atomic<bool> stop{false};
    auto partner = colony::spawn([&] {
      for (;;) {
        ping.wait();
        if (stop.load(std::memory_order_relaxed)) return;
        pong.post();
      }
    });
    for (auto _ : state) {
      ping.post();
      pong.wait();
    }
    stop = true;
    ping.post();
    partner.get();
  });
}
BENCHMARK(BM_Colony_PingPong)->UseRealTime();

// Two fibers exchanging a value over two unbuffered channels: one iteration = one round trip.
void BM_Colony_ChanPingPong(benchmark::State& state) {
  colony::run([&] {
    colony::Chan<long> ping, pong;
    auto partner = colony::spawn([&] {
      while (auto v = ping.recv()) pong.send(*v + 1);
    });
    long v = 0;
    for (auto _ : state) {
      ping.send(v);
      v = *pong.recv();
    }
    ping.close();
    partner.get();
    benchmark::DoNotOptimize(v);
  });
}
BENCHMARK(BM_Colony_ChanPingPong)->UseRealTime();

// Go's BenchmarkSelectUncontended on one fiber: two channels with one slot, one of them holding a
// value; each select takes it and puts one into the other. One iteration = one select and one
// buffered send.
void BM_Colony_Select(benchmark::State& state) {
  colony::run([&] {
    colony::Chan<int> a(1), b(1);
    a.send(0);
    for (auto _ : state) {
      colony::select(colony::on_recv(a, [&](std::optional<int>) { b.send(0); }),
                     colony::on_recv(b, [&](std::optional<int>) { a.send(0); }));
    }
  });
}
BENCHMARK(BM_Colony_Select)->UseRealTime();

// The same over a run-time set of `range(0)` channels (Go: reflect.Select): one holds a value;
// the select takes it and puts one into the next channel. One iteration = one select + one send.
void BM_Colony_SelectDynamic(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  colony::run([&] {
    std::vector<colony::Chan<int>> chans;
    std::vector<colony::SelectCase<int>> cases;
    for (std::size_t i = 0; i < n; ++i) {
      chans.emplace_back(1);
      cases.push_back(colony::SelectCase<int>::recv(chans.back()));
    }
    chans[0].send(0);
    for (auto _ : state) {
      colony::Selected<int> r = colony::select(cases);
      chans[(r.index + 1) % n].send(0);
    }
  });
}
BENCHMARK(BM_Colony_SelectDynamic)->Arg(2)->Arg(100)->UseRealTime();

// Buffered channel throughput: `range(0)` producer fibers, one consumer, 1M values in all.
void BM_Colony_ChanBuffered(benchmark::State& state) {
  const long producers = state.range(0);
  constexpr long kValues = 1'000'000;
  colony::run([&] {
    for (auto _ : state) {
      colony::Chan<long> ch(128);
      Latch done(producers);
      for (long p = 0; p < producers; ++p)
        colony::go([&, p] {
          for (long i = p; i < kValues; i += producers) ch.send(i);
          done.count_down();
        });
      colony::go([&] {
        done.wait();
        ch.close();
      });
      long sum = 0;
      for (long x : ch) sum += x;
      if (sum != kValues * (kValues - 1) / 2) state.SkipWithError("lost values");
    }
  });
  state.counters["per_value"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kValues, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Colony_ChanBuffered)->Arg(1)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

// Contended colony::Mutex: 8 fibers each taking the lock in turn; time per lock+unlock.
void BM_Colony_MutexContended(benchmark::State& state) {
  constexpr long kFibers = 8, kEach = 100'000;
  colony::run([&] {
    for (auto _ : state) {
      colony::Mutex mu;
      long counter = 0;
      colony::WaitGroup wg;
      wg.add(kFibers);
      for (long f = 0; f < kFibers; ++f)
        colony::go([&] {
          for (long i = 0; i < kEach; ++i) {
            std::lock_guard<colony::Mutex> lk(mu);
            ++counter;
          }
          wg.done();
        });
      wg.wait();
      if (counter != kFibers * kEach) state.SkipWithError("lost increments");
    }
  });
  state.counters["per_lock"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kFibers * kEach,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Colony_MutexContended)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

// WaitGroup fan-in: 100k fibers each calling done(); one waiter.
void BM_Colony_WaitGroupFanIn(benchmark::State& state) {
  constexpr long kFibers = 100'000;
  colony::run([&] {
    for (auto _ : state) {
      colony::WaitGroup wg;
      wg.add(kFibers);
      for (long i = 0; i < kFibers; ++i) colony::go([&wg] { wg.done(); });
      wg.wait();
    }
  });
  state.counters["per_fiber"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kFibers,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Colony_WaitGroupFanIn)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(10);

// N fibers parked on one event, then all woken. Reports resident bytes per parked fiber.
void BM_Colony_Parked(benchmark::State& state) {
  const long n = state.range(0);
  double per_fiber = 0;
  colony::run([&] {
    for (auto _ : state) {
      colony::detail::FutureState<void> gate;
      Latch parked(n), finished(n);
      long rss0 = rss_kib();
      for (long i = 0; i < n; ++i)
        colony::go([&] {
          parked.count_down();
          gate.wait();
          finished.count_down();
        });
      parked.wait();
      colony::this_fiber::sleep_for(std::chrono::milliseconds(5));
      per_fiber = static_cast<double>(rss_kib() - rss0) * 1024.0 / static_cast<double>(n);
      gate.set_value();
      finished.wait();
    }
  });
  state.counters["bytes_per_fiber"] = per_fiber;
}
BENCHMARK(BM_Colony_Parked)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

}  // namespace
