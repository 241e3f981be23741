// Fiber stacks: an overflow is reported clearly (guarded or not), and cached stacks left idle
// give their pages back.
#include <gtest/gtest.h>

#include <chrono>
#include <colony/colony.hpp>

#include "test_util.hpp"

using namespace std::chrono_literals;
using colony::testing::Latch;

namespace {

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
               "fiber [0-9]+ overflowed its [0-9]+-byte stack \\(spawned at .*stack_test.cpp");
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

}  // namespace
