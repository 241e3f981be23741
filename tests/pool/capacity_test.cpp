// colony::Pool's capacity, ported from ants' ants_test.go: submitters waiting for a worker, idle
// workers reused, nonblocking pools and max_blocking_tasks, unbounded pools, tune(), and the
// statistics that count all this. The Thread(s) variants submit from plain OS threads.
// Every test runs with 1, 2 and 4 processors inside a fresh runtime and fails if a fiber is left
// behind. No assertion depends on timing beyond generous upper bounds for progress: the machine
// is a noisy 2-core VM.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/pool.hpp>
#include <system_error>
#include <thread>
#include <vector>

#include "pool_test.hpp"

using namespace std::chrono_literals;
using colony::pool_errc;
using colony::testing::eventually;
using colony::testing::Gate;
using colony::testing::kShrink;
using colony::testing::Latch;
using colony::testing::on_thread;
using colony::testing::PoolTest;

namespace {

// The PoolTest suite of colony_pool_test, for every file of the executable (pool_test.hpp).
INSTANTIATE_TEST_SUITE_P(Procs, PoolTest, ::testing::ValuesIn(colony::testing::pool_proc_counts()),
                         colony::testing::procs_name);

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

}  // namespace
