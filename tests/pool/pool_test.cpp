// colony::Pool tests: the scenarios of ants' ants_test.go ported to GoogleTest, plus the features
// colony adds (wait, deadlines and contexts, statistics, the task queue, submit_future, Batch).
// Every test runs with 1, 2 and 4 processors inside a fresh runtime and fails if a fiber is left
// behind; the Threads variants submit from plain OS threads. No assertion depends on timing
// beyond generous upper bounds for progress (purging happens within a few expiry periods): the
// machine is a noisy 2-core VM.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/pool.hpp>
#include <memory>
#include <mutex>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
using colony::pool_errc;
using colony::testing::Latch;
using colony::testing::ProcsTest;

namespace {

class PoolTest : public ProcsTest {};
INSTANTIATE_TEST_SUITE_P(Procs, PoolTest, ::testing::ValuesIn(colony::testing::pool_proc_counts()),
                         colony::testing::procs_name);

constexpr int kShrink = colony::testing::kSanitized ? 10 : 1;

// eventually: polls pred (sleeping 1 ms between tries) until it holds or `limit` passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    colony::this_fiber::sleep_for(1ms);
  }
  return true;
}

// Gate: tasks block on it until it opens (parks their worker fibers).
class Gate {
 public:
  void wait() { latch_.wait(); }
  void open() {
    if (!opened_.exchange(true)) latch_.count_down();
  }

 private:
  Latch latch_{1};
  std::atomic<bool> opened_{false};
};

// on_thread: runs fn on a plain thread and waits for it through a colony primitive (joining
// right away would block this fiber's processor).
template <class F>
void on_thread(F fn) {
  Latch done(1);
  std::thread t([&] {
    fn();
    done.count_down();
  });
  done.wait();
  t.join();
}

// ------------------------------------------------------------------------ ants_test.go ports

// TestAntsPoolWaitToGetWorker / ...PreMalloc: many more tasks than workers; submitters wait.
void wait_to_get_worker(bool pre_alloc) {
  const int kTasks = 20000 / kShrink, kCap = 1000 / kShrink;
  colony::Pool pool(kCap, {.pre_alloc = pre_alloc});
  std::atomic<int> ran{0};
  colony::WaitGroup wg;
  for (int i = 0; i < kTasks; ++i) {
    wg.add(1);
    ASSERT_FALSE(pool.submit([&] {
      colony::this_fiber::sleep_for(100us);
      ran.fetch_add(1, std::memory_order_relaxed);
      wg.done();
    }));
  }
  wg.wait();
  EXPECT_EQ(ran.load(), kTasks);
  const colony::PoolStats s = pool.stats();
  EXPECT_LE(s.peak_running, kCap);
  EXPECT_EQ(s.submitted, static_cast<std::uint64_t>(kTasks));
  pool.wait();
  EXPECT_EQ(pool.stats().completed, static_cast<std::uint64_t>(kTasks));
}

TEST_P(PoolTest, WaitToGetWorker) {
  run_fibers([] { wait_to_get_worker(false); });
}
TEST_P(PoolTest, WaitToGetWorkerPreMalloc) {
  run_fibers([] { wait_to_get_worker(true); });
}

TEST_P(PoolTest, WaitToGetWorkerFromThreads) {
  run_fibers([] {
    const int kPerThread = 2000 / kShrink;
    colony::Pool pool(16);
    std::atomic<int> ran{0};
    std::vector<std::thread> threads;
    Latch done(3);
    for (int t = 0; t < 3; ++t)
      threads.emplace_back([&] {
        for (int i = 0; i < kPerThread; ++i)
          EXPECT_FALSE(pool.submit([&] { ran.fetch_add(1, std::memory_order_relaxed); }));
        done.count_down();
      });
    done.wait();
    for (auto& t : threads) t.join();
    pool.wait();  // from a fiber
    EXPECT_EQ(ran.load(), 3 * kPerThread);
    on_thread([&] { pool.wait(); });  // and from a thread
    EXPECT_LE(pool.stats().peak_running, 16);
  });
}

// TestAntsPoolWithFuncWaitToGetWorker / ...PreMalloc.
TEST_P(PoolTest, WithFuncWaitToGetWorker) {
  run_fibers([] {
    for (bool pre_alloc : {false, true}) {
      const int kTasks = 5000 / kShrink;
      colony::WaitGroup wg;
      std::atomic<long> sum{0};
      colony::PoolWithFunc<int> pool(100,
                                     [&](int i) {
                                       colony::this_fiber::sleep_for(50us);
                                       sum.fetch_add(i, std::memory_order_relaxed);
                                       wg.done();
                                     },
                                     {.pre_alloc = pre_alloc});
      for (int i = 0; i < kTasks; ++i) {
        wg.add(1);
        ASSERT_FALSE(pool.invoke(i));
      }
      wg.wait();
      EXPECT_EQ(sum.load(), static_cast<long>(kTasks) * (kTasks - 1) / 2);
      EXPECT_LE(pool.stats().peak_running, 100);
    }
  });
}

// TestAntsPoolGetWorkerFromCache: idle workers are reused, not restarted.
TEST_P(PoolTest, GetWorkerFromCache) {
  run_fibers([] {
    for (bool pre_alloc : {false, true}) {
      colony::Pool pool(10000, {.pre_alloc = pre_alloc, .disable_purge = true});
      Gate gate;
      for (int i = 0; i < 10; ++i) ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
      gate.open();
      pool.wait();
      const std::uint64_t started = pool.stats().workers_started;
      EXPECT_EQ(started, 10u);
      for (int round = 0; round < 5; ++round) {
        ASSERT_TRUE(eventually([&] { return pool.stats().idle == 10; }));
        for (int i = 0; i < 10; ++i) ASSERT_FALSE(pool.submit([] {}));
        pool.wait();
      }
      // Nothing new was started: 10 tasks at a time always find idle workers.
      EXPECT_EQ(pool.stats().workers_started, started);
    }
  });
}

// TestPanicHandler / TestPanicHandlerPreMalloc: the handler sees every panic, and (unlike ants,
// where a panicking worker exits) the worker stays and runs the next task.
TEST_P(PoolTest, PanicHandler) {
  run_fibers([] {
    for (bool pre_alloc : {false, true}) {
      std::atomic<int> panics{0};
      std::vector<std::string> messages;
      std::mutex mu;
      colony::WaitGroup wg;
      auto handler = [&](std::exception_ptr e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::lock_guard<std::mutex> lk(mu);
          messages.emplace_back(ex.what());
        } catch (int v) {
          std::lock_guard<std::mutex> lk(mu);
          messages.push_back("int " + std::to_string(v));
        }
        panics.fetch_add(1);
        wg.done();
      };
      colony::Pool p0(10, {.pre_alloc = pre_alloc, .panic_handler = handler});
      wg.add(1);
      ASSERT_FALSE(p0.submit([] { throw std::runtime_error("Oops!"); }));
      wg.wait();
      EXPECT_EQ(panics.load(), 1);
      EXPECT_EQ(p0.running(), 1);  // the worker survived
      ASSERT_TRUE(eventually([&] { return p0.stats().idle == 1; }));
      wg.add(1);
      ASSERT_FALSE(p0.submit([] { throw 42; }));  // not a std::exception
      wg.wait();
      ASSERT_TRUE(eventually([&] { return p0.stats().idle == 1; }));
      std::atomic<bool> ran{false};
      ASSERT_FALSE(p0.submit([&] { ran = true; }));
      p0.wait();
      EXPECT_TRUE(ran.load());
      EXPECT_EQ(p0.stats().workers_started, 1u);  // one worker did all three
      EXPECT_EQ(p0.stats().panics, 2u);
      EXPECT_EQ(p0.stats().completed, 3u);

      colony::PoolWithFunc<std::string> p1(10,
                                           [](std::string s) { throw std::invalid_argument(s); },
                                           {.pre_alloc = pre_alloc, .panic_handler = handler});
      wg.add(1);
      ASSERT_FALSE(p1.invoke("Oops again!"));
      wg.wait();
      EXPECT_EQ(panics.load(), 3);
      std::lock_guard<std::mutex> lk(mu);
      EXPECT_EQ(messages, (std::vector<std::string>{"Oops!", "int 42", "Oops again!"}));
    }
  });
}

// TestPoolPanicWithoutHandler / ...PreMalloc: logged with what() and the submit site.
TEST_P(PoolTest, PanicWithoutHandler) {
  run_fibers([] {
    for (bool pre_alloc : {false, true}) {
      std::vector<std::string> lines;
      std::mutex mu;
      colony::Pool pool(10, {.pre_alloc = pre_alloc, .logger = [&](std::string_view l) {
                               std::lock_guard<std::mutex> lk(mu);
                               lines.emplace_back(l);
                             }});
      ASSERT_FALSE(pool.submit([] { throw std::runtime_error("Oops!"); }));
      ASSERT_FALSE(pool.submit([] { throw 7; }));
      pool.wait();
      std::lock_guard<std::mutex> lk(mu);
      ASSERT_EQ(lines.size(), 2u);
      std::sort(lines.begin(), lines.end());
      for (const auto& l : lines) {
        EXPECT_NE(l.find("colony::Pool: task panicked"), std::string::npos) << l;
        EXPECT_NE(l.find("pool_test.cpp:"), std::string::npos) << l;
      }
      EXPECT_NE(lines[0].find("non-std exception of type int"), std::string::npos) << lines[0];
      EXPECT_NE(lines[1].find("std::runtime_error: Oops!"), std::string::npos) << lines[1];
    }
    // The default logger (stderr) and a handler that throws are survivable too.
    colony::Pool quiet(1, {.panic_handler = [](std::exception_ptr) { throw 1; },
                           .logger = [](std::string_view) { throw 2; }});
    ASSERT_FALSE(quiet.submit([] { throw std::runtime_error("handler throws"); }));
    colony::Pool loud(1);
    ASSERT_FALSE(loud.submit([] { throw std::runtime_error("expected test panic (stderr)"); }));
    quiet.wait();
    loud.wait();
    EXPECT_EQ(quiet.stats().panics, 1u);
    EXPECT_EQ(loud.running(), 1);
  });
}

// TestPurgePool / TestPurgePreMallocPool: idle workers are retired after expiry_duration.
TEST_P(PoolTest, Purge) {
  run_fibers([] {
    for (bool pre_alloc : {false, true}) {
      const int kSize = 50;
      colony::Pool pool(kSize, {.expiry_duration = 50ms, .pre_alloc = pre_alloc});
      Gate gate;
      for (int i = 0; i < kSize; ++i)
        ASSERT_FALSE(pool.submit([&gate, i] {
          gate.wait();
          colony::this_fiber::sleep_for(std::chrono::milliseconds(i % 10));
        }));
      EXPECT_EQ(pool.running(), kSize);
      EXPECT_EQ(pool.free(), 0);
      gate.open();
      EXPECT_TRUE(eventually([&] { return pool.running() == 0; }))
          << "still running: " << pool.running();
      EXPECT_EQ(pool.stats().workers_purged, static_cast<std::uint64_t>(kSize));
      // The pool works after a purge (the purger restarts with the next idle worker).
      ASSERT_FALSE(pool.submit([] {}));
      pool.wait();
      EXPECT_TRUE(eventually([&] { return pool.running() == 0; }));
    }
    // PoolWithFunc too.
    colony::PoolWithFunc<int> pf(10, [](int) {}, {.expiry_duration = 20ms});
    for (int i = 0; i < 10; ++i) ASSERT_FALSE(pf.invoke(i));
    EXPECT_TRUE(eventually([&] { return pf.running() == 0; }));
  });
}

// TestWithDisablePurgePool / ...AndWithExpiration: workers stay until release.
TEST_P(PoolTest, DisablePurge) {
  run_fibers([] {
    const int kWorkers = 10;
    colony::Pool pool(kWorkers, {.expiry_duration = 20ms, .disable_purge = true});
    Gate gate;
    Latch started(kWorkers);
    for (int i = 0; i < kWorkers; ++i)
      ASSERT_FALSE(pool.submit([&] {
        started.count_down();
        gate.wait();
      }));
    started.wait();
    EXPECT_EQ(pool.running(), kWorkers);
    EXPECT_EQ(pool.free(), 0);
    gate.open();
    pool.wait();
    colony::this_fiber::sleep_for(100ms);  // 5 expiry periods: nothing is purged
    EXPECT_EQ(pool.running(), kWorkers);
    EXPECT_EQ(pool.stats().workers_purged, 0u);
    EXPECT_FALSE(pool.release_timeout(10s));
    EXPECT_EQ(pool.running(), 0);
    EXPECT_EQ(pool.free(), kWorkers);
    // A negative expiry is fine when purging is off (as ants).
    colony::Pool ok(1, {.expiry_duration = -1s, .disable_purge = true});
  });
}

// TestNonblockingSubmit (and WithFunc): a full nonblocking pool refuses at once.
void nonblocking_submit() {
  const int kSize = 10;
  colony::Pool pool(kSize, {.nonblocking = true});
  Gate gate, f_gate;
  Latch f_done(1);
  for (int i = 0; i < kSize - 1; ++i) ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
  ASSERT_FALSE(pool.submit([&] {
    f_gate.wait();
    f_done.count_down();
  }));
  EXPECT_EQ(pool.submit([] {}), pool_errc::pool_overload);
  EXPECT_EQ(pool.stats().rejected, 1u);
  f_gate.open();
  f_done.wait();
  ASSERT_TRUE(eventually([&] { return pool.stats().idle == 1; }));
  EXPECT_FALSE(pool.submit([] {}));
  gate.open();
}

TEST_P(PoolTest, NonblockingSubmit) {
  run_fibers([] { nonblocking_submit(); });
}
TEST_P(PoolTest, NonblockingSubmitFromThread) {
  run_fibers([] { on_thread([] { nonblocking_submit(); }); });
}

TEST_P(PoolTest, NonblockingInvoke) {
  run_fibers([] {
    Gate gate;
    colony::PoolWithFunc<int> pool(4, [&](int) { gate.wait(); }, {.nonblocking = true});
    for (int i = 0; i < 4; ++i) ASSERT_FALSE(pool.invoke(i));
    EXPECT_EQ(pool.invoke(5), pool_errc::pool_overload);
    gate.open();
    pool.wait();
    EXPECT_FALSE(pool.invoke(6));
  });
}

// TestMaxBlockingSubmit (and WithFunc): at most max_blocking_tasks submitters wait.
void max_blocking_submit(bool blocked_on_thread) {
  const int kSize = 10;
  colony::Pool pool(kSize, {.max_blocking_tasks = 1});
  Gate gate;
  for (int i = 0; i < kSize; ++i) ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
  std::error_code blocked_result = pool_errc::timeout;
  Latch blocked_done(1);
  std::thread t;
  auto blocked = [&] {
    blocked_result = pool.submit([] {});  // waits: one blocked submitter
    blocked_done.count_down();
  };
  if (blocked_on_thread)
    t = std::thread(blocked);
  else
    colony::go(blocked);  // a named callable: go is a function (issue 17, item 1)
  ASSERT_TRUE(eventually([&] { return pool.waiting() == 1; }));
  EXPECT_EQ(pool.submit([] {}), pool_errc::pool_overload);  // the limit is reached
  gate.open();
  blocked_done.wait();
  if (t.joinable()) t.join();
  EXPECT_FALSE(blocked_result);
  EXPECT_EQ(pool.waiting(), 0);
}

TEST_P(PoolTest, MaxBlockingSubmit) {
  run_fibers([] { max_blocking_submit(false); });
}
TEST_P(PoolTest, MaxBlockingSubmitBlockedThread) {
  run_fibers([] { max_blocking_submit(true); });
}

TEST_P(PoolTest, MaxBlockingInvoke) {
  run_fibers([] {
    Gate gate;
    colony::PoolWithFunc<int> pool(2, [&](int) { gate.wait(); }, {.max_blocking_tasks = 1});
    ASSERT_FALSE(pool.invoke(1));
    ASSERT_FALSE(pool.invoke(2));
    Latch done(1);
    std::error_code r = pool_errc::timeout;
    colony::go([&] {
      r = pool.invoke(3);
      done.count_down();
    });
    ASSERT_TRUE(eventually([&] { return pool.waiting() == 1; }));
    EXPECT_EQ(pool.invoke(4), pool_errc::pool_overload);
    gate.open();
    done.wait();
    EXPECT_FALSE(r);
  });
}

// TestPoolTuneScaleUp, and scaling down.
TEST_P(PoolTest, TuneScaleUp) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(2);
    for (int i = 0; i < 2; ++i) ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    EXPECT_EQ(pool.running(), 2);
    pool.tune(3);  // scale up by one
    EXPECT_EQ(pool.cap(), 3);
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    EXPECT_EQ(pool.running(), 3);
    // Five submitters block; tune(8) lets all of them start a worker.
    colony::WaitGroup wg;
    for (int i = 0; i < 5; ++i) {
      wg.add(1);
      colony::go([&] {
        EXPECT_FALSE(pool.submit([&] { gate.wait(); }));
        wg.done();
      });
    }
    ASSERT_TRUE(eventually([&] { return pool.waiting() == 5; }));
    pool.tune(8);
    wg.wait();
    EXPECT_EQ(pool.running(), 8);
    EXPECT_EQ(pool.waiting(), 0);
    gate.open();
    pool.wait();

    // No-ops: the same size, size <= 0, pre_alloc.
    pool.tune(8);
    pool.tune(0);
    pool.tune(-3);
    EXPECT_EQ(pool.cap(), 8);
    colony::Pool pre(4, {.pre_alloc = true});
    pre.tune(10);
    EXPECT_EQ(pre.cap(), 4);
  });
}

TEST_P(PoolTest, TuneScaleDown) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(8, {.disable_purge = true});
    Latch started(8);
    for (int i = 0; i < 8; ++i)
      ASSERT_FALSE(pool.submit([&] {
        started.count_down();
        gate.wait();
      }));
    started.wait();
    pool.tune(3);
    EXPECT_EQ(pool.cap(), 3);
    EXPECT_EQ(pool.free(), -5);
    gate.open();
    pool.wait();
    // Busy workers retire as they come back, down to the new capacity.
    ASSERT_TRUE(eventually([&] { return pool.running() == 3; }));
    EXPECT_EQ(pool.stats().workers_retired, 5u);
    // Idle surplus retires at once.
    pool.tune(1);
    ASSERT_TRUE(eventually([&] { return pool.running() == 1; }));
    std::atomic<int> ran{0};
    for (int i = 0; i < 20; ++i) ASSERT_FALSE(pool.submit([&] { ran.fetch_add(1); }));
    pool.wait();
    EXPECT_EQ(ran.load(), 20);
    EXPECT_LE(pool.running(), 1);
  });
}

// TestReleaseTimeout / TestReleaseWhenRunningPool: release waits for running tasks.
TEST_P(PoolTest, ReleaseTimeout) {
  run_fibers([] {
    colony::Pool pool(10);
    std::atomic<int> finished{0};
    for (int i = 0; i < 5; ++i)
      ASSERT_FALSE(pool.submit([&] {
        colony::this_fiber::sleep_for(50ms);
        finished.fetch_add(1);
      }));
    EXPECT_NE(pool.running(), 0);
    EXPECT_FALSE(pool.release_timeout(10s));
    EXPECT_EQ(finished.load(), 5);  // running tasks finished
    EXPECT_EQ(pool.running(), 0);
    EXPECT_TRUE(pool.is_closed());
    EXPECT_EQ(pool.release_timeout(1s), pool_errc::pool_closed);  // as ants
    EXPECT_EQ(pool.submit([] {}), pool_errc::pool_closed);

    colony::PoolWithFunc<std::chrono::milliseconds> pf(
        10, [](std::chrono::milliseconds d) { colony::this_fiber::sleep_for(d); });
    for (int i = 0; i < 5; ++i) ASSERT_FALSE(pf.invoke(20ms));
    EXPECT_FALSE(pf.release_timeout(10s));
    EXPECT_EQ(pf.invoke(1ms), pool_errc::pool_closed);
  });
}

TEST_P(PoolTest, ReleaseTimeoutExpires) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1);
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(pool.release_timeout(30ms), pool_errc::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);
    EXPECT_EQ(pool.running(), 1);  // still running its task
    gate.open();
    // ~Pool waits for it.
  });
}

// Release wakes blocked submitters with pool_closed, from fibers and threads.
TEST_P(PoolTest, ReleaseWakesWaiters) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1);
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    std::error_code fiber_result, thread_result;
    Latch done(2);
    colony::go([&] {
      fiber_result = pool.submit([] {});
      done.count_down();
    });
    std::thread t([&] {
      thread_result = pool.submit([] {});
      done.count_down();
    });
    ASSERT_TRUE(eventually([&] { return pool.waiting() == 2; }));
    pool.release();
    done.wait();
    t.join();
    EXPECT_EQ(fiber_result, pool_errc::pool_closed);
    EXPECT_EQ(thread_result, pool_errc::pool_closed);
    gate.open();
  });
}

// TestRebootNewPool / TestRebootNewPoolCalc / ...WithPreAllocCalc.
TEST_P(PoolTest, Reboot) {
  run_fibers([] {
    for (bool pre_alloc : {false, true}) {
      colony::Pool pool(10, {.pre_alloc = pre_alloc});
      for (int round = 0; round < 2; ++round) {
        std::atomic<long> sum{0};
        for (int i = 0; i < 1000; ++i) ASSERT_FALSE(pool.submit([&sum, i] { sum += i; }));
        pool.wait();
        EXPECT_EQ(sum.load(), 499500);
        EXPECT_FALSE(pool.release_timeout(10s));
        EXPECT_EQ(pool.submit([] {}), pool_errc::pool_closed);
        pool.reboot();
        EXPECT_FALSE(pool.is_closed());
      }
    }
    Latch one(1);
    colony::PoolWithFunc<int> pf(10, [&](int) { one.count_down(); });
    EXPECT_FALSE(pf.release_timeout(10s));
    EXPECT_EQ(pf.invoke(1), pool_errc::pool_closed);
    pf.reboot();
    EXPECT_FALSE(pf.invoke(1));
    one.wait();
    pf.reboot();  // no-op on an open pool
  });
}

// TestRebootDefaultPool / TestDefaultPoolReleaseTimeout: the default pool lives on the default
// runtime, so its workers are not this runtime's fibers.
TEST_P(PoolTest, DefaultPool) {
  run_fibers([] {
    colony::Pool& dp = colony::default_pool();
    EXPECT_EQ(dp.cap(), INT32_MAX);
    dp.reboot();  // nothing to do
    Latch ran(1);
    ASSERT_FALSE(colony::submit([&] { ran.count_down(); }));
    ran.wait();
    for (int i = 0; i < 5; ++i)
      ASSERT_FALSE(colony::submit([] { colony::this_fiber::sleep_for(20ms); }));
    EXPECT_NE(dp.running(), 0);
    EXPECT_FALSE(dp.release_timeout(10s));
    EXPECT_EQ(colony::submit([] {}), pool_errc::pool_closed);
    dp.reboot();
    Latch again(1);
    ASSERT_FALSE(colony::submit([&] { again.count_down(); }));
    again.wait();
    on_thread([] {
      Latch t(1);
      EXPECT_FALSE(colony::submit([&] { t.count_down(); }));
      t.wait();
    });
  });
}

// TestInfinitePool / TestInfinitePoolWithFunc: capacity <= 0 is unbounded; nested submits work.
TEST_P(PoolTest, InfinitePool) {
  run_fibers([] {
    colony::Pool pool(-1);
    Gate gate;
    Latch inner_started(1);
    ASSERT_FALSE(pool.submit([&] {
      EXPECT_FALSE(pool.submit([&] {
        inner_started.count_down();
        gate.wait();
      }));
    }));
    inner_started.wait();
    ASSERT_TRUE(eventually([&] { return pool.stats().workers_started == 2; }));
    EXPECT_EQ(pool.running(), 2);
    EXPECT_EQ(pool.free(), -1);
    EXPECT_EQ(pool.cap(), -1);
    pool.tune(10);
    EXPECT_EQ(pool.cap(), -1);
    gate.open();

    Gate gate2;
    colony::PoolWithFunc<int> pf(0, [&](int) { gate2.wait(); });
    EXPECT_EQ(pf.cap(), -1);
    ASSERT_FALSE(pf.invoke(1));
    ASSERT_FALSE(pf.invoke(2));
    EXPECT_EQ(pf.running(), 2);
    EXPECT_EQ(pf.free(), -1);
    EXPECT_THROW(colony::Pool(-1, {.pre_alloc = true}), std::system_error);
    EXPECT_THROW(colony::PoolWithFunc<int>(0, [](int) {}, {.pre_alloc = true}),
                 std::system_error);
    gate2.open();
  });
}

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

// ants' package-level functions (ants.Submit, Running, Cap, Free, Release, ReleaseTimeout,
// Reboot) act on the default pool, in namespace colony::pool.
TEST_P(PoolTest, PackageLevelFunctionsUseTheDefaultPool) {
  run_fibers([] {
    EXPECT_EQ(colony::pool::cap(), colony::kDefaultPoolSize);
    colony::pool::reboot();  // open already: nothing to do
    Gate gate;
    Latch started(3);
    for (int i = 0; i < 3; ++i)
      ASSERT_FALSE(colony::pool::submit([&] {
        started.count_down();
        gate.wait();
      }));
    started.wait();
    EXPECT_EQ(colony::pool::running(), 3);
    EXPECT_EQ(colony::pool::free(), colony::kDefaultPoolSize - 3);
    EXPECT_EQ(colony::pool::release_timeout(1ms), pool_errc::timeout);
    EXPECT_EQ(colony::pool::submit([] {}), pool_errc::pool_closed);
    gate.open();
    colony::default_pool().wait();
    colony::pool::reboot();
    Latch ran(1);
    ASSERT_FALSE(colony::pool::submit([&] { ran.count_down(); }));
    ran.wait();
    colony::pool::release();
    EXPECT_EQ(colony::pool::submit([] {}), pool_errc::pool_closed);
    colony::pool::reboot();
    EXPECT_EQ(colony::default_pool().cap(), colony::kDefaultPoolSize);
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

// ------------------------------------------------------------------------ beyond ants

TEST_P(PoolTest, WaitForAllTasks) {
  run_fibers([] {
    colony::Pool pool(4);
    std::atomic<int> done{0};
    EXPECT_TRUE(pool.wait_for(1ms));  // nothing submitted
    for (int i = 0; i < 100; ++i)
      ASSERT_FALSE(pool.submit([&] {
        colony::this_fiber::sleep_for(100us);
        done.fetch_add(1);
      }));
    pool.wait();
    EXPECT_EQ(done.load(), 100);
    EXPECT_EQ(pool.pending(), 0);
    EXPECT_FALSE(pool.is_closed());  // wait() does not release
    Gate gate;
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    EXPECT_FALSE(pool.wait_for(10ms));
    gate.open();
    EXPECT_TRUE(pool.wait_for(10s));
  });
}

TEST_P(PoolTest, SubmitFuture) {
  run_fibers([] {
    colony::Pool pool(2);
    auto f1 = pool.submit_future([] { return 42; });
    auto f2 = pool.submit_future([]() -> std::string { throw std::out_of_range("nope"); });
    auto f3 = pool.submit_future([] {});
    EXPECT_EQ(f1.get(), 42);
    EXPECT_THROW(f2.get(), std::out_of_range);
    f3.get();
    pool.wait();
    EXPECT_EQ(pool.stats().panics, 0u);  // the future got the exception
    pool.release();
    auto f4 = pool.submit_future([] { return 1; });
    try {
      f4.get();
      ADD_FAILURE() << "no error from a closed pool";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), pool_errc::pool_closed);
    }
    // A move-only callable and a large capture (stored on the heap).
    std::array<char, 200> big{};
    big[199] = 7;
    colony::Pool p2(1);
    auto f5 = p2.submit_future([p = std::make_unique<int>(5), big] { return *p + big[199]; });
    EXPECT_EQ(f5.get(), 12);
  });
}

TEST_P(PoolTest, SubmitDeadline) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1);
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(pool.submit_for([] {}, 20ms), pool_errc::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
    EXPECT_EQ(pool.submit_until([] {}, std::chrono::steady_clock::now() - 1s), pool_errc::timeout);
    std::error_code thread_result;
    on_thread([&] { thread_result = pool.submit_for([] {}, 10ms); });
    EXPECT_EQ(thread_result, pool_errc::timeout);
    EXPECT_EQ(pool.waiting(), 0);
    EXPECT_EQ(pool.stats().rejected, 3u);
    // A deadline that is not reached: accepted once the worker frees up.
    colony::go([&] {
      colony::this_fiber::sleep_for(5ms);
      gate.open();
    });
    EXPECT_FALSE(pool.submit_for([] {}, 10s));
    pool.wait();
  });
}

TEST_P(PoolTest, SubmitWithContext) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1);
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    {  // cancelled while waiting
      auto [ctx, cancel] = colony::with_cancel(colony::background());
      colony::go([cancel = cancel] {
        colony::this_fiber::sleep_for(5ms);
        cancel();
      });
      EXPECT_EQ(pool.submit(ctx, [] {}), colony::context_errc::canceled);
    }
    {  // deadline while waiting, from a thread
      auto [ctx, cancel] = colony::with_timeout(colony::background(), 10ms);
      std::error_code r;
      on_thread([&, ctx = ctx] { r = pool.submit(ctx, [] {}); });
      EXPECT_EQ(r, colony::context_errc::deadline_exceeded);
      cancel();
    }
    {  // already done: refused even though it would wait anyway
      auto [ctx, cancel] = colony::with_cancel(colony::background());
      cancel();
      EXPECT_EQ(pool.submit(ctx, [] {}), colony::context_errc::canceled);
    }
    {  // not cancelled: accepted when the worker comes back
      auto [ctx, cancel] = colony::with_cancel(colony::background());
      colony::go([&] {
        colony::this_fiber::sleep_for(5ms);
        gate.open();
      });
      std::atomic<bool> ran{false};
      EXPECT_FALSE(pool.submit(ctx, [&] { ran = true; }));
      pool.wait();
      EXPECT_TRUE(ran.load());
      cancel();
    }
    EXPECT_EQ(pool.waiting(), 0);
  });
}

TEST_P(PoolTest, Stats) {
  run_fibers([] {
    colony::Pool pool(3, {.nonblocking = true, .panic_handler = [](std::exception_ptr) {}});
    Gate gate;
    for (int i = 0; i < 3; ++i) ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    EXPECT_EQ(pool.submit([] {}), pool_errc::pool_overload);
    colony::PoolStats s = pool.stats();
    EXPECT_EQ(s.running, 3);
    EXPECT_EQ(s.peak_running, 3);
    EXPECT_EQ(s.rejected, 1u);
    EXPECT_EQ(s.submitted, 3u);
    EXPECT_EQ(s.workers_started, 3u);
    gate.open();
    pool.wait();
    ASSERT_TRUE(eventually([&] { return pool.stats().idle == 3; }));
    ASSERT_FALSE(pool.submit([] { throw 1; }));
    pool.wait();
    s = pool.stats();
    EXPECT_EQ(s.completed, 4u);
    EXPECT_EQ(s.panics, 1u);
    EXPECT_EQ(s.submitted, 4u);
    EXPECT_EQ(s.workers_started, 3u);
    EXPECT_TRUE(eventually([&] { return pool.stats().idle == pool.running(); }));
  });
}

TEST_P(PoolTest, TaskQueue) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1, {.nonblocking = true, .queue_capacity = 3});
    std::vector<int> order;
    std::mutex mu;
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    for (int i = 0; i < 3; ++i)
      ASSERT_FALSE(pool.submit([&, i] {
        std::lock_guard<std::mutex> lk(mu);
        order.push_back(i);
      }));
    EXPECT_EQ(pool.queued(), 3u);
    EXPECT_EQ(pool.running(), 1);
    EXPECT_EQ(pool.submit([] {}), pool_errc::pool_overload);  // beyond the queue
    gate.open();
    pool.wait();
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));  // FIFO, on the one worker
    EXPECT_EQ(pool.queued(), 0u);
    EXPECT_EQ(pool.stats().workers_started, 1u);
  });
}

TEST_P(PoolTest, TaskQueueBlockingSubmitterAndRelease) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(2, {.queue_capacity = 2});
    std::atomic<int> ran{0};
    for (int i = 0; i < 2; ++i)
      ASSERT_FALSE(pool.submit([&] {
        gate.wait();
        ran.fetch_add(1);
      }));
    for (int i = 0; i < 2; ++i) ASSERT_FALSE(pool.submit([&] { ran.fetch_add(1); }));
    // The queue is full: the next submitter waits, and gets the queue slot freed first.
    Latch done(1);
    std::error_code waited = pool_errc::timeout;
    colony::go([&] {
      waited = pool.submit([&] { ran.fetch_add(1); });
      done.count_down();
    });
    ASSERT_TRUE(eventually([&] { return pool.waiting() == 1; }));
    // Release with queued tasks and a waiter: the waiter is refused, queued tasks still run.
    pool.release();
    done.wait();
    EXPECT_EQ(waited, pool_errc::pool_closed);
    EXPECT_EQ(pool.queued(), 2u);
    gate.open();
    ASSERT_TRUE(eventually([&] { return ran.load() == 4; }));
    EXPECT_EQ(pool.queued(), 0u);
  });
}

TEST_P(PoolTest, TaskQueueReleaseTimeoutReportsQueued) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1, {.queue_capacity = 5});
    std::atomic<int> ran{0};
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    for (int i = 0; i < 5; ++i) ASSERT_FALSE(pool.submit([&] { ran.fetch_add(1); }));
    EXPECT_EQ(pool.release_timeout(20ms), pool_errc::timeout);  // 5 still queued
    EXPECT_EQ(pool.queued(), 5u);
    gate.open();
    pool.wait();
    EXPECT_EQ(ran.load(), 5);  // none was dropped
  });
}

TEST_P(PoolTest, TuneUpStartsWorkersForQueuedTasks) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1, {.queue_capacity = 4});
    Latch queued_started(2);
    ASSERT_FALSE(pool.submit([&] { gate.wait(); }));
    for (int i = 0; i < 2; ++i) ASSERT_FALSE(pool.submit([&] { queued_started.count_down(); }));
    EXPECT_EQ(pool.queued(), 2u);
    pool.tune(3);
    queued_started.wait();  // ran on the new workers while the first is still blocked
    EXPECT_EQ(pool.queued(), 0u);
    gate.open();
  });
}

TEST_P(PoolTest, Batch) {
  run_fibers([] {
    colony::Pool pool(4);
    const int kTasks = 40;
    colony::Batch<int> batch(pool, kTasks);
    for (int i = 0; i < kTasks; ++i)
      ASSERT_FALSE(batch.queue([i] {
        colony::this_fiber::sleep_for(std::chrono::microseconds((i * 37) % 200));
        if (i == 13) throw std::runtime_error("thirteen");
        return i * i;
      }));
    batch.queue_complete();
    std::set<std::size_t> seen;
    long sum = 0;
    int errors = 0;
    for (colony::BatchResult<int>& r : batch.results()) {
      EXPECT_TRUE(seen.insert(r.index).second);
      if (r.error) {
        ++errors;
        EXPECT_EQ(r.index, 13u);
        EXPECT_THROW(r.get(), std::runtime_error);
      } else {
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(*r.value, static_cast<int>(r.index * r.index));
        sum += *r.value;
      }
    }
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(kTasks));
    EXPECT_EQ(errors, 1);
    EXPECT_EQ(sum, 39L * 40 * 79 / 6 - 169);
    EXPECT_THROW(batch.queue([] { return 0; }), std::logic_error);
    EXPECT_EQ(pool.stats().panics, 0u);
  });
}

TEST_P(PoolTest, BatchCancel) {
  run_fibers([] {
    Gate gate;
    colony::Pool pool(1, {.queue_capacity = 16});
    colony::Batch<void> batch(pool, 11);
    Latch first_started(1);
    ASSERT_FALSE(batch.queue([&](const colony::Context& ctx) {
      first_started.count_down();
      gate.wait();
      EXPECT_TRUE(ctx.is_done());  // cancel() cancelled the batch's context
    }));
    first_started.wait();
    std::atomic<int> ran{0};
    for (int i = 0; i < 10; ++i) ASSERT_FALSE(batch.queue([&] { ran.fetch_add(1); }));
    EXPECT_THROW(batch.queue([] {}), std::length_error);
    batch.cancel();
    gate.open();
    batch.queue_complete();
    int canceled = 0, ok = 0;
    for (auto& r : batch.results()) {
      if (r.canceled) {
        ++canceled;
        EXPECT_THROW(r.get(), std::system_error);
      } else if (r.ok()) {
        ++ok;
      }
    }
    EXPECT_EQ(ok, 1);
    EXPECT_EQ(canceled, 10);
    EXPECT_EQ(ran.load(), 0);
  });
}

TEST_P(PoolTest, BatchOnClosedPoolAndDestructor) {
  run_fibers([] {
    colony::Pool pool(2);
    {
      colony::Batch<int> batch(pool, 4);
      std::atomic<int> ran{0};
      for (int i = 0; i < 3; ++i)
        ASSERT_FALSE(batch.queue([&] {
          colony::this_fiber::sleep_for(1ms);
          return ran.fetch_add(1);
        }));
      // ~Batch waits for the three without reading their results.
    }
    pool.release();
    colony::Batch<int> batch(pool, 1);
    EXPECT_EQ(batch.queue([] { return 1; }), pool_errc::pool_closed);
    batch.queue_complete();
    auto r = batch.results().recv();
    ASSERT_TRUE(r.has_value());
    ASSERT_TRUE(r->error);
    try {
      r->get();
      ADD_FAILURE();
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), pool_errc::pool_closed);
    }
    EXPECT_FALSE(batch.results().recv().has_value());  // closed
    EXPECT_THROW(colony::Batch<int>(pool, 0), std::invalid_argument);
  });
}

// A pool destroyed with idle and busy workers: ~Pool waits, nothing leaks (run_fibers checks).
TEST_P(PoolTest, DestroyWithWorkers) {
  run_fibers([] {
    std::atomic<int> finished{0};
    {
      colony::Pool pool(8, {.disable_purge = true});
      for (int i = 0; i < 8; ++i)
        ASSERT_FALSE(pool.submit([&, i] {
          colony::this_fiber::sleep_for(std::chrono::milliseconds(i % 2 ? 10 : 0));
          finished.fetch_add(1);
        }));
    }
    EXPECT_EQ(finished.load(), 8);
    // And from a plain thread, whose workers live on the default runtime.
    on_thread([&] {
      colony::Pool pool(4);
      for (int i = 0; i < 8; ++i) EXPECT_FALSE(pool.submit([&] { finished.fetch_add(1); }));
    });
    EXPECT_EQ(finished.load(), 16);
  });
}

// The deadlock ants documents: every worker of a bounded, blocking pool waiting to submit to
// the same pool. A nonblocking pool turns it into pool_overload instead.
TEST_P(PoolTest, NestedSubmitNonblocking) {
  run_fibers([] {
    colony::Pool pool(2, {.nonblocking = true});
    std::atomic<int> overloads{0}, ran{0};
    Gate gate;
    for (int i = 0; i < 2; ++i)
      ASSERT_FALSE(pool.submit([&] {
        gate.wait();
        if (pool.submit([&] { ran.fetch_add(1); }) == pool_errc::pool_overload)
          overloads.fetch_add(1);
      }));
    gate.open();
    pool.wait();
    EXPECT_EQ(overloads.load() + ran.load(), 2);
  });
}

// A pool whose runtime shuts down while workers are idle or parked: they are unwound, and the
// pool (destroyed afterwards, outside the runtime) does not hang.
TEST(PoolShutdown, RuntimeShutsDownUnderThePool) {
  std::unique_ptr<colony::Pool> pool;
  Gate* gate = new Gate;  // leaked on purpose: a parked task refers to it during the unwind
  colony::run(
      [&] {
        pool = std::make_unique<colony::Pool>(4, colony::PoolOptions{.disable_purge = true});
        ASSERT_FALSE(pool->submit([] {}));
        ASSERT_FALSE(pool->submit([gate] { gate->wait(); }));
        pool->wait_for(10ms);
      },
      {.max_procs = 2, .detect_deadlocks = false});
  EXPECT_EQ(pool->running(), 0);
  pool.reset();  // returns: nothing left to wait for
  delete gate;
}

}  // namespace
