// Lazily bound stacks (docs/design.md, "Stacks" and "Cold start"): a fiber that has been spawned
// but has not started holds no stack, a runtime shuts down cleanly with such fibers queued, and
// callables of any size and alignment (in the G up to 128 bytes, on the heap beyond) arrive
// intact and are destroyed once. Each Sched test runs with 1, 2, 4 and 8 processors.
#include <gtest/gtest.h>

#include <atomic>
#include <colony/colony.hpp>
#include <colony/stats.hpp>
#include <cstdint>
#include <thread>

#include "colony/sched/fiber.hpp"
#include "sched_test.hpp"

using colony::testing::Latch;
using colony::testing::Sched;

namespace {

// launch_from_thread: a plain thread launches n fibers running fn into the calling fiber's
// runtime (to its global queue: no spawn-overflow yield) and returns once all are queued.
template <class F>
void launch_from_thread(int n, F fn) {
  colony::sched::Scheduler* s = colony::sched::current_scheduler();
  std::atomic<bool> queued{false};
  std::thread t([&] {
    for (int i = 0; i < n; ++i)
      colony::sched::launch(*s, colony::SpawnOptions{}, fn, colony::SourceLocation::current());
    queued.store(true, std::memory_order_release);
  });
  // Hold the P without a switch point, so that none of them can start meanwhile (max_procs 1).
  while (!queued.load(std::memory_order_acquire)) std::this_thread::yield();
  t.join();
}

// Spawned fibers that have not started hold no stack: only a G each.
TEST(LazyStack, QueuedFibersHoldNoStack) {
  constexpr int kFibers = colony::testing::kSanitized ? 2'000 : 10'000;
  colony::run(
      [] {
        const colony::Stats before = colony::stats();
        Latch done(kFibers);
        launch_from_thread(kFibers, [&done] { done.count_down(); });
        const colony::Stats queued = colony::stats();
        // Carving 10,000 stacks eagerly would map ~3 GB and guard 10,000 slots; slots are
        // carved in batches of 256, slabs are 256 MiB.
        EXPECT_LT(queued.guarded_stacks - before.guarded_stacks, 600u);
        EXPECT_LE(queued.stack_bytes_mapped - before.stack_bytes_mapped, std::size_t{256} << 20);
        EXPECT_EQ(queued.fibers, std::int64_t{kFibers} + 1);
        done.wait();
        // They ran one after another on the one P, each on a stack the last one gave back.
        const colony::Stats after = colony::stats();
        EXPECT_LT(after.guarded_stacks - before.guarded_stacks, 600u);
      },
      {.max_procs = 1});
}

// Counts its live copies (g_live), so a test can check that each is destroyed exactly once.
std::atomic<int> g_live{0}, g_ran{0};
template <std::size_t Size, std::size_t Align>
struct alignas(Align) Payload {
  unsigned char bytes[Size];
  explicit Payload(unsigned char seed) {
    for (std::size_t i = 0; i < Size; ++i) bytes[i] = static_cast<unsigned char>(seed + i);
    ++g_live;
  }
  Payload(const Payload& o) noexcept {
    for (std::size_t i = 0; i < Size; ++i) bytes[i] = o.bytes[i];
    ++g_live;
  }
  ~Payload() { --g_live; }
  bool intact(unsigned char seed) const {
    if (reinterpret_cast<std::uintptr_t>(this) % Align != 0) return false;
    for (std::size_t i = 0; i < Size; ++i)
      if (bytes[i] != static_cast<unsigned char>(seed + i)) return false;
    return true;
  }
};

template <std::size_t Size, std::size_t Align>
void spawn_payload(std::atomic<int>& bad, Latch& done, unsigned char seed) {
  colony::go([p = Payload<Size, Align>(seed), &bad, &done, seed] {
    if (!p.intact(seed)) ++bad;
    ++g_ran;
    done.count_down();
  });
}

// Callables inline in the G (up to 128 bytes, aligned up to 64) and on the heap (larger, or
// aligned beyond 64) arrive intact, properly aligned, and are destroyed exactly once.
TEST_P(Sched, CallablesOfAnySizeAndAlignment) {
  g_live = 0;
  run_fibers([] {
    std::atomic<int> bad{0};
    constexpr int kRounds = 50;
    Latch done(kRounds * 7);
    for (int r = 0; r < kRounds; ++r) {
      auto seed = static_cast<unsigned char>(r);
      spawn_payload<8, 8>(bad, done, seed);      // 40 bytes with the captures: inline
      spawn_payload<32, 64>(bad, done, seed);    // 128 bytes, aligned 64: inline, just
      spawn_payload<64, 8>(bad, done, seed);     // 96 bytes: inline
      spawn_payload<160, 16>(bad, done, seed);   // heap
      spawn_payload<2000, 8>(bad, done, seed);   // heap, larger than the old on-stack limit
      spawn_payload<32, 128>(bad, done, seed);   // heap: aligned beyond the G's buffer
      spawn_payload<64, 4096>(bad, done, seed);  // heap, page aligned
    }
    done.wait();
    EXPECT_EQ(bad.load(), 0);
  });
  EXPECT_EQ(g_live.load(), 0);
}

// A runtime shuts down with fibers queued that never started (they have no stack): each
// callable, inline or on the heap, is destroyed exactly once, run or not.
TEST(LazyStack, ShutdownWithNeverStartedFibers) {
  g_live = 0;
  g_ran = 0;
  constexpr int kFibers = 1'000;
  colony::run(
      [] {
        launch_from_thread(kFibers, [p = Payload<16, 8>(1)] { ++g_ran; });
        launch_from_thread(kFibers, [p = Payload<1000, 64>(2)] { ++g_ran; });
        // Returns with 2,000 fibers queued: shutdown destroys those that have not run.
      },
      {.max_procs = 1});
  EXPECT_LE(g_ran.load(), 2 * kFibers);
  EXPECT_EQ(g_live.load(), 0);
}

}  // namespace
