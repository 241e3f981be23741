// Channel timers: after, Timer, Ticker.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

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
    colony::select(colony::on_recv(never), colony::on_recv(colony::after(2ms), [&](auto) { timed_out = true; }));
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

TEST(TimeShutdown, UnfiredTimersAreFreedAtShutdown) {
  colony::run([] {
    for (int i = 0; i < 100; ++i) (void)colony::after(1h);  // ASan would report a leak
    colony::Ticker t(1h);
  });
}

}  // namespace
