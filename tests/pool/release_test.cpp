// The life of a colony::Pool, ported from ants_test.go and beyond: release and release_timeout,
// reboot, destruction with workers, and the runtime shutting down under a pool.
// Every test runs with 1, 2 and 4 processors inside a fresh runtime and fails if a fiber is left
// behind. No assertion depends on timing beyond generous upper bounds for progress: the machine
// is a noisy 2-core VM.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/pool.hpp>
#include <memory>
#include <system_error>
#include <thread>

#include "pool_test.hpp"

using namespace std::chrono_literals;
using colony::pool_errc;
using colony::testing::eventually;
using colony::testing::Gate;
using colony::testing::Latch;
using colony::testing::on_thread;
using colony::testing::PoolTest;

namespace {

// TestReleaseTimeout / TestReleaseWhenRunningPool: release waits for running tasks.
TEST_P(PoolTest, ReleaseTimeout) {
  run_fibers([] {
    colony::Pool pool(10);
    std::atomic<int> finished{0};
    for (int i = 0; i < 5; ++i)
      ASSERT_FALSE(pool.submit([&] {
        colony::this_fiber::sleep_for(50ms);
        finished.fetch_add(1);
      }));
    EXPECT_NE(pool.running(), 0);
    EXPECT_FALSE(pool.release_timeout(10s));
    EXPECT_EQ(finished.load(), 5);  // running tasks finished
    EXPECT_EQ(pool.running(), 0);
    EXPECT_TRUE(pool.is_closed());
    EXPECT_EQ(pool.release_timeout(1s), pool_errc::pool_closed);  // as ants
    EXPECT_EQ(pool.submit([] {}), pool_errc::pool_closed);

    colony::PoolWithFunc<std::chrono::milliseconds> pf(
        10, [](std::chrono::milliseconds d) { colony::this_fiber::sleep_for(d); });
    for (int i = 0; i < 5; ++i) ASSERT_FALSE(pf.invoke(20ms));
    EXPECT_FALSE(pf.release_timeout(10s));
    EXPECT_EQ(pf.invoke(1ms), pool_errc::pool_closed);
  });
}

TEST_P(PoolTest, ReleaseTimeoutExpires) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1);
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(pool.release_timeout(30ms), pool_errc::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);
    EXPECT_EQ(pool.running(), 1);  // still running its task
    gate.open();
    // ~Pool waits for it.
  });
}

// Release wakes blocked submitters with pool_closed, from fibers and threads.
TEST_P(PoolTest, ReleaseWakesWaiters) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1);
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    std::error_code fiber_result, thread_result;
    Latch done(2);
    colony::go([&] {
      fiber_result = pool.submit([] {});
      done.count_down();
    });
    std::thread t([&] {
      thread_result = pool.submit([] {});
      done.count_down();
    });
    ASSERT_TRUE(eventually([&] { return pool.waiting() == 2; }));
    pool.release();
    done.wait();
    t.join();
    EXPECT_EQ(fiber_result, pool_errc::pool_closed);
    EXPECT_EQ(thread_result, pool_errc::pool_closed);
    gate.open();
  });
}

// TestRebootNewPool / TestRebootNewPoolCalc / ...WithPreAllocCalc.
TEST_P(PoolTest, Reboot) {
  run_fibers([] {
    for (bool pre_alloc : {false, true}) {
      colony::Pool pool(10, {.pre_alloc = pre_alloc});
      for (int round = 0; round < 2; ++round) {
        std::atomic<long> sum{0};
        for (int i = 0; i < 1000; ++i) ASSERT_FALSE(pool.submit([&sum, i] { sum += i; }));
        pool.wait();
        EXPECT_EQ(sum.load(), 499500);
        EXPECT_FALSE(pool.release_timeout(10s));
        EXPECT_EQ(pool.submit([] {}), pool_errc::pool_closed);
        pool.reboot();
        EXPECT_FALSE(pool.is_closed());
      }
    }
    Latch one(1);
    colony::PoolWithFunc<int> pf(10, [&](int) { one.count_down(); });
    EXPECT_FALSE(pf.release_timeout(10s));
    EXPECT_EQ(pf.invoke(1), pool_errc::pool_closed);
    pf.reboot();
    EXPECT_FALSE(pf.invoke(1));
    one.wait();
    pf.reboot();  // no-op on an open pool
  });
}

// A pool destroyed with idle and busy workers: ~Pool waits, nothing leaks (run_fibers checks).
TEST_P(PoolTest, DestroyWithWorkers) {
  run_fibers([] {
    std::atomic<int> finished{0};
    {
      colony::Pool pool(8, {.disable_purge = true});
      for (int i = 0; i < 8; ++i)
        ASSERT_FALSE(pool.submit([&, i] {
          colony::this_fiber::sleep_for(std::chrono::milliseconds(i % 2 ? 10 : 0));
          finished.fetch_add(1);
        }));
    }
    EXPECT_EQ(finished.load(), 8);
    // And from a plain thread, whose workers live on the default runtime.
    on_thread([&] {
      colony::Pool pool(4);
      for (int i = 0; i < 8; ++i) EXPECT_FALSE(pool.submit([&] { finished.fetch_add(1); }));
    });
    EXPECT_EQ(finished.load(), 16);
  });
}

// A pool whose runtime shuts down while workers are idle or parked: they are unwound, and the
// pool (destroyed afterwards, outside the runtime) does not hang.
TEST(PoolShutdown, RuntimeShutsDownUnderThePool) {
  std::unique_ptr<colony::Pool> pool;
  Gate* gate = new Gate;  // leaked on purpose: a parked task refers to it during the unwind
  colony::run(
      [&] {
        pool = std::make_unique<colony::Pool>(4, colony::PoolOptions{.disable_purge = true});
        ASSERT_FALSE(pool->submit([] {}));
        ASSERT_FALSE(pool->submit([gate] { gate->wait(); }));
        pool->wait_for(10ms);
      },
      {.max_procs = 2, .detect_deadlocks = false});
  EXPECT_EQ(pool->running(), 0);
  pool.reset();  // returns: nothing left to wait for
  delete gate;
}

}  // namespace
