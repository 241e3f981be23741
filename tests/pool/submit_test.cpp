// What colony::Pool adds to ants' submit: waiting for every task, submit_future, and submits
// bounded by a deadline or a Context.
// Every test runs with 1, 2 and 4 processors inside a fresh runtime and fails if a fiber is left
// behind. No assertion depends on timing beyond generous upper bounds for progress: the machine
// is a noisy 2-core VM.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/pool.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

#include "pool_test.hpp"

using namespace std::chrono_literals;
using colony::pool_errc;
using colony::testing::Gate;
using colony::testing::on_thread;
using colony::testing::PoolTest;

namespace {

TEST_P(PoolTest, WaitForAllTasks) {
  run_fibers([] {
    colony::Pool pool(4);
    std::atomic<int> done{0};
    EXPECT_TRUE(pool.wait_for(1ms));  // nothing submitted
    for (int i = 0; i < 100; ++i)
      ASSERT_FALSE(pool.submit([&] {
        colony::this_fiber::sleep_for(100us);
        done.fetch_add(1);
      }));
    pool.wait();
    EXPECT_EQ(done.load(), 100);
    EXPECT_EQ(pool.pending(), 0);
    EXPECT_FALSE(pool.is_closed());  // wait() does not release
    Gate gate;
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    EXPECT_FALSE(pool.wait_for(10ms));
    gate.open();
    EXPECT_TRUE(pool.wait_for(10s));
  });
}

TEST_P(PoolTest, SubmitFuture) {
  run_fibers([] {
    colony::Pool pool(2);
    auto f1 = pool.submit_future([] { return 42; });
    auto f2 = pool.submit_future([]() -> std::string { throw std::out_of_range("nope"); });
    auto f3 = pool.submit_future([] {});
    EXPECT_EQ(f1.get(), 42);
    EXPECT_THROW(f2.get(), std::out_of_range);
    f3.get();
    pool.wait();
    EXPECT_EQ(pool.stats().panics, 0u);  // the future got the exception
    pool.release();
    auto f4 = pool.submit_future([] { return 1; });
    try {
      f4.get();
      ADD_FAILURE() << "no error from a closed pool";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), pool_errc::pool_closed);
    }
    // A move-only callable and a large capture (stored on the heap).
    std::array<char, 200> big{};
    big[199] = 7;
    colony::Pool p2(1);
    auto f5 = p2.submit_future([p = std::make_unique<int>(5), big] { return *p + big[199]; });
    EXPECT_EQ(f5.get(), 12);
  });
}

TEST_P(PoolTest, SubmitDeadline) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1);
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(pool.submit_for([] {}, 20ms), pool_errc::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
    EXPECT_EQ(pool.submit_until([] {}, std::chrono::steady_clock::now() - 1s), pool_errc::timeout);
    std::error_code thread_result;
    on_thread([&] { thread_result = pool.submit_for([] {}, 10ms); });
    EXPECT_EQ(thread_result, pool_errc::timeout);
    EXPECT_EQ(pool.waiting(), 0);
    EXPECT_EQ(pool.stats().rejected, 3u);
    // A deadline that is not reached: accepted once the worker frees up.
    colony::go([&] {
      colony::this_fiber::sleep_for(5ms);
      gate.open();
    });
    EXPECT_FALSE(pool.submit_for([] {}, 10s));
    pool.wait();
  });
}

TEST_P(PoolTest, SubmitWithContext) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1);
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    {  // cancelled while waiting
      auto [ctx, cancel] = colony::with_cancel(colony::background());
      colony::go([cancel = cancel] {
        colony::this_fiber::sleep_for(5ms);
        cancel();
      });
      EXPECT_EQ(pool.submit(ctx, [] {}), colony::context_errc::canceled);
    }
    {  // deadline while waiting, from a thread
      auto [ctx, cancel] = colony::with_timeout(colony::background(), 10ms);
      std::error_code r;
      on_thread([&, ctx = ctx] { r = pool.submit(ctx, [] {}); });
      EXPECT_EQ(r, colony::context_errc::deadline_exceeded);
      cancel();
    }
    {  // already done: refused even though it would wait anyway
      auto [ctx, cancel] = colony::with_cancel(colony::background());
      cancel();
      EXPECT_EQ(pool.submit(ctx, [] {}), colony::context_errc::canceled);
    }
    {  // not cancelled: accepted when the worker comes back
      auto [ctx, cancel] = colony::with_cancel(colony::background());
      colony::go([&] {
        colony::this_fiber::sleep_for(5ms);
        gate.open();
      });
      std::atomic<bool> ran{false};
      EXPECT_FALSE(pool.submit(ctx, [&] { ran = true; }));
      pool.wait();
      EXPECT_TRUE(ran.load());
      cancel();
    }
    EXPECT_EQ(pool.waiting(), 0);
  });
}

}  // namespace
