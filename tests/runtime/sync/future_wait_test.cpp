// Future::wait(ctx), from fibers and plain threads, with 1, 2, 4 and 8 processors: the
// Context-aware wait of a Future, in the Sync suite next to those of Semaphore and WaitGroup
// (spawn and its Futures are tested in scheduler/spawn_test.cpp and exception_test.cpp).
#include <gtest/gtest.h>

#include <chrono>
#include <colony/colony.hpp>
#include <colony/sync.hpp>
#include <system_error>

#include "sync_test.hpp"

using namespace std::chrono_literals;
using colony::context_errc;
using colony::testing::OnThread;
using colony::testing::Sync;
using colony::testing::wait_parked;
using R = colony::sched::WaitReason;

namespace {

TEST_P(Sync, FutureWaitWithContext) {
  run_fibers([&] {
    colony::Chan<int> go_on;
    auto f = colony::spawn([go_on] { return go_on.recv().value_or(-1); });
    auto [ctx, cancel] = colony::with_cancel(colony::background());
    auto waiter = colony::spawn([&f, c = ctx] { return f.wait(c); });
    ASSERT_TRUE(wait_parked(R::future, 1));
    cancel();
    EXPECT_EQ(waiter.get(), context_errc::canceled);
    EXPECT_FALSE(f.is_ready());
    auto [tctx, tcancel] = colony::with_timeout(colony::background(), 10ms);
    EXPECT_EQ(f.wait(tctx), context_errc::deadline_exceeded);
    std::error_code thread_got = context_errc::canceled;
    {  // a plain thread: cancelled, then woken by the result
      auto [c2, cancel2] = colony::with_cancel(colony::background());
      OnThread t([&, c = c2] { thread_got = f.wait(c); });
      colony::this_fiber::sleep_for(5ms);
      cancel2();
      t.wait();
      EXPECT_EQ(thread_got, context_errc::canceled);
    }
    auto [lctx, lcancel] = colony::with_timeout(colony::background(), 1h);
    {
      OnThread t([&, c = lctx] { thread_got = f.wait(c); });
      auto fiber_waiter = colony::spawn([&f, c = lctx] { return f.wait(c); });
      colony::this_fiber::sleep_for(5ms);
      go_on.send(7);
      t.wait();
      EXPECT_FALSE(fiber_waiter.get());
    }
    EXPECT_FALSE(thread_got) << thread_got.message();
    EXPECT_FALSE(f.wait(ctx)) << "finished: no error even with a done context";
    EXPECT_EQ(f.get(), 7);
  });
}

}  // namespace
