// Exceptions on fibers: go's go to on_panic, spawn's to the Future, an unhandled one aborts with
// a report, and the exception state travels with the fiber across switches. Each Sched test runs
// with 1, 2, 4 and 8 processors.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "sched_test.hpp"

using namespace std::chrono_literals;
using colony::testing::Latch;
using colony::testing::Sched;

namespace {

TEST_P(Sched, GoExceptionsGoToOnPanic) {
  struct Seen {
    std::mutex mu;
    std::vector<std::string> what;
    std::vector<std::uint64_t> ids;
  } seen;
  Latch done(2);
  colony::Config cfg;
  cfg.on_panic = [&](std::exception_ptr e, std::uint64_t id) {
    std::lock_guard<std::mutex> lk(seen.mu);
    seen.ids.push_back(id);
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      seen.what.push_back(ex.what());
    } catch (int v) {
      seen.what.push_back("int " + std::to_string(v));
    }
    done.count_down();
  };
  run_fibers(
      [&] {
        colony::go([] { throw std::runtime_error("boom"); });
        colony::go([] { throw 42; });
        done.wait();
        colony::this_fiber::sleep_for(1ms);  // let the panicking fibers finish exiting
      },
      cfg);
  std::sort(seen.what.begin(), seen.what.end());
  ASSERT_EQ(seen.what.size(), 2u);
  EXPECT_EQ(seen.what[0], "boom");
  EXPECT_EQ(seen.what[1], "int 42");
  EXPECT_NE(seen.ids[0], 0u);
}

TEST_P(Sched, SpawnExceptionsGoToTheFuture) {
  run_fibers([&] {
    auto a = colony::spawn([]() -> int { throw std::invalid_argument("bad"); });
    auto b = colony::spawn([] { throw 7; });
    auto c = colony::spawn([](int x, const std::string& s) { return s + std::to_string(x); }, 5,
                           std::string("n="));
    EXPECT_THROW(a.get(), std::invalid_argument);
    try {
      b.get();
      ADD_FAILURE() << "no exception";
    } catch (int v) {
      EXPECT_EQ(v, 7);
    }
    EXPECT_EQ(c.get(), "n=5");
    EXPECT_FALSE(c.valid());
    EXPECT_THROW(c.get(), std::future_error);
  });
}

TEST(SchedDeath, UnhandledPanicPrintsAndAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(colony::run([] {
                 colony::go([] { throw std::runtime_error("kaboom"); });
                 colony::this_fiber::sleep_for(1s);
               }),
               "panic in fiber [0-9]+: kaboom \\[spawned at .*exception_test.cpp:[0-9]+\\]");
  EXPECT_DEATH(colony::run([] {
                 colony::go([] { throw 42; });
                 colony::this_fiber::sleep_for(1s);
               }),
               "panic in fiber [0-9]+: non-std exception of type int");
}

// A fiber that switches inside a catch block keeps its own exception; another fiber throwing
// and catching meanwhile on the same thread does not disturb it.
TEST_P(Sched, ExceptionStateTravelsWithTheFiber) {
  run_fibers([&] {
    std::atomic<int> ok{0};
    Latch done(50);
    for (int i = 0; i < 50; ++i)
      colony::go([&, i] {
        try {
          throw std::runtime_error("mine " + std::to_string(i));
        } catch (...) {
          for (int k = 0; k < 5; ++k) {
            colony::this_fiber::yield();
            try {
              throw 1;
            } catch (int) {
            }
            colony::this_fiber::sleep_for(100us);
          }
          EXPECT_EQ(std::uncaught_exceptions(), 0);
          try {
            throw;  // rethrow the exception this fiber is handling
          } catch (const std::runtime_error& e) {
            if (std::string(e.what()) == "mine " + std::to_string(i)) ++ok;
          }
        }
        done.count_down();
      });
    done.wait();
    EXPECT_EQ(ok.load(), 50);
  });
}

}  // namespace
