// Context (cancellation, deadlines) and Group (errgroup).
#include <gtest/gtest.h>


#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
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

// A deadline whose firing releases the last reference to its own context: an after_func drops
// the only handle to a child, which held the parent, whose timer is the one firing. The timer's
// memory goes with the parent, inside the timer's function; the runtime must not touch it
// after that function returns (ASan and TSan saw run_timers write to it).
TEST_P(Ctx, DeadlineTimerFreedByItsOwnFiring) {
  run_fibers([&] {
    for (int i = 0; i < 20; ++i) {
      auto holder = std::make_shared<std::optional<colony::Context>>();
      colony::Chan<int> fired(1);
      {
        auto [parent, cancel_parent] = colony::with_timeout(colony::background(), 1ms);
        auto [child, cancel_child] = colony::with_cancel(parent);
        *holder = child;
        colony::after_func(child, [holder, fired] {
          holder->reset();
          fired.try_send(1);
        });
      }  // from here only *holder keeps the child, and through it the parent, alive
      EXPECT_TRUE(fired.recv().has_value());
    }
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

// =============================================================================================
// Values (with_value / Context::value)

// Keys of two "libraries": same value type, distinct objects, so they cannot collide.
const colony::ContextKey<std::string> user_key;
const colony::ContextKey<std::string> trace_key;
const colony::ContextKey<int> depth_key;

// Counted: counts its live instances (the value must be destroyed with its last context).
struct Counted {
  static inline std::atomic<int> live{0};
  int v;
  explicit Counted(int x) : v(x) { ++live; }
  Counted(const Counted& o) : v(o.v) { ++live; }
  Counted(Counted&& o) noexcept : v(o.v) { ++live; }
  ~Counted() { --live; }
};
const colony::ContextKey<Counted> counted_key;

TEST_P(Ctx, ValuesAreFoundThroughThreeLevelsNearestFirst) {
  run_fibers([&] {
    const colony::Context root = colony::background();
    EXPECT_EQ(root.value(user_key), nullptr);
    auto c1 = colony::with_value(root, user_key, "ann");  // std::string from the key's type
    auto c2 = colony::with_value(c1, depth_key, 2);
    auto c3 = colony::with_value(c2, user_key, std::string("bob"));  // shadows c1's
    ASSERT_NE(c3.value(user_key), nullptr);
    EXPECT_EQ(*c3.value(user_key), "bob") << "the nearest value wins";
    EXPECT_EQ(*c2.value(user_key), "ann") << "a child's value is not seen by its parent";
    EXPECT_EQ(*c1.value(user_key), "ann");
    ASSERT_NE(c3.value(depth_key), nullptr);
    EXPECT_EQ(*c3.value(depth_key), 2);
    EXPECT_EQ(c1.value(depth_key), nullptr) << "set below c1, not above";
    EXPECT_EQ(c3.value(trace_key), nullptr) << "same value type, another key: no collision";
    auto c4 = colony::with_value(c3, trace_key, "t-1");
    EXPECT_EQ(*c4.value(trace_key), "t-1");
    EXPECT_EQ(*c4.value(user_key), "bob");
    EXPECT_EQ(root.value(trace_key), nullptr);
    // The pointer stays valid through copies of the context; the value is not copied per
    // lookup.
    colony::Context copy = c4;
    EXPECT_EQ(copy.value(trace_key), c4.value(trace_key));
  });
}

TEST_P(Ctx, ValuesAreSeenByCancelAndTimeoutChildren) {
  run_fibers([&] {
    auto v = colony::with_value(colony::background(), user_key, "ann");
    auto [cc, cancel] = colony::with_cancel(v);
    auto [tc, cancel_t] = colony::with_timeout(cc, 1h);
    auto [dc, cancel_d] = colony::with_deadline(tc, std::chrono::system_clock::now() + 1h);
    auto deeper = colony::with_value(dc, depth_key, 4);
    for (const colony::Context* c : {&cc, &tc, &dc, &deeper}) {
      ASSERT_NE(c->value(user_key), nullptr);
      EXPECT_EQ(*c->value(user_key), "ann");
    }
    EXPECT_EQ(*deeper.value(depth_key), 4);
    EXPECT_EQ(dc.value(depth_key), nullptr);
    // A Group's context derives from its parent: it sees the values too.
    colony::Group g(deeper);
    std::string seen;
    g.go([&](const colony::Context& ctx) {
      if (const std::string* u = ctx.value(user_key)) seen = *u;
    });
    g.wait();
    EXPECT_EQ(seen, "ann");
    cancel();
    EXPECT_EQ(deeper.err(), context_errc::canceled);
    EXPECT_EQ(*deeper.value(user_key), "ann") << "values outlive cancellation";
  });
}

TEST_P(Ctx, ValueContextsShareTheirParentsCancellation) {
  run_fibers([&] {
    auto [parent, cancel] = colony::with_timeout(colony::background(), 1h);
    auto v = colony::with_value(parent, depth_key, 1);
    auto vv = colony::with_value(v, user_key, "x");
    EXPECT_TRUE(vv.done() == parent.done()) << "a value context's done() is its parent's";
    EXPECT_EQ(vv.deadline(), parent.deadline());
    EXPECT_FALSE(vv.is_done());
    auto [child, cancel_child] = colony::with_cancel(vv);
    auto waiter = colony::spawn([c = vv] { return c.done().recv().has_value(); });
    std::atomic<bool> thread_saw{false};
    colony::WaitGroup thread_done;
    thread_done.add(1);
    std::thread t([&, c = child] {
      thread_saw = !c.done().recv().has_value();  // blocks this thread until closed
      thread_done.done();
    });
    colony::this_fiber::sleep_for(1ms);
    cancel();
    EXPECT_FALSE(waiter.get());
    thread_done.wait();
    t.join();
    EXPECT_TRUE(thread_saw.load());
    EXPECT_EQ(vv.err(), context_errc::canceled);
    EXPECT_EQ(child.err(), context_errc::canceled);
    // after_func on a value context runs when the parent is cancelled.
    auto [p2, cancel2] = colony::with_cancel(colony::background());
    std::atomic<int> ran{0};
    auto stop = colony::after_func(colony::with_value(p2, depth_key, 2), [&] { ++ran; });
    cancel2();
    EXPECT_EQ(ran.load(), 1);
    EXPECT_FALSE(stop());
    // On background(): never done, and no deadline.
    auto bv = colony::with_value(colony::background(), depth_key, 3);
    EXPECT_FALSE(bv.is_done());
    EXPECT_FALSE(bv.deadline().has_value());
  });
}

TEST_P(Ctx, ValuesAreDestroyedWithTheLastContext) {
  run_fibers([&] {
    const int before = Counted::live.load();
    {
      colony::Context keep;
      {
        auto v = colony::with_value(colony::background(), counted_key, Counted(7));
        EXPECT_EQ(Counted::live.load(), before + 1) << "stored once (moved in)";
        auto [c, cancel] = colony::with_cancel(v);
        keep = c;
        cancel();
      }
      EXPECT_EQ(Counted::live.load(), before + 1) << "a derived context keeps the value";
      ASSERT_NE(keep.value(counted_key), nullptr);
      EXPECT_EQ(keep.value(counted_key)->v, 7);
    }
    EXPECT_EQ(Counted::live.load(), before);
  });
}

}  // namespace
