// colony::blocking: a call that blocks its thread hands the fiber's processor to another thread
// (Go's entersyscall / exitsyscall), so other fibers keep running, even with one processor.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <thread>
#include <vector>

#include <colony/colony.hpp>

#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using colony::testing::procs_name;
using colony::testing::proc_counts;

class Blocking : public colony::testing::ProcsTest {};

TEST_P(Blocking, OtherFibersRunDuringTheCall) {
  run_fibers([] {
    std::atomic<bool> in_call{false}, done{false};
    std::atomic<long> progress_during{0};
    auto other = colony::spawn([&] {
      while (!done.load()) {
        if (in_call.load()) ++progress_during;
        colony::this_fiber::yield();
      }
    });
    colony::blocking([&] {
      in_call = true;
      // Blocks this OS thread until the other fiber has visibly made progress (bounded).
      auto until = std::chrono::steady_clock::now() + 10s;
      while (progress_during.load() < 1000 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(1ms);
      in_call = false;
    });
    done = true;
    other.get();
    EXPECT_GE(progress_during.load(), 1000);
  });
}

TEST_P(Blocking, ValuesAndExceptionsPassThrough) {
  run_fibers([] {
    EXPECT_EQ(colony::blocking([](int a, int b) { return a + b; }, 2, 3), 5);
    std::string s = colony::blocking([] { return std::string("file contents"); });
    EXPECT_EQ(s, "file contents");
    EXPECT_THROW(colony::blocking([] { throw std::runtime_error("EIO"); }), std::runtime_error);
    // The fiber is still a normal fiber afterwards: it can park and yield.
    colony::this_fiber::sleep_for(1ms);
    colony::this_fiber::yield();
  });
}

TEST_P(Blocking, ManyCallsAtOnceEachGetAThread) {
  run_fibers([] {
    const int n = GetParam() + 6;
    std::atomic<int> inside{0}, peak{0};
    std::promise<void> release;
    std::shared_future<void> gate = release.get_future().share();
    colony::WaitGroup wg;
    wg.add(n);
    for (int i = 0; i < n; ++i)
      colony::go([&] {
        colony::blocking([&] {
          int now = ++inside;
          int p = peak.load();
          while (now > p && !peak.compare_exchange_weak(p, now)) {
          }
          gate.wait_for(10s);  // a std::future wait: blocks the thread
          --inside;
        });
        wg.done();
      });
    auto until = std::chrono::steady_clock::now() + 10s;
    while (peak.load() < n && std::chrono::steady_clock::now() < until)
      colony::this_fiber::sleep_for(1ms);
    EXPECT_EQ(peak.load(), n);  // all were blocked at once: more threads than processors
    release.set_value();
    wg.wait();
    EXPECT_GE(colony::stats().threads, n);
  });
}

TEST_P(Blocking, ReturningWithoutAFreeProcessorQueuesTheFiber) {
  // Every processor is taken by a spinning fiber while the call returns: the caller must wait
  // in the run queue and still come back (and its M go idle, not spin).
  run_fibers([] {
    std::atomic<bool> stop{false};
    std::atomic<int> spinning{0};
    auto caller = colony::spawn([&] {
      colony::blocking([&] {
        auto until = std::chrono::steady_clock::now() + 10s;
        while (spinning.load() < GetParam() && std::chrono::steady_clock::now() < until)
          std::this_thread::sleep_for(1ms);
      });
      return 42;
    });
    std::vector<colony::Future<void>> spinners;
    for (int i = 0; i < GetParam(); ++i)
      spinners.push_back(colony::spawn([&] {
        ++spinning;
        while (!stop.load()) colony::this_fiber::yield();
      }));
    // The main fiber is one of the runnable ones; the spinners yield, so everyone gets turns.
    while (!caller.is_ready()) colony::this_fiber::yield();
    EXPECT_EQ(caller.get(), 42);
    stop = true;
    for (auto& f : spinners) f.get();
  });
}

// A blocking call whose body parks (a colony sleep, a channel, a hooked socket call) or holds
// a nested blocking call: the fiber is counted once as being in a blocking call, and gets
// exactly one processor back. Counted twice, it used to take a second P on the way out and
// strand the one it had been resumed on: then fewer fibers than processors could run at once.
TEST_P(Blocking, BodiesThatParkOrNestGiveBackOneProcessor) {
  const int procs = GetParam();
  run_fibers([&] {
    colony::WaitGroup wg;
    wg.add(4);
    for (int f = 0; f < 4; ++f)
      colony::go([&] {
        for (int i = 0; i < 10; ++i) {
          colony::blocking([] {
            colony::this_fiber::sleep_for(1ms);                  // parks inside the body
            colony::blocking([] { std::this_thread::sleep_for(200us); });  // nested
            colony::this_fiber::yield();
          });
        }
        wg.done();
      });
    wg.wait();
    // Every processor must still be usable: `procs` fibers that spin (no switch point) until
    // all of them have started can only finish if each got its own processor.
    std::atomic<int> started{0};
    std::atomic<bool> all{true};
    colony::WaitGroup spin;
    spin.add(procs);
    for (int f = 0; f < procs; ++f)
      colony::go([&] {
        started.fetch_add(1);
        auto until = std::chrono::steady_clock::now() + 10s;
        while (started.load() < procs && std::chrono::steady_clock::now() < until) {
        }
        if (started.load() < procs) all = false;
        spin.done();
      });
    spin.wait();
    EXPECT_TRUE(all.load()) << "a processor was lost: " << started.load() << " of " << procs
                            << " spinning fibers ran at once";
  });
}

TEST(BlockingLimits, PastMaxThreadsIsAClearError) {
  colony::run(
      [] {
        std::promise<void> release;
        std::shared_future<void> gate = release.get_future().share();
        std::atomic<int> inside{0};
        colony::WaitGroup wg;
        wg.add(2);
        for (int i = 0; i < 2; ++i)
          colony::go([&] {
            colony::blocking([&] {
              ++inside;
              gate.wait_for(10s);
            });
            wg.done();
          });
        while (inside.load() < 2) colony::this_fiber::sleep_for(1ms);
        bool called = false;
        try {
          colony::blocking([&] { called = true; });
          ADD_FAILURE() << "no exception past max_threads";
        } catch (const std::system_error& e) {
          EXPECT_EQ(e.code(), std::errc::resource_unavailable_try_again);
          EXPECT_NE(std::string(e.what()).find("max_threads"), std::string::npos) << e.what();
        }
        EXPECT_FALSE(called);
        release.set_value();
        wg.wait();
        EXPECT_EQ(colony::blocking([] { return 7; }), 7);  // room again
      },
      {.max_procs = 1, .max_threads = 3});
}

TEST(BlockingPlainThread, JustCallsTheFunction) {
  EXPECT_EQ(colony::blocking([] { return 11; }), 11);
}

INSTANTIATE_TEST_SUITE_P(Procs, Blocking, ::testing::ValuesIn(proc_counts()), procs_name);

}  // namespace
