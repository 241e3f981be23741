// Context (cancellation, deadlines) and Group (errgroup).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include <colony/testing/leak_check.hpp>

#include "test_util.hpp"

using namespace std::chrono_literals;
using colony::context_errc;
using colony::testing::ProcsTest;

namespace {

class Ctx : public ProcsTest {};
INSTANTIATE_TEST_SUITE_P(Procs, Ctx, ::testing::ValuesIn(colony::testing::proc_counts()),
                         colony::testing::procs_name);

TEST_P(Ctx, CancelPropagatesDownNotUp) {
  run_fibers([&] {
    auto [parent, cancel_parent] = colony::with_cancel(colony::background());
    auto [child, cancel_child] = colony::with_cancel(parent);
    auto [grandchild, cancel_gc] = colony::with_cancel(child);
    EXPECT_FALSE(parent.is_done());
    cancel_child();
    EXPECT_EQ(child.err(), context_errc::canceled);
    EXPECT_EQ(grandchild.err(), context_errc::canceled);
    EXPECT_FALSE(parent.is_done()) << "a child's cancel reached its parent";
    EXPECT_FALSE(grandchild.done().recv().has_value());  // closed
    cancel_child();                                      // idempotent
    auto waiter = colony::spawn([p = parent] { return p.done().recv().has_value(); });
    colony::this_fiber::sleep_for(1ms);
    cancel_parent();
    EXPECT_FALSE(waiter.get());
    auto [late, cancel_late] = colony::with_cancel(parent);  // derived from a cancelled one
    EXPECT_EQ(late.err(), context_errc::canceled);
    EXPECT_FALSE(colony::background().is_done());
    EXPECT_EQ(std::error_code(context_errc::canceled).message(), "context canceled");
  });
}

TEST_P(Ctx, DeadlinesFireAndAreInherited) {
  run_fibers([&] {
    auto t0 = std::chrono::steady_clock::now();
    auto [ctx, cancel] = colony::with_timeout(colony::background(), 5ms);
    ASSERT_TRUE(ctx.deadline().has_value());
    auto [child, cancel_child] = colony::with_timeout(ctx, 1h);
    EXPECT_EQ(*child.deadline(), *ctx.deadline()) << "the earlier deadline wins";
    std::optional<std::monostate> v = std::monostate{};
    colony::Chan<int> never;
    colony::select(colony::on_recv(never), colony::on_recv(ctx.done(), [&](auto x) { v = x; }));
    EXPECT_FALSE(v.has_value());
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 5ms);
    EXPECT_EQ(ctx.err(), context_errc::deadline_exceeded);
    EXPECT_EQ(child.err(), context_errc::deadline_exceeded);
    auto [past, c2] = colony::with_deadline(colony::background(), std::chrono::steady_clock::now() - 1s);
    EXPECT_EQ(past.err(), context_errc::deadline_exceeded);
    cancel();  // after expiry: no effect
    EXPECT_EQ(ctx.err(), context_errc::deadline_exceeded);
  });
}

// Whoever sees a context's done closed finds every descendant cancelled too: the errors of a
// subtree are set before any of its done channels closes (the deadline test above once saw a
// child's err() still empty right after its parent's done fired, under ASan and load).
TEST_P(Ctx, DescendantsAreCancelledWhenDoneIsSeen) {
  run_fibers([&] {
    const int rounds = static_cast<int>(300 * colony::testing::stress_scale());
    for (int round = 0; round < rounds; ++round) {
      auto [parent, cancel] = colony::with_cancel(colony::background());
      auto [child, c1] = colony::with_cancel(parent);
      auto [grandchild, c2] = colony::with_timeout(child, 1h);
      std::vector<colony::Context> leaves;
      std::vector<std::function<void()>> leaf_cancels;
      for (int i = 0; i < 8; ++i) {
        auto [leaf, c] = colony::with_cancel(grandchild);
        leaves.push_back(leaf);
        leaf_cancels.push_back(c);
      }
      std::thread t([&, cancel = cancel] { cancel(); });
      (void)parent.done().recv();
      EXPECT_EQ(child.err(), context_errc::canceled) << "round " << round;
      EXPECT_EQ(grandchild.err(), context_errc::canceled) << "round " << round;
      for (auto& leaf : leaves) EXPECT_EQ(leaf.err(), context_errc::canceled) << "round " << round;
      t.join();
    }
  });
}

TEST_P(Ctx, PlainThreadsWaitOnDone) {
  run_fibers([&] {
    auto [ctx, cancel] = colony::with_cancel(colony::background());
    colony::detail::FutureState<bool> got;
    std::thread t([&, c = ctx] { got.set_value(!c.done().recv().has_value()); });
    colony::this_fiber::sleep_for(1ms);
    cancel();
    got.wait();
    t.join();
    EXPECT_TRUE(got.take());
  });
}

TEST_P(Ctx, GroupWaitsAndRethrowsTheFirstError) {
  run_fibers([&] {
    {
      colony::Group g;
      std::atomic<int> ran{0};
      for (int i = 0; i < 100; ++i) g.go([&] { ++ran; });
      g.wait();
      EXPECT_EQ(ran.load(), 100);
      EXPECT_TRUE(g.context().is_done()) << "wait() cancels the group's context";
    }
    {
      colony::Group g;
      std::atomic<int> stopped_early{0};
      for (int i = 0; i < 10; ++i)
        g.go([&](const colony::Context& ctx) {
          colony::Chan<int> never;
          colony::select(colony::on_recv(never), colony::on_recv(ctx.done(), [&](auto) { ++stopped_early; }));
        });
      g.go([] {
        colony::this_fiber::sleep_for(1ms);
        throw std::runtime_error("first");
      });
      EXPECT_THROW(g.wait(), std::runtime_error);
      EXPECT_EQ(stopped_early.load(), 10);
      EXPECT_EQ(g.context().err(), context_errc::canceled);
    }
  });
}

// The leak of a select blocked on all its cases, fixed by a Context cancel.
TEST_P(Ctx, ContextCancelFixesTheBlockedSelectLeak) {
  run_fibers([&] {
    colony::testing::LeakCheck check;
    auto [ctx, cancel] = colony::with_cancel(colony::background());
    colony::Chan<int> work;
    colony::go([work, c = ctx] {
      colony::select(colony::on_recv(work), colony::on_recv(c.done()));
    });
    cancel();
  });
}

}  // namespace
