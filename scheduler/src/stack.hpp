// Fiber stacks. Stacks are carved from large anonymous mappings ("slabs", MAP_NORESERVE, so
// pages are committed only when touched) and each slot carries a small header at its top (a
// Stack: magic words, its bounds, the G it is bound to). A slot is bound to a G only while that
// fiber has started and not ended (g.hpp); idle slots wait in magazines. Why slabs:
// vm.max_map_count defaults to 65530 and one mapping per stack would cap a process at ~65k
// fibers. Guards, below each stack:
//  * StackGuard::regions (Linux 6.13+): madvise(MADV_GUARD_INSTALL) puts a guard region inside
//    the slab without splitting it, so every stack gets one, at any fiber count, for the price
//    of its page-table entries. Installed in batches when slots are first carved.
//  * StackGuard::budgeted (older kernels): mprotect(PROT_NONE) splits the mapping (two mappings
//    per guard), so only the first `guard_budget` stacks get one and the rest rely on checks at
//    every switch (stack pointer within bounds, slot-header magic).
// See docs/design.md, "Stacks".
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "colony/sched/spinlock.hpp"
#include "g.hpp"

namespace colony::sched {

inline constexpr std::uint64_t kStackMagic = 0xC01097F1BE5EA5EDull;

// Stack: the header at the very top of a stack slot; the usable stack is [lo, this). 64 bytes.
struct alignas(64) Stack {
  // Lowest word of the header, and magic_tail its highest: an overflow from the slot above
  // (stacks grow down into the next slot's top) hits magic_tail first; both are checked at
  // every switch of the slot's fiber and when the slot is bound.
  std::uint64_t magic = kStackMagic;
  G* owner = nullptr;          // the G it is bound to (its fiber's thread reads it on SIGSEGV)
  char* lo = nullptr;          // lowest usable byte (above the guard, if any)
  StackClass* cls = nullptr;
  bool guarded = false;        // has a guard below lo
  bool trimmed = false;        // its pages were given back while cached (madvise)
  char pad_[22];
  std::uint64_t magic_tail = kStackMagic;
};
static_assert(sizeof(Stack) == 64, "the slot header is one cache line at the slot top");

// Magazine: a batch of cached idle stacks, moved between a P's local cache and its class's
// global cache in O(1) (the slots themselves, each on its own page, are not touched on the way).
struct Magazine {
  static constexpr int kSize = 32;
  Stack* s[kSize];
  int n = 0;
  std::int64_t idle_since = 0;   // when it entered the global cache
  Magazine* next = nullptr;
  Magazine* prev = nullptr;
};

// StackClass: all stacks of one usable size; owns the global cache of such stacks.
struct StackClass {
  std::size_t usable = 0;  // bytes from lo to the slot top
  SpinLock lock;
  // Warm magazines (stacks still resident), newest at the head; the trimmer takes the oldest
  // from the tail, gives their pages back and moves them to `cold`.
  Magazine* warm = nullptr;
  Magazine* warm_tail = nullptr;
  Magazine* cold = nullptr;
  Magazine* spare = nullptr;     // empty magazines for reuse
  Magazine partial;              // single stacks released or taken one at a time
  std::size_t nfree = 0;
  // Carving state.
  char* slab_next = nullptr;   // next uncarved slot
  char* slab_armed = nullptr;  // slots below this have their guard installed (regions mode)
  char* slab_end = nullptr;
  std::size_t slab_guard = 0;  // guard bytes at the base of each slot of this slab (0: none)
  std::size_t slab_stride = 0;
};

class StackPool {
 public:
  // guard_budget: stacks given a PROT_NONE guard when the kernel lacks guard regions (-1:
  // automatic); guard_bytes: size of each guard (rounded up to pages).
  StackPool(std::size_t default_usable, long guard_budget, std::size_t guard_bytes);
  ~StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  StackClass* default_class() noexcept { return default_; }
  StackClass* class_for(std::size_t usable);  // rounds to pages; creates on first use

  // alloc: an idle stack of class c from its global cache, or a freshly carved slot. Throws
  // std::system_error when memory cannot be mapped or guarded.
  Stack* alloc(StackClass* c);
  // take_magazine: fills `out` (room for Magazine::kSize) with cached stacks of class c, warm
  // ones first; returns how many (0 if the cache is empty).
  int take_magazine(StackClass* c, Stack** out) noexcept;
  // give_magazine: returns n (<= Magazine::kSize) idle stacks of class c to the global cache.
  void give_magazine(StackClass* c, Stack* const* ss, int n, std::int64_t now) noexcept;
  // release: returns one idle stack to its class's global cache.
  void release(Stack* s, std::int64_t now) noexcept;
  // Give back the pages of global-cache stacks idle since before `cutoff`. Returns the earliest
  // idle_since among those still untrimmed (or INT64_MAX).
  std::int64_t trim(std::int64_t cutoff) noexcept;

  std::size_t mapped_bytes() const noexcept { return mapped_; }
  std::size_t guarded_stacks() const noexcept { return guarded_.load(std::memory_order_relaxed); }
  StackGuard guard_mode() const noexcept { return mode_; }
  std::size_t guard_bytes() const noexcept { return guard_; }
  // guard_regions_supported: whether this kernel installs guard regions (probed once per process;
  // COLONY_GUARD_REGIONS=0 in the environment turns them off, to exercise the fallback).
  static bool guard_regions_supported() noexcept;

  static std::size_t page_size() noexcept;
  static void install_overflow_handler();   // SIGSEGV on a guard page -> clear report
  static void setup_thread_altstack();      // per M thread: the handler needs its own stack

  // Checks at every switch away from a fiber: stack pointer within bounds and the slot header's
  // magic intact. Aborts with a clear report otherwise.
  static void check(const G* g, const void* sp) noexcept {
    if (__builtin_expect(static_cast<const char*>(sp) < g->stack_lo + 256 ||
                             g->stack->magic != kStackMagic || g->stack->magic_tail != kStackMagic,
                         0))
      report_overflow(g, sp);
  }
  static bool intact(const Stack* s) noexcept {
    return s->magic == kStackMagic && s->magic_tail == kStackMagic;
  }
  [[noreturn]] static void report_overflow(const G* g, const void* sp) noexcept;
  // report_smashed: the header of slot s was overwritten (by an overflow from the slot above).
  [[noreturn]] static void report_smashed(const Stack* s) noexcept;

 private:
  struct Slab { char* base; std::size_t len; bool registered; };
  void carve_slab(StackClass* c);
  void arm_slots(StackClass* c);  // installs the guards of the next batch of slots

  std::mutex mu_;                       // guards classes_, slabs_, counters
  std::map<std::size_t, StackClass*> classes_;
  StackClass* default_ = nullptr;
  std::vector<Slab> slabs_;
  std::size_t guard_budget_;
  std::size_t guard_;                   // guard bytes per guarded slot
  StackGuard mode_;
  std::atomic<std::size_t> guarded_{0};  // stacks carved with a guard
  std::size_t mapped_ = 0;
};

}  // namespace colony::sched
