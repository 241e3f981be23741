// G: a fiber's control block. It lives at the top of the fiber's own stack slot (see stack.hpp),
// so spawning allocates nothing beyond the (cached) stack. A G is never freed while its
// Scheduler lives: a dead G goes back to a free cache with its stack and is reused, which is
// also what keeps the all-fibers registry (for dumps and shutdown) append-only.
//
// GStatus state machine, and who owns the stack in each state:
//   idle     -> runnable   new_fiber + start_fiber           (in a free cache: nobody)
//   runnable -> running    an M picks it from a run queue     (runnable: the queue holding it)
//   running  -> runnable   yield                              (running: the M executing it)
//   running  -> waiting    park                               (waiting: the wait queue / timer
//   waiting  -> runnable   ready, or park cancelled by unlock   that will ready it)
//   running  -> dead       the entry function returned/threw   (dead: the scheduler, until the
//   dead     -> idle       the stack is cached for reuse         next M frees it)
// Transitions are single-writer by construction (the park-then-unlock protocol), so they are
// checked loads + stores, not CAS; a mismatch is a runtime bug and aborts with a message.
#pragma once

#include <atomic>
#include <cstdint>
#include "colony/sched/source_location.hpp"

#include "colony/sched/fiber.hpp"

namespace colony::sched {

class Scheduler;
struct StackClass;

inline constexpr std::uint64_t kGMagic = 0xC01097F1BE5EA5EDull;

struct alignas(64) G {
  // Written at the lowest address of the control block, so that a stack overflowing from the
  // slot above (stacks grow down into the next slot's top) is caught at the next check.
  std::uint64_t magic = kGMagic;
  void* ctx = nullptr;                     // saved Boost.Context fcontext while switched out
  std::atomic<GStatus> status{GStatus::idle};
  // Fields read by fiber dumps from other threads are relaxed atomics.
  std::atomic<WaitReason> wait_reason{WaitReason::none};
  bool started = false;                    // entry function has begun running
  bool is_g0 = false;                      // an M's scheduler context on the thread stack
  bool guarded = false;                    // stack has a PROT_NONE guard page
  bool trimmed = false;                    // cached stack pages were given back (madvise)
  std::atomic<std::uint64_t> id{0};
  Scheduler* sched = nullptr;
  G* schedlink = nullptr;                  // global run queue / free lists
  G* cache_prev = nullptr;                 // global free cache (doubly linked)
  G* allg_next = nullptr;                  // registry of every G (append-only)
  // Stack: [lo, hi) is the usable stack; the control block and callable sit just below hi.
  char* stack_lo = nullptr;
  char* stack_hi = nullptr;
  StackClass* stack_class = nullptr;
  std::int64_t idle_since = 0;             // when it entered the global free cache
  // Entry function.
  FiberEntry entry{};
  void* fn = nullptr;
  bool fn_on_heap = false;
  std::atomic<const char*> site_file{""};      // spawn site
  std::atomic<const char*> site_function{""};
  std::atomic<unsigned> site_line{0};
  std::atomic<std::int64_t> wait_since{0};  // coarse monotonic time it parked (for dumps)
  // Per-fiber C++ exception state (libstdc++/libc++abi keep caught exceptions per thread;
  // a fiber that switches inside a catch block must take its own with it).
  void* eh_caught = nullptr;
  unsigned eh_uncaught = 0;
  // Sanitizer bookkeeping (unused in plain builds).
  void* asan_fake_stack = nullptr;
  const void* asan_stack_bottom = nullptr;
  std::size_t asan_stack_size = 0;
  void* tsan_fiber = nullptr;
  // The control block ends at the very top of the slot, so an overflow of the stack in the slot
  // above hits this word first.
  std::uint64_t magic_tail = kGMagic;
};

inline bool g_is_fiber(const G* g) noexcept { return g && !g->is_g0; }
inline std::uint64_t g_id(const G* g) noexcept { return g->id.load(std::memory_order_relaxed); }

}  // namespace colony::sched
