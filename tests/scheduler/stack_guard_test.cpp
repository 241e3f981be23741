// Stack guards at any fiber count (docs/design.md, "Stacks"). This file is compiled without
// -fstack-clash-protection (tests/CMakeLists.txt), like a user's code that does not use it: a
// large frame then moves the stack pointer in one step, and only the guard's size stops it from
// landing in the neighbouring slot.
#include <gtest/gtest.h>

#include <cstdint>

#include <colony/colony.hpp>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stack.hpp"  // StackPool::guard_regions_supported
#include "test_util.hpp"

namespace {

using colony::testing::kSanitized;

#pragma GCC diagnostic ignored "-Winfinite-recursion"

// recurse: 1 KiB frames, without end (the overflow is the point).
[[gnu::noinline]] int recurse(int n) {
  volatile char pad[1024];
  pad[0] = static_cast<char>(n);
  int r = recurse(n + 1);
  asm volatile("" : : "r"(&pad[0]) : "memory");  // keep every frame
  return r + pad[0];
}

// big_frame: one 60 KiB frame that writes only its lowest byte, the access that would land
// furthest below a nearly full stack.
[[gnu::noinline]] int big_frame() {
  volatile char big[60 * 1024];
  big[0] = 1;
  asm volatile("" : : "r"(&big[0]) : "memory");
  return big[0];
}

// near_end: recurses with 1 KiB frames until less than 2 KiB of stack is left, then calls
// big_frame.
[[gnu::noinline]] int near_end(const char* lo) {
  volatile char pad[1024];
  pad[0] = 1;
  int r = const_cast<const char*>(&pad[0]) - lo < 3 * 1024 ? big_frame() : near_end(lo);
  asm volatile("" : : "r"(&pad[0]) : "memory");
  return r + pad[0];
}

// park_many: starts n fibers that park until the returned channel is closed.
colony::Chan<int> park_many(int n, colony::testing::Latch& parked) {
  colony::Chan<int> gate;
  for (int i = 0; i < n; ++i)
    colony::go([gate, &parked] {
      parked.count_down();
      (void)gate.recv();
    });
  parked.wait();
  return gate;
}

bool regions() { return colony::sched::StackPool::guard_regions_supported(); }

TEST(StackGuard, EveryStackIsGuardedAtAnyCount) {
  constexpr int kFibers = kSanitized ? 2'000 : 20'000;
  colony::run([] {
    colony::testing::Latch parked(kFibers);
    colony::Chan<int> gate = park_many(kFibers, parked);
    colony::Stats st = colony::stats();
    EXPECT_EQ(st.stack_guard_bytes, 64u * 1024);
    if (regions()) {
      EXPECT_EQ(st.stack_guard, colony::StackGuard::regions);
      EXPECT_GE(st.guarded_stacks, static_cast<std::size_t>(kFibers));
    } else {
      EXPECT_EQ(st.stack_guard, colony::StackGuard::budgeted);
    }
    gate.close();
  });
}

TEST(StackGuard, FallbackIsReportedWhenRegionsAreOff) {
  ::setenv("COLONY_GUARD_REGIONS", "0", 1);
  colony::run([] {
    EXPECT_EQ(colony::stats().stack_guard, colony::StackGuard::budgeted);
  });
  colony::run([] { EXPECT_EQ(colony::stats().stack_guard, colony::StackGuard::none); },
              {.guard_page_budget = 0});
  ::unsetenv("COLONY_GUARD_REGIONS");
  EXPECT_EQ(to_string(colony::StackGuard::regions), "guard regions on every stack");
}

TEST(StackGuard, GuardSizeIsValidated) {
  EXPECT_THROW(colony::run([] {}, {.stack_guard_size = (std::size_t{64} << 20) + 1}),
               std::invalid_argument);
  // Rounded up to whole pages; one page at least.
  colony::run([] { EXPECT_EQ(colony::stats().stack_guard_bytes, 4096u); },
              {.stack_guard_size = 0});
  colony::run([] { EXPECT_EQ(colony::stats().stack_guard_bytes, 3 * 4096u); },
              {.stack_guard_size = 2 * 4096 + 1});
}

// The overflow of a fiber carved after 20,000 others (twice the old guard-page budget) hits
// its guard and is reported with its stack size and spawn site.
TEST(StackGuardDeath, OverflowAfterManyParkedFibersIsReported) {
#if defined(COLONY_TSAN)
  GTEST_SKIP() << "TSan reports stack overflows itself";
#endif
  if (!regions()) GTEST_SKIP() << "this kernel has no guard regions (budgeted fallback)";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(colony::run([] {
                 colony::testing::Latch parked(20'000);
                 colony::Chan<int> gate = park_many(20'000, parked);
                 colony::spawn([] { return recurse(0); }).get();
                 gate.close();
               }),
               "fiber [0-9]+ overflowed its 262144-byte stack \\(spawned at "
               ".*stack_guard_test.cpp");
}

// Stacks are bound when a fiber first runs: a fiber spawned after a thousand others (which took
// and gave back slots as they ran) overflows a reused slot, and is still named with its stack
// size and spawn site (the SIGSEGV handler finds it through the slot's header).
TEST(StackGuardDeath, OverflowOfALateStartedFiberIsReported) {
#if defined(COLONY_TSAN)
  GTEST_SKIP() << "TSan reports stack overflows itself";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(colony::run(
                   [] {
                     for (int i = 0; i < 1'000; ++i) colony::go([] {});
                     colony::spawn([] { return recurse(0); }).get();
                   },
                   {.max_procs = 1}),
               "fiber [0-9]+ overflowed its 262144-byte stack \\(spawned at "
               ".*stack_guard_test.cpp");
}

// A 60 KiB frame near the end of a stack lands in the 64 KiB guard instead of the neighbouring
// slot (with a one-page guard it skipped over it silently).
TEST(StackGuardDeath, LargeFrameNearTheEndHitsTheGuard) {
#if defined(COLONY_TSAN)
  GTEST_SKIP() << "TSan reports stack overflows itself";
#endif
  if (!regions()) GTEST_SKIP() << "this kernel has no guard regions (budgeted fallback)";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(colony::run([] {
                 colony::testing::Latch parked(100);
                 colony::Chan<int> gate = park_many(100, parked);  // neighbours in the slab
                 colony::spawn(colony::SpawnOptions{.stack_size = 64 * 1024}, [] {
                   char here = 0;
                   // The stack's low end: stack_size below the current frame, give or take
                   // the slot header and the entry frames above it (< 4 KiB). Computed as
                   // an address: it lies outside `here`'s object.
                   const auto* lo = reinterpret_cast<const char*>(
                       reinterpret_cast<std::uintptr_t>(&here) - 64 * 1024 + 4 * 1024);
                   return near_end(lo);
                 }).get();
                 gate.close();
               }),
               "fiber [0-9]+ overflowed its 65536-byte stack");
}

// fork() after a runtime has carved stacks: the child's own runtime still guards every stack.
// The guard batch names the process by a pidfd and its lock is held across fork() by atfork
// handlers; a child that deadlocked on that lock, or installed no guard, fails here (the
// overflow must hit a guard and be reported).
TEST(StackGuardDeath, ForkedChildInstallsItsOwnGuards) {
#if defined(COLONY_TSAN)
  GTEST_SKIP() << "TSan reports stack overflows itself";
#endif
  if (!regions()) GTEST_SKIP() << "this kernel has no guard regions (budgeted fallback)";
  colony::run([] {
    colony::testing::Latch parked(300);
    park_many(300, parked).close();
  });
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(out[1], 2);
    ::close(out[0]);
    colony::run([] {
      colony::testing::Latch parked(300);
      colony::Chan<int> gate = park_many(300, parked);
      colony::spawn([] { return recurse(0); }).get();
      gate.close();
    });
    ::_exit(0);  // not reached: the overflow ends the child
  }
  ::close(out[1]);
  std::string report;
  char buf[512];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) report.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) << "status " << status;
  EXPECT_NE(report.find("overflowed its 262144-byte stack"), std::string::npos) << report;
}

}  // namespace
