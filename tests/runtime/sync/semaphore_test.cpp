// colony::Semaphore: bounded concurrency, FIFO fairness, misuse, acquire(ctx, n); fibers and
// plain threads, with 1, 2, 4 and 8 processors.
// Time-based assertions only bound waiting from below (a timeout waited at least that long) or
// give generous deadlines for progress: the machine is a noisy 2-vCPU VM.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/sync.hpp>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "sync_test.hpp"

using namespace std::chrono_literals;
using colony::context_errc;
using colony::testing::kScale;
using colony::testing::OnThread;
using colony::testing::Sync;
using colony::testing::wait_parked;
using R = colony::sched::WaitReason;

namespace {

TEST_P(Sync, SemaphoreBoundsConcurrency) {
  run_fibers([&] {
    constexpr long kSize = 5;
    colony::Semaphore sem(kSize);
    std::atomic<long> held{0}, max_held{0};
    std::atomic<bool> over{false};
    colony::WaitGroup wg;
    auto worker = [&](int id, bool fiber) {
      for (int i = 0; i < 40 / kScale; ++i) {
        const long n = 1 + (id + i) % 3;  // weights 1..3
        sem.acquire(n);
        long now = held.fetch_add(n) + n;
        if (now > kSize) over = true;
        long m = max_held.load();
        while (now > m && !max_held.compare_exchange_weak(m, now)) {
        }
        if (fiber)
          colony::this_fiber::sleep_for(100us);
        else
          std::this_thread::sleep_for(100us);
        held.fetch_sub(n);
        sem.release(n);
      }
      wg.done();
    };
    wg.add(32 + 2);
    std::thread t1(worker, 1, false), t2(worker, 2, false);
    for (int f = 0; f < 32; ++f) colony::go([&, f] { worker(f, true); });
    wg.wait();
    t1.join();
    t2.join();
    EXPECT_FALSE(over.load()) << "more than " << kSize << " units held at once";
    EXPECT_GE(max_held.load(), 3);
    EXPECT_TRUE(sem.try_acquire(kSize));  // everything was given back
    sem.release(kSize);
  });
}

// FIFO: a large request at the head blocks smaller ones behind it; waiters are served in
// arrival order; a request that gives up lets the ones behind it proceed. (Units are released
// one step at a time and the grant checked after each: fibers readied together run in any
// order, so the order in which they run says nothing about the order of the grants.)
TEST_P(Sync, SemaphoreFifoFairness) {
  run_fibers([&] {
    colony::Mutex log_mu;
    std::vector<std::string> log;
    auto note = [&](std::string s) {
      std::lock_guard<colony::Mutex> lk(log_mu);
      log.push_back(std::move(s));
    };
    auto logged = [&](std::size_t n) {  // waits until the log has n entries (20 s at most)
      for (auto until = std::chrono::steady_clock::now() + 20s;
           std::chrono::steady_clock::now() < until; colony::this_fiber::sleep_for(100us)) {
        std::lock_guard<colony::Mutex> lk(log_mu);
        if (log.size() >= n) return log.size() == n;
      }
      return false;
    };
    colony::Semaphore sem(4);
    colony::WaitGroup wg;
    sem.acquire(4);
    wg.add(1);
    colony::go([&] {
      sem.acquire(3);
      note("big");
      wg.done();
    });
    ASSERT_TRUE(wait_parked(R::semaphore, 1));
    wg.add(1);
    colony::go([&] {
      sem.acquire(1);
      note("small");
      wg.done();
    });
    ASSERT_TRUE(wait_parked(R::semaphore, 2));
    sem.release(1);  // one unit free: the small request fits but waits behind the big one
    EXPECT_FALSE(sem.try_acquire(1)) << "try_acquire jumped the queue";
    colony::this_fiber::sleep_for(10ms);
    {
      std::lock_guard<colony::Mutex> lk(log_mu);
      EXPECT_TRUE(log.empty()) << "the small request overtook the big one";
    }
    sem.release(2);  // 3 free: the big one, and nothing is left for the small one
    EXPECT_TRUE(logged(1));
    colony::this_fiber::sleep_for(5ms);
    EXPECT_TRUE(logged(1)) << "the small request got units that were not free";
    sem.release(1);  // now the small one
    wg.wait();
    EXPECT_EQ(log, (std::vector<std::string>{"big", "small"}));
    sem.release(4);

    // Arrival order among equal requests, one unit released at a time.
    log.clear();
    colony::Semaphore sem5(5);
    sem5.acquire(5);
    for (int i = 0; i < 5; ++i) {
      wg.add(1);
      colony::go([&, i] {
        sem5.acquire(1);
        note(std::to_string(i));
        wg.done();  // keeps its unit
      });
      ASSERT_TRUE(wait_parked(R::semaphore, i + 1));
    }
    for (std::size_t k = 0; k < 5; ++k) {
      sem5.release(1);
      ASSERT_TRUE(logged(k + 1));
    }
    wg.wait();
    EXPECT_EQ(log, (std::vector<std::string>{"0", "1", "2", "3", "4"}));
    sem5.release(5);  // the fibers' units (any party may release)
    EXPECT_TRUE(sem5.try_acquire(5));

    // A big request that times out unblocks the small one behind it.
    sem.acquire(3);  // 1 free
    auto big = colony::spawn([&] { return sem.try_acquire_for(2, 30ms); });
    ASSERT_TRUE(wait_parked(R::semaphore, 1));
    auto small = colony::spawn([&] { return sem.try_acquire_for(1, 30s); });
    EXPECT_FALSE(big.get());
    EXPECT_TRUE(small.get());
    sem.release(4);
    EXPECT_TRUE(sem.try_acquire(4));
    sem.release(4);
  });
}

TEST_P(Sync, SemaphoreMisuseThrows) {
  run_fibers([&] {
    EXPECT_THROW(colony::Semaphore(-1), std::invalid_argument);
    colony::Semaphore sem(3);
    EXPECT_THROW(sem.acquire(4), std::invalid_argument);
    EXPECT_THROW((void)sem.try_acquire(4), std::invalid_argument);
    EXPECT_THROW((void)sem.try_acquire_for(4, 1ms), std::invalid_argument);
    EXPECT_THROW(sem.acquire(-1), std::invalid_argument);
    EXPECT_THROW(sem.release(-1), std::invalid_argument);
    EXPECT_THROW(sem.release(1), std::logic_error);
    sem.acquire(2);
    EXPECT_THROW(sem.release(3), std::logic_error);
    sem.release(2);
    EXPECT_TRUE(sem.try_acquire(3));
    sem.release(3);
    // From a plain thread: blocks the thread until a fiber releases.
    sem.acquire(3);
    std::atomic<bool> got{false};
    colony::WaitGroup done;
    done.add(1);
    std::thread t([&] {
      sem.acquire(2);
      got = true;
      sem.release(2);
      done.done();
    });
    colony::this_fiber::sleep_for(5ms);
    EXPECT_FALSE(got.load());
    sem.release(3);
    done.wait();
    t.join();
    EXPECT_TRUE(got.load());
  });
}

// Context-aware waits.

// queued: yields until sem has a queued waiter: with a unit free, try_acquire fails only
// because someone waits (or 10 s pass). Works for thread waiters, which wait_parked cannot see.
bool queued(colony::Semaphore& sem) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (sem.try_acquire(1)) {
    sem.release(1);
    if (std::chrono::steady_clock::now() > deadline) return false;
    colony::this_fiber::sleep_for(100us);
  }
  return true;
}

TEST_P(Sync, SemaphoreAcquireWithContextFromFibers) {
  run_fibers([&] {
    colony::Semaphore sem(2);
    EXPECT_FALSE(sem.acquire(colony::background(), 2)) << "free units: no error";
    // Cancelled while waiting: canceled, and nothing is taken.
    auto [ctx, cancel] = colony::with_cancel(colony::background());
    auto waiter = colony::spawn([&sem, c = ctx] { return sem.acquire(c, 1); });
    ASSERT_TRUE(wait_parked(R::semaphore, 1));
    cancel();
    EXPECT_EQ(waiter.get(), context_errc::canceled);
    sem.release(2);
    EXPECT_TRUE(sem.try_acquire(2)) << "the cancelled request kept units";
    sem.release(2);
    // Already done: fails at once even though the units are free (x/sync since v0.5.0).
    EXPECT_EQ(sem.acquire(ctx, 1), context_errc::canceled);
    EXPECT_TRUE(sem.try_acquire(2));
    // A deadline: deadline_exceeded, after it.
    auto t0 = std::chrono::steady_clock::now();
    auto [tctx, tcancel] = colony::with_timeout(colony::background(), 20ms);
    EXPECT_EQ(sem.acquire(tctx, 1), context_errc::deadline_exceeded);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
    sem.release(2);
    EXPECT_TRUE(sem.try_acquire(2)) << "the timed-out request kept units";
    // Released before the context ends: acquired, no error.
    auto [lctx, lcancel] = colony::with_timeout(colony::background(), 1h);
    auto got = colony::spawn([&sem, c = lctx] { return sem.acquire(c, 2); });
    ASSERT_TRUE(wait_parked(R::semaphore, 1));
    sem.release(2);
    EXPECT_FALSE(got.get());
    EXPECT_FALSE(sem.try_acquire(1)) << "the successful request holds both units";
    sem.release(2);
    EXPECT_THROW((void)sem.acquire(lctx, -1), std::invalid_argument);
  });
}

TEST_P(Sync, SemaphoreAcquireWithContextLargerThanSizeWaitsForTheContext) {
  run_fibers([&] {
    colony::Semaphore sem(3);
    auto [ctx, cancel] = colony::with_cancel(colony::background());
    std::atomic<bool> returned{false};
    auto big = colony::spawn([&, c = ctx] {
      auto e = sem.acquire(c, 4);  // can never succeed: no throw, waits for c
      returned = true;
      return e;
    });
    ASSERT_TRUE(wait_parked(R::chan_receive, 1));  // on ctx.done(), outside the queue
    EXPECT_TRUE(sem.try_acquire(3)) << "a doomed request blocks the others";
    sem.release(3);
    colony::this_fiber::sleep_for(5ms);
    EXPECT_FALSE(returned.load());
    cancel();
    EXPECT_EQ(big.get(), context_errc::canceled);
    auto [tctx, tcancel] = colony::with_timeout(colony::background(), 10ms);
    EXPECT_EQ(sem.acquire(tctx, 4), context_errc::deadline_exceeded);
    EXPECT_TRUE(sem.try_acquire(3));
    sem.release(3);
  });
}

TEST_P(Sync, SemaphoreWaiterThatGivesUpLetsTheNextOneIn) {
  run_fibers([&] {
    colony::Semaphore sem(4);
    sem.acquire(3);  // 1 free
    auto [ctx, cancel] = colony::with_cancel(colony::background());
    auto big = colony::spawn([&sem, c = ctx] { return sem.acquire(c, 2); });
    ASSERT_TRUE(wait_parked(R::semaphore, 1));
    std::atomic<bool> small_done{false};
    auto small = colony::spawn([&] {
      auto e = sem.acquire(colony::background(), 1);  // fits, but queues behind the big one
      small_done = true;
      return e;
    });
    ASSERT_TRUE(wait_parked(R::semaphore, 2));
    colony::this_fiber::sleep_for(5ms);
    EXPECT_FALSE(small_done.load()) << "the small request overtook the big one";
    cancel();
    EXPECT_EQ(big.get(), context_errc::canceled);
    EXPECT_FALSE(small.get()) << "the head gave up: the next waiter is served";
    EXPECT_FALSE(sem.try_acquire(1));
    sem.release(4);
    // The same with a deadline, and a context waiter behind it.
    sem.acquire(3);
    auto [tctx, tcancel] = colony::with_timeout(colony::background(), 20ms);
    auto big2 = colony::spawn([&sem, c = tctx] { return sem.acquire(c, 2); });
    ASSERT_TRUE(wait_parked(R::semaphore, 1));
    auto [lctx, lcancel] = colony::with_cancel(colony::background());
    auto small2 = colony::spawn([&sem, c = lctx] { return sem.acquire(c, 1); });
    EXPECT_EQ(big2.get(), context_errc::deadline_exceeded);
    EXPECT_FALSE(small2.get());
    sem.release(4);
    EXPECT_TRUE(sem.try_acquire(4));
    sem.release(4);
  });
}

TEST_P(Sync, SemaphoreAcquireWithContextFromPlainThreads) {
  run_fibers([&] {
    colony::Semaphore sem(3);
    sem.acquire(2);  // 1 free: a request of 2 queues, and queued() can see it
    std::error_code got;
    // Cancelled by a fiber while a thread waits: nothing taken.
    auto [ctx, cancel] = colony::with_cancel(colony::background());
    {
      OnThread t([&, c = ctx] { got = sem.acquire(c, 2); });
      ASSERT_TRUE(queued(sem));
      cancel();
      t.wait();
    }
    EXPECT_EQ(got, context_errc::canceled);
    EXPECT_TRUE(sem.try_acquire(1)) << "the cancelled thread kept units, or is still queued";
    sem.release(1);
    // A deadline made on the thread (its timer runs on the default runtime).
    {
      OnThread t([&] {
        auto [tctx, tcancel] = colony::with_timeout(colony::background(), 20ms);
        got = sem.acquire(tctx, 2);
      });
      t.wait();
    }
    EXPECT_EQ(got, context_errc::deadline_exceeded);
    // Larger than the size: waits for the context, outside the queue.
    auto [bctx, bcancel] = colony::with_cancel(colony::background());
    std::atomic<bool> returned{false};
    {
      OnThread t([&, c = bctx] {
        got = sem.acquire(c, 4);
        returned = true;
      });
      colony::this_fiber::sleep_for(5ms);
      EXPECT_FALSE(returned.load());
      EXPECT_TRUE(sem.try_acquire(1)) << "a doomed request blocks the others";
      sem.release(1);
      bcancel();
      t.wait();
    }
    EXPECT_EQ(got, context_errc::canceled);
    // A thread at the head gives up: the fiber behind it gets in.
    auto [hctx, hcancel] = colony::with_cancel(colony::background());
    {
      OnThread t([&, c = hctx] { got = sem.acquire(c, 2); });
      ASSERT_TRUE(queued(sem));
      auto small = colony::spawn([&] { return sem.acquire(colony::background(), 1); });
      ASSERT_TRUE(wait_parked(R::semaphore, 1));
      hcancel();
      t.wait();
      EXPECT_FALSE(small.get());
    }
    EXPECT_EQ(got, context_errc::canceled);
    sem.release(1);  // the small one's unit: 1 free again
    // Released by a fiber before the context ends: the thread acquires.
    auto [lctx, lcancel] = colony::with_timeout(colony::background(), 1h);
    {
      OnThread t([&, c = lctx] { got = sem.acquire(c, 2); });
      ASSERT_TRUE(queued(sem));
      sem.release(1);
      t.wait();
    }
    EXPECT_FALSE(got) << got.message();
    sem.release(3);
    EXPECT_TRUE(sem.try_acquire(3));
    sem.release(3);
  });
}

}  // namespace
