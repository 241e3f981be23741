// colony::RWMutex: shared readers, writer exclusion and preference, lifetime; fibers and plain
// threads, with 1, 2, 4 and 8 processors.
// Time-based assertions only bound waiting from below (a timeout waited at least that long) or
// give generous deadlines for progress: the machine is a noisy 2-vCPU VM.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/sync.hpp>
#include <mutex>
#include <shared_mutex>
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

// All readers hold the read lock at the same moment: each waits, holding it, until all have
// arrived (if readers excluded each other this would time out).
TEST_P(Sync, RWMutexReadersShareTheLock) {
  run_fibers([&] {
    constexpr int kReaders = 8;
    colony::RWMutex rw;
    colony::WaitGroup arrived, done;
    arrived.add(kReaders + 1);
    done.add(kReaders + 1);
    std::atomic<int> inside{0}, max_inside{0};
    std::atomic<int> all_met{0};
    auto reader = [&] {
      std::shared_lock<colony::RWMutex> lk(rw);
      int now = inside.fetch_add(1) + 1;
      int m = max_inside.load();
      while (now > m && !max_inside.compare_exchange_weak(m, now)) {
      }
      arrived.done();
      if (arrived.wait_for(20s)) ++all_met;
      inside.fetch_sub(1);
      lk.unlock();
      done.done();
    };
    std::thread t(reader);  // a plain thread reads alongside the fibers
    for (int i = 0; i < kReaders; ++i) colony::go([&] { reader(); });
    done.wait();
    t.join();
    EXPECT_EQ(all_met.load(), kReaders + 1);
    EXPECT_EQ(max_inside.load(), kReaders + 1);
    EXPECT_TRUE(rw.try_lock());
    rw.unlock();
  });
}

// With more than one processor, readers run inside the read lock in parallel (on different
// threads at the same instant, not merely interleaved at switches).
TEST_P(Sync, RWMutexReadersRunInParallel) {
  if (GetParam() < 2) GTEST_SKIP() << "needs two processors";
  run_fibers([&] {
    colony::RWMutex rw;
    std::atomic<int> inside{0}, max_inside{0};
    colony::WaitGroup wg;
    for (int i = 0; i < 4; ++i) {
      wg.add(1);
      colony::go([&] {
        auto until = std::chrono::steady_clock::now() + 2s;
        while (max_inside.load() < 2 && std::chrono::steady_clock::now() < until) {
          rw.lock_shared();
          int now = inside.fetch_add(1) + 1;
          int m = max_inside.load();
          while (now > m && !max_inside.compare_exchange_weak(m, now)) {
          }
          for (int k = 0; k < 2000; ++k) colony::sched::spin_pause();  // busy, no switch
          inside.fetch_sub(1);
          rw.unlock_shared();
          colony::this_fiber::yield();
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_GE(max_inside.load(), 2) << "readers never overlapped";
  });
}

// Writers exclude readers and each other; readers always see a consistent pair. Fibers and
// plain threads, readers and writers, all mixed.
TEST_P(Sync, RWMutexWriterExclusion) {
  run_fibers([&] {
    colony::RWMutex rw;
    long a = 0, b = 0;  // invariant under the lock: a == b
    std::atomic<int> readers{0}, writers{0};
    std::atomic<bool> broken{false};
    const int kIters = 400 / kScale;
    colony::WaitGroup wg;
    auto writer = [&](bool fiber) {
      for (int i = 0; i < kIters; ++i) {
        std::unique_lock<colony::RWMutex> lk(rw);
        if (writers.fetch_add(1) != 0 || readers.load() != 0) broken = true;
        ++a;
        if (fiber && i % 8 == 0) colony::this_fiber::yield();
        ++b;
        writers.fetch_sub(1);
      }
      wg.done();
    };
    auto reader = [&](bool fiber) {
      for (int i = 0; i < kIters * 4; ++i) {
        std::shared_lock<colony::RWMutex> lk(rw);
        readers.fetch_add(1);
        if (writers.load() != 0) broken = true;
        long x = a;
        if (fiber && i % 8 == 0) colony::this_fiber::yield();
        if (b != x) broken = true;
        readers.fetch_sub(1);
      }
      wg.done();
    };
    wg.add(2 + 4 + 12);
    std::thread tw(writer, false), tr(reader, false);
    for (int i = 0; i < 4; ++i) colony::go([&] { writer(true); });
    for (int i = 0; i < 12; ++i) colony::go([&] { reader(true); });
    wg.wait();
    tw.join();
    tr.join();
    EXPECT_FALSE(broken.load());
    EXPECT_EQ(a, 5L * kIters);
    EXPECT_EQ(b, a);
  });
}

// Writer preference: a waiting writer blocks new readers; readers that queued behind a writer
// get in before the next writer.
TEST_P(Sync, RWMutexWriterPreference) {
  run_fibers([&] {
    colony::RWMutex rw;
    colony::Mutex log_mu;
    std::vector<std::string> log;
    auto note = [&](const char* s) {
      std::lock_guard<colony::Mutex> lk(log_mu);
      log.emplace_back(s);
    };
    colony::WaitGroup wg;
    rw.lock_shared();  // reader R1 (this fiber)
    wg.add(1);
    colony::go([&] {  // writer W1: waits for R1
      rw.lock();
      note("W1");
      colony::this_fiber::sleep_for(5ms);
      rw.unlock();
      wg.done();
    });
    ASSERT_TRUE(wait_parked(R::rwmutex_write, 1));
    EXPECT_FALSE(rw.try_lock_shared()) << "a new reader got past a waiting writer";
    EXPECT_FALSE(rw.try_lock());
    wg.add(1);
    colony::go([&] {  // reader R2: blocked by the waiting writer
      rw.lock_shared();
      note("R2");
      colony::this_fiber::sleep_for(5ms);
      note("R2 out");
      rw.unlock_shared();
      wg.done();
    });
    ASSERT_TRUE(wait_parked(R::rwmutex_read, 1));
    wg.add(1);
    colony::go([&] {  // writer W2: queues behind W1
      rw.lock();
      note("W2");
      rw.unlock();
      wg.done();
    });
    ASSERT_TRUE(wait_parked(R::rwmutex_write, 2));
    note("R1 out");
    rw.unlock_shared();
    wg.wait();
    EXPECT_EQ(log, (std::vector<std::string>{"R1 out", "W1", "R2", "R2 out", "W2"}));
    EXPECT_TRUE(rw.try_lock());
    EXPECT_THROW(rw.unlock_shared(), std::logic_error);
    rw.unlock();
    EXPECT_THROW(rw.unlock(), std::logic_error);
    EXPECT_THROW(rw.unlock_shared(), std::logic_error);
  });
}

// Lifetime (see kLifetimeRounds in sync_test.hpp).

TEST_P(Sync, RWMutexMayBeDestroyedByAReader) {
  run_fibers([&] {
    struct Shared {
      colony::RWMutex rw;
      bool closed = false;
    };
    colony::WaitGroup wg;
    Threads threads;
    for (int round = 0; round < kLifetimeRounds; ++round) {
      auto* sh = new Shared;
      wg.add(2);
      colony::go([sh, &wg] {  // reader: the one that sees `closed` destroys it
        for (;;) {
          sh->rw.lock_shared();
          const bool closed = sh->closed;
          sh->rw.unlock_shared();
          if (closed) break;
          colony::this_fiber::yield();
        }
        delete sh;
        wg.done();
      });
      auto writer = [sh, &wg] {
        std::lock_guard<colony::RWMutex> lk(sh->rw);
        sh->closed = true;
        wg.done();
      };
      if (round % 2)
        colony::go([writer] { writer(); });
      else
        threads.start(writer);
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
