// Timers: sleep accuracy, ten thousand timers at once, a timer whose processor is busy. Each Sched
// test runs with 1, 2, 4 and 8 processors.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>

#include "sched_test.hpp"

using namespace std::chrono_literals;
using colony::testing::Latch;
using colony::testing::Sched;

namespace {

TEST_P(Sched, SleepIsAccurateEnough) {
  run_fibers([&] {
    for (auto d : {1ms, 5ms, 20ms}) {
      auto t0 = std::chrono::steady_clock::now();
      colony::this_fiber::sleep_for(d);
      auto took = std::chrono::steady_clock::now() - t0;
      EXPECT_GE(took, d);
      EXPECT_LT(took, d + 500ms) << "sleep overslept grossly";
    }
    auto until = std::chrono::steady_clock::now() + 3ms;
    colony::this_fiber::sleep_until(until);
    EXPECT_GE(std::chrono::steady_clock::now(), until);
    colony::this_fiber::sleep_for(0ms);   // behaves as a yield
    colony::this_fiber::sleep_for(-5ms);
  });
}

TEST_P(Sched, TenThousandConcurrentTimers) {
  run_fibers([&] {
    constexpr int kTimers = 10000;
    Latch done(kTimers);
    std::atomic<int> early{0};
    for (int i = 0; i < kTimers; ++i)
      colony::go([&, i] {
        auto d = std::chrono::microseconds(100 * (i % 100) + 50);
        auto t0 = std::chrono::steady_clock::now();
        colony::this_fiber::sleep_for(d);
        if (std::chrono::steady_clock::now() - t0 < d) ++early;
        done.count_down();
      });
    done.wait();
    EXPECT_EQ(early.load(), 0);
    // Sleeps whose deadline passed before they parked do not need a timer.
    EXPECT_GE(colony::stats().total.timers_fired, static_cast<std::uint64_t>(kTimers / 2));
  });
}

// A timer whose P is busy running a fiber that never yields still fires: another P runs it.
TEST_P(Sched, TimerOnBusyProcessorFiresOnTime) {
  if (GetParam() < 2) GTEST_SKIP() << "needs two processors";
  run_fibers([&] {
    std::atomic<bool> stop{false};
    auto spinner = colony::spawn([&] {
      auto end = std::chrono::steady_clock::now() + 2s;
      while (!stop.load() && std::chrono::steady_clock::now() < end) {
      }
    });
    auto t0 = std::chrono::steady_clock::now();
    colony::this_fiber::sleep_for(20ms);
    auto took = std::chrono::steady_clock::now() - t0;
    stop = true;
    spinner.get();
    EXPECT_LT(took, 1s) << "the timer waited for the busy fiber";
  });
}

}  // namespace
