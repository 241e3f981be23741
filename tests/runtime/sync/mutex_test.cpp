// colony::Mutex: mutual exclusion, try_lock and timed locks, starvation mode, misuse, shutdown
// and lifetime; fibers and plain threads, with 1, 2, 4 and 8 processors. The Sync suite of
// colony_sync_test is instantiated here for every file of the executable (sync_test.hpp).
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
#include <thread>
#include <vector>

#include "sync_test.hpp"

using namespace std::chrono_literals;
using colony::testing::kLifetimeRounds;
using colony::testing::kScale;
using colony::testing::Sync;
using colony::testing::Threads;
using colony::testing::wait_parked;
using R = colony::sched::WaitReason;

namespace {

INSTANTIATE_TEST_SUITE_P(Procs, Sync, ::testing::ValuesIn(colony::testing::proc_counts()),
                         colony::testing::procs_name);

TEST_P(Sync, MutexMutualExclusionUnderContention) {
  run_fibers([&] {
    const int kFibers = 64, kIters = 2000 / kScale, kThreads = 2;
    colony::Mutex mu;
    long counter = 0;  // not atomic: only the mutex protects it
    std::atomic<int> inside{0};
    std::atomic<bool> overlap{false};
    colony::WaitGroup wg;
    wg.add(kFibers + kThreads);
    auto body = [&](bool fiber) {
      for (int i = 0; i < kIters; ++i) {
        std::lock_guard<colony::Mutex> lk(mu);
        if (inside.fetch_add(1, std::memory_order_relaxed) != 0) overlap = true;
        long v = counter;
        if (fiber && i % 64 == 0) colony::this_fiber::yield();  // hold it across a switch
        counter = v + 1;
        inside.fetch_sub(1, std::memory_order_relaxed);
      }
      wg.done();
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) threads.emplace_back(body, false);
    for (int f = 0; f < kFibers; ++f) colony::go([&] { body(true); });
    wg.wait();
    for (auto& t : threads) t.join();
    EXPECT_FALSE(overlap.load());
    EXPECT_EQ(counter, long{kFibers + kThreads} * kIters);
  });
}

TEST_P(Sync, MutexTryLock) {
  run_fibers([&] {
    colony::Mutex mu;
    EXPECT_TRUE(mu.try_lock());
    EXPECT_FALSE(mu.try_lock());
    EXPECT_FALSE(colony::spawn([&] { return mu.try_lock(); }).get());
    mu.unlock();
    EXPECT_TRUE(colony::spawn([&] {
                  std::unique_lock<colony::Mutex> lk(mu, std::try_to_lock);
                  return lk.owns_lock();
                }).get());
    // std::scoped_lock over two colony mutexes (std::lock: lock one, try_lock the others),
    // taken in opposite orders by many fibers, never deadlocks.
    colony::Mutex a, b;
    long n = 0;
    colony::WaitGroup wg;
    for (int f = 0; f < 16; ++f) {
      wg.add(1);
      colony::go([&, f] {
        for (int i = 0; i < 500 / kScale; ++i) {
          if (f % 2) {
            std::scoped_lock lk(a, b);
            ++n;
          } else {
            std::scoped_lock lk(b, a);
            ++n;
          }
          if (i % 16 == 0) colony::this_fiber::yield();
        }
        wg.done();
      });
    }
    EXPECT_TRUE(wg.wait_for(60s)) << "scoped_lock deadlocked";
    EXPECT_EQ(n, 16 * (500 / kScale));
  });
}

TEST_P(Sync, MutexTimedLock) {
  run_fibers([&] {
    colony::Mutex mu;
    mu.lock();
    // Times out (parks) while the mutex stays held, from a fiber and from a thread.
    auto timed_out = colony::spawn([&] {
      auto t0 = std::chrono::steady_clock::now();
      bool got = mu.try_lock_for(20ms);
      return !got && std::chrono::steady_clock::now() - t0 >= 20ms;
    });
    EXPECT_TRUE(timed_out.get());
    colony::WaitGroup done;
    done.add(1);
    std::atomic<bool> thread_timed_out{false};
    std::thread t([&] {
      auto t0 = std::chrono::steady_clock::now();
      thread_timed_out = !mu.try_lock_until(std::chrono::steady_clock::now() + 20ms) &&
                         std::chrono::steady_clock::now() - t0 >= 20ms;
      done.done();
    });
    done.wait();
    t.join();
    EXPECT_TRUE(thread_timed_out.load());
    // Succeeds when the holder unlocks in time.
    auto gets_it = colony::spawn([&] {
      bool got = mu.try_lock_for(30s);
      if (got) mu.unlock();
      return got;
    });
    colony::this_fiber::sleep_for(5ms);
    mu.unlock();
    EXPECT_TRUE(gets_it.get());
    // The mutex is left consistent by the timed-out waiters.
    EXPECT_TRUE(mu.try_lock());
    mu.unlock();
  });
}

// Hogs: occupies all processors but the caller's with fibers that never switch, so every other
// fiber of the runtime can only run on the caller's processor, when the caller switches: the
// scheduling of a one-processor runtime, whatever the processor count.
class Hogs {
 public:
  Hogs() {
    const int n = colony::max_procs() - 1;
    for (int i = 0; i < n; ++i) {
      wg_.add(1);
      colony::go([this] {
        running_.fetch_add(1);
        while (!stop_.load(std::memory_order_relaxed)) colony::sched::spin_pause();
        wg_.done();
      });
    }
    while (running_.load() < n) colony::this_fiber::sleep_for(100us);
  }
  ~Hogs() {
    stop_ = true;
    wg_.wait();
  }

 private:
  std::atomic<int> running_{0};
  std::atomic<bool> stop_{false};
  colony::WaitGroup wg_;
};

// Starvation mode. A "barger" re-locks in a tight loop (lock, yield, unlock, lock, ...) while
// the waiters can only run on its processor (Hogs). In normal mode a woken waiter only runs
// while the barger yields holding the lock again, so it would wait for ever. A waiter that has
// waited more than 1 ms switches the mutex to starvation mode; the barger's next unlock hands
// the lock to the waiters, in FIFO order, before the barger gets it back. (Without starvation
// mode this test fails with every processor count.)
TEST_P(Sync, MutexStarvationModeServesWaitersInOrder) {
  run_fibers([&] {
    Hogs hogs;
    colony::Mutex mu;
    std::vector<int> order;  // written under mu
    std::atomic<int> served{0};
    mu.lock();
    colony::WaitGroup wg;
    wg.add(3);
    for (int id = 1; id <= 3; ++id) {
      colony::go([&, id] {
        mu.lock();
        order.push_back(id);
        served.fetch_add(1);
        mu.unlock();
        wg.done();
      });
      // Queue them one at a time, so the FIFO order is known.
      ASSERT_TRUE(wait_parked(R::mutex, id));
    }
    colony::this_fiber::sleep_for(2ms);  // every waiter has waited > 1 ms
    auto deadline = std::chrono::steady_clock::now() + 20s;
    long rounds = 0;
    mu.unlock();
    while (served.load() < 3 && std::chrono::steady_clock::now() < deadline) {
      mu.lock();
      colony::this_fiber::yield();
      mu.unlock();
      ++rounds;
    }
    EXPECT_EQ(served.load(), 3) << "the waiters starved behind a barging fiber (" << rounds
                                << " rounds): no starvation mode";
    wg.wait();
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
    EXPECT_TRUE(mu.try_lock());  // starvation mode ended with the last waiter
    mu.unlock();
  });
}

// A plain thread waiting while a fiber barges is served too (the thread runs in parallel, so
// this is not a test of starvation mode itself, but of hand-off to a blocked thread).
TEST_P(Sync, MutexThreadWaiterIsServedWhileAFiberBarges) {
  run_fibers([&] {
    colony::Mutex mu;
    std::atomic<bool> served{false};
    std::atomic<bool> queued{false};
    colony::WaitGroup done;
    done.add(1);
    mu.lock();
    std::thread t([&] {
      queued = true;
      mu.lock();
      served = true;
      mu.unlock();
      done.done();
    });
    while (!queued.load()) colony::this_fiber::sleep_for(100us);
    colony::this_fiber::sleep_for(10ms);  // it has blocked (or spun and blocked) by now
    auto deadline = std::chrono::steady_clock::now() + 20s;
    mu.unlock();
    while (!served.load() && std::chrono::steady_clock::now() < deadline) {
      mu.lock();
      colony::this_fiber::yield();
      mu.unlock();
    }
    EXPECT_TRUE(served.load()) << "the thread starved behind a barging fiber";
    done.wait();
    t.join();
  });
}

TEST_P(Sync, MutexUnlockOfUnlockedThrows) {
  run_fibers([&] {
    colony::Mutex mu;
    try {
      mu.unlock();
      ADD_FAILURE() << "no exception";
    } catch (const std::logic_error& e) {
      EXPECT_NE(std::string(e.what()).find("unlock of unlocked"), std::string::npos) << e.what();
    }
    mu.lock();  // still usable
    mu.unlock();
    EXPECT_THROW(mu.unlock(), std::logic_error);
    EXPECT_TRUE(mu.try_lock());
    mu.unlock();
  });
}

// Shutdown with fibers parked on a mutex that is never unlocked: colony::run returns, every
// parked fiber is unwound (destructors run), and the mutex is left consistent.
TEST_P(Sync, MutexWaitersAreUnwoundAtShutdown) {
  static std::atomic<int> destroyed;
  destroyed = 0;
  struct Tracker {
    ~Tracker() { ++destroyed; }
  };
  colony::Mutex mu;
  std::atomic<int> acquired{0};
  colony::run(
      [&] {
        mu.lock();  // and never unlocked
        for (int i = 0; i < 10; ++i)
          colony::go([&] {
            Tracker t;
            mu.lock();
            ++acquired;
          });
        // Some time-out instead (they must leave the mutex consistent too).
        for (int i = 0; i < 3; ++i)
          colony::go([&] {
            Tracker t;
            if (mu.try_lock_for(1ms)) ++acquired;
          });
        EXPECT_TRUE(wait_parked(R::mutex, 10));
        colony::this_fiber::sleep_for(5ms);
      },
      {.max_procs = GetParam()});
  EXPECT_EQ(destroyed.load(), 13);
  EXPECT_EQ(acquired.load(), 0);
  EXPECT_FALSE(mu.try_lock());  // still held by the main fiber that never unlocked it
  mu.unlock();
  EXPECT_TRUE(mu.try_lock());  // no waiter left behind, no stale starvation or hand-off
  mu.unlock();
  EXPECT_TRUE(mu.try_lock_for(1ms));
  mu.unlock();
}

// Lifetime (see kLifetimeRounds in sync_test.hpp).

TEST_P(Sync, MutexMayBeDestroyedByItsLastUser) {
  run_fibers([&] {
    struct Shared {
      colony::Mutex mu;
      int users = 3;
      void leave() {
        mu.lock();
        const bool last = --users == 0;
        if (!last) colony::this_fiber::yield();  // hold it while the others queue
        mu.unlock();
        if (last) delete this;
      }
    };
    colony::WaitGroup wg;
    Threads threads;
    for (int round = 0; round < kLifetimeRounds; ++round) {
      auto* sh = new Shared;
      wg.add(3);
      colony::go([sh, &wg] {
        sh->leave();
        wg.done();
      });
      colony::go([sh, &wg] {
        sh->leave();
        wg.done();
      });
      threads.start([sh, &wg] {
        sh->leave();
        wg.done();
      });
      if (round % 16 == 0) {
        wg.wait();
        threads.join_all();
      }
    }
    wg.wait();
    threads.join_all();
  });
}

}  // namespace
