// Scheduler and runtime API tests, each run with 1, 2, 4 and 8 processors.
#include <gtest/gtest.h>

#include <sstream>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "colony/sched/wait.hpp"
#include "sched.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
using colony::testing::Latch;
using colony::testing::ProcsTest;

namespace {

class Sched : public ProcsTest {};
INSTANTIATE_TEST_SUITE_P(Procs, Sched, ::testing::ValuesIn(colony::testing::proc_counts()),
                         colony::testing::procs_name);

// go and spawn are functions: a named function or callable object as the only argument is a
// call, not the declaration of a variable (it was, when they were class templates).
std::atomic<int> g_named_runs{0};
void named_worker() { ++g_named_runs; }
int named_answer() { return 42; }
struct NamedCallable {
  std::atomic<int>* runs;
  void operator()() const { ++*runs; }
};

TEST_P(Sched, GoAndSpawnTakeANamedFunction) {
  run_fibers([] {
    g_named_runs = 0;
    std::atomic<int> runs{0};
    NamedCallable callable{&runs};
    colony::go(named_worker);
    colony::go(callable);
    colony::spawn(named_worker).get();
    auto answer = colony::spawn(named_answer);
    EXPECT_EQ(answer.get(), 42);
    colony::spawn(callable).get();
    colony::go(colony::SpawnOptions{.stack_size = 128 * 1024}, named_worker);
    // An argument of type SourceLocation goes to the function, not to the spawn site.
    const auto here = colony::SourceLocation::current();
    EXPECT_EQ(colony::spawn([](colony::SourceLocation l) { return l.line(); }, here).get(),
              here.line());
    // Nine arguments (beyond the overloads that record the site) still work.
    EXPECT_EQ(colony::spawn([](int a, int b, int c, int d, int e, int f, int g, int h,
                               int i) { return a + b + c + d + e + f + g + h + i; },
                            1, 2, 3, 4, 5, 6, 7, 8, 9)
                  .get(),
              45);
    while (g_named_runs.load() < 3 || runs.load() < 2) colony::this_fiber::yield();
    EXPECT_EQ(g_named_runs.load(), 3);
    EXPECT_EQ(runs.load(), 2);
    // The spawn site is still the caller's line.
    colony::Chan<int> gate;
    const unsigned line = __LINE__ + 1;
    colony::go([gate] { gate.recv(); });
    std::ostringstream dump;
    colony::dump_fibers(dump);
    EXPECT_NE(dump.str().find("sched_test.cpp:" + std::to_string(line)), std::string::npos)
        << dump.str();
    gate.close();
  });
}

TEST_P(Sched, RunReturnsMainResult) {
  EXPECT_EQ(colony::run([] { return 42; }, {.max_procs = GetParam()}), 42);
  EXPECT_EQ(colony::run([] {}, {.max_procs = GetParam()}), 0);
  EXPECT_THROW(colony::run([]() -> int { throw std::out_of_range("x"); }, {.max_procs = GetParam()}),
               std::out_of_range);
}

TEST_P(Sched, MaxProcsAndIds) {
  run_fibers([&] {
    EXPECT_EQ(colony::max_procs(), GetParam());
    EXPECT_TRUE(colony::this_fiber::in_fiber());
    std::uint64_t me = colony::this_fiber::id();
    EXPECT_NE(me, 0u);
    auto other = colony::spawn([] { return colony::this_fiber::id(); });
    EXPECT_NE(other.get(), me);
  });
}

// Every spawned fiber runs exactly once.
TEST_P(Sched, EverySpawnRunsExactlyOnce) {
  const int n = static_cast<int>(1'000'000 * colony::testing::stress_scale());
  run_fibers([&] {
    std::vector<std::uint8_t> ran(static_cast<std::size_t>(n), 0);
    Latch done(n);
    for (int i = 0; i < n; ++i)
      colony::go([&ran, &done, i] {
        ++ran[static_cast<std::size_t>(i)];
        done.count_down();
      });
    done.wait();
    // Give any double run a chance to happen before checking.
    colony::this_fiber::sleep_for(1ms);
    for (int i = 0; i < n; ++i) ASSERT_EQ(ran[static_cast<std::size_t>(i)], 1) << "fiber " << i;
  });
}

// A fiber spawning CPU-bound work on one P sees other Ps take it: by stealing while the work
// fits in the local run queue, and through the global queue once it overflows.
TEST_P(Sched, WorkIsStolen) {
  if (GetParam() < 2) GTEST_SKIP() << "needs two processors";
  run_fibers([&] {
    auto burn = [](int iters) {
      volatile std::uint64_t x = 0;
      for (int k = 0; k < iters; ++k) x = x + static_cast<std::uint64_t>(k);
    };
    // On a loaded machine the OS may not run the other processor's thread at all while the
    // tasks take (under a sanitizer and three parallel test jobs, 0.4 s was not enough once):
    // a task that sees no sign of the other processor yet keeps its own busy (it does not
    // park, so its run queue stays full for a thief), until 10 s into the phase at most.
    auto busy_until = [&](const auto& seen, std::chrono::steady_clock::time_point until) {
      while (!seen() && std::chrono::steady_clock::now() < until) burn(10000);
    };
    // Phase 1: 200 tasks fit in the spawning P's ring (256): others can only steal them.
    {
      std::mutex mu;
      std::set<std::thread::id> threads;
      Latch done(200);
      const auto before = colony::stats().total.stolen;
      const auto until = std::chrono::steady_clock::now() + 10s;
      for (int i = 0; i < 200; ++i)
        colony::go([&] {
          burn(200000);
          busy_until([&] { return colony::stats().total.stolen > before; }, until);
          {
            std::lock_guard<std::mutex> lk(mu);
            threads.insert(std::this_thread::get_id());
          }
          done.count_down();
        });
      done.wait();
      EXPECT_GT(colony::stats().total.stolen, before) << "no fiber was stolen";
      // Under a sanitizer and a loaded machine one thread may be starved by the OS long enough
      // for the other to steal its work back: only the steal itself is checked there.
      if (!colony::testing::kSanitized) {
        EXPECT_GE(threads.size(), 2u) << "all work ran on one thread";
      }
    }
    // Phase 2: 10k tasks overflow to the global queue as well.
    {
      std::mutex mu;
      std::set<std::thread::id> threads;
      Latch done(10000);
      auto two_threads = [&] {
        std::lock_guard<std::mutex> lk(mu);
        return threads.size() >= 2;
      };
      const auto until = std::chrono::steady_clock::now() + 10s;
      for (int i = 0; i < 10000; ++i)
        colony::go([&] {
          burn(20000);
          {
            std::lock_guard<std::mutex> lk(mu);
            threads.insert(std::this_thread::get_id());
          }
          busy_until(two_threads, until);
          done.count_down();
        });
      done.wait();
      if (!colony::testing::kSanitized) {
        EXPECT_GE(threads.size(), 2u) << "all work ran on one thread";
      }
    }
  });
}

// A fiber readied by the running fiber runs next on the same P (runnext).
TEST_P(Sched, RunnextKeepsPingPongLocal) {
  run_fibers([&] {
    constexpr int kRounds = 10000;
    struct Baton {
      colony::sched::SpinLock lock;
      colony::sched::WaitList list;
      bool set = false;
      void pass() {
        lock.lock();
        if (colony::sched::Waiter* w = list.pop_front()) {
          lock.unlock();
          colony::sched::notify(*w);
          return;
        }
        set = true;
        lock.unlock();
      }
      void take() {
        lock.lock();
        if (set) {
          set = false;
          lock.unlock();
          return;
        }
        colony::sched::Waiter w;
        list.push_back(&w);
        colony::sched::wait(w, lock, colony::sched::WaitReason::event);
      }
    };
    Baton ping, pong;
    std::atomic<int> same_thread{0};
    auto partner = colony::spawn([&] {
      for (int i = 0; i < kRounds; ++i) {
        ping.take();
        pong.pass();
      }
    });
    for (int i = 0; i < kRounds; ++i) {
      auto before = std::this_thread::get_id();
      ping.pass();
      pong.take();
      if (std::this_thread::get_id() == before) ++same_thread;
    }
    partner.get();
    EXPECT_GT(same_thread.load(), kRounds * 8 / 10) << "ping-pong kept migrating between threads";
  });
}

// A fiber that yields forever does not starve the others on its P, nor the global queue.
TEST_P(Sched, YieldingFiberDoesNotStarveOthers) {
  run_fibers([&] {
    std::atomic<bool> stop{false};
    auto hog = colony::spawn([&] {
      while (!stop.load()) colony::this_fiber::yield();
    });
    // Local work.
    Latch local(100);
    for (int i = 0; i < 100; ++i) colony::go([&] { local.count_down(); });
    local.wait();
    // Work readied from a plain thread goes through the global queue.
    colony::detail::FutureState<int> from_thread;
    std::thread t([&] { from_thread.set_value(7); });
    from_thread.wait();
    EXPECT_EQ(from_thread.take(), 7);
    // Fibers started from a plain thread into this runtime go through the global queue too.
    auto* s = colony::sched::current_scheduler();
    Latch outside(10);
    std::thread t2([&] {
      for (int i = 0; i < 10; ++i)
        colony::sched::launch(*s, {}, [&] { outside.count_down(); },
                              colony::SourceLocation::current());
    });
    outside.wait();
    t.join();
    t2.join();
    stop = true;
    hog.get();
    EXPECT_GT(colony::stats().total.global_gets, 0u);
  });
}

TEST_P(Sched, SleepIsAccurateEnough) {
  run_fibers([&] {
    for (auto d : {1ms, 5ms, 20ms}) {
      auto t0 = std::chrono::steady_clock::now();
      colony::this_fiber::sleep_for(d);
      auto took = std::chrono::steady_clock::now() - t0;
      EXPECT_GE(took, d);
      EXPECT_LT(took, d + 500ms) << "sleep overslept grossly";
    }
    auto until = std::chrono::steady_clock::now() + 3ms;
    colony::this_fiber::sleep_until(until);
    EXPECT_GE(std::chrono::steady_clock::now(), until);
    colony::this_fiber::sleep_for(0ms);   // behaves as a yield
    colony::this_fiber::sleep_for(-5ms);
  });
}

TEST_P(Sched, TenThousandConcurrentTimers) {
  run_fibers([&] {
    constexpr int kTimers = 10000;
    Latch done(kTimers);
    std::atomic<int> early{0};
    for (int i = 0; i < kTimers; ++i)
      colony::go([&, i] {
        auto d = std::chrono::microseconds(100 * (i % 100) + 50);
        auto t0 = std::chrono::steady_clock::now();
        colony::this_fiber::sleep_for(d);
        if (std::chrono::steady_clock::now() - t0 < d) ++early;
        done.count_down();
      });
    done.wait();
    EXPECT_EQ(early.load(), 0);
    // Sleeps whose deadline passed before they parked do not need a timer.
    EXPECT_GE(colony::stats().total.timers_fired, static_cast<std::uint64_t>(kTimers / 2));
  });
}

// A timer whose P is busy running a fiber that never yields still fires: another P runs it.
TEST_P(Sched, TimerOnBusyProcessorFiresOnTime) {
  if (GetParam() < 2) GTEST_SKIP() << "needs two processors";
  run_fibers([&] {
    std::atomic<bool> stop{false};
    auto spinner = colony::spawn([&] {
      auto end = std::chrono::steady_clock::now() + 2s;
      while (!stop.load() && std::chrono::steady_clock::now() < end) {
      }
    });
    auto t0 = std::chrono::steady_clock::now();
    colony::this_fiber::sleep_for(20ms);
    auto took = std::chrono::steady_clock::now() - t0;
    stop = true;
    spinner.get();
    EXPECT_LT(took, 1s) << "the timer waited for the busy fiber";
  });
}

TEST_P(Sched, GoExceptionsGoToOnPanic) {
  struct Seen {
    std::mutex mu;
    std::vector<std::string> what;
    std::vector<std::uint64_t> ids;
  } seen;
  Latch done(2);
  colony::Config cfg;
  cfg.on_panic = [&](std::exception_ptr e, std::uint64_t id) {
    std::lock_guard<std::mutex> lk(seen.mu);
    seen.ids.push_back(id);
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      seen.what.push_back(ex.what());
    } catch (int v) {
      seen.what.push_back("int " + std::to_string(v));
    }
    done.count_down();
  };
  run_fibers(
      [&] {
        colony::go([] { throw std::runtime_error("boom"); });
        colony::go([] { throw 42; });
        done.wait();
        colony::this_fiber::sleep_for(1ms);  // let the panicking fibers finish exiting
      },
      cfg);
  std::sort(seen.what.begin(), seen.what.end());
  ASSERT_EQ(seen.what.size(), 2u);
  EXPECT_EQ(seen.what[0], "boom");
  EXPECT_EQ(seen.what[1], "int 42");
  EXPECT_NE(seen.ids[0], 0u);
}

TEST_P(Sched, SpawnExceptionsGoToTheFuture) {
  run_fibers([&] {
    auto a = colony::spawn([]() -> int { throw std::invalid_argument("bad"); });
    auto b = colony::spawn([] { throw 7; });
    auto c = colony::spawn([](int x, const std::string& s) { return s + std::to_string(x); }, 5,
                           std::string("n="));
    EXPECT_THROW(a.get(), std::invalid_argument);
    try {
      b.get();
      ADD_FAILURE() << "no exception";
    } catch (int v) {
      EXPECT_EQ(v, 7);
    }
    EXPECT_EQ(c.get(), "n=5");
    EXPECT_FALSE(c.valid());
    EXPECT_THROW(c.get(), std::future_error);
  });
}

TEST(SchedDeath, UnhandledPanicPrintsAndAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(colony::run([] {
                 colony::go([] { throw std::runtime_error("kaboom"); });
                 colony::this_fiber::sleep_for(1s);
               }),
               "panic in fiber [0-9]+: kaboom \\[spawned at .*sched_test.cpp:[0-9]+\\]");
  EXPECT_DEATH(colony::run([] {
                 colony::go([] { throw 42; });
                 colony::this_fiber::sleep_for(1s);
               }),
               "panic in fiber [0-9]+: non-std exception of type int");
}

// A fiber that switches inside a catch block keeps its own exception; another fiber throwing
// and catching meanwhile on the same thread does not disturb it.
TEST_P(Sched, ExceptionStateTravelsWithTheFiber) {
  run_fibers([&] {
    std::atomic<int> ok{0};
    Latch done(50);
    for (int i = 0; i < 50; ++i)
      colony::go([&, i] {
        try {
          throw std::runtime_error("mine " + std::to_string(i));
        } catch (...) {
          for (int k = 0; k < 5; ++k) {
            colony::this_fiber::yield();
            try {
              throw 1;
            } catch (int) {
            }
            colony::this_fiber::sleep_for(100us);
          }
          EXPECT_EQ(std::uncaught_exceptions(), 0);
          try {
            throw;  // rethrow the exception this fiber is handling
          } catch (const std::runtime_error& e) {
            if (std::string(e.what()) == "mine " + std::to_string(i)) ++ok;
          }
        }
        done.count_down();
      });
    done.wait();
    EXPECT_EQ(ok.load(), 50);
  });
}

TEST_P(Sched, FutureWorksFromPlainThreads) {
  run_fibers([&] {
    colony::detail::FutureState<void> go_on;
    auto fut = colony::spawn([&] {
      go_on.wait();
      colony::this_fiber::sleep_for(2ms);
      return 11;
    });
    colony::detail::FutureState<int> got;
    std::thread t([&] {
      EXPECT_EQ(fut.wait_for(0ms), std::future_status::timeout);
      go_on.set_value();
      got.set_value(fut.get());  // blocks this thread, not a processor
    });
    got.wait();  // parks this fiber (joining the thread here would block the processor)
    t.join();
    EXPECT_EQ(got.take(), 11);
    auto slow = colony::spawn([] { colony::this_fiber::sleep_for(200ms); });
    EXPECT_EQ(slow.wait_for(1ms), std::future_status::timeout);  // parks this fiber with a timeout
    EXPECT_EQ(slow.wait_for(5s), std::future_status::ready);
  });
}

// Shutdown unwinds parked fibers (destructors run) and destroys fibers that never started.
TEST_P(Sched, ShutdownUnwindsParkedFibers) {
  static std::atomic<int> destroyed;
  destroyed = 0;
  struct Tracker {
    bool armed = true;
    Tracker() = default;
    Tracker(Tracker&& o) noexcept : armed(o.armed) { o.armed = false; }
    ~Tracker() {
      if (armed) ++destroyed;
    }
  };
  colony::run(
      [] {
        for (int i = 0; i < 20; ++i)  // sleeping for an hour
          colony::go([t = Tracker()] { colony::this_fiber::sleep_for(1h); });
        for (int i = 0; i < 20; ++i)  // parked with nobody to wake them
          colony::go([t = Tracker()] {
            colony::sched::park(nullptr, nullptr, colony::sched::WaitReason::event);
          });
        for (int i = 0; i < 20; ++i)  // waiting on futures that never complete
          colony::go([t = Tracker()] {
            colony::detail::FutureState<int> never;
            never.wait();
          });
        colony::this_fiber::sleep_for(10ms);  // let them all park
        for (int i = 0; i < 20; ++i)  // never started: main returns first (with 1 P at least)
          colony::go([t = Tracker()] { colony::this_fiber::sleep_for(1h); });
      },
      {.max_procs = GetParam()});
  EXPECT_EQ(destroyed.load(), 80);
}

// A plain thread readies fibers (channel sends to parked receivers) while the runtime shuts
// down and unwinds those very fibers: exactly one of the two resumes each fiber, nothing aborts
// ("fiber status is running, expected waiting"), and every fiber is unwound or received.
TEST(SchedShutdown, PlainThreadReadiesFibersWhileShutdownUnwindsThem) {
  const int rounds = static_cast<int>(40 * colony::testing::stress_scale());
  for (int round = 0; round < rounds; ++round) {
    constexpr int kFibers = 64;
    std::vector<colony::Chan<int>> chans;
    for (int i = 0; i < kFibers; ++i) chans.emplace_back(1);
    std::atomic<int> parked{0}, ended{0};
    std::atomic<bool> start{false};
    std::thread sender([&] {
      while (!start.load()) std::this_thread::yield();
      // Spread the sends over the shutdown (some ms: its threads stop, then it unwinds).
      const auto gap = std::chrono::microseconds(round % 8 * 10);
      for (auto& c : chans) {
        EXPECT_EQ(c.try_send(1), colony::ChanStatus::success);
        const auto until = std::chrono::steady_clock::now() + gap;
        while (std::chrono::steady_clock::now() < until) {
        }
      }
    });
    colony::run(
        [&] {
          for (int i = 0; i < kFibers; ++i)
            colony::go([&, i] {
              struct End {
                std::atomic<int>& n;
                ~End() { ++n; }
              } end{ended};
              ++parked;
              (void)chans[static_cast<std::size_t>(i)].recv();
            });
          while (parked.load() < kFibers) colony::this_fiber::yield();
          start = true;  // the sends race run()'s return and the unwinding of the receivers
        },
        {.max_procs = 1 + round % 2, .detect_deadlocks = false});
    sender.join();
    EXPECT_EQ(ended.load(), kFibers) << "round " << round;
  }
}

TEST(SchedConfig, BadConfigurationIsRejected) {
  EXPECT_THROW(colony::run([] {}, {.max_procs = -1}), std::invalid_argument);
  EXPECT_THROW(colony::run([] {}, {.max_procs = 100000}), std::invalid_argument);
  EXPECT_THROW(colony::run([] {}, {.stack_size = 100}), std::invalid_argument);
  EXPECT_THROW(colony::run([] {}, {.guard_page_budget = -7}), std::invalid_argument);
  colony::run([] {
    EXPECT_THROW(colony::go(colony::SpawnOptions{.stack_size = 10}, [] {}), std::invalid_argument);
    // A bigger per-spawn stack works.
    auto f = colony::spawn(colony::SpawnOptions{.stack_size = 4 << 20}, [] {
      volatile char big[2 << 20];
      big[0] = 1;
      big[sizeof big - 1] = 2;
      return big[0] + big[sizeof big - 1];
    });
    EXPECT_EQ(f.get(), 3);
  });
  setenv("COLONY_MAXPROCS", "3", 1);
  colony::run([] { EXPECT_EQ(colony::max_procs(), 3); });
  setenv("COLONY_MAXPROCS", "zero", 1);
  EXPECT_THROW(colony::run([] {}), std::invalid_argument);
  unsetenv("COLONY_MAXPROCS");
}

// fastrand: values drawn in `v` are all distinct, and their low bits (what a caller reduces
// with %) fall evenly into 2, 8 and 64 buckets (within 20%: over 6 standard deviations).
void expect_fastrand_values_good(std::vector<std::uint64_t> v) {
  for (unsigned bits : {1u, 3u, 6u}) {
    std::vector<std::size_t> count(std::size_t{1} << bits);
    for (std::uint64_t x : v) ++count[x & (count.size() - 1)];
    const double expected = static_cast<double>(v.size()) / static_cast<double>(count.size());
    for (std::size_t b = 0; b < count.size(); ++b)
      EXPECT_NEAR(static_cast<double>(count[b]), expected, 0.2 * expected)
          << "low " << bits << " bits, bucket " << b;
  }
  std::sort(v.begin(), v.end());
  EXPECT_EQ(std::adjacent_find(v.begin(), v.end()), v.end()) << "a value came twice";
}

TEST_P(Sched, FastrandOnFibersIsDistinctAndUniform) {
  const int nfibers = 2 * GetParam();
  run_fibers([nfibers] {
    constexpr int kDraws = 32768;
    std::vector<colony::Future<std::vector<std::uint64_t>>> futures;
    for (int i = 0; i < nfibers; ++i)
      futures.push_back(colony::spawn([] {
        std::vector<std::uint64_t> v(kDraws);
        for (int k = 0; k < kDraws; ++k) {
          v[static_cast<std::size_t>(k)] = colony::sched::fastrand();
          if (k % 1024 == 0) colony::this_fiber::yield();  // let the fibers share Ms
        }
        return v;
      }));
    std::vector<std::uint64_t> all;
    for (auto& f : futures) {
      std::vector<std::uint64_t> v = f.get();
      expect_fastrand_values_good(v);
      all.insert(all.end(), v.begin(), v.end());
    }
    expect_fastrand_values_good(all);
  });
}

TEST(SchedFastrand, WorksFromPlainThreads) {
  constexpr int kDraws = 65536;
  std::vector<std::vector<std::uint64_t>> drawn(4);
  std::vector<std::thread> threads;
  for (auto& v : drawn)
    threads.emplace_back([&v] {
      v.resize(kDraws);
      for (auto& x : v) x = colony::sched::fastrand();
    });
  for (auto& t : threads) t.join();
  std::vector<std::uint64_t> all;
  for (const auto& v : drawn) {
    expect_fastrand_values_good(v);
    all.insert(all.end(), v.begin(), v.end());
  }
  expect_fastrand_values_good(all);  // the threads share one sequence: no value twice
}

TEST(SchedMisuse, ParkOutsideAFiberThrows) {
  EXPECT_THROW(colony::sched::park(nullptr, nullptr, colony::sched::WaitReason::event),
               std::logic_error);
}

TEST(DefaultRuntime, GoWorksFromMain) {
  colony::detail::FutureState<int> st;
  colony::go([&] { st.set_value(5); });
  st.wait();
  EXPECT_EQ(st.take(), 5);
  auto f = colony::spawn([] { return colony::this_fiber::in_fiber(); });
  EXPECT_TRUE(f.get());
  EXPECT_FALSE(colony::this_fiber::in_fiber());
  EXPECT_EQ(colony::this_fiber::id(), 0u);
}

#pragma GCC diagnostic ignored "-Winfinite-recursion"
TEST(StackDeath, OverflowIsReportedClearly) {
  if (colony::testing::kSanitized) GTEST_SKIP() << "the sanitizer reports stack overflows itself";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // Guarded stack: the guard page faults and the handler names the fiber.
  EXPECT_DEATH(colony::run([] {
                 struct R {
                   [[gnu::noinline]] static int down(int n) {
                     volatile char pad[1024];
                     pad[0] = static_cast<char>(n);
                     int r = down(n + 1);
                     asm volatile("" : : "r"(&pad[0]) : "memory");  // keep every frame
                     return r + pad[0];
                   }
                 };
                 colony::spawn([] { return R::down(0); }).get();
               }, {.stack_size = 64 * 1024}),
               "fiber [0-9]+ overflowed its [0-9]+-byte stack \\(spawned at .*sched_test.cpp");
  // Unguarded stack: caught at the next switch.
  EXPECT_DEATH(colony::run([] {
                 struct R {
                   [[gnu::noinline]] static int down(int n) {
                     volatile char pad[1024];
                     pad[0] = static_cast<char>(n);
                     if (n == 80) {
                       colony::this_fiber::yield();
                       return pad[0];
                     }
                     int r = down(n + 1);
                     asm volatile("" : : "r"(&pad[0]) : "memory");  // keep every frame
                     return r + pad[0];
                   }
                 };
                 colony::spawn([] { return R::down(0); }).get();
               }, {.stack_size = 64 * 1024, .guard_page_budget = 0}),
               "fiber [0-9]+ overflowed");
}

}  // namespace

namespace {

// Cached stacks idle longer than Config::stack_trim_after give their pages back.
TEST(StackTrim, IdleStacksAreGivenBack) {
  colony::run(
      [] {
        constexpr int kFibers = 2000;
        Latch done(kFibers);
        colony::detail::FutureState<void> gate;
        for (int i = 0; i < kFibers; ++i)
          colony::go([&] {
            char use[64 * 1024];  // touch 64 KiB of this fiber's stack
            for (std::size_t k = 0; k < sizeof use; k += 4096) use[k] = 1;
            asm volatile("" : : "r"(use) : "memory");  // the stores must happen
            gate.wait();  // all alive at once, so each has its own stack
            done.count_down();
          });
        colony::this_fiber::sleep_for(20ms);
        long busy = colony::testing::rss_kib();
        gate.set_value();
        done.wait();
        // Let every M go idle past the trim delay; the idle path trims.
        long trimmed = busy;
        for (int i = 0; i < 100 && trimmed > busy - 64 * kFibers / 2; ++i) {
          colony::this_fiber::sleep_for(20ms);
          trimmed = colony::testing::rss_kib();
        }
        EXPECT_LT(trimmed, busy - 64 * kFibers / 2)
            << "RSS " << busy << " KiB with the stacks in use, " << trimmed << " KiB after idling";
      },
      {.max_procs = 2, .stack_trim_after = 10ms});
}

// The default runtime shuts down at exit: parked fibers are unwound (destructors run).
TEST(DefaultRuntimeDeath, ExitUnwindsParkedFibers) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        struct Loud {
          ~Loud() { std::fprintf(stderr, "unwound at exit\n"); }
        };
        colony::go([] {
          Loud l;
          colony::this_fiber::sleep_for(1h);
        });
        std::this_thread::sleep_for(50ms);
        std::exit(3);
      },
      ::testing::ExitedWithCode(3), "unwound at exit");
}

// A fiber that never reaches a switch point does not hang the exit: after a grace of one
// second the process exits without unwinding (it cannot stop a running fiber).
TEST(DefaultRuntimeDeath, ExitDoesNotHangOnABusyFiber) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        colony::go([] {
          for (;;) {  // never yields
            asm volatile("");
          }
        });
        std::this_thread::sleep_for(50ms);
        std::exit(4);
      },
      ::testing::ExitedWithCode(4), "");
}

}  // namespace
