// colony::WaitGroup: fan-in, misuse, waits from plain threads, timeouts, wait(ctx), lifetime;
// with 1, 2, 4 and 8 processors.
// Time-based assertions only bound waiting from below (a timeout waited at least that long) or
// give generous deadlines for progress: the machine is a noisy 2-vCPU VM.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/sync.hpp>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "sync_test.hpp"

using namespace std::chrono_literals;
using colony::context_errc;
using colony::testing::kLifetimeRounds;
using colony::testing::OnThread;
using colony::testing::Sync;
using colony::testing::wait_parked;
using R = colony::sched::WaitReason;

namespace {

TEST_P(Sync, WaitGroupFanIn) {
  run_fibers([&] {
    constexpr int kFibers = 10000;
    colony::WaitGroup wg;
    std::vector<int> slot(kFibers, 0);  // plain ints: wait() must make every write visible
    for (int i = 0; i < kFibers; ++i) {
      wg.add(1);
      colony::go([&wg, &slot, i] {
        if (i % 7 == 0) colony::this_fiber::yield();
        slot[static_cast<std::size_t>(i)] = i + 1;
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(wg.count(), 0);
    for (int i = 0; i < kFibers; ++i) ASSERT_EQ(slot[static_cast<std::size_t>(i)], i + 1);
    // Reusable, and wait() on a zero counter returns at once.
    wg.wait();
    wg.add(2);
    colony::go([&] { wg.done(); });
    colony::go([&] { wg.done(); });
    EXPECT_TRUE(wg.wait_for(10s));
  });
}

TEST_P(Sync, WaitGroupNegativeCounterThrows) {
  run_fibers([&] {
    colony::WaitGroup wg;
    try {
      wg.done();
      ADD_FAILURE() << "done() on a zero counter did not throw";
    } catch (const std::logic_error& e) {
      EXPECT_STREQ(e.what(), "colony::WaitGroup: negative counter");
    }
    EXPECT_EQ(wg.count(), 0);  // unchanged
    wg.add(3);
    EXPECT_THROW(wg.add(-4), std::logic_error);
    EXPECT_EQ(wg.count(), 3);
    wg.add(-3);
    wg.wait();
  });
}

TEST_P(Sync, WaitGroupWaitFromPlainThreadAndTimeout) {
  run_fibers([&] {
    constexpr int kFibers = 100;
    colony::WaitGroup work, thread_done;
    std::atomic<int> sum{0};
    work.add(kFibers);
    thread_done.add(1);
    bool saw_all = false;
    std::thread waiter([&] {
      work.wait();  // blocks this thread, not a processor
      saw_all = sum.load(std::memory_order_relaxed) == kFibers;
      thread_done.done();  // a thread releases a fiber
    });
    for (int i = 0; i < kFibers; ++i)
      colony::go([&] {
        colony::this_fiber::sleep_for(1ms);
        sum.fetch_add(1, std::memory_order_relaxed);
        work.done();
      });
    thread_done.wait();  // parks this fiber (joining would block the processor)
    waiter.join();
    EXPECT_TRUE(saw_all);

    // wait_for times out while the counter stays above zero, from a fiber and from a thread.
    colony::WaitGroup never;
    never.add(1);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(never.wait_for(20ms));
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
    std::atomic<bool> thread_timed_out{false};
    colony::WaitGroup joined;
    joined.add(1);
    std::thread t([&] {
      auto s0 = std::chrono::steady_clock::now();
      thread_timed_out = !never.wait_for(20ms) && std::chrono::steady_clock::now() - s0 >= 20ms;
      joined.done();
    });
    joined.wait();
    t.join();
    EXPECT_TRUE(thread_timed_out.load());
    never.done();
    EXPECT_TRUE(never.wait_for(0ms));
  });
}

// Context-aware waits.

TEST_P(Sync, WaitGroupWaitWithContext) {
  run_fibers([&] {
    colony::WaitGroup wg;
    EXPECT_FALSE(wg.wait(colony::background())) << "zero: returns at once";
    auto [ctx, cancel] = colony::with_cancel(colony::background());
    wg.add(1);
    auto waiter = colony::spawn([&wg, c = ctx] { return wg.wait(c); });
    ASSERT_TRUE(wait_parked(R::waitgroup, 1));
    cancel();
    EXPECT_EQ(waiter.get(), context_errc::canceled);
    EXPECT_EQ(wg.count(), 1);
    EXPECT_EQ(wg.wait(ctx), context_errc::canceled) << "done already, counter above zero";
    auto t0 = std::chrono::steady_clock::now();
    auto [tctx, tcancel] = colony::with_timeout(colony::background(), 20ms);
    EXPECT_EQ(wg.wait(tctx), context_errc::deadline_exceeded);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
    // The counter reaches zero first: no error (several waiters, one with a context).
    auto [lctx, lcancel] = colony::with_timeout(colony::background(), 1h);
    auto w1 = colony::spawn([&wg, c = lctx] { return wg.wait(c); });
    auto w2 = colony::spawn([&wg] { wg.wait(); });
    ASSERT_TRUE(wait_parked(R::waitgroup, 2));
    wg.done();
    EXPECT_FALSE(w1.get());
    w2.get();
    EXPECT_FALSE(wg.wait(ctx)) << "zero: no error even with a done context";
    // The waiters that gave up were uncounted: reuse works.
    wg.add(2);
    colony::go([&] { wg.done(); });
    colony::go([&] { wg.done(); });
    EXPECT_FALSE(wg.wait(lctx));
    EXPECT_TRUE(wg.wait_for(0ms));
  });
}

TEST_P(Sync, WaitGroupWaitWithContextFromPlainThreads) {
  run_fibers([&] {
    colony::WaitGroup wg;
    wg.add(1);
    auto [ctx, cancel] = colony::with_cancel(colony::background());
    std::error_code got;
    {
      OnThread t([&, c = ctx] { got = wg.wait(c); });
      colony::this_fiber::sleep_for(5ms);
      cancel();
      t.wait();
    }
    EXPECT_EQ(got, context_errc::canceled);
    {
      OnThread t([&] {
        auto [tctx, tcancel] = colony::with_timeout(colony::background(), 20ms);
        got = wg.wait(tctx);
      });
      t.wait();
    }
    EXPECT_EQ(got, context_errc::deadline_exceeded);
    auto [lctx, lcancel] = colony::with_cancel(colony::background());
    got = context_errc::canceled;
    {
      OnThread t([&, c = lctx] { got = wg.wait(c); });
      colony::this_fiber::sleep_for(5ms);
      wg.done();
      t.wait();
    }
    EXPECT_FALSE(got) << got.message();
    EXPECT_TRUE(wg.wait_for(0ms));
  });
}

// Lifetime (see kLifetimeRounds in sync_test.hpp).

TEST_P(Sync, WaitGroupMayBeDestroyedAsSoonAsWaitReturns) {
  run_fibers([&] {
    for (int round = 0; round < kLifetimeRounds; ++round) {
      auto* wg = new colony::WaitGroup;
      wg->add(3);
      colony::go([wg] { wg->done(); });
      colony::go([wg] {
        colony::this_fiber::yield();
        wg->done();
      });
      std::thread t([wg] { wg->done(); });
      if (round % 2) colony::this_fiber::yield();  // sometimes park, sometimes see zero at once
      wg->wait();
      delete wg;  // the thread may still be inside done()
      t.join();
    }
  });
}

}  // namespace
