// Shutdown with fibers parked in every sync primitive, with 1, 2, 4 and 8 processors.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/sync.hpp>
#include <mutex>

#include "sync_test.hpp"

using namespace std::chrono_literals;
using colony::testing::Sync;
using colony::testing::wait_parked;
using R = colony::sched::WaitReason;

namespace {

// Shutdown: fibers parked in any primitive are unwound (destructors run) and the primitives are
// left consistent (nothing granted to an unwound fiber stays taken). No unwinding fiber here
// wakes another one: see UnwindingFiberReleasesAMutexToAnOlderWaiter.

TEST_P(Sync, ParkedFibersAreUnwoundAtShutdown) {
  static std::atomic<int> destroyed;
  destroyed = 0;
  struct Tracker {
    ~Tracker() { ++destroyed; }
  };
  colony::RWMutex rw_read, rw_write;
  colony::Semaphore sem(2);
  colony::WaitGroup wg;
  colony::Once once;
  colony::Mutex cv_mu;
  colony::CondVar cv;
  std::atomic<int> reached{0};
  int spawned = 0;
  colony::run(
      [&] {
        auto spawn = [&](auto f) {
          ++spawned;
          colony::go([f] {
            Tracker t;
            f();
          });
        };
        // Held by this fiber and never released: a read lock, a write lock, two units.
        rw_read.lock_shared();
        rw_write.lock();
        sem.acquire(2);
        wg.add(1);
        spawn([&] {
          rw_read.lock();
          ++reached;
        });  // a writer waiting for the reader to leave
        spawn([&] {
          rw_write.lock_shared();
          ++reached;
        });  // readers behind the writer
        spawn([&] {
          rw_write.lock_shared();
          ++reached;
        });
        spawn([&] {
          sem.acquire(1);
          ++reached;
        });
        spawn([&] {
          wg.wait();
          ++reached;
        });
        spawn([&] {  // re-locks its (free) mutex while unwinding
          colony::Mutex mu;
          colony::CondVar cv2;
          std::unique_lock<colony::Mutex> lk(mu);
          cv2.wait(lk);
          ++reached;
        });
        spawn([&] {  // cannot re-lock: this fiber holds cv_mu by then; lk must not unlock it
          std::unique_lock<colony::Mutex> lk(cv_mu);
          cv.wait(lk);
          ++reached;
        });
        // The runner of a Once parks inside f.
        spawn([&] {
          once.call([&] { wg.wait(); });
          ++reached;
        });
        EXPECT_TRUE(wait_parked(R::rwmutex_write, 1));
        EXPECT_TRUE(wait_parked(R::rwmutex_read, 2));
        EXPECT_TRUE(wait_parked(R::semaphore, 1));
        EXPECT_TRUE(wait_parked(R::waitgroup, 2));
        EXPECT_TRUE(wait_parked(R::cond, 2));
        cv_mu.lock();  // never unlocked
      },
      {.max_procs = GetParam()});
  EXPECT_EQ(destroyed.load(), spawned);
  EXPECT_EQ(reached.load(), 0);
  // Consistent afterwards: the main fiber's locks and units are still held, nothing else.
  EXPECT_FALSE(rw_read.try_lock());
  EXPECT_TRUE(rw_read.try_lock_shared());  // the withdrawn writer no longer blocks readers
  rw_read.unlock_shared();
  rw_read.unlock_shared();  // the main fiber's
  EXPECT_TRUE(rw_read.try_lock());
  rw_read.unlock();
  EXPECT_FALSE(rw_write.try_lock_shared());
  rw_write.unlock();  // the main fiber's; no reader was left counted in
  EXPECT_TRUE(rw_write.try_lock());
  rw_write.unlock();
  EXPECT_FALSE(sem.try_acquire(1));
  sem.release(2);
  EXPECT_TRUE(sem.try_acquire(2));
  sem.release(2);
  EXPECT_FALSE(cv_mu.try_lock());  // still the main fiber's: the unwound waiter left it alone
  cv_mu.unlock();
  EXPECT_TRUE(cv_mu.try_lock());
  cv_mu.unlock();
  EXPECT_FALSE(once.done());
  int r = 0;
  once.call([&] { r = 1; });  // not left "running" by the unwound runner
  EXPECT_EQ(r, 1);
}

// Shutdown where the unwinding of one fiber readies another: the newer fiber's lock_guard
// releases the Mutex an older fiber waits for while both are being unwound. unwind_all marks a
// fiber runnable only as it resumes it, so the release's ready() finds the waiter still waiting
// (it once aborted with "fiber status is runnable, expected waiting"); both unwind, both
// destructors run, and the Mutex is left unlocked.
TEST_P(Sync, UnwindingFiberReleasesAMutexToAnOlderWaiter) {
  static std::atomic<int> destroyed;
  destroyed = 0;
  struct Tracker {
    ~Tracker() { ++destroyed; }
  };
  colony::Mutex mu;
  colony::WaitGroup held;
  colony::run(
      [&] {
        held.add(1);
        colony::go([&] {  // the older fiber: waits for the mutex
          Tracker t;
          held.wait();
          std::lock_guard<colony::Mutex> lk(mu);
        });
        colony::go([&] {  // the newer fiber: holds it, parked, until shutdown
          Tracker t;
          std::lock_guard<colony::Mutex> lk(mu);
          held.done();
          colony::this_fiber::sleep_for(1h);
        });
        EXPECT_TRUE(wait_parked(R::mutex, 1));
      },
      {.max_procs = GetParam()});
  EXPECT_EQ(destroyed.load(), 2);
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
}

}  // namespace
