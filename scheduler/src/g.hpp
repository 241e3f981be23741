// G: a fiber's control block. G's are carved from the scheduler's G arena (garena.hpp), packed
// and never freed while their Scheduler lives: a dead G goes back to a free cache and is reused,
// which is what keeps the all-fibers registry (for dumps and shutdown) append-only. The callable
// lives in the G (inline up to kFnInline bytes, else on the heap). A G has no stack until it
// first runs: execute / switch_out bind a stack slot to it then (Scheduler::bind_stack), and its
// exit unbinds it (the slot goes to a stack cache, the G to a G cache). So a spawned fiber that
// waits in a run queue costs its G only, and the stacks in use are about the fibers that have
// started and not ended. docs/design.md, "Stacks" and "Cold start".
//
// GStatus state machine, and who owns the stack in each state:
//   idle     -> runnable   new_fiber + start_fiber           (in a free cache: no stack)
//   runnable -> running    an M picks it from a run queue     (runnable: the queue holding it;
//                          and binds a stack if it has none     no stack if it never ran)
//   running  -> runnable   yield                              (running: the M executing it)
//   running  -> waiting    park                               (waiting: the wait queue / timer
//   waiting  -> runnable   ready, or park cancelled by unlock   that will ready it)
//   running  -> dead       the entry function returned/threw   (dead: the scheduler, until the
//   dead     -> idle       stack and G are cached for reuse      next M unbinds it)
// Transitions are single-writer by construction (the park-then-unlock protocol), so they are
// checked loads + stores, not CAS; a mismatch is a runtime bug and aborts with a message.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include "colony/sched/source_location.hpp"

#include "colony/sched/fiber.hpp"

namespace colony::sched {

class Scheduler;
struct StackClass;

struct Stack;

struct alignas(64) G {
  void* ctx = nullptr;                     // saved Boost.Context fcontext while switched out
  std::atomic<GStatus> status{GStatus::idle};
  // Fields read by fiber dumps from other threads are relaxed atomics.
  std::atomic<WaitReason> wait_reason{WaitReason::none};
  bool started = false;                    // entry function has begun running
  bool is_g0 = false;                      // an M's scheduler context on the thread stack
  bool fn_on_heap = false;                 // the callable did not fit in fn_buf
  std::uint16_t fn_heap_align = 0;         // its alignment, then (for the sized delete)
  std::atomic<std::uint64_t> id{0};
  Scheduler* sched = nullptr;
  G* schedlink = nullptr;                  // global run queue / free lists
  G* allg_next = nullptr;                  // registry of every G (append-only)
  // Stack: the bound slot (null until the fiber first runs, and again once it is dead);
  // stack_lo is a copy of stack->lo for the per-switch check. stack_class: the size it asked for.
  Stack* stack = nullptr;
  char* stack_lo = nullptr;
  StackClass* stack_class = nullptr;
  // Entry function.
  FiberEntry entry{};
  void* fn = nullptr;                          // fn_buf, or the heap
  std::atomic<const char*> site_file{""};      // spawn site
  std::atomic<const char*> site_function{""};
  std::atomic<unsigned> site_line{0};
  std::atomic<std::int64_t> wait_since{0};  // coarse monotonic time it parked (for dumps)
  // Running in a blocking call whose P went to another M (colony::blocking, or a retake by
  // sysmon): shown in fiber dumps. Written by the fiber's M, or by sysmon under the sched lock.
  std::atomic<bool> handed_off{false};
  // Per-fiber C++ exception state (libstdc++/libc++abi keep caught exceptions per thread;
  // a fiber that switches inside a catch block must take its own with it).
  void* eh_caught = nullptr;
  unsigned eh_uncaught = 0;
  // Sanitizer bookkeeping (unused in plain builds).
  void* asan_fake_stack = nullptr;
  const void* asan_stack_bottom = nullptr;
  std::size_t asan_stack_size = 0;
  void* tsan_fiber = nullptr;
  // The callable, when it fits (kFnInline bytes, aligned to at most 64).
  static constexpr std::size_t kFnInline = 128;
  alignas(64) unsigned char fn_buf[kFnInline];
};

// free_fn: frees the storage of g's callable (already destroyed, or never made).
inline void free_fn(G* g) noexcept {
  if (g->fn_on_heap) ::operator delete(g->fn, std::align_val_t{g->fn_heap_align});
  g->fn_on_heap = false;
  g->fn = nullptr;
}

inline bool g_is_fiber(const G* g) noexcept { return g && !g->is_g0; }
inline std::uint64_t g_id(const G* g) noexcept { return g->id.load(std::memory_order_relaxed); }

}  // namespace colony::sched
