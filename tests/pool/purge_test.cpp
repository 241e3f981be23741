// colony::Pool's expiry, ported from ants_test.go: idle workers retired after expiry_duration
// (within a few expiry periods), or kept when purging is disabled.
// Every test runs with 1, 2 and 4 processors inside a fresh runtime and fails if a fiber is left
// behind. No assertion depends on timing beyond generous upper bounds for progress: the machine
// is a noisy 2-core VM.
#include <gtest/gtest.h>

#include <chrono>
#include <colony/colony.hpp>
#include <colony/pool.hpp>

#include "pool_test.hpp"

using namespace std::chrono_literals;
using colony::testing::eventually;
using colony::testing::Gate;
using colony::testing::Latch;
using colony::testing::PoolTest;

namespace {

// TestPurgePool / TestPurgePreMallocPool: idle workers are retired after expiry_duration.
TEST_P(PoolTest, Purge) {
  run_fibers([] {
    for (bool pre_alloc : {false, true}) {
      const int kSize = 50;
      colony::Pool pool(kSize, {.expiry_duration = 50ms, .pre_alloc = pre_alloc});
      Gate gate;
      for (int i = 0; i < kSize; ++i)
        ASSERT_FALSE(pool.submit([&gate, i] {
          gate.wait();
          colony::this_fiber::sleep_for(std::chrono::milliseconds(i % 10));
        }));
      EXPECT_EQ(pool.running(), kSize);
      EXPECT_EQ(pool.free(), 0);
      gate.open();
      EXPECT_TRUE(eventually([&] { return pool.running() == 0; }))
          << "still running: " << pool.running();
      EXPECT_EQ(pool.stats().workers_purged, static_cast<std::uint64_t>(kSize));
      // The pool works after a purge (the purger restarts with the next idle worker).
      ASSERT_FALSE(pool.submit([] {}));
      pool.wait();
      EXPECT_TRUE(eventually([&] { return pool.running() == 0; }));
    }
    // PoolWithFunc too.
    colony::PoolWithFunc<int> pf(10, [](int) {}, {.expiry_duration = 20ms});
    for (int i = 0; i < 10; ++i) ASSERT_FALSE(pf.invoke(i));
    EXPECT_TRUE(eventually([&] { return pf.running() == 0; }));
  });
}

// TestWithDisablePurgePool / ...AndWithExpiration: workers stay until release.
TEST_P(PoolTest, DisablePurge) {
  run_fibers([] {
    const int kWorkers = 10;
    colony::Pool pool(kWorkers, {.expiry_duration = 20ms, .disable_purge = true});
    Gate gate;
    Latch started(kWorkers);
    for (int i = 0; i < kWorkers; ++i)
      ASSERT_FALSE(pool.submit([&] {
        started.count_down();
        gate.wait();
      }));
    started.wait();
    EXPECT_EQ(pool.running(), kWorkers);
    EXPECT_EQ(pool.free(), 0);
    gate.open();
    pool.wait();
    colony::this_fiber::sleep_for(100ms);  // 5 expiry periods: nothing is purged
    EXPECT_EQ(pool.running(), kWorkers);
    EXPECT_EQ(pool.stats().workers_purged, 0u);
    EXPECT_FALSE(pool.release_timeout(10s));
    EXPECT_EQ(pool.running(), 0);
    EXPECT_EQ(pool.free(), kWorkers);
    // A negative expiry is fine when purging is off (as ants).
    colony::Pool ok(1, {.expiry_duration = -1s, .disable_purge = true});
  });
}

}  // namespace
