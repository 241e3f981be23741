// Channel timers: after, Timer, Ticker.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
using colony::ChanStatus;
using colony::TimePoint;
using colony::testing::ProcsTest;

namespace {

class Time : public ProcsTest {};
INSTANTIATE_TEST_SUITE_P(Procs, Time, ::testing::ValuesIn(colony::testing::proc_counts()),
                         colony::testing::procs_name);

TEST_P(Time, AfterFiresOnceAfterTheDuration) {
  run_fibers([&] {
    auto t0 = std::chrono::steady_clock::now();
    auto c = colony::after(5ms);
    auto fired = c.recv();
    ASSERT_TRUE(fired.has_value());
    EXPECT_GE(*fired - t0, 5ms);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 5ms);
    TimePoint tp;
    EXPECT_EQ(c.recv_for(tp, 10ms), ChanStatus::timeout) << "after() fired twice";
    // As a select timeout.
    colony::Chan<int> never;
    bool timed_out = false;
    colony::select(colony::on_recv(never),
                   colony::on_recv(colony::after(2ms), [&](auto) { timed_out = true; }));
    EXPECT_TRUE(timed_out);
  });
}

TEST_P(Time, TimerStopAndReset) {
  run_fibers([&] {
    colony::Timer t(20ms);
    EXPECT_TRUE(t.stop());
    EXPECT_FALSE(t.stop());
    TimePoint tp;
    EXPECT_EQ(t.chan().recv_for(tp, 40ms), ChanStatus::timeout) << "a stopped timer fired";
    EXPECT_FALSE(t.reset(1ms));
    EXPECT_EQ(t.chan().recv_for(tp, 5s), ChanStatus::success);
    EXPECT_FALSE(t.stop()) << "stop after firing";
    colony::Timer moved(std::move(t));
    EXPECT_FALSE(moved.reset(50ms));  // it had fired: not active
    EXPECT_TRUE(moved.reset(50ms));   // now it was
    EXPECT_TRUE(moved.stop());
  });
}

TEST_P(Time, TickerTicksUntilStopped) {
  run_fibers([&] {
    colony::Ticker tick(2ms);
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(tick.chan().recv().has_value());
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 8ms);
    tick.stop();
    TimePoint tp;
    (void)tick.chan().try_recv(tp);  // one tick may be buffered
    EXPECT_EQ(tick.chan().recv_for(tp, 20ms), ChanStatus::timeout) << "ticks after stop";
    tick.reset(1ms);
    EXPECT_EQ(tick.chan().recv_for(tp, 5s), ChanStatus::success);
    EXPECT_THROW(colony::Ticker(0ms), std::invalid_argument);
    EXPECT_THROW(tick.reset(-1ms), std::invalid_argument);
  });
}

TEST_P(Time, PlainThreadsWaitOnTimersToo) {
  run_fibers([&] {
    colony::detail::FutureState<bool> ok;
    std::thread th([&] { ok.set_value(colony::after(3ms).recv().has_value()); });
    ok.wait();
    th.join();
    EXPECT_TRUE(ok.take());
  });
}

// Thousands of timers in the heaps at once, half of them stopped and a third re-armed (stop,
// then reset), from anywhere in a heap and in random order: exactly the live ones fire, each
// once and none before its deadline; the stopped ones never do.
TEST_P(Time, ManyTimersStoppedOrResetAtRandomFireExactlyTheRest) {
  run_fibers([&] {
    constexpr int kTimers = colony::testing::kSanitized ? 600 : 5000;
    std::mt19937 rng(977u + static_cast<unsigned>(GetParam()));
    std::vector<colony::Timer> timers;
    std::vector<TimePoint> earliest(kTimers);
    std::vector<char> live(kTimers, 1);  // 0: stopped
    TimePoint last{};                    // past every deadline ever set
    timers.reserve(kTimers);
    for (int i = 0; i < kTimers; ++i) {
      const auto d = std::chrono::microseconds(2000 + rng() % 40000);
      earliest[i] = std::chrono::steady_clock::now() + d;
      timers.emplace_back(d);
      last = std::max(last, earliest[i] + 1ms);
    }
    std::vector<int> order(kTimers);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    for (int i : order) {
      switch (rng() % 6) {
        case 0:
        case 1:
        case 2:
          if (timers[i].stop()) live[i] = 0;  // false: it fired already, and stays live
          break;
        case 3:
        case 4: {
          const auto d = std::chrono::microseconds(1000 + rng() % 20000);
          const TimePoint before = std::chrono::steady_clock::now();
          if (timers[i].stop()) {  // still pending (else it fired: live, once)
            EXPECT_FALSE(timers[i].reset(d));
            earliest[i] = before + d;
          }
          last = std::max(last, before + d);
          break;
        }
        default:
          break;
      }
    }
    int fired = 0;
    for (int i = 0; i < kTimers; ++i) {
      if (!live[i]) continue;
      TimePoint at;
      ASSERT_EQ(timers[i].chan().recv_for(at, 10s), ChanStatus::success) << "timer " << i;
      EXPECT_GE(at, earliest[i]) << "timer " << i << " fired early";
      ++fired;
    }
    colony::this_fiber::sleep_for(last - std::chrono::steady_clock::now() + 5ms);
    for (int i = 0; i < kTimers; ++i) {
      TimePoint at;
      EXPECT_EQ(timers[i].chan().try_recv(at), ChanStatus::empty)
          << "timer " << i << (live[i] ? " fired once too often" : " fired after stop()");
    }
    EXPECT_GT(fired, kTimers / 3);
  });
}

TEST(TimeShutdown, UnfiredTimersAreFreedAtShutdown) {
  colony::run([] {
    for (int i = 0; i < 100; ++i) (void)colony::after(1h);  // ASan would report a leak
    colony::Ticker t(1h);
  });
}

}  // namespace
