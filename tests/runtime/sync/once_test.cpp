// colony::Once: runs exactly once, retries after an exception, lifetime; fibers and plain
// threads, with 1, 2, 4 and 8 processors.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/sync.hpp>
#include <stdexcept>
#include <thread>

#include "sync_test.hpp"

using namespace std::chrono_literals;
using colony::testing::kLifetimeRounds;
using colony::testing::Sync;
using colony::testing::Threads;

namespace {

TEST_P(Sync, OnceRunsExactlyOnce) {
  run_fibers([&] {
    constexpr int kCallers = 100;
    colony::Once once;
    std::atomic<int> runs{0};
    int value = 0;  // written by f only; read by every caller after call()
    std::atomic<int> saw{0};
    colony::WaitGroup wg;
    auto caller = [&] {
      once.call(
          [&](int v) {
            ++runs;
            colony::this_fiber::sleep_for(5ms);  // the others park meanwhile
            value = v;
          },
          42);
      if (value == 42) ++saw;
      wg.done();
    };
    wg.add(kCallers + 2);
    std::thread t1(caller), t2(caller);
    for (int i = 0; i < kCallers; ++i) colony::go([&] { caller(); });
    wg.wait();
    t1.join();
    t2.join();
    EXPECT_EQ(runs.load(), 1);
    EXPECT_EQ(saw.load(), kCallers + 2);
    EXPECT_TRUE(once.done());
    once.call([&] { ++runs; });
    EXPECT_EQ(runs.load(), 1);
  });
}

TEST_P(Sync, OnceRetriesAfterAnException) {
  run_fibers([&] {
    constexpr int kCallers = 20;
    colony::Once once;
    std::atomic<int> attempts{0}, caught{0}, after_done{0};
    colony::WaitGroup wg;
    wg.add(kCallers);
    for (int i = 0; i < kCallers; ++i)
      colony::go([&] {
        try {
          once.call([&] {
            int a = attempts.fetch_add(1);
            colony::this_fiber::sleep_for(5ms);  // others park behind the failing run
            if (a == 0) throw std::runtime_error("first try fails");
          });
          if (once.done()) ++after_done;
        } catch (const std::runtime_error&) {
          ++caught;
        }
        wg.done();
      });
    wg.wait();
    EXPECT_EQ(attempts.load(), 2);  // the failure, then one of the waiters
    EXPECT_EQ(caught.load(), 1);    // only the caller that ran the failing f sees it
    EXPECT_EQ(after_done.load(), kCallers - 1);
    EXPECT_TRUE(once.done());
    // A lone caller whose f throws leaves it not done too.
    colony::Once o2;
    EXPECT_THROW(o2.call([] { throw std::out_of_range("x"); }), std::out_of_range);
    EXPECT_FALSE(o2.done());
    int r = 0;
    o2.call([&] { r = 1; });
    EXPECT_EQ(r, 1);
  });
}

// Lifetime (see kLifetimeRounds in sync_test.hpp).

// The caller that sees a Once done (at once, or woken by the runner) may destroy it while the
// runner (a fiber or a thread) is still on its way out of call().
TEST_P(Sync, OnceMayBeDestroyedAsSoonAsCallReturns) {
  run_fibers([&] {
    colony::WaitGroup returned;
    Threads threads;
    for (int round = 0; round < kLifetimeRounds; ++round) {
      auto* once = new colony::Once;
      colony::WaitGroup running;
      running.add(1);
      returned.add(1);
      auto runner = [once, &running, &returned, round] {
        once->call([&running, round] {
          running.done();
          if (round % 4 < 2) colony::this_fiber::yield();  // sometimes let the other one queue
        });
        returned.done();  // the runner touches neither `once` nor `running` after call()
      };
      if (round % 2)
        colony::go([runner] { runner(); });
      else
        threads.start(runner);
      running.wait();  // the other party runs f: this caller never does
      once->call([] { ADD_FAILURE() << "ran twice"; });
      delete once;
      if (round % 16 == 0) {
        returned.wait();
        threads.join_all();
      }
    }
    returned.wait();
    threads.join_all();
  });
}

}  // namespace
