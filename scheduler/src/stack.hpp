// Fiber stacks. Stacks are carved from large anonymous mappings ("slabs", MAP_NORESERVE, so
// pages are committed only when touched) and each slot carries its G at the top. Why slabs:
// vm.max_map_count defaults to 65530 and one mapping per stack would cap a process at ~65k
// fibers. Guards, below each stack:
//  * StackGuard::regions (Linux 6.13+): madvise(MADV_GUARD_INSTALL) puts a guard region inside
//    the slab without splitting it, so every stack gets one, at any fiber count, for the price
//    of its page-table entries. Installed in batches when slots are first carved.
//  * StackGuard::budgeted (older kernels): mprotect(PROT_NONE) splits the mapping (two mappings
//    per guard), so only the first `guard_budget` stacks get one and the rest rely on checks at
//    every switch (stack pointer within bounds, control-block magic).
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

// Magazine: a batch of cached idle G's, moved between a P's local cache and its class's global
// cache in O(1) (the G's themselves, each on its own stack page, are not touched on the way).
struct Magazine {
  static constexpr int kSize = 32;
  G* g[kSize];
  int n = 0;
  std::int64_t idle_since = 0;   // when it entered the global cache
  Magazine* next = nullptr;
  Magazine* prev = nullptr;
};

// StackClass: all stacks of one usable size; owns the global cache of such G's.
struct StackClass {
  std::size_t usable = 0;  // bytes from stack_lo to the slot top
  SpinLock lock;
  // Warm magazines (stacks still resident), newest at the head; the trimmer takes the oldest
  // from the tail, gives their pages back and moves them to `cold`.
  Magazine* warm = nullptr;
  Magazine* warm_tail = nullptr;
  Magazine* cold = nullptr;
  Magazine* spare = nullptr;     // empty magazines for reuse
  Magazine partial;              // single G's released or taken one at a time
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

  // A G from the class's global cache, or freshly carved (constructed, status idle). `fresh`
  // reports a newly carved one (to be registered in allgs). Throws std::system_error.
  G* alloc(StackClass* c, bool* fresh);
  // take_magazine: fills `out` (room for Magazine::kSize) with cached G's of class c, warm ones
  // first; returns how many (0 if the cache is empty).
  int take_magazine(StackClass* c, G** out) noexcept;
  // give_magazine: returns n (<= Magazine::kSize) dead G's of class c to the global cache.
  void give_magazine(StackClass* c, G* const* gs, int n, std::int64_t now) noexcept;
  // release: returns one dead G to its class's global cache.
  void release(G* g, std::int64_t now) noexcept;
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

  // Checks at every switch away from a fiber: stack pointer within bounds and control-block
  // magic intact. Aborts with a clear report otherwise.
  static void check(const G* g, const void* sp) noexcept {
    if (__builtin_expect(static_cast<const char*>(sp) < g->stack_lo + 256 ||
                             g->magic != kGMagic || g->magic_tail != kGMagic, 0))
      report_overflow(g, sp);
  }
  [[noreturn]] static void report_overflow(const G* g, const void* sp) noexcept;

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
