// colony::CondVar: producer/consumer, notify_one and notify_all, timed waits, lifetime; fibers
// and plain threads, with 1, 2, 4 and 8 processors.
// Time-based assertions only bound waiting from below (a timeout waited at least that long) or
// give generous deadlines for progress: the machine is a noisy 2-vCPU VM.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/sync.hpp>
#include <deque>
#include <mutex>
#include <thread>

#include "sync_test.hpp"

using namespace std::chrono_literals;
using colony::testing::kLifetimeRounds;
using colony::testing::kScale;
using colony::testing::Sync;
using colony::testing::Threads;

namespace {

TEST_P(Sync, CondVarProducerConsumer) {
  run_fibers([&] {
    constexpr std::size_t kCap = 4;
    const int kProducers = 4, kItems = 2000 / kScale, kConsumers = 4;
    colony::Mutex mu;
    colony::CondVar not_empty, not_full;
    std::deque<int> q;
    int producers_left = kProducers;
    std::atomic<long> sum{0};
    std::atomic<long> consumed{0};
    colony::WaitGroup wg;
    auto consumer = [&] {
      long local = 0, n = 0;
      for (;;) {
        std::unique_lock<colony::Mutex> lk(mu);
        not_empty.wait(lk, [&] { return !q.empty() || producers_left == 0; });
        if (q.empty()) break;
        local += q.front();
        q.pop_front();
        ++n;
        lk.unlock();
        not_full.notify_one();
      }
      sum += local;
      consumed += n;
      wg.done();
    };
    auto producer = [&](int base) {
      for (int i = 1; i <= kItems; ++i) {
        std::unique_lock<colony::Mutex> lk(mu);
        not_full.wait(lk, [&] { return q.size() < kCap; });
        q.push_back(base + i);
        lk.unlock();
        not_empty.notify_one();
      }
      std::lock_guard<colony::Mutex> lk(mu);
      if (--producers_left == 0) not_empty.notify_all();
      wg.done();
    };
    wg.add(kProducers + kConsumers + 1);
    std::thread plain(consumer);  // a plain-thread consumer among the fibers
    for (int c = 0; c < kConsumers; ++c) colony::go([&] { consumer(); });
    for (int p = 0; p < kProducers; ++p) colony::go([&, p] { producer(p * 100000); });
    wg.wait();
    plain.join();
    long expect = 0;
    for (int p = 0; p < kProducers; ++p)
      for (int i = 1; i <= kItems; ++i) expect += p * 100000 + i;
    EXPECT_EQ(consumed.load(), long{kProducers} * kItems);
    EXPECT_EQ(sum.load(), expect);
  });
}

TEST_P(Sync, CondVarNotifyOneAndNotifyAll) {
  run_fibers([&] {
    constexpr int kWaiters = 20;
    colony::Mutex mu;
    colony::CondVar cv;
    int waiting = 0;  // under mu: waiters enqueued in cv
    int woken = 0;
    colony::WaitGroup wg;
    auto waiter = [&] {
      std::unique_lock<colony::Mutex> lk(mu);
      ++waiting;
      cv.wait(lk);  // no predicate: each notify must wake it
      ++woken;
      lk.unlock();
      wg.done();
    };
    wg.add(kWaiters + 1);
    std::thread t(waiter);
    for (int i = 0; i < kWaiters; ++i) colony::go([&] { waiter(); });
    auto all_waiting = [&] {
      for (auto until = std::chrono::steady_clock::now() + 20s;
           std::chrono::steady_clock::now() < until; colony::this_fiber::sleep_for(100us)) {
        std::lock_guard<colony::Mutex> lk(mu);
        if (waiting == kWaiters + 1) return true;
      }
      return false;
    };
    ASSERT_TRUE(all_waiting());
    // notify_one wakes exactly one.
    cv.notify_one();
    for (auto until = std::chrono::steady_clock::now() + 20s;
         std::chrono::steady_clock::now() < until; colony::this_fiber::sleep_for(100us)) {
      std::lock_guard<colony::Mutex> lk(mu);
      if (woken > 0) break;
    }
    colony::this_fiber::sleep_for(10ms);
    {
      std::lock_guard<colony::Mutex> lk(mu);
      EXPECT_EQ(woken, 1);
    }
    // notify_all wakes every other one (fibers and the thread).
    cv.notify_all();
    EXPECT_TRUE(wg.wait_for(20s)) << "notify_all left waiters behind";
    t.join();
    std::lock_guard<colony::Mutex> lk(mu);
    EXPECT_EQ(woken, kWaiters + 1);
  });
}

TEST_P(Sync, CondVarWaitForTimesOut) {
  run_fibers([&] {
    colony::Mutex mu;
    colony::CondVar cv;
    std::unique_lock<colony::Mutex> lk(mu);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(cv.wait_for(lk, 20ms), std::cv_status::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
    EXPECT_TRUE(lk.owns_lock());
    EXPECT_FALSE(colony::spawn([&] { return mu.try_lock(); }).get()) << "lock not re-acquired";
    t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(cv.wait_for(lk, 10ms, [] { return false; }));
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 10ms);
    EXPECT_TRUE(cv.wait_until(lk, std::chrono::steady_clock::now() + 1h, [] { return true; }));
    EXPECT_EQ(cv.wait_until(lk, std::chrono::system_clock::now() - 1s), std::cv_status::timeout);
    // A notify before the timeout: no_timeout.
    bool flag = false;
    colony::go([&] {
      colony::this_fiber::sleep_for(5ms);
      std::lock_guard<colony::Mutex> g(mu);
      flag = true;
      cv.notify_all();
    });
    EXPECT_TRUE(cv.wait_for(lk, 30s, [&] { return flag; }));
    lk.unlock();
    // From a plain thread, with a std::mutex (CondVar takes any BasicLockable).
    std::mutex smu;
    std::atomic<bool> ok{false};
    colony::WaitGroup done;
    done.add(1);
    std::thread t([&] {
      std::unique_lock<std::mutex> sl(smu);
      auto s0 = std::chrono::steady_clock::now();
      ok = cv.wait_for(sl, 20ms) == std::cv_status::timeout &&
           std::chrono::steady_clock::now() - s0 >= 20ms && sl.owns_lock();
      done.done();
    });
    done.wait();
    t.join();
    EXPECT_TRUE(ok.load());
  });
}

// Lifetime (see kLifetimeRounds in sync_test.hpp).

TEST_P(Sync, CondVarAndMutexMayBeDestroyedByTheWokenWaiter) {
  run_fibers([&] {
    struct Shared {
      colony::Mutex mu;
      colony::CondVar cv;
      bool flag = false;
    };
    colony::WaitGroup wg;
    Threads threads;
    for (int round = 0; round < kLifetimeRounds; ++round) {
      auto* sh = new Shared;
      wg.add(2);
      colony::go([sh, &wg] {
        {
          std::unique_lock<colony::Mutex> lk(sh->mu);
          sh->cv.wait(lk, [sh] { return sh->flag; });
        }
        delete sh;
        wg.done();
      });
      auto notifier = [sh, &wg] {
        {
          std::lock_guard<colony::Mutex> lk(sh->mu);
          sh->flag = true;
          sh->cv.notify_all();
        }
        wg.done();
      };
      if (round % 2)
        colony::go([notifier] { notifier(); });
      else
        threads.start(notifier);
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
