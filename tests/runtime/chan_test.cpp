// Channels and select: Go semantics, over 1, 2, 4 and 8 processors, fibers and threads mixed.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
using colony::Chan;
using colony::ChanStatus;
using colony::testing::Latch;
using colony::testing::ProcsTest;

namespace {

class Channels : public ProcsTest {};
INSTANTIATE_TEST_SUITE_P(Procs, Channels, ::testing::ValuesIn(colony::testing::proc_counts()),
                         colony::testing::procs_name);

TEST_P(Channels, UnbufferedIsARendezvousInOrder) {
  run_fibers([&] {
    Chan<int> ch;
    EXPECT_EQ(ch.capacity(), 0u);
    std::atomic<int> sent{0};
    auto producer = colony::spawn([&] {
      for (int i = 0; i < 10000; ++i) {
        ch.send(i);
        sent = i + 1;
      }
      ch.close();
    });
    colony::this_fiber::sleep_for(2ms);
    EXPECT_LE(sent.load(), 1) << "an unbuffered send completed without a receiver";
    int expect = 0;
    for (int v : ch) EXPECT_EQ(v, expect++);
    EXPECT_EQ(expect, 10000);
    producer.get();
  });
}

TEST_P(Channels, BufferedIsFifoAndBounded) {
  run_fibers([&] {
    Chan<std::string> ch(3);
    EXPECT_EQ(ch.try_send("a"), ChanStatus::success);
    EXPECT_EQ(ch.try_send("b"), ChanStatus::success);
    ch.send("c");
    EXPECT_EQ(ch.size(), 3u);
    EXPECT_EQ(ch.try_send("d"), ChanStatus::full);
    EXPECT_EQ(ch.send_for("d", 2ms), ChanStatus::timeout);
    std::string out;
    EXPECT_EQ(ch.try_recv(out), ChanStatus::success);
    EXPECT_EQ(out, "a");
    EXPECT_EQ(*ch.recv(), "b");
    EXPECT_EQ(*ch.recv(), "c");
    EXPECT_EQ(ch.try_recv(out), ChanStatus::empty);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(ch.recv_for(out, 5ms), ChanStatus::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 5ms);
    // A parked sender is moved into the buffer when a receiver makes room.
    Chan<int> small(1);
    small.send(1);
    auto blocked = colony::spawn([&] { small.send(2); });
    colony::this_fiber::sleep_for(1ms);
    EXPECT_EQ(*small.recv(), 1);
    blocked.get();
    EXPECT_EQ(*small.recv(), 2);
  });
}

TEST_P(Channels, MoveOnlyValues) {
  run_fibers([&] {
    Chan<std::unique_ptr<int>> ch(1), unbuf;
    ch.send(std::make_unique<int>(7));
    EXPECT_EQ(**ch.recv(), 7);
    auto f = colony::spawn([&] { unbuf.send(std::make_unique<int>(9)); });
    EXPECT_EQ(**unbuf.recv(), 9);
    f.get();
  });
}

TEST_P(Channels, CloseWakesEveryoneAndMisuseThrows) {
  run_fibers([&] {
    Chan<int> ch;
    constexpr int kRecv = 20, kSend = 20;
    std::atomic<int> got_nullopt{0}, threw{0};
    Latch done(kRecv + kSend);
    for (int i = 0; i < kRecv; ++i)
      colony::go([&] {
        if (!ch.recv()) ++got_nullopt;
        done.count_down();
      });
    colony::this_fiber::sleep_for(2ms);
    ch.close();
    Chan<int> full(1);
    full.send(0);
    for (int i = 0; i < kSend; ++i)
      colony::go([&] {
        try {
          full.send(1);
        } catch (const colony::ChannelClosed&) {
          ++threw;
        }
        done.count_down();
      });
    colony::this_fiber::sleep_for(2ms);
    full.close();
    done.wait();
    EXPECT_EQ(got_nullopt.load(), kRecv);
    EXPECT_EQ(threw.load(), kSend);
    EXPECT_THROW(ch.send(1), colony::ChannelClosed);
    EXPECT_THROW(ch.close(), colony::ChannelClosed);
    EXPECT_EQ(ch.try_send(1), ChanStatus::closed);
    // The buffered value survives the close and drains first.
    EXPECT_EQ(full.recv(), std::optional<int>(0));
    EXPECT_EQ(full.recv(), std::nullopt);
    int out;
    EXPECT_EQ(full.try_recv(out), ChanStatus::closed);
  });
}

// Fibers and plain threads, producing and consuming on one channel: every value arrives once.
TEST_P(Channels, MixedThreadsAndFibers) {
  run_fibers([&] {
    Chan<int> ch(GetParam() % 2 ? 0 : 16);
    constexpr int kPer = 5000;
    constexpr int kFiberProducers = 6, kThreadProducers = 2;
    constexpr int kTotal = kPer * (kFiberProducers + kThreadProducers);
    std::vector<std::atomic<int>> seen(kTotal);
    std::atomic<long> received{0};
    Latch producers(kFiberProducers + kThreadProducers);
    auto consume = [&] {
      while (auto v = ch.recv()) {
        ++seen[static_cast<std::size_t>(*v)];
        ++received;
      }
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreadProducers; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPer; ++i) ch.send((kFiberProducers + t) * kPer + i);
        producers.count_down();
      });
    threads.emplace_back(consume);  // a thread consumer
    std::vector<colony::Future<void>> consumers;
    for (int c = 0; c < 3; ++c) consumers.push_back(colony::spawn(consume));
    for (int p = 0; p < kFiberProducers; ++p)
      colony::go([&, p] {
        for (int i = 0; i < kPer; ++i) ch.send(p * kPer + i);
        producers.count_down();
      });
    producers.wait();
    ch.close();
    for (auto& c : consumers) c.get();
    colony::detail::FutureState<void> joined;
    std::thread joiner([&] {
      for (auto& t : threads) t.join();
      joined.set_value();
    });
    joined.wait();
    joiner.join();
    EXPECT_EQ(received.load(), kTotal);
    for (int i = 0; i < kTotal; ++i) ASSERT_EQ(seen[static_cast<std::size_t>(i)].load(), 1) << i;
  });
}

// close() against receivers whose deadline is the very instant of the close: each receiver ends
// exactly once, as closed or as timed out. (close used to re-link the waiters it took onto a
// list of its own; a receiver timing out meanwhile unlinked itself from that list and was then
// woken a second time by the closer: a fatal "fiber status" error, or a thread woken twice.)
TEST_P(Channels, CloseRacesReceiversTimingOutAtTheSameInstant) {
  const int rounds = colony::testing::kSanitized ? 15 : 60;
  constexpr int kFibers = 192, kThreads = 2;
  long closed_total = 0, timeout_total = 0;
  run_fibers([&] {
    for (int r = 0; r < rounds; ++r) {
      Chan<int> ch;
      std::atomic<int> closed{0}, timed_out{0}, other{0};
      const auto t0 = std::chrono::steady_clock::now() + 2ms;
      auto receive = [&] {
        int x = 0;
        switch (ch.recv_until(x, t0)) {
          case ChanStatus::closed: ++closed; break;
          case ChanStatus::timeout: ++timed_out; break;
          default: ++other; break;
        }
      };
      colony::WaitGroup wg;
      wg.add(kFibers);
      for (int i = 0; i < kFibers; ++i)
        colony::go([&] {
          receive();
          wg.done();
        });
      std::vector<std::thread> threads;
      for (int t = 0; t < kThreads; ++t) threads.emplace_back(receive);
      colony::this_fiber::sleep_until(t0);
      ch.close();
      wg.wait();
      for (auto& t : threads) colony::testing::join_thread(t);
      ASSERT_EQ(other.load(), 0);
      ASSERT_EQ(closed.load() + timed_out.load(), kFibers + kThreads) << "round " << r;
      closed_total += closed.load();
      timeout_total += timed_out.load();
    }
  });
  // Both outcomes happen, or the race was not exercised.
  RecordProperty("closed", static_cast<int>(closed_total));
  RecordProperty("timed_out", static_cast<int>(timeout_total));
}

TEST_P(Channels, DirectHandoffRunsTheReceiverNext) {
  run_fibers([&] {
    Chan<int> ping, pong;
    constexpr int kRounds = 5000;
    std::atomic<int> same{0};
    auto partner = colony::spawn([&] {
      while (auto v = ping.recv()) pong.send(*v + 1);
    });
    for (int i = 0; i < kRounds; ++i) {
      auto before = std::this_thread::get_id();
      ping.send(i);
      EXPECT_EQ(*pong.recv(), i + 1);
      if (before == std::this_thread::get_id()) ++same;
    }
    ping.close();
    partner.get();
    EXPECT_GT(same.load(), kRounds * 8 / 10);
  });
}

TEST_P(Channels, SelectChoosesReadyCasesUniformly) {
  run_fibers([&] {
    Chan<int> a(1), b(1), c(1);
    constexpr int kRounds = 30000;
    int count[3] = {0, 0, 0};
    for (int r = 0; r < kRounds; ++r) {
      for (auto* ch : {&a, &b, &c})
        if (ch->size() == 0) ch->send(r);
      std::size_t i = colony::select(colony::on_recv(a), colony::on_recv(b), colony::on_recv(c));
      ++count[i];
    }
    for (int k = 0; k < 3; ++k) {
      EXPECT_GT(count[k], kRounds / 3 * 95 / 100) << "case " << k;
      EXPECT_LT(count[k], kRounds / 3 * 105 / 100) << "case " << k;
    }
  });
}

TEST_P(Channels, SelectDefaultTimeoutSendAndClosed) {
  run_fibers([&] {
    Chan<int> in, out(1);
    // Nothing ready: default.
    bool def = false;
    EXPECT_EQ(colony::select(colony::on_recv(in), colony::on_default([&] { def = true; })), 1u);
    EXPECT_TRUE(def);
    // Nothing ready: timeout.
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(colony::select(colony::on_recv(in), colony::on_timeout(5ms)), 1u);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 5ms);
    // A send case with room.
    bool sent = false;
    EXPECT_EQ(colony::select(colony::on_recv(in), colony::on_send(out, 42, [&] { sent = true; })), 1u);
    EXPECT_TRUE(sent);
    EXPECT_EQ(*out.recv(), 42);
    // A parked select woken by a sender, and by a receiver taking its send.
    auto s1 = colony::spawn([&] {
      int got = -1;
      colony::select(colony::on_recv(in, [&](std::optional<int> v) { got = *v; }),
                     colony::on_timeout(10s));
      return got;
    });
    colony::this_fiber::sleep_for(1ms);
    in.send(5);
    EXPECT_EQ(s1.get(), 5);
    Chan<int> unbuf;
    auto s2 = colony::spawn([&] { return colony::select(colony::on_recv(in), colony::on_send(unbuf, 8)); });
    colony::this_fiber::sleep_for(1ms);
    EXPECT_EQ(*unbuf.recv(), 8);
    EXPECT_EQ(s2.get(), 1u);
    // Closed channels: a receive case gets nullopt, a send case throws.
    Chan<int> closed;
    closed.close();
    std::optional<int> v = 1;
    colony::select(colony::on_recv(closed, [&](std::optional<int> x) { v = x; }));
    EXPECT_FALSE(v.has_value());
    EXPECT_THROW(colony::select(colony::on_send(closed, 1)), colony::ChannelClosed);
    // A select parked on a channel that gets closed.
    Chan<int> later;
    auto s3 = colony::spawn([&] {
      bool was_closed = false;
      colony::select(colony::on_recv(later, [&](std::optional<int> x) { was_closed = !x; }));
      return was_closed;
    });
    colony::this_fiber::sleep_for(1ms);
    later.close();
    EXPECT_TRUE(s3.get());
  });
}

TEST_P(Channels, SelectFromPlainThreads) {
  run_fibers([&] {
    Chan<int> a, b;
    std::atomic<int> sum{0};
    std::thread t([&] {
      for (int i = 0; i < 1000; ++i)
        colony::select(colony::on_recv(a, [&](std::optional<int> v) { sum += *v; }),
                       colony::on_recv(b, [&](std::optional<int> v) { sum += *v; }));
      EXPECT_EQ(colony::select(colony::on_recv(a), colony::on_timeout(2ms)), 1u);
    });
    for (int i = 0; i < 1000; ++i) (i % 2 ? a : b).send(i);
    colony::detail::FutureState<void> joined;
    std::thread joiner([&] {
      t.join();
      joined.set_value();
    });
    joined.wait();
    joiner.join();
    EXPECT_EQ(sum.load(), 999 * 1000 / 2);
  });
}

// Many fibers selecting over many channels while others send: every value is received once.
TEST_P(Channels, SelectStressNoLostValues) {
  const int kValues = static_cast<int>(20000 * std::max(0.05, colony::testing::stress_scale()));
  run_fibers([&] {
    constexpr int kChans = 8, kSelectors = 16, kSenders = 8;
    std::vector<Chan<int>> chans;
    for (int i = 0; i < kChans; ++i) chans.emplace_back(i % 2 ? 4 : 0);
    Chan<int> quit;
    std::vector<std::atomic<int>> seen(static_cast<std::size_t>(kValues));
    std::atomic<int> received{0};
    Latch selectors(kSelectors), senders(kSenders);
    for (int s = 0; s < kSelectors; ++s)
      colony::go([&] {
        bool stop = false;
        auto on = [&](std::optional<int> v) {
          if (v) {
            ++seen[static_cast<std::size_t>(*v)];
            ++received;
          }
        };
        while (!stop)
          colony::select(colony::on_recv(chans[0], on), colony::on_recv(chans[1], on),
                         colony::on_recv(chans[2], on), colony::on_recv(chans[3], on),
                         colony::on_recv(chans[4], on), colony::on_recv(chans[5], on),
                         colony::on_recv(chans[6], on), colony::on_recv(chans[7], on),
                         colony::on_recv(quit, [&](std::optional<int>) { stop = true; }));
        selectors.count_down();
      });
    for (int s = 0; s < kSenders; ++s)
      colony::go([&, s] {
        for (int v = s; v < kValues; v += kSenders) chans[static_cast<std::size_t>(v % kChans)].send(v);
        senders.count_down();
      });
    senders.wait();
    while (received.load() < kValues) colony::this_fiber::sleep_for(100us);
    quit.close();
    selectors.wait();
    for (int i = 0; i < kValues; ++i) ASSERT_EQ(seen[static_cast<std::size_t>(i)].load(), 1) << i;
  });
}

// Go's TestPseudoRandomSend (capacities 0 and n), and its mirror for receives: a select whose
// two cases act on the same channel must take each about half the time, also when it has to wait
// (its waiters are queued in the random poll order, not in argument order). One trial is Go's:
// n = 100 values, each case must be seen more than n/10 times; like Go, a failing trial is
// retried (up to 10 times) before the test fails. The trials' totals must also be near 50%.
// `yield_in_peer`: the peer yields before each operation (as Go's receiver does), so the select
// usually finds no partner and waits; otherwise the select's fiber yields first (the partner is
// usually parked, and the select's first, non-waiting pass decides).
void expect_fair_two_cases(bool select_sends, bool yield_in_peer, std::size_t cap) {
  constexpr int n = 100, kTrials = 20, kAttempts = 10;
  long total[2] = {0, 0};
  for (int trial = 0; trial < kTrials; ++trial) {
    int count[2] = {0, 0};
    for (int attempt = 1;; ++attempt) {
      count[0] = count[1] = 0;
      Chan<int> c(cap);
      std::vector<int> got(n, -1);
      auto peer = colony::spawn([&] {
        for (int i = 0; i < n; ++i) {
          if (yield_in_peer) colony::this_fiber::yield();
          if (select_sends)
            got[static_cast<std::size_t>(i)] = *c.recv();
          else
            c.send(i);
        }
      });
      for (int i = 0; i < n; ++i) {
        if (!yield_in_peer) colony::this_fiber::yield();
        if (select_sends) {
          colony::select(colony::on_send(c, 0), colony::on_send(c, 1));
        } else {
          ++count[colony::select(colony::on_recv(c), colony::on_recv(c))];
        }
      }
      peer.get();
      if (select_sends)
        for (int v : got) ++count[v];
      if (count[0] > n / 10 && count[1] > n / 10) break;
      ASSERT_LT(attempt, kAttempts)
          << "want pseudorandom, got " << count[0] << " of case 0 and " << count[1]
          << " of case 1 (cap " << cap << ", " << (yield_in_peer ? "peer" : "select")
          << " yields, trial " << trial << ")";
    }
    total[0] += count[0];
    total[1] += count[1];
  }
  const long all = total[0] + total[1];
  // No SCOPED_TRACE in these tests: gtest keeps its trace stack per thread, and fibers migrate.
  EXPECT_GT(total[0], all * 4 / 10) << total[0] << " of " << all << " (cap " << cap << ")";
  EXPECT_GT(total[1], all * 4 / 10) << total[1] << " of " << all << " (cap " << cap << ")";
}

TEST_P(Channels, SelectSendCasesOnOneChannelArePseudoRandom) {
  run_fibers([&] {
    for (std::size_t cap : {std::size_t{0}, std::size_t{100}})
      for (bool yield_in_peer : {true, false})
        expect_fair_two_cases(/*select_sends=*/true, yield_in_peer, cap);
  });
}

TEST_P(Channels, SelectRecvCasesOnOneChannelArePseudoRandom) {
  run_fibers([&] {
    for (std::size_t cap : {std::size_t{0}, std::size_t{100}})
      for (bool yield_in_peer : {true, false})
        expect_fair_two_cases(/*select_sends=*/false, yield_in_peer, cap);
  });
}

TEST_P(Channels, ShutdownUnwindsFibersParkedOnChannels) {
  static std::atomic<int> destroyed;
  destroyed = 0;
  struct Tracker {
    ~Tracker() { ++destroyed; }
  };
  colony::run(
      [] {
        Chan<int> never, full(1);
        full.send(0);
        for (int i = 0; i < 10; ++i)
          colony::go([never] {
            Tracker t;
            auto c = never;
            c.recv();
          });
        for (int i = 0; i < 10; ++i)
          colony::go([full] {
            Tracker t;
            auto c = full;
            c.send(1);
          });
        for (int i = 0; i < 10; ++i)
          colony::go([never, full] {
            Tracker t;
            colony::select(colony::on_recv(never), colony::on_send(full, 2));
          });
        colony::go([] {
          Tracker t;
          colony::select();  // select {}
        });
        colony::this_fiber::sleep_for(10ms);
      },
      {.max_procs = GetParam()});
  EXPECT_EQ(destroyed.load(), 31);
}

// Nil channels: Go's `var ch chan T` / `ch = nil`.

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
