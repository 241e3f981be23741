// colony::Pool's options and constructor arguments, ported from ants_test.go: invalid arguments,
// the order of ants' checks, and the typed error codes.
// Every test runs with 1, 2 and 4 processors inside a fresh runtime and fails if a fiber is left
// behind. No assertion depends on timing beyond generous upper bounds for progress: the machine
// is a noisy 2-core VM.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/pool.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>

#include "pool_test.hpp"

using namespace std::chrono_literals;
using colony::pool_errc;
using colony::testing::PoolTest;

namespace {

// TestRestCodeCoverage's argument checks, and the error category.
TEST_P(PoolTest, InvalidArgumentsAndErrors) {
  run_fibers([] {
    try {
      colony::Pool bad(10, {.expiry_duration = -1s});
      ADD_FAILURE() << "negative expiry accepted";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), pool_errc::invalid_pool_expiry);
      EXPECT_NE(std::string(e.what()).find("invalid expiry for pool"), std::string::npos);
    }
    try {
      colony::Pool bad(0, {.pre_alloc = true});
      ADD_FAILURE() << "pre_alloc without capacity accepted";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), pool_errc::invalid_pre_alloc_size);
      EXPECT_NE(std::string(e.what()).find("negative capacity under pre_alloc"), std::string::npos);
    }
    EXPECT_THROW(colony::Pool(1, {.max_blocking_tasks = -1}), std::invalid_argument);
    try {
      colony::PoolWithFunc<int> bad(10, nullptr);
      ADD_FAILURE() << "missing function accepted";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), pool_errc::lack_pool_func);
      EXPECT_NE(std::string(e.what()).find("must provide function for pool"), std::string::npos);
    }
    colony::Pool zero(10, {.expiry_duration = 0s});  // 0 means the default
    std::error_code ec = pool_errc::pool_overload;
    EXPECT_STREQ(ec.category().name(), "colony.pool");
    EXPECT_EQ(ec.message(), "too many callers blocked on submit, or the pool is nonblocking");
    EXPECT_EQ(std::error_code(pool_errc::pool_closed).message(), "this pool has been closed");
    EXPECT_EQ(std::error_code(pool_errc::timeout).message(), "operation timed out");
    EXPECT_EQ(std::error_code(pool_errc::invalid_pool_index).message(), "invalid pool index");
  });
}

// The order of ants' argument checks, when several arguments are wrong: NewPoolWithFunc checks
// the function first (ErrLackPoolFunc), then newPool's options; NewMultiPoolWithFunc checks the
// size, then the strategy, then (in each NewPoolWithFunc) the function, then the options.
TEST_P(PoolTest, ArgumentChecksFollowAntsOrder) {
  run_fibers([] {
    auto what = [](auto make) -> std::string {
      try {
        make();
      } catch (const std::system_error& e) {
        return e.what();
      }
      return "nothing thrown";
    };
    auto has = [](const std::string& s, const char* part) {
      return s.find(part) != std::string::npos;
    };
    constexpr const char* kFunc = "must provide function for pool";
    constexpr const char* kExpiry = "invalid expiry for pool";
    constexpr const char* kSize = "invalid size for multiple pool";
    constexpr const char* kStrategy = "invalid load-balancing strategy";
    const auto rr = colony::LoadBalancing::round_robin;
    const auto bad_lbs = static_cast<colony::LoadBalancing>(8);
    using PF = colony::PoolWithFunc<int>;
    using MPF = colony::MultiPoolWithFunc<int>;
    std::string w;
    // PoolWithFunc: the function before every option.
    w = what([] { PF(10, nullptr, {.expiry_duration = -1s}); });
    EXPECT_TRUE(has(w, kFunc)) << w;
    w = what([] { PF(0, nullptr, {.pre_alloc = true}); });
    EXPECT_TRUE(has(w, kFunc)) << w;
    w = what([] { PF(1, nullptr, {.max_blocking_tasks = -1}); });
    EXPECT_TRUE(has(w, kFunc)) << w;
    w = what([] { PF(10, [](int) {}, {.expiry_duration = -1s}); });
    EXPECT_TRUE(has(w, kExpiry)) << w;
    // MultiPoolWithFunc: size, strategy, function, options.
    w = what([&] { MPF(-1, 10, nullptr, bad_lbs, {.expiry_duration = -1s}); });
    EXPECT_TRUE(has(w, kSize)) << w;
    w = what([&] { MPF(-1, 10, nullptr, rr); });
    EXPECT_TRUE(has(w, kSize)) << w;
    w = what([&] { MPF(4, 10, nullptr, bad_lbs, {.expiry_duration = -1s}); });
    EXPECT_TRUE(has(w, kStrategy)) << w;
    w = what([&] { MPF(4, 10, nullptr, rr, {.expiry_duration = -1s}); });
    EXPECT_TRUE(has(w, kFunc)) << w;
    w = what([&] { MPF(4, 10, [](int) {}, rr, {.expiry_duration = -1s}); });
    EXPECT_TRUE(has(w, kExpiry)) << w;
    // MultiPool: size, strategy, options.
    w = what([&] { colony::MultiPool(-1, 10, bad_lbs, {.expiry_duration = -1s}); });
    EXPECT_TRUE(has(w, kSize)) << w;
    w = what([&] { colony::MultiPool(4, 10, bad_lbs, {.expiry_duration = -1s}); });
    EXPECT_TRUE(has(w, kStrategy)) << w;
    w = what([&] { colony::MultiPool(4, 10, rr, {.expiry_duration = -1s}); });
    EXPECT_TRUE(has(w, kExpiry)) << w;
    // The shared function is made once and still reaches every pool.
    std::atomic<int> sum{0};
    auto add = [&](int i) { sum += i; };
    MPF mp(3, 1, add, rr);
    for (int i = 1; i <= 6; ++i) ASSERT_FALSE(mp.invoke(i));
    mp.wait();
    EXPECT_EQ(sum.load(), 21);
  });
}

// ants' error values, C++-style: construction errors are std::system_errors whose code() names
// the ants error, so callers compare codes instead of parsing what().
TEST_P(PoolTest, ConstructionErrorsAreTypedCodes) {
  run_fibers([] {
    auto code_of = [](auto make) -> std::error_code {
      try {
        make();
      } catch (const std::system_error& e) {
        return e.code();
      }
      return {};
    };
    const auto rr = colony::LoadBalancing::round_robin;
    const auto bad_lbs = static_cast<colony::LoadBalancing>(8);
    EXPECT_EQ(code_of([] { colony::Pool(10, {.expiry_duration = -1ns}); }),
              pool_errc::invalid_pool_expiry);
    EXPECT_EQ(code_of([] { colony::Pool(-1, {.pre_alloc = true}); }),
              pool_errc::invalid_pre_alloc_size);
    EXPECT_EQ(code_of([] { colony::PoolWithFunc<int>(1, nullptr); }), pool_errc::lack_pool_func);
    EXPECT_EQ(code_of([&] { colony::MultiPool(0, 1, rr); }), pool_errc::invalid_multi_pool_size);
    EXPECT_EQ(code_of([&] { colony::MultiPool(2, 1, bad_lbs); }),
              pool_errc::invalid_load_balancing_strategy);
    EXPECT_EQ(code_of([&] { colony::MultiPoolWithFunc<int>(2, 1, nullptr, rr); }),
              pool_errc::lack_pool_func);
    EXPECT_EQ(code_of([] { colony::Pool(10, {.expiry_duration = 1s}); }), std::error_code());
    // Every code has its own message, and they stay in the colony.pool category.
    std::set<std::string> messages;
    for (int e = 1; e <= 9; ++e) {
      std::error_code ec = static_cast<pool_errc>(e);
      EXPECT_STREQ(ec.category().name(), "colony.pool");
      EXPECT_EQ(ec.message().find("unknown"), std::string::npos) << e;
      messages.insert(ec.message());
    }
    EXPECT_EQ(messages.size(), 9u);
    // ants' named defaults.
    EXPECT_EQ(colony::kDefaultPoolSize, INT32_MAX);
    EXPECT_EQ(colony::kDefaultCleanInterval, 1s);
    EXPECT_EQ(colony::PoolOptions{}.expiry_duration, colony::kDefaultCleanInterval);
  });
}

}  // namespace
