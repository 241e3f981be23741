// Shutdown: parked fibers are unwound, fibers that never started are destroyed, a plain thread
// readying fibers meanwhile is safe, and the default runtime shuts down at exit. Each Sched test
// runs with 1, 2, 4 and 8 processors.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "colony/sched/wait.hpp"
#include "sched_test.hpp"

using namespace std::chrono_literals;
using colony::testing::Sched;

namespace {

// Shutdown unwinds parked fibers (destructors run) and destroys fibers that never started.
TEST_P(Sched, ShutdownUnwindsParkedFibers) {
  static std::atomic<int> destroyed;
  destroyed = 0;
  struct Tracker {
    bool armed = true;
    Tracker() = default;
    Tracker(Tracker&& o) noexcept : armed(o.armed) { o.armed = false; }
    ~Tracker() {
      if (armed) ++destroyed;
    }
  };
  colony::run(
      [] {
        for (int i = 0; i < 20; ++i)  // sleeping for an hour
          colony::go([t = Tracker()] { colony::this_fiber::sleep_for(1h); });
        for (int i = 0; i < 20; ++i)  // parked with nobody to wake them
          colony::go([t = Tracker()] {
            colony::sched::park(nullptr, nullptr, colony::sched::WaitReason::event);
          });
        for (int i = 0; i < 20; ++i)  // waiting on futures that never complete
          colony::go([t = Tracker()] {
            colony::detail::FutureState<int> never;
            never.wait();
          });
        colony::this_fiber::sleep_for(10ms);  // let them all park
        for (int i = 0; i < 20; ++i)  // never started: main returns first (with 1 P at least)
          colony::go([t = Tracker()] { colony::this_fiber::sleep_for(1h); });
      },
      {.max_procs = GetParam()});
  EXPECT_EQ(destroyed.load(), 80);
}

// A plain thread readies fibers (channel sends to parked receivers) while the runtime shuts
// down and unwinds those very fibers: exactly one of the two resumes each fiber, nothing aborts
// ("fiber status is running, expected waiting"), and every fiber is unwound or received.
TEST(SchedShutdown, PlainThreadReadiesFibersWhileShutdownUnwindsThem) {
  const int rounds = static_cast<int>(40 * colony::testing::stress_scale());
  for (int round = 0; round < rounds; ++round) {
    constexpr int kFibers = 64;
    std::vector<colony::Chan<int>> chans;
    for (int i = 0; i < kFibers; ++i) chans.emplace_back(1);
    std::atomic<int> parked{0}, ended{0};
    std::atomic<bool> start{false};
    std::thread sender([&] {
      while (!start.load()) std::this_thread::yield();
      // Spread the sends over the shutdown (some ms: its threads stop, then it unwinds).
      const auto gap = std::chrono::microseconds(round % 8 * 10);
      for (auto& c : chans) {
        EXPECT_EQ(c.try_send(1), colony::ChanStatus::success);
        const auto until = std::chrono::steady_clock::now() + gap;
        while (std::chrono::steady_clock::now() < until) {
        }
      }
    });
    colony::run(
        [&] {
          for (int i = 0; i < kFibers; ++i)
            colony::go([&, i] {
              struct End {
                std::atomic<int>& n;
                ~End() { ++n; }
              } end{ended};
              ++parked;
              (void)chans[static_cast<std::size_t>(i)].recv();
            });
          while (parked.load() < kFibers) colony::this_fiber::yield();
          start = true;  // the sends race run()'s return and the unwinding of the receivers
        },
        {.max_procs = 1 + round % 2, .detect_deadlocks = false});
    sender.join();
    EXPECT_EQ(ended.load(), kFibers) << "round " << round;
  }
}

// The default runtime shuts down at exit: parked fibers are unwound (destructors run).
TEST(DefaultRuntimeDeath, ExitUnwindsParkedFibers) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        struct Loud {
          ~Loud() { std::fprintf(stderr, "unwound at exit\n"); }
        };
        colony::go([] {
          Loud l;
          colony::this_fiber::sleep_for(1h);
        });
        std::this_thread::sleep_for(50ms);
        std::exit(3);
      },
      ::testing::ExitedWithCode(3), "unwound at exit");
}

// A fiber that never reaches a switch point does not hang the exit: after a grace of one
// second the process exits without unwinding (it cannot stop a running fiber).
TEST(DefaultRuntimeDeath, ExitDoesNotHangOnABusyFiber) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        colony::go([] {
          for (;;) {  // never yields
            asm volatile("");
          }
        });
        std::this_thread::sleep_for(50ms);
        std::exit(4);
      },
      ::testing::ExitedWithCode(4), "");
}

}  // namespace
