// select over channels: uniform choice among ready cases, default, timeout, send and closed
// cases, plain threads, no lost values, pseudo-random choice between cases on one channel.
// Go semantics, over 1, 2, 4 and 8 processors, fibers and threads mixed.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "chan_test.hpp"

using namespace std::chrono_literals;
using colony::Chan;
using colony::testing::Channels;
using colony::testing::Latch;

namespace {

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

}  // namespace
