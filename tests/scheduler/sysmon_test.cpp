// sysmon, the runtime's monitor thread: long runs without a switch point are reported, and a
// deadlock that appears only when an outside thread exits is still found.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <colony/colony.hpp>

#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;

void busy_for(std::chrono::milliseconds d) {  // no switch point at all
  auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

TEST(Sysmon, LongRunWithoutASwitchPointIsReported) {
  std::mutex mu;
  std::map<std::uint64_t, int> calls;  // reports per fiber id
  std::chrono::nanoseconds ran_for{0};
  std::string site;
  std::uint64_t busy_id = 0, long_runs = 0;
  std::atomic<std::uint64_t> busy{0};
  std::atomic<bool> seen{false};
  colony::run(
      [&] {
        auto f = colony::spawn([&] {
          busy_id = colony::this_fiber::id();
          busy = busy_id;
          // No switch point until sysmon has reported (or 10 s, for a failing run).
          auto until = std::chrono::steady_clock::now() + 10s;
          while (!seen.load() && std::chrono::steady_clock::now() < until) {
          }
          busy_for(20ms);  // and a while longer: still one report for the same run
        });
        f.get();
        long_runs = colony::stats().long_runs;
      },
      {.max_procs = 2,
       .on_long_run =
           [&](std::uint64_t id, std::chrono::nanoseconds d, const colony::SourceLocation& at) {
             std::lock_guard<std::mutex> lk(mu);
             ++calls[id];
             // Another fiber may be reported too: under a sanitizer the root fiber's first
             // spawn (mapping and annotating the first stacks) can itself pass the threshold.
             if (id != busy.load()) return;
             ran_for = d;
             site = at.file_name();
             seen = true;
           }});
  std::lock_guard<std::mutex> lk(mu);
  EXPECT_EQ(calls[busy_id], 1);  // once per run, not once per check
  EXPECT_GE(ran_for, 10ms);
  EXPECT_NE(site.find("sysmon_test.cpp"), std::string::npos) << site;
  EXPECT_GE(long_runs, 1u);
  int total = 0;
  for (auto& [id, n] : calls) {
    EXPECT_EQ(n, 1) << "fiber " << id << " was reported " << n << " times for one run";
    total += n;
  }
  EXPECT_LE(long_runs, static_cast<std::uint64_t>(total));  // read before run() ended
}

TEST(Sysmon, FibersThatYieldAreNotLongRuns) {
  std::atomic<int> calls{0};
  colony::run(
      [&] {
        auto until = std::chrono::steady_clock::now() + 60ms;
        while (std::chrono::steady_clock::now() < until) colony::this_fiber::yield();
      },
      {.max_procs = 1,
       .on_long_run = [&](std::uint64_t, std::chrono::nanoseconds,
                          const colony::SourceLocation&) { ++calls; },
       // Generous: only an OS stall of the whole thread this long could trip it.
       .long_run_threshold = 500ms});
  EXPECT_EQ(calls.load(), 0);
}

TEST(Sysmon, DeadlockAppearingWhenAnOutsideThreadExitsIsFound) {
  // The thread could have sent, so nothing is reported while it lives; once it has exited
  // without sending, only sysmon's periodic re-check can notice.
  colony::Chan<int> ch;
  std::thread th([] { std::this_thread::sleep_for(50ms); });
  std::atomic<int> reports{0};
  bool threw = false;
  try {
    colony::run([&] { (void)ch.recv(); },
                {.max_procs = 2, .on_deadlock = [&](const std::string&) { ++reports; }});
  } catch (const colony::Deadlock&) {
    threw = true;
  }
  th.join();
  EXPECT_TRUE(threw);
  EXPECT_EQ(reports.load(), 1);
}

}  // namespace
