// The runtime API the scheduler serves: go and spawn, run, max_procs and fiber ids, Futures
// completed from plain threads, configuration checks, misuse, the default runtime. Each Sched test
// runs with 1, 2, 4 and 8 processors.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "colony/sched/wait.hpp"
#include "sched_test.hpp"

using namespace std::chrono_literals;
using colony::testing::Latch;
using colony::testing::Sched;

namespace {

// The Sched suite of colony_sched_test, for every file of the executable (sched_test.hpp).
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
    EXPECT_NE(dump.str().find("spawn_test.cpp:" + std::to_string(line)), std::string::npos)
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

}  // namespace
