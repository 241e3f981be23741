// Deadlock detection in colony::run (Go's "all goroutines are asleep - deadlock!"): each classic
// deadlock is reported with the fiber dump, and nothing that can still make progress (a timer,
// a time-out, a thread outside the runtime) is mistaken for one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <colony/colony.hpp>
#include <colony/sched/wait.hpp>

#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using colony::Chan;
using colony::testing::procs_name;
using colony::testing::proc_counts;

class Deadlock : public ::testing::TestWithParam<int> {
 protected:
  // expect_deadlock: runs main_fn and expects it to be reported as a deadlock: on_deadlock is
  // called once with the report, and run() throws colony::Deadlock carrying it. Returns it.
  template <class F>
  std::string expect_deadlock(F&& main_fn) {
    std::atomic<int> calls{0};
    std::string report;
    try {
      colony::run(std::forward<F>(main_fn),
                  {.max_procs = GetParam(), .on_deadlock = [&](const std::string& r) {
                     ++calls;
                     report = r;
                   }});
      ADD_FAILURE() << "run() returned: no deadlock reported";
    } catch (const colony::Deadlock& e) {
      EXPECT_EQ(std::string(e.what()), report);
    }
    EXPECT_EQ(calls.load(), 1);
    EXPECT_EQ(report.rfind("all fibers are asleep - deadlock!\n", 0), 0u) << report;
    return report;
  }
  // expect_no_deadlock: main_fn must complete normally, and on_deadlock never be called.
  template <class F>
  void expect_no_deadlock(F&& main_fn) {
    std::atomic<int> calls{0};
    colony::run(std::forward<F>(main_fn),
                {.max_procs = GetParam(),
                 .on_deadlock = [&](const std::string& r) {
                   ++calls;
                   ADD_FAILURE() << "false deadlock report:\n" << r;
                 }});
    EXPECT_EQ(calls.load(), 0);
  }
};

bool contains(const std::string& s, const std::string& what) {
  return s.find(what) != std::string::npos;
}

// The classic ones, as Go reports them.

TEST_P(Deadlock, ReceiveNobodySendsTo) {
  std::string r = expect_deadlock([] {
    Chan<int> ch;
    (void)ch.recv();
  });
  EXPECT_TRUE(contains(r, "chan receive")) << r;
  EXPECT_TRUE(contains(r, "deadlock_test.cpp")) << r;  // the spawn site of the main fiber
}

TEST_P(Deadlock, SendNobodyReceives) {
  std::string r = expect_deadlock([] {
    Chan<int> ch(2);
    for (int i = 0; i < 3; ++i) ch.send(i);  // the third blocks: the buffer is full
  });
  EXPECT_TRUE(contains(r, "chan send")) << r;
}

TEST_P(Deadlock, SelectWithAllCasesBlocked) {
  std::string r = expect_deadlock([] {
    Chan<int> a, b;
    colony::select(colony::on_recv(a, [](std::optional<int>) {}),
                   colony::on_recv(b, [](std::optional<int>) {}));
  });
  EXPECT_TRUE(contains(r, "select")) << r;
}

// A nil channel blocks for ever: Go reports "chan receive (nil chan)" and friends.
TEST_P(Deadlock, ReceiveOnNilChannel) {
  std::string r = expect_deadlock([] {
    Chan<int> nil = nullptr;
    (void)nil.recv();
  });
  EXPECT_TRUE(contains(r, "[chan receive (nil chan)")) << r;
}

TEST_P(Deadlock, SendOnNilChannelAndSelectOnNilCasesOnly) {
  std::string r = expect_deadlock([] {
    Chan<int> nil = nullptr;
    colony::go([nil] { nil.send(1); });
    colony::select(colony::on_recv(nil), colony::on_send(nil, 2));  // Go: select (no cases)
  });
  EXPECT_TRUE(contains(r, "[chan send (nil chan)")) << r;
  EXPECT_TRUE(contains(r, "[select (no cases)")) << r;
}

TEST_P(Deadlock, LockOrderInversionBetweenFibers) {
  std::string r = expect_deadlock([] {
    colony::Mutex a, b;
    colony::WaitGroup both_hold_one, done;
    both_hold_one.add(2);
    done.add(2);
    colony::go([&] {
      std::lock_guard<colony::Mutex> la(a);
      both_hold_one.done();
      both_hold_one.wait();
      std::lock_guard<colony::Mutex> lb(b);
      done.done();
    });
    colony::go([&] {
      std::lock_guard<colony::Mutex> lb(b);
      both_hold_one.done();
      both_hold_one.wait();
      std::lock_guard<colony::Mutex> la(a);
      done.done();
    });
    done.wait();
  });
  EXPECT_TRUE(contains(r, "mutex")) << r;
  EXPECT_TRUE(contains(r, "waitgroup")) << r;
}

TEST_P(Deadlock, WaitGroupAddedMoreThanDone) {
  std::string r = expect_deadlock([] {
    colony::WaitGroup wg;
    wg.add(3);
    for (int i = 0; i < 2; ++i) colony::go([&] { wg.done(); });
    wg.wait();
  });
  EXPECT_TRUE(contains(r, "waitgroup")) << r;
}

TEST_P(Deadlock, CondVarNobodySignals) {
  expect_deadlock([] {
    colony::Mutex mu;
    colony::CondVar cv;
    std::unique_lock<colony::Mutex> lk(mu);
    cv.wait(lk);
  });
}

// A plain thread blocked (no deadline) in a colony primitive cannot wake anybody: the runtime is
// reported dead once that thread sleeps, whichever noticed last (the thread or an idle M).
TEST_P(Deadlock, PlainThreadBlockedInColonyCountsAsAsleep) {
  Chan<int> to_thread, to_fiber;
  std::thread th([&] {
    if (auto v = to_thread.recv()) to_fiber.try_send(*v);
  });
  expect_deadlock([&] { (void)to_fiber.recv(); });
  to_thread.close();  // let the thread go
  th.join();
}

// Not deadlocks.

TEST_P(Deadlock, MainReturningWithParkedFibersIsNotOne) {
  // Leaked fibers are the leak checker's business: run() returns and unwinds them.
  Chan<int> never;
  expect_no_deadlock([&] {
    for (int i = 0; i < 3; ++i) colony::go([&] { (void)never.recv(); });
  });
}

TEST_P(Deadlock, SleepingFibersAreNotOne) {
  expect_no_deadlock([] {
    Chan<int> ch;
    colony::go([&] {
      colony::this_fiber::sleep_for(20ms);
      ch.send(1);
    });
    EXPECT_EQ(ch.recv(), 1);
  });
}

TEST_P(Deadlock, TimeoutsAreNotOne) {
  expect_no_deadlock([] {
    Chan<int> ch;
    int v = 0;
    EXPECT_EQ(ch.recv_for(v, 20ms), colony::ChanStatus::timeout);
    colony::Mutex mu;
    mu.lock();
    colony::go([&] { EXPECT_FALSE(mu.try_lock_for(10ms)); });
    colony::this_fiber::sleep_for(30ms);
    mu.unlock();
  });
}

TEST_P(Deadlock, AThreadThatMayStillSendIsNotOne) {
  // The thread sleeps outside colony first: it could wake the fiber, so no report.
  Chan<int> ch;
  std::thread th([&] {
    std::this_thread::sleep_for(30ms);
    ch.send(7);
  });
  expect_no_deadlock([&] { EXPECT_EQ(ch.recv(), 7); });
  th.join();
}

TEST_P(Deadlock, ThreadInATimedColonyWaitIsNotOne) {
  Chan<int> ch, never;
  std::thread th([&] {
    int v;
    (void)never.recv_for(v, 30ms);  // a deadline: it will wake up by itself
    ch.send(7);
  });
  expect_no_deadlock([&] { EXPECT_EQ(ch.recv(), 7); });
  th.join();
}

TEST_P(Deadlock, AnotherRuntimesTimerIsNotOne) {
  // The plain thread waits (no deadline) for a timer of the process's default runtime, then
  // sends: that runtime is not quiet, so this one is not dead.
  Chan<int> ch;
  std::thread th([&] {
    (void)colony::after(20ms).recv();
    ch.send(7);
  });
  expect_no_deadlock([&] { EXPECT_EQ(ch.recv(), 7); });
  th.join();
}

// Many short runs that hand work back and forth between fibers, timers and threads: no false
// report (each would fail the run).
TEST_P(Deadlock, NoFalseReportsUnderChurn) {
  const int rounds = colony::testing::kSanitized ? 20 : 200;
  for (int r = 0; r < rounds; ++r) {
    Chan<int> in, out;
    std::thread th([&] {
      for (int i = 0; i < 20; ++i) out.send(*in.recv() + 1);
    });
    expect_no_deadlock([&] {
      colony::WaitGroup wg;
      for (int i = 0; i < 20; ++i) {
        in.send(i);
        EXPECT_EQ(out.recv(), i + 1);
        wg.add(1);
        colony::go([&] {
          colony::this_fiber::yield();
          wg.done();
        });
      }
      wg.wait();
    });
    th.join();
  }
}

// The default: print the report and abort, as Go does.
TEST(DeadlockDeathTest, DefaultAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(colony::run([] {
    Chan<int> ch;
    (void)ch.recv();
  }),
               "all fibers are asleep - deadlock!(.|\n)*chan receive");
}

// A plain thread blocked on a nil channel is asleep for good, and counted so: the runtime whose
// only fiber waits on a nil channel too is reported. (In a child process: the thread never
// ends. The alarm turns a missed report into a failure instead of a hang.)
TEST(DeadlockDeathTest, PlainThreadBlockedOnNilChannelCountsAsAsleep) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        ::alarm(10);
        Chan<int> nil = nullptr;
        std::thread([nil] { (void)nil.recv(); }).detach();
        colony::run([nil] { nil.send(1); });
      },
      "all fibers are asleep - deadlock!(.|\n)*chan send \\(nil chan\\)");
}

// detect_deadlocks = false. The setup looks dead until a thread ends it, which is vouched for as
// a runtime helper (which it is not): with detection on it is reported (the control).
bool reported_with(bool detect) {
  Chan<int> go_ahead, to_fiber(1);
  std::atomic<bool> reported{false};
  std::thread th([&] {
    if (go_ahead.recv()) to_fiber.send(1);
  });
  std::thread releaser([&] {
    colony::sched::internal_thread(+1);
    // With detection on, wait for the report (bounded); off, give it the time it would need.
    auto until = std::chrono::steady_clock::now() + (detect ? 10s : 100ms);
    while (!reported.load() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(1ms);
    go_ahead.send(1);
    colony::sched::internal_thread(-1);
  });
  try {
    colony::run([&] { EXPECT_EQ(to_fiber.recv(), 1); },
                {.max_procs = 2, .detect_deadlocks = detect,
                 .on_deadlock = [&](const std::string&) { reported = true; }});
  } catch (const colony::Deadlock&) {
    EXPECT_TRUE(reported.load());
  }
  th.join();
  releaser.join();
  return reported.load();
}

TEST(DeadlockOff, DetectionCanBeTurnedOff) {
  EXPECT_TRUE(reported_with(true));
  EXPECT_FALSE(reported_with(false));
}

INSTANTIATE_TEST_SUITE_P(Procs, Deadlock, ::testing::ValuesIn(proc_counts()), procs_name);

}  // namespace
