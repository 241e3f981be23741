// colony::Batch over a Pool (beyond ants): waiting for a group of tasks, cancelling it, and a
// batch on a closed pool or destroyed early.
// Every test runs with 1, 2 and 4 processors inside a fresh runtime and fails if a fiber is left
// behind. No assertion depends on timing beyond generous upper bounds for progress: the machine
// is a noisy 2-core VM.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/pool.hpp>
#include <set>
#include <stdexcept>
#include <system_error>

#include "pool_test.hpp"

using namespace std::chrono_literals;
using colony::pool_errc;
using colony::testing::Gate;
using colony::testing::Latch;
using colony::testing::PoolTest;

namespace {

TEST_P(PoolTest, Batch) {
  run_fibers([] {
    colony::Pool pool(4);
    const int kTasks = 40;
    colony::Batch<int> batch(pool, kTasks);
    for (int i = 0; i < kTasks; ++i)
      ASSERT_FALSE(batch.queue([i] {
        colony::this_fiber::sleep_for(std::chrono::microseconds((i * 37) % 200));
        if (i == 13) throw std::runtime_error("thirteen");
        return i * i;
      }));
    batch.queue_complete();
    std::set<std::size_t> seen;
    long sum = 0;
    int errors = 0;
    for (colony::BatchResult<int>& r : batch.results()) {
      EXPECT_TRUE(seen.insert(r.index).second);
      if (r.error) {
        ++errors;
        EXPECT_EQ(r.index, 13u);
        EXPECT_THROW(r.get(), std::runtime_error);
      } else {
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(*r.value, static_cast<int>(r.index * r.index));
        sum += *r.value;
      }
    }
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(kTasks));
    EXPECT_EQ(errors, 1);
    EXPECT_EQ(sum, 39L * 40 * 79 / 6 - 169);
    EXPECT_THROW(batch.queue([] { return 0; }), std::logic_error);
    EXPECT_EQ(pool.stats().panics, 0u);
  });
}

TEST_P(PoolTest, BatchCancel) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1, {.queue_capacity = 16});
    colony::Batch<void> batch(pool, 11);
    Latch first_started(1);
    ASSERT_FALSE(batch.queue([&](const colony::Context& ctx) {
      first_started.count_down();
      gate.wait();
      EXPECT_TRUE(ctx.is_done());  // cancel() cancelled the batch's context
    }));
    first_started.wait();
    std::atomic<int> ran{0};
    for (int i = 0; i < 10; ++i) ASSERT_FALSE(batch.queue([&] { ran.fetch_add(1); }));
    EXPECT_THROW(batch.queue([] {}), std::length_error);
    batch.cancel();
    gate.open();
    batch.queue_complete();
    int canceled = 0, ok = 0;
    for (auto& r : batch.results()) {
      if (r.canceled) {
        ++canceled;
        EXPECT_THROW(r.get(), std::system_error);
      } else if (r.ok()) {
        ++ok;
      }
    }
    EXPECT_EQ(ok, 1);
    EXPECT_EQ(canceled, 10);
    EXPECT_EQ(ran.load(), 0);
  });
}

TEST_P(PoolTest, BatchOnClosedPoolAndDestructor) {
  run_fibers([] {
    colony::Pool pool(2);
    {
      colony::Batch<int> batch(pool, 4);
      std::atomic<int> ran{0};
      for (int i = 0; i < 3; ++i)
        ASSERT_FALSE(batch.queue([&] {
          colony::this_fiber::sleep_for(1ms);
          return ran.fetch_add(1);
        }));
      // ~Batch waits for the three without reading their results.
    }
    pool.release();
    colony::Batch<int> batch(pool, 1);
    EXPECT_EQ(batch.queue([] { return 1; }), pool_errc::pool_closed);
    batch.queue_complete();
    auto r = batch.results().recv();
    ASSERT_TRUE(r.has_value());
    ASSERT_TRUE(r->error);
    try {
      r->get();
      ADD_FAILURE();
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), pool_errc::pool_closed);
    }
    EXPECT_FALSE(batch.results().recv().has_value());  // closed
    EXPECT_THROW(colony::Batch<int>(pool, 0), std::invalid_argument);
  });
}

}  // namespace
