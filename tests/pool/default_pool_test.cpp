// The default pool (on the default runtime) and ants' package-level functions that act on it,
// ported from ants_test.go.
// Every test runs with 1, 2 and 4 processors inside a fresh runtime and fails if a fiber is left
// behind. No assertion depends on timing beyond generous upper bounds for progress: the machine
// is a noisy 2-core VM.
#include <gtest/gtest.h>

#include <chrono>
#include <colony/colony.hpp>
#include <colony/pool.hpp>

#include "pool_test.hpp"

using namespace std::chrono_literals;
using colony::pool_errc;
using colony::testing::Gate;
using colony::testing::Latch;
using colony::testing::on_thread;
using colony::testing::PoolTest;

namespace {

// TestRebootDefaultPool / TestDefaultPoolReleaseTimeout: the default pool lives on the default
// runtime, so its workers are not this runtime's fibers.
TEST_P(PoolTest, DefaultPool) {
  run_fibers([] {
    colony::Pool& dp = colony::default_pool();
    EXPECT_EQ(dp.cap(), INT32_MAX);
    dp.reboot();  // nothing to do
    Latch ran(1);
    ASSERT_FALSE(colony::submit([&] { ran.count_down(); }));
    ran.wait();
    for (int i = 0; i < 5; ++i)
      ASSERT_FALSE(colony::submit([] { colony::this_fiber::sleep_for(20ms); }));
    EXPECT_NE(dp.running(), 0);
    EXPECT_FALSE(dp.release_timeout(10s));
    EXPECT_EQ(colony::submit([] {}), pool_errc::pool_closed);
    dp.reboot();
    Latch again(1);
    ASSERT_FALSE(colony::submit([&] { again.count_down(); }));
    again.wait();
    on_thread([] {
      Latch t(1);
      EXPECT_FALSE(colony::submit([&] { t.count_down(); }));
      t.wait();
    });
  });
}

// ants' package-level functions (ants.Submit, Running, Cap, Free, Release, ReleaseTimeout,
// Reboot) act on the default pool, in namespace colony::pool.
TEST_P(PoolTest, PackageLevelFunctionsUseTheDefaultPool) {
  run_fibers([] {
    EXPECT_EQ(colony::pool::cap(), colony::kDefaultPoolSize);
    colony::pool::reboot();  // open already: nothing to do
    Gate gate;
    Latch started(3);
    for (int i = 0; i < 3; ++i)
      ASSERT_FALSE(colony::pool::submit([&] {
        started.count_down();
        gate.wait();
      }));
    started.wait();
    EXPECT_EQ(colony::pool::running(), 3);
    EXPECT_EQ(colony::pool::free(), colony::kDefaultPoolSize - 3);
    EXPECT_EQ(colony::pool::release_timeout(1ms), pool_errc::timeout);
    EXPECT_EQ(colony::pool::submit([] {}), pool_errc::pool_closed);
    gate.open();
    colony::default_pool().wait();
    colony::pool::reboot();
    Latch ran(1);
    ASSERT_FALSE(colony::pool::submit([&] { ran.count_down(); }));
    ran.wait();
    colony::pool::release();
    EXPECT_EQ(colony::pool::submit([] {}), pool_errc::pool_closed);
    colony::pool::reboot();
    EXPECT_EQ(colony::default_pool().cap(), colony::kDefaultPoolSize);
  });
}

}  // namespace
