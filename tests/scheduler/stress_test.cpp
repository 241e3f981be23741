// Stress tests (ctest label "stress"; size scales with COLONY_STRESS_SCALE).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "colony/sched/wait.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
using colony::testing::Latch;
using colony::testing::ProcsTest;

namespace {

class Stress : public ProcsTest {};
INSTANTIATE_TEST_SUITE_P(Procs, Stress, ::testing::ValuesIn(colony::testing::proc_counts()),
                         colony::testing::procs_name);

// A million fibers parked at once, on default kernel settings (vm.max_map_count = 65530).
TEST(StressParked, MillionParkedFibers) {
  const long n = static_cast<long>(1'000'000 * colony::testing::stress_scale());
  colony::run([&] {
    colony::detail::FutureState<void> gate;
    Latch parked(n), finished(n);
    long rss0 = colony::testing::rss_kib();
    for (long i = 0; i < n; ++i)
      colony::go([&] {
        parked.count_down();
        gate.wait();
        finished.count_down();
      });
    parked.wait();
    colony::this_fiber::sleep_for(5ms);  // the last ones reach gate.wait()
    long rss1 = colony::testing::rss_kib();
    EXPECT_EQ(colony::num_fibers(), n + 1);
    auto st = colony::stats();
    double per = (static_cast<double>(rss1 - rss0) * 1024.0) / static_cast<double>(n);
    std::printf("[ parked  ] %ld fibers parked: RSS +%ld KiB, %.0f bytes per fiber; %zu stacks "
                "guarded, %.1f GiB of address space reserved\n",
                n, rss1 - rss0, per, st.guarded_stacks,
                static_cast<double>(st.stack_bytes_mapped) / (1 << 30));
    ::testing::Test::RecordProperty("bytes_per_parked_fiber", static_cast<int>(per));
    gate.set_value();
    finished.wait();
  });
}

// Fibers readying each other at random across all Ps, with plain threads joining in: no
// wake-up is lost (a lost one hangs the test) and every token is accounted for.
TEST_P(Stress, NoLostWakeups) {
  const int kWorkers = 64;
  const int kRounds = static_cast<int>(20000 * colony::testing::stress_scale());
  run_fibers([&] {
    struct Box {
      colony::sched::SpinLock lock;
      colony::sched::WaitList waiters;
      long tokens = 0;
      void put() {
        lock.lock();
        if (colony::sched::Waiter* w = waiters.pop_front()) {
          lock.unlock();
          colony::sched::notify(*w);
          return;
        }
        ++tokens;
        lock.unlock();
      }
      void take() {
        lock.lock();
        if (tokens > 0) {
          --tokens;
          lock.unlock();
          return;
        }
        colony::sched::Waiter w;
        waiters.push_back(&w);
        colony::sched::wait(w, lock, colony::sched::WaitReason::event);
      }
    };
    std::vector<Box> boxes(kWorkers);
    Latch done(kWorkers + 2);
    for (int w = 0; w < kWorkers; ++w)
      colony::go([&, w] {
        // Round r: worker w feeds box (w + r) % K, a permutation, so every box gets exactly
        // one token per round and the slowest worker can always proceed.
        for (int r = 0; r < kRounds; ++r) {
          boxes[static_cast<std::size_t>((w + r) % kWorkers)].put();
          boxes[static_cast<std::size_t>(w)].take();
          if (r % 64 == 0) colony::this_fiber::yield();
        }
        done.count_down();
      });
    // Two plain threads put and take too (they block their threads, not processors).
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t)
      threads.emplace_back([&, t] {
        std::mt19937 rng(1000u + static_cast<unsigned>(t));
        for (int r = 0; r < kRounds; ++r) boxes[rng() % kWorkers].put();
        done.count_down();
      });
    // Balance: each worker takes kRounds; puts total kWorkers*kRounds + 2*kRounds, so the
    // extra tokens stay in boxes.
    done.wait();
    for (auto& t : threads) t.join();
    long left = 0;
    for (auto& b : boxes) left += b.tokens;
    EXPECT_EQ(left, 2L * kRounds);
  });
}

// Spawning from many fibers at once while others sleep and yield.
TEST_P(Stress, MixedSpawnSleepYield) {
  const int kSpawners = 16;
  const int kEach = static_cast<int>(5000 * colony::testing::stress_scale());
  run_fibers([&] {
    std::atomic<long> sum{0};
    Latch done(static_cast<long>(kSpawners) * kEach);
    for (int s = 0; s < kSpawners; ++s)
      colony::go([&, s] {
        for (int i = 0; i < kEach; ++i) {
          colony::go([&, i] {
            if (i % 7 == 0) colony::this_fiber::sleep_for(std::chrono::microseconds(i % 200));
            if (i % 3 == 0) colony::this_fiber::yield();
            sum += i;
            done.count_down();
          });
          if (i % 100 == s) colony::this_fiber::yield();
        }
      });
    done.wait();
    EXPECT_EQ(sum.load(), static_cast<long>(kSpawners) * kEach * (kEach - 1) / 2);
  });
}

}  // namespace
