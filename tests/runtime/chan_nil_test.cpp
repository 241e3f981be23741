// Nil channels (Go's `var ch chan T` / `ch = nil`): construction and comparison, operations that
// block for ever or time out, select never choosing a nil case, the merge idiom, shutdown.
// Go semantics, over 1, 2, 4 and 8 processors, fibers and threads mixed.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "chan_test.hpp"

using namespace std::chrono_literals;
using colony::Chan;
using colony::ChanStatus;
using colony::testing::Channels;

namespace {

template <class C>
concept ComparableWithZero = requires(const C& c) { c == 0; };

TEST_P(Channels, NilFromNullptrConstructionAssignmentComparison) {
  // Only nullptr makes a nil channel: 0 stays a capacity, and is neither assignable nor comparable.
  static_assert(std::is_nothrow_convertible_v<std::nullptr_t, Chan<int>>);
  static_assert(std::is_constructible_v<Chan<int>, int>);  // explicit Chan(capacity)
  static_assert(!std::is_convertible_v<int, Chan<int>>);
  static_assert(!std::is_assignable_v<Chan<int>&, int>);
  static_assert(!ComparableWithZero<Chan<int>>);
  run_fibers([&] {
    Chan<int> nil = nullptr;
    EXPECT_TRUE(nil == nullptr);
    EXPECT_TRUE(nullptr == nil);
    EXPECT_FALSE(nil != nullptr);
    Chan<int> nil2(nullptr);
    EXPECT_TRUE(nil == nil2);  // every nil channel equals every other
    Chan<int> copy = nil;
    EXPECT_TRUE(copy == nullptr);
    EXPECT_EQ(nil.capacity(), 0u);
    EXPECT_EQ(nil.size(), 0u);
    EXPECT_FALSE(nil.is_closed());
    // The existing meanings are unchanged: default and 0 are unbuffered, n is buffered.
    Chan<int> unbuf, zero(0), three(3);
    EXPECT_TRUE(unbuf != nullptr);
    EXPECT_TRUE(nullptr != zero);
    EXPECT_EQ(three.capacity(), 3u);
    EXPECT_FALSE(unbuf == zero);
    // Assignment both ways; the channel lives on in its other handles.
    Chan<int> ch = three;
    ch = nullptr;
    EXPECT_TRUE(ch == nullptr);
    EXPECT_TRUE(three != nullptr);
    three.send(1);
    ch = three;
    EXPECT_TRUE(ch == three);
    EXPECT_EQ(*ch.recv(), 1);
  });
}

TEST_P(Channels, NilTimedOpsTimeOutTryOpsFailCloseThrows) {
  run_fibers([&] {
    Chan<std::string> nil = nullptr;
    std::string out = "untouched";
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(nil.recv_for(out, 5ms), ChanStatus::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 5ms);
    t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(nil.send_for("x", 5ms), ChanStatus::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 5ms);
    t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(nil.recv_until(out, std::chrono::steady_clock::now() + 3ms), ChanStatus::timeout);
    EXPECT_EQ(nil.send_until("x", std::chrono::system_clock::now() + 3ms), ChanStatus::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 6ms);
    // A deadline already passed, or zero: timeout at once.
    EXPECT_EQ(nil.recv_for(out, 0ms), ChanStatus::timeout);
    EXPECT_EQ(nil.send_until("x", std::chrono::steady_clock::now() - 1s), ChanStatus::timeout);
    EXPECT_EQ(nil.try_send("x"), ChanStatus::full);
    EXPECT_EQ(nil.try_recv(out), ChanStatus::empty);
    EXPECT_EQ(out, "untouched");
    try {
      nil.close();
      ADD_FAILURE() << "close of a nil channel did not throw";
    } catch (const colony::ChannelClosed&) {
      ADD_FAILURE() << "close of a nil channel threw ChannelClosed";
    } catch (const std::logic_error& e) {
      EXPECT_NE(std::string(e.what()).find("close of nil channel"), std::string::npos) << e.what();
    }
  });
}

TEST_P(Channels, SelectNeverChoosesANilCase) {
  run_fibers([&] {
    Chan<int> nil_in = nullptr, nil_out = nullptr, ready(1);
    for (int r = 0; r < 1000; ++r) {
      ready.send(r);
      int got = -1;
      EXPECT_EQ(colony::select(colony::on_recv(nil_in), colony::on_send(nil_out, 1),
                               colony::on_recv(ready, [&](std::optional<int> v) { got = *v; })),
                2u);
      ASSERT_EQ(got, r);
    }
    // A send case on a ready channel beside nil ones, and a parked select woken through it.
    EXPECT_EQ(colony::select(colony::on_send(nil_out, 1), colony::on_send(ready, 7)), 1u);
    EXPECT_EQ(*ready.recv(), 7);
    auto parked = colony::spawn([&] {
      return colony::select(colony::on_recv(nil_in), colony::on_recv(ready),
                            colony::on_send(nil_out, 2));
    });
    colony::this_fiber::sleep_for(1ms);
    ready.send(8);
    EXPECT_EQ(parked.get(), 1u);
    // Only nil cases: the default, else the timeout.
    bool def = false;
    EXPECT_EQ(colony::select(colony::on_recv(nil_in), colony::on_send(nil_out, 1),
                             colony::on_default([&] { def = true; })),
              2u);
    EXPECT_TRUE(def);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(colony::select(colony::on_timeout(5ms), colony::on_recv(nil_in)), 0u);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 5ms);
    // With a non-nil but idle case too, the default still wins.
    Chan<int> idle;
    EXPECT_EQ(colony::select(colony::on_recv(nil_in), colony::on_recv(idle), colony::on_default()),
              2u);
  });
}

// Go's merge idiom: receive from both producers until each is closed, turning its case off by
// setting the channel to nil:
//   for a != nil || b != nil {
//     select {
//     case v, ok := <-a: if !ok { a = nil; continue }; use(v)
//     case v, ok := <-b: if !ok { b = nil; continue }; use(v)
//     }
//   }
TEST_P(Channels, MergeLoopDisablesClosedChannelsWithNil) {
  run_fibers([&] {
    constexpr int kPer = 2000;
    Chan<int> a, b(8);  // one unbuffered, one buffered
    auto produce = [](Chan<int> ch, int first) {
      for (int i = 0; i < kPer; ++i) ch.send(first + i);
      ch.close();
    };
    colony::go([=] { produce(a, 0); });
    colony::go([=] { produce(b, kPer); });
    std::vector<int> seen(2 * kPer, 0);
    int closes = 0;
    while (a != nullptr || b != nullptr) {
      colony::select(colony::on_recv(a,
                                     [&](std::optional<int> v) {
                                       if (!v) {
                                         ++closes;
                                         a = nullptr;
                                       } else {
                                         ++seen[static_cast<std::size_t>(*v)];
                                       }
                                     }),
                     colony::on_recv(b, [&](std::optional<int> v) {
                       if (!v) {
                         ++closes;
                         b = nullptr;
                       } else {
                         ++seen[static_cast<std::size_t>(*v)];
                       }
                     }));
    }
    EXPECT_EQ(closes, 2);  // each closed channel was seen closed once, then never selected
    for (int i = 0; i < 2 * kPer; ++i) ASSERT_EQ(seen[static_cast<std::size_t>(i)], 1) << i;
  });
}

TEST_P(Channels, ShutdownUnwindsFibersBlockedOnNilChannels) {
  static std::atomic<int> destroyed;
  destroyed = 0;
  struct Tracker {
    ~Tracker() { ++destroyed; }
  };
  std::string dump;
  colony::run(
      [&] {
        Chan<int> nil = nullptr;
        for (int i = 0; i < 5; ++i)
          colony::go([nil] {
            Tracker t;
            (void)nil.recv();
          });
        for (int i = 0; i < 5; ++i)
          colony::go([nil] {
            Tracker t;
            nil.send(1);
          });
        colony::go([nil] {
          Tracker t;
          for (int v : nil) (void)v;  // range over a nil channel
        });
        colony::go([nil] {
          Tracker t;
          colony::select(colony::on_recv(nil), colony::on_send(nil, 1));  // only nil cases
        });
        colony::this_fiber::sleep_for(10ms);
        dump = colony::fiber_dump();
      },
      {.max_procs = GetParam()});
  EXPECT_EQ(destroyed.load(), 12);
  EXPECT_NE(dump.find("[chan receive (nil chan)"), std::string::npos) << dump;
  EXPECT_NE(dump.find("[chan send (nil chan)"), std::string::npos) << dump;
  EXPECT_NE(dump.find("[select (no cases)"), std::string::npos) << dump;
}

TEST_P(Channels, PlainThreadTimesOutOnANilChannel) {
  run_fibers([&] {
    Chan<int> nil = nullptr;
    std::thread t([nil] {
      int out = 0;
      auto t0 = std::chrono::steady_clock::now();
      EXPECT_EQ(nil.recv_for(out, 5ms), ChanStatus::timeout);
      EXPECT_GE(std::chrono::steady_clock::now() - t0, 5ms);
      EXPECT_EQ(nil.send_for(1, 2ms), ChanStatus::timeout);
      EXPECT_EQ(nil.try_recv(out), ChanStatus::empty);
      EXPECT_EQ(colony::select(colony::on_recv(nil), colony::on_timeout(2ms)), 1u);
    });
    colony::testing::join_thread(t);
  });
}

}  // namespace
