// colony::Pool's task queue (Options::queue_capacity, beyond ants): FIFO, blocking submitters,
// release and release_timeout with queued tasks, tune() starting workers for them.
// Every test runs with 1, 2 and 4 processors inside a fresh runtime and fails if a fiber is left
// behind. No assertion depends on timing beyond generous upper bounds for progress: the machine
// is a noisy 2-core VM.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/pool.hpp>
#include <mutex>
#include <system_error>
#include <vector>

#include "pool_test.hpp"

using namespace std::chrono_literals;
using colony::pool_errc;
using colony::testing::eventually;
using colony::testing::Gate;
using colony::testing::Latch;
using colony::testing::PoolTest;

namespace {

TEST_P(PoolTest, TaskQueue) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1, {.nonblocking = true, .queue_capacity = 3});
    std::vector<int> order;
    std::mutex mu;
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    for (int i = 0; i < 3; ++i)
      ASSERT_FALSE(pool.submit([&, i] {
        std::lock_guard<std::mutex> lk(mu);
        order.push_back(i);
      }));
    EXPECT_EQ(pool.queued(), 3u);
    EXPECT_EQ(pool.running(), 1);
    EXPECT_EQ(pool.submit([] {}), pool_errc::pool_overload);  // beyond the queue
    gate.open();
    pool.wait();
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));  // FIFO, on the one worker
    EXPECT_EQ(pool.queued(), 0u);
    EXPECT_EQ(pool.stats().workers_started, 1u);
  });
}

TEST_P(PoolTest, TaskQueueBlockingSubmitterAndRelease) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(2, {.queue_capacity = 2});
    std::atomic<int> ran{0};
    for (int i = 0; i < 2; ++i)
      ASSERT_FALSE(pool.submit([&] {
        gate.wait();
        ran.fetch_add(1);
      }));
    for (int i = 0; i < 2; ++i) ASSERT_FALSE(pool.submit([&] { ran.fetch_add(1); }));
    // The queue is full: the next submitter waits, and gets the queue slot freed first.
    Latch done(1);
    std::error_code waited = pool_errc::timeout;
    colony::go([&] {
      waited = pool.submit([&] { ran.fetch_add(1); });
      done.count_down();
    });
    ASSERT_TRUE(eventually([&] { return pool.waiting() == 1; }));
    // Release with queued tasks and a waiter: the waiter is refused, queued tasks still run.
    pool.release();
    done.wait();
    EXPECT_EQ(waited, pool_errc::pool_closed);
    EXPECT_EQ(pool.queued(), 2u);
    gate.open();
    ASSERT_TRUE(eventually([&] { return ran.load() == 4; }));
    EXPECT_EQ(pool.queued(), 0u);
  });
}

TEST_P(PoolTest, TaskQueueReleaseTimeoutReportsQueued) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1, {.queue_capacity = 5});
    std::atomic<int> ran{0};
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    for (int i = 0; i < 5; ++i) ASSERT_FALSE(pool.submit([&] { ran.fetch_add(1); }));
    EXPECT_EQ(pool.release_timeout(20ms), pool_errc::timeout);  // 5 still queued
    EXPECT_EQ(pool.queued(), 5u);
    gate.open();
    pool.wait();
    EXPECT_EQ(ran.load(), 5);  // none was dropped
  });
}

TEST_P(PoolTest, TuneUpStartsWorkersForQueuedTasks) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1, {.queue_capacity = 4});
    Latch queued_started(2);
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    for (int i = 0; i < 2; ++i) ASSERT_FALSE(pool.submit([&] { queued_started.count_down(); }));
    EXPECT_EQ(pool.queued(), 2u);
    pool.tune(3);
    queued_started.wait();  // ran on the new workers while the first is still blocked
    EXPECT_EQ(pool.queued(), 0u);
    gate.open();
  });
}

}  // namespace
