// colony::Pool stress test: fibers and a plain thread submit while a chaos fiber keeps tuning,
// releasing and rebooting the pool. Checks that every accepted task runs exactly once and every
// refused one never runs, that queued tasks are never dropped, and that once tuning has settled
// running() never exceeds cap(). Sized by COLONY_STRESS_SCALE (ctest label "stress").
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/pool.hpp>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
using colony::testing::Latch;
using colony::testing::ProcsTest;

namespace {

class PoolStress : public ProcsTest {};
INSTANTIATE_TEST_SUITE_P(Procs, PoolStress,
                         ::testing::ValuesIn(colony::testing::pool_proc_counts()),
                         colony::testing::procs_name);

struct Variant {
  const char* name;
  colony::PoolOptions opts;
};

std::vector<Variant> variants() {
  return {
      {"plain", {.expiry_duration = 5ms}},
      {"pre_alloc", {.expiry_duration = 5ms, .pre_alloc = true}},
      {"queue", {.expiry_duration = 5ms, .queue_capacity = 16}},
      {"max_blocking", {.expiry_duration = 5ms, .max_blocking_tasks = 3}},
      {"nonblocking_queue", {.expiry_duration = 5ms, .nonblocking = true, .queue_capacity = 4}},
  };
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    colony::this_fiber::sleep_for(1ms);
  }
  return true;
}

TEST_P(PoolStress, ConcurrentSubmitTuneReleaseReboot) {
  run_fibers([] {
    const int kPerSubmitter =
        std::max(200, static_cast<int>(3000 * colony::testing::stress_scale()));
    constexpr int kFiberSubmitters = 4;
    constexpr int kSubmitters = kFiberSubmitters + 1;  // + one plain thread
    for (const Variant& v : variants()) {
      // (No SCOPED_TRACE: its stack is per thread, and this fiber may change threads.)
      colony::Pool pool(8, v.opts);
      const int total = kPerSubmitter * kSubmitters;
      std::vector<std::atomic<int>> runs(static_cast<std::size_t>(total));
      std::vector<char> accepted(static_cast<std::size_t>(total), 0);

      auto submitter = [&](int who) {
        std::mt19937 rng(static_cast<unsigned>(who * 7919 + 1));
        for (int i = 0; i < kPerSubmitter; ++i) {
          const int id = who * kPerSubmitter + i;
          auto task = [&runs, id] {
            runs[static_cast<std::size_t>(id)].fetch_add(1, std::memory_order_relaxed);
            if (id % 5 == 0) colony::this_fiber::yield();
            if (id % 97 == 0) colony::this_fiber::sleep_for(100us);
          };
          std::error_code ec;
          switch (rng() % 4) {
            case 0:
              ec = pool.submit_for(task, std::chrono::microseconds(rng() % 500));
              break;
            case 1: {
              auto f = pool.submit_future(task);
              try {
                f.get();
              } catch (const std::system_error& e) {
                ec = e.code();
              }
              break;
            }
            default:
              ec = pool.submit(task);
          }
          accepted[static_cast<std::size_t>(id)] = ec ? 0 : 1;
          // A refused submitter backs off a little (a fiber that never parks would keep its
          // processor from the workers, with one processor).
          if (ec == colony::pool_errc::pool_closed)
            colony::this_fiber::sleep_for(50us);
          else if (ec)
            colony::this_fiber::yield();
        }
      };

      Latch submitters_done(kSubmitters), chaos_done(1);
      std::atomic<bool> stop{false};
      for (int w = 0; w < kFiberSubmitters; ++w)
        colony::go([&, w] {
          submitter(w);
          submitters_done.count_down();
        });
      std::thread thread_submitter([&] {
        submitter(kFiberSubmitters);
        submitters_done.count_down();
      });
      colony::go([&] {  // chaos
        std::mt19937 rng(12345);
        while (!stop.load(std::memory_order_relaxed)) {
          if (rng() % 10 == 0) {  // closed for a short while, then reopened
            pool.release();
            colony::this_fiber::sleep_for(std::chrono::microseconds(rng() % 200));
            pool.reboot();
          } else {
            pool.tune(1 + static_cast<int>(rng() % 16));
          }
          colony::this_fiber::sleep_for(std::chrono::microseconds(rng() % 300));
        }
        chaos_done.count_down();
      });
      submitters_done.wait();
      thread_submitter.join();
      stop = true;
      chaos_done.wait();
      pool.reboot();
      pool.wait();

      int accepted_count = 0;
      for (int id = 0; id < total; ++id) {
        const int expected = accepted[static_cast<std::size_t>(id)] ? 1 : 0;
        accepted_count += expected;
        ASSERT_EQ(runs[static_cast<std::size_t>(id)].load(), expected) << v.name << ": task " << id;
      }
      EXPECT_GT(accepted_count, 0) << v.name;
      if (std::getenv("COLONY_POOL_STRESS_VERBOSE"))
        std::printf("%s: %d of %d tasks accepted, %llu workers started, %llu purged\n", v.name,
                    accepted_count, total,
                    static_cast<unsigned long long>(pool.stats().workers_started),
                    static_cast<unsigned long long>(pool.stats().workers_purged));
      const colony::PoolStats s = pool.stats();
      EXPECT_EQ(s.completed, static_cast<std::uint64_t>(accepted_count));
      EXPECT_EQ(s.submitted, static_cast<std::uint64_t>(accepted_count));
      EXPECT_EQ(s.queued, 0u);

      // Once tuning has settled, running() never exceeds cap().
      pool.tune(5);
      const int cap = pool.cap();
      ASSERT_TRUE(eventually([&] { return pool.running() <= cap; }))
          << pool.running() << " > " << cap;
      std::atomic<bool> over{false}, sampling{true};
      Latch sampler_done(1);
      colony::go([&] {
        while (sampling.load(std::memory_order_relaxed)) {
          if (pool.running() > cap) over = true;
          colony::this_fiber::yield();
        }
        sampler_done.count_down();
      });
      std::atomic<int> extra{0};
      for (int i = 0; i < 500; ++i) {
        const std::error_code ec = pool.submit([&] {
          extra.fetch_add(1);
          colony::this_fiber::yield();
        });
        // Only the variants that may refuse (nonblocking) do.
        if (ec)
          EXPECT_EQ(ec, colony::pool_errc::pool_overload);
        else
          ++accepted_count;
      }
      pool.wait();
      sampling = false;
      sampler_done.wait();
      EXPECT_FALSE(over.load()) << v.name;
      EXPECT_LE(pool.stats().peak_running, 16);  // the largest tune
      EXPECT_FALSE(pool.release_timeout(20s));
      EXPECT_EQ(pool.running(), 0);
    }
  });
}

}  // namespace
