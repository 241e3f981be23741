// colony::MultiPool and MultiPoolWithFunc, ported from ants_test.go: both load-balancing
// strategies, reboots, overload, and release_timeout.
// Every test runs with 1, 2 and 4 processors inside a fresh runtime and fails if a fiber is left
// behind. No assertion depends on timing beyond generous upper bounds for progress: the machine
// is a noisy 2-core VM.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/pool.hpp>
#include <system_error>
#include <vector>

#include "pool_test.hpp"

using namespace std::chrono_literals;
using colony::pool_errc;
using colony::testing::Gate;
using colony::testing::Latch;
using colony::testing::PoolTest;

namespace {

// TestMultiPool / TestMultiPoolWithFunc, both strategies, with reboots.
TEST_P(PoolTest, MultiPool) {
  run_fibers([] {
    EXPECT_THROW(colony::MultiPool(-1, 10, colony::LoadBalancing::round_robin),
                 std::system_error);
    EXPECT_THROW(colony::MultiPool(10, -1, static_cast<colony::LoadBalancing>(8)),
                 std::system_error);
    EXPECT_THROW(
        colony::MultiPool(10, 10, colony::LoadBalancing::round_robin, {.expiry_duration = -1ns}),
        std::system_error);
    for (auto lbs : {colony::LoadBalancing::round_robin, colony::LoadBalancing::least_tasks}) {
      colony::MultiPool mp(10, 5, lbs);
      for (int round = 0; round < 2; ++round) {
        Gate gate;
        for (int i = 0; i < 50; ++i) ASSERT_FALSE(mp.submit([&] { gate.wait(); }));
        EXPECT_EQ(mp.waiting(), 0);
        EXPECT_EQ(mp.waiting_by_index(-1).second, pool_errc::invalid_pool_index);
        EXPECT_EQ(mp.waiting_by_index(11).second, pool_errc::invalid_pool_index);
        EXPECT_EQ(mp.running(), 50);
        EXPECT_EQ(mp.running_by_index(-1).second, pool_errc::invalid_pool_index);
        EXPECT_EQ(mp.running_by_index(10).first, -1);
        EXPECT_EQ(mp.free(), 0);
        EXPECT_EQ(mp.free_by_index(11).second, pool_errc::invalid_pool_index);
        EXPECT_EQ(mp.cap(), 50);
        EXPECT_FALSE(mp.is_closed());
        for (int i = 0; i < 10; ++i) {
          EXPECT_EQ(mp.waiting_by_index(i), std::make_pair(0, std::error_code()));
          EXPECT_EQ(mp.running_by_index(i), std::make_pair(5, std::error_code()));
          EXPECT_EQ(mp.free_by_index(i), std::make_pair(0, std::error_code()));
        }
        gate.open();
        EXPECT_FALSE(mp.release_timeout(10s));
        EXPECT_EQ(mp.release_timeout(1s), pool_errc::pool_closed);
        EXPECT_EQ(mp.submit([] {}), pool_errc::pool_closed);
        EXPECT_EQ(mp.running(), 0);
        EXPECT_TRUE(mp.is_closed());
        mp.reboot();
      }
      mp.tune(10);
      EXPECT_EQ(mp.cap(), 100);
    }
  });
}

TEST_P(PoolTest, MultiPoolOverloadFallsBackToLeastTasks) {
  run_fibers([] {
    Gate gate;
    colony::MultiPool mp(2, 2, colony::LoadBalancing::round_robin, {.nonblocking = true});
    // Pool 0 gets tasks 0 and 2, pool 1 gets 1 and 3: both full.
    for (int i = 0; i < 4; ++i) ASSERT_FALSE(mp.submit([&] { gate.wait(); }));
    EXPECT_EQ(mp.submit([] {}), pool_errc::pool_overload);
    gate.open();
    mp.wait();
  });
}

TEST_P(PoolTest, MultiPoolWithFunc) {
  run_fibers([] {
    Gate* gate = nullptr;  // this round's gate
    std::atomic<int> sum{0};
    auto fn = [&](int i) {
      gate->wait();
      sum += i;
    };
    EXPECT_THROW(colony::MultiPoolWithFunc<int>(-1, 10, fn, colony::LoadBalancing::round_robin),
                 std::system_error);
    EXPECT_THROW(colony::MultiPoolWithFunc<int>(10, -1, fn, static_cast<colony::LoadBalancing>(8)),
                 std::system_error);
    EXPECT_THROW(
        colony::MultiPoolWithFunc<int>(10, 10, nullptr, colony::LoadBalancing::round_robin),
        std::system_error);
    for (auto lbs : {colony::LoadBalancing::round_robin, colony::LoadBalancing::least_tasks}) {
      colony::MultiPoolWithFunc<int> mp(10, 5, fn, lbs);
      for (int round = 0; round < 2; ++round) {
        Gate round_gate;
        gate = &round_gate;
        sum = 0;
        for (int i = 0; i < 50; ++i) ASSERT_FALSE(mp.invoke(i));
        EXPECT_EQ(mp.running(), 50);
        for (int i = 0; i < 10; ++i) EXPECT_EQ(mp.running_by_index(i).first, 5);
        EXPECT_EQ(mp.free(), 0);
        round_gate.open();
        EXPECT_FALSE(mp.release_timeout(10s));
        EXPECT_EQ(sum.load(), 49 * 50 / 2);
        EXPECT_EQ(mp.invoke(1), pool_errc::pool_closed);
        mp.reboot();
      }
    }
  });
}

// MultiPool::release_timeout says which pools were not done in time (ants joins one error per
// pool index).
TEST_P(PoolTest, MultiPoolReleaseTimeoutNamesTheLatePools) {
  run_fibers([] {
    colony::MultiPool mp(4, 1, colony::LoadBalancing::round_robin);
    Gate gate;
    Latch started(2);
    ASSERT_FALSE(mp.submit([] {}));  // pool 0: done at once
    ASSERT_FALSE(mp.submit([&] {     // pool 1: held
      started.count_down();
      gate.wait();
    }));
    ASSERT_FALSE(mp.submit([] {}));  // pool 2
    ASSERT_FALSE(mp.submit([&] {     // pool 3: held
      started.count_down();
      gate.wait();
    }));
    started.wait();
    std::vector<std::size_t> late{99};
    EXPECT_EQ(mp.release_timeout(300ms, late), pool_errc::timeout);  // 0 and 2 exit well in time
    EXPECT_EQ(late, (std::vector<std::size_t>{1, 3}));
    gate.open();
    mp.wait();
    EXPECT_EQ(mp.release_timeout(1s, late), pool_errc::pool_closed);
    mp.reboot();
    EXPECT_FALSE(mp.release_timeout(5s, late));
    EXPECT_TRUE(late.empty());
  });
}

}  // namespace
