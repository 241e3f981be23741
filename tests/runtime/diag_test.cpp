// Diagnostics: fiber dumps and the leak checker, on the classic goroutine leaks.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <atomic>

#include <chrono>
#include <functional>
#include <string>

#include <colony/testing/leak_check.hpp>

#include "test_util.hpp"

using namespace std::chrono_literals;
using colony::Chan;
using colony::testing::ProcsTest;

namespace {

class Diag : public ProcsTest {};
INSTANTIATE_TEST_SUITE_P(Procs, Diag, ::testing::ValuesIn(colony::testing::proc_counts()),
                         colony::testing::procs_name);

TEST_P(Diag, DumpShowsStateWaitReasonAndSpawnSite) {
  run_fibers([&] {
    Chan<int> never, full(1);
    full.send(0);
    auto r = colony::spawn([&] { never.recv(); });
    auto s = colony::spawn([&] { full.send(1); });
    auto sel = colony::spawn([&] { colony::select(colony::on_recv(never), colony::on_send(full, 2)); });
    std::atomic<bool> stop{false};
    auto sl = colony::spawn([&] {
      while (!stop.load()) colony::this_fiber::sleep_for(20ms);
    });
    // Until every fiber is where it will stay (a loaded machine may take a while to get there).
    std::string dump;
    auto all_there = [&] {
      for (const char* reason : {"[chan receive", "[chan send", "[select", "[sleep", "[running]"})
        if (dump.find(reason) == std::string::npos) return false;
      return true;
    };
    for (int i = 0; i < 500 && !all_there(); ++i) {
      colony::this_fiber::sleep_for(2ms);
      dump = colony::fiber_dump();
    }
    EXPECT_NE(dump.find("[chan receive"), std::string::npos) << dump;
    EXPECT_NE(dump.find("[chan send"), std::string::npos) << dump;
    EXPECT_NE(dump.find("[select"), std::string::npos) << dump;
    EXPECT_NE(dump.find("[sleep"), std::string::npos) << dump;
    EXPECT_NE(dump.find("[running]"), std::string::npos) << dump;  // this fiber
    EXPECT_NE(dump.find("diag_test.cpp:"), std::string::npos) << dump;
    EXPECT_GE(colony::fibers().size(), 5u);
    never.close();       // releases the receiver and the select
    EXPECT_EQ(*full.recv(), 0);  // makes room: the parked sender's value moves in
    stop = true;
    r.get();
    s.get();
    sel.get();
    sl.get();
  });
}

// Runs `leaky` inside a LeakCheck and returns the failure messages it produced.
std::vector<std::string> leak_failures(const std::function<void()>& leaky) {
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ALL_THREADS, &results);
    colony::testing::LeakCheck check(50ms);
    leaky();
  }
  std::vector<std::string> out;
  for (int i = 0; i < results.size(); ++i) out.push_back(results.GetTestPartResult(i).message());
  return out;
}

TEST_P(Diag, LeakCheckCatchesTheClassicChannelLeaks) {
  run_fibers([&] {
    // 1. A receiver nobody sends to.
    Chan<int> c1;
    auto f1 = leak_failures([&] { colony::go([c1]() mutable { c1.recv(); }); });
    ASSERT_EQ(f1.size(), 1u);
    EXPECT_NE(f1[0].find("chan receive"), std::string::npos) << f1[0];
    c1.close();  // the fix: close (or send)
    EXPECT_TRUE(leak_failures([&] {
                  Chan<int> c;
                  colony::go([c]() mutable { c.recv(); });
                  c.send(1);
                }).empty());
    // 2. A sender nobody receives from.
    Chan<int> c2;
    auto f2 = leak_failures([&] { colony::go([c2]() mutable { c2.send(1); }); });
    ASSERT_EQ(f2.size(), 1u);
    EXPECT_NE(f2[0].find("chan send"), std::string::npos) << f2[0];
    c2.recv();  // the fix: receive
    EXPECT_TRUE(leak_failures([&] {
                  Chan<int> c(1);  // or give the sender room
                  colony::go([c]() mutable { c.send(1); });
                }).empty());
    // 3. A select blocked on all its cases.
    Chan<int> a, b;
    auto f3 = leak_failures([&] {
      colony::go([a, b] { colony::select(colony::on_recv(a), colony::on_recv(b)); });
    });
    ASSERT_EQ(f3.size(), 1u);
    EXPECT_NE(f3[0].find("select"), std::string::npos) << f3[0];
    a.close();
    // Fixed with a done channel closed by the owner (the Context pattern).
    EXPECT_TRUE(leak_failures([&] {
                  Chan<int> x, done;
                  colony::go([x, done] { colony::select(colony::on_recv(x), colony::on_recv(done)); });
                  done.close();
                }).empty());
  });
}

TEST_P(Diag, LeakCheckCatchesTheClassicSyncLeaks) {
  run_fibers([&] {
    // 4. A lock never unlocked: the next locker waits forever.
    colony::Mutex mu;
    mu.lock();
    auto f4 = leak_failures([&] {
      colony::go([&mu] {
        mu.lock();
        mu.unlock();
      });
    });
    ASSERT_EQ(f4.size(), 1u);
    EXPECT_NE(f4[0].find("mutex"), std::string::npos) << f4[0];
    mu.unlock();  // the fix: unlock on every path (std::lock_guard, "defer mu.Unlock()")
    EXPECT_TRUE(leak_failures([&] {
                  for (int i = 0; i < 10; ++i)
                    colony::go([&mu] { std::lock_guard<colony::Mutex> lk(mu); });
                }).empty());
    // 5. A WaitGroup added more than done: its waiter never returns.
    colony::WaitGroup wg;
    wg.add(2);
    auto f5 = leak_failures([&] {
      colony::go([&wg] { wg.done(); });
      colony::go([&wg] { wg.wait(); });
    });
    ASSERT_EQ(f5.size(), 1u);
    EXPECT_NE(f5[0].find("waitgroup"), std::string::npos) << f5[0];
    wg.done();
    EXPECT_TRUE(leak_failures([&] {  // the fix: add(1) per task, done() in each
                  colony::WaitGroup ok;
                  for (int i = 0; i < 5; ++i) {
                    ok.add(1);
                    colony::go([&ok] { ok.done(); });
                  }
                  ok.wait();
                }).empty());
  });
}

}  // namespace
