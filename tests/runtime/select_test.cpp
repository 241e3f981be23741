// Select over a run-time set of cases (Go's reflect.Select): fairness, receive/send/closed
// outcomes, default and timeout, parking on many channels, nil cases, plain threads.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
using colony::Chan;
using colony::SelectCase;
using colony::Selected;
using colony::testing::ProcsTest;

namespace {

class DynamicSelect : public ProcsTest {};
INSTANTIATE_TEST_SUITE_P(Procs, DynamicSelect, ::testing::ValuesIn(colony::testing::proc_counts()),
                         colony::testing::procs_name);

// Go's TestSelectFairness, over 100 channels instead of 4: every channel always has a value
// ready, and each must be chosen within 10 standard deviations of trials / 100.
TEST_P(DynamicSelect, ReadyCasesOverAHundredChannelsAreChosenFairly) {
  run_fibers([&] {
    constexpr int kChans = 100, kTrials = 30000;
    std::vector<Chan<int>> chans;
    std::vector<SelectCase<int>> cases;
    for (int i = 0; i < kChans; ++i) {
      chans.emplace_back(1);
      chans.back().send(i);
      cases.push_back(SelectCase<int>::recv(chans.back()));
    }
    std::vector<int> counts(kChans, 0);
    for (int t = 0; t < kTrials; ++t) {
      Selected<int> r = colony::select(cases);
      ASSERT_LT(r.index, static_cast<std::size_t>(kChans));
      ASSERT_TRUE(r.ok);
      ASSERT_EQ(*r.value, static_cast<int>(r.index));  // the value came from the chosen channel
      ++counts[r.index];
      chans[r.index].send(static_cast<int>(r.index));  // ready again
    }
    const double p = 1.0 / kChans, mean = kTrials * p, sigma = std::sqrt(kTrials * p * (1 - p));
    for (int i = 0; i < kChans; ++i)
      EXPECT_LE(std::abs(counts[static_cast<std::size_t>(i)] - mean), 10 * sigma)
          << "channel " << i << " chosen " << counts[static_cast<std::size_t>(i)] << " times, expected "
          << mean;
  });
}

TEST_P(DynamicSelect, ReceivesSendsAndReportsClosedChannels) {
  run_fibers([&] {
    Chan<std::string> in(1), out(1);
    std::vector<SelectCase<std::string>> cases{SelectCase<std::string>::recv(in),
                                               SelectCase<std::string>::send(out, "hello")};
    EXPECT_EQ(cases[0].dir(), SelectCase<std::string>::Dir::recv);
    EXPECT_TRUE(cases[1].has_value());
    // Only the send can proceed.
    Selected<std::string> r = colony::select(cases);
    EXPECT_EQ(r.index, 1u);
    EXPECT_TRUE(r.ok);
    EXPECT_FALSE(r.value.has_value());
    EXPECT_FALSE(cases[1].has_value());  // moved to the channel
    EXPECT_EQ(*out.recv(), "hello");
    // An empty send case is an error, not a silent no-op.
    EXPECT_THROW(colony::select(cases), std::logic_error);
    EXPECT_THROW(cases[0].set_value("x"), std::logic_error);
    // Turn the send off; now only the receive is left.
    cases[1].set_chan(nullptr);
    in.send("world");
    r = colony::select(cases);
    EXPECT_EQ(r.index, 0u);
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(*r.value, "world");
    // A closed channel: the receive is ready, with no value and ok == false.
    in.close();
    r = colony::select(cases);
    EXPECT_EQ(r.index, 0u);
    EXPECT_FALSE(r.ok);
    EXPECT_FALSE(r.value.has_value());
    // A send case on a closed channel throws, as Chan::send does.
    Chan<std::string> closed(1);
    closed.close();
    std::vector<SelectCase<std::string>> bad{SelectCase<std::string>::send(closed, "x")};
    EXPECT_THROW(colony::select(bad), colony::ChannelClosed);
  });
}

TEST_P(DynamicSelect, DefaultAndTimeout) {
  run_fibers([&] {
    Chan<int> a, b;
    std::vector<SelectCase<int>> cases{SelectCase<int>::recv(a), SelectCase<int>::recv(b)};
    bool def = false;
    Selected<int> r = colony::select(cases, colony::on_default([&] { def = true; }));
    EXPECT_TRUE(def);
    EXPECT_TRUE(r.defaulted);
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.index, cases.size());
    bool late = false;
    auto t0 = std::chrono::steady_clock::now();
    r = colony::select(cases, colony::on_timeout(5ms, [&] { late = true; }));
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 5ms);
    EXPECT_TRUE(late);
    EXPECT_TRUE(r.timed_out);
    EXPECT_EQ(r.index, cases.size() + 1);
    // Both options: default wins when nothing is ready, a ready case wins over both.
    r = colony::select(cases, colony::on_timeout(1h), colony::on_default());
    EXPECT_TRUE(r.defaulted);
    auto f = colony::spawn([&] { b.send(9); });
    r = colony::select(cases, colony::on_timeout(10s), colony::on_default([] {}));
    if (r.defaulted) r = colony::select(cases, colony::on_timeout(10s));  // the sender had not run yet
    f.get();
    EXPECT_EQ(r.index, 1u);
    EXPECT_EQ(*r.value, 9);
    // No cases at all, or only nil ones: the default, else the timeout.
    std::vector<SelectCase<int>> none;
    EXPECT_TRUE(colony::select(none, colony::on_default()).defaulted);
    std::vector<SelectCase<int>> nils{SelectCase<int>::recv(nullptr), SelectCase<int>::send(nullptr, 1)};
    r = colony::select(nils, colony::on_timeout(2ms));
    EXPECT_TRUE(r.timed_out);
    EXPECT_EQ(r.index, 3u);
  });
}

// A select parked on 100 channels is woken by whichever one gets a value (and by a receiver
// that takes one of its sends).
TEST_P(DynamicSelect, AParkedSelectIsWokenByAnyOfItsChannels) {
  run_fibers([&] {
    constexpr int kChans = 100;
    std::vector<Chan<int>> chans(kChans);  // unbuffered
    for (int target : {0, 57, 99}) {
      auto f = colony::spawn([&] {
        std::vector<SelectCase<int>> cases;
        for (auto& c : chans) cases.push_back(SelectCase<int>::recv(c));
        return colony::select(cases, colony::on_timeout(30s));
      });
      colony::this_fiber::sleep_for(1ms);
      chans[static_cast<std::size_t>(target)].send(target * 10);
      Selected<int> r = f.get();
      EXPECT_EQ(r.index, static_cast<std::size_t>(target));
      EXPECT_TRUE(r.ok);
      EXPECT_EQ(*r.value, target * 10);
    }
    // Send cases: a receiver on one channel takes exactly that case's value.
    auto f = colony::spawn([&] {
      std::vector<SelectCase<int>> cases;
      for (int i = 0; i < kChans; ++i) cases.push_back(SelectCase<int>::send(chans[static_cast<std::size_t>(i)], i));
      Selected<int> r = colony::select(cases);
      EXPECT_FALSE(cases[r.index].has_value());
      return r.index;
    });
    colony::this_fiber::sleep_for(1ms);
    EXPECT_EQ(*chans[33].recv(), 33);
    EXPECT_EQ(f.get(), 33u);
  });
}

// Go's merge idiom with reflect.Select: many producers, one consumer that turns each closed
// channel's case off until none is left. Every value arrives exactly once.
TEST_P(DynamicSelect, MergeLoopTurnsClosedChannelsOffUntilAllAreDone) {
  run_fibers([&] {
    constexpr int kProducers = 40, kPer = 250;
    std::vector<Chan<int>> chans;
    std::vector<SelectCase<int>> cases;
    for (int i = 0; i < kProducers; ++i) {
      chans.emplace_back(static_cast<std::size_t>(i % 3));  // unbuffered and buffered mixed
      cases.push_back(SelectCase<int>::recv(chans.back()));
      colony::go([ch = chans.back(), i] {
        for (int k = 0; k < kPer; ++k) ch.send(i * kPer + k);
        ch.close();
      });
    }
    std::vector<int> seen(kProducers * kPer, 0);
    int open = kProducers, closes = 0;
    while (open > 0) {
      Selected<int> r = colony::select(cases);
      ASSERT_LT(r.index, cases.size());
      if (!r.ok) {
        ++closes;
        --open;
        cases[r.index].set_chan(nullptr);
        continue;
      }
      ASSERT_EQ(*r.value / kPer, static_cast<int>(r.index));
      ++seen[static_cast<std::size_t>(*r.value)];
    }
    EXPECT_EQ(closes, kProducers);
    for (int i = 0; i < kProducers * kPer; ++i) ASSERT_EQ(seen[static_cast<std::size_t>(i)], 1) << i;
  });
}

TEST_P(DynamicSelect, SpansArraysAndMoveOnlyValues) {
  run_fibers([&] {
    Chan<std::unique_ptr<int>> a(1), b(1);
    std::array<SelectCase<std::unique_ptr<int>>, 2> cases{
        SelectCase<std::unique_ptr<int>>::recv(a),
        SelectCase<std::unique_ptr<int>>::send(b, std::make_unique<int>(5))};
    Selected<std::unique_ptr<int>> r = colony::select(std::span(cases));  // a static extent
    EXPECT_EQ(r.index, 1u);
    EXPECT_EQ(**b.recv(), 5);
    a.send(std::make_unique<int>(6));
    cases[1].set_chan(nullptr);
    r = colony::select(std::span<SelectCase<std::unique_ptr<int>>>(cases));
    EXPECT_EQ(r.index, 0u);
    ASSERT_TRUE(r.value.has_value());
    EXPECT_EQ(**r.value, 6);
  });
}

TEST_P(DynamicSelect, PlainThreadsSelectOverManyChannels) {
  run_fibers([&] {
    constexpr int kChans = 20, kValues = 2000;
    std::vector<Chan<int>> chans(kChans);
    std::atomic<long> sum{0};
    std::atomic<bool> timed_out{false};
    std::thread t([&] {
      std::vector<SelectCase<int>> cases;
      for (auto& c : chans) cases.push_back(SelectCase<int>::recv(c));
      for (int i = 0; i < kValues; ++i) sum += *colony::select(cases).value;
      timed_out = colony::select(cases, colony::on_timeout(2ms)).timed_out;
    });
    for (int i = 0; i < kValues; ++i) chans[static_cast<std::size_t>(i % kChans)].send(i);
    colony::detail::FutureState<void> joined;
    std::thread joiner([&] {
      t.join();
      joined.set_value();
    });
    joined.wait();
    joiner.join();
    EXPECT_EQ(sum.load(), static_cast<long>(kValues - 1) * kValues / 2);
    EXPECT_TRUE(timed_out.load());
  });
}

// Many fibers select over overlapping sets of channels (recv cases, several on one channel)
// while others send: every value is received exactly once.
TEST_P(DynamicSelect, ManySelectorsOnOverlappingSetsLoseNothing) {
  const int kValues = static_cast<int>(20000 * std::max(0.05, colony::testing::stress_scale()));
  run_fibers([&] {
    constexpr int kChans = 12, kSelectors = 8, kSenders = 4;
    std::vector<Chan<int>> chans;
    for (int i = 0; i < kChans; ++i) chans.emplace_back(static_cast<std::size_t>(i % 2));
    Chan<int> done(kSelectors);
    std::vector<std::atomic<int>> seen(static_cast<std::size_t>(kValues));
    std::atomic<int> received{0};
    Chan<int> stop;  // closed once every value was received
    for (int s = 0; s < kSelectors; ++s)
      colony::go([&, s] {
        std::vector<SelectCase<int>> cases;
        for (int k = 0; k < 6; ++k)
          cases.push_back(SelectCase<int>::recv(chans[static_cast<std::size_t>((s + 2 * k) % kChans)]));
        cases.push_back(SelectCase<int>::recv(chans[static_cast<std::size_t>(s % kChans)]));  // twice
        cases.push_back(SelectCase<int>::recv(stop));
        int got = 0;
        for (;;) {
          Selected<int> r = colony::select(cases);
          if (r.index == cases.size() - 1) break;
          ++seen[static_cast<std::size_t>(*r.value)];
          ++got;
          if (received.fetch_add(1) + 1 == kValues) stop.close();
        }
        done.send(got);
      });
    for (int s = 0; s < kSenders; ++s)
      colony::go([&, s] {
        for (int v = s; v < kValues; v += kSenders) chans[static_cast<std::size_t>(v % kChans)].send(v);
      });
    int total = 0;
    for (int s = 0; s < kSelectors; ++s) total += *done.recv();
    EXPECT_EQ(total, kValues);
    for (int v = 0; v < kValues; ++v) ASSERT_EQ(seen[static_cast<std::size_t>(v)].load(), 1) << v;
  });
}

}  // namespace
