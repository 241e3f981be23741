// The G arena: where fibers' control blocks come from. G's are carved in chunks (packed, so a
// spawn touches a fraction of a cache-warm page, not a fresh stack page) and never freed while
// the arena lives: a dead G returns to a free list and is reused, so the registry of all G's
// stays append-only. Per-P caches of dead G's (P::gcache) sit in front of the free list
// (gcache.cpp); stacks are bound separately, when a fiber first runs (g.hpp, stack.hpp).
#pragma once

#include <cstddef>
#include <vector>

#include "colony/sched/spinlock.hpp"
#include "g.hpp"

namespace colony::sched {

class GArena {
 public:
  GArena() = default;
  ~GArena();  // frees every chunk: no G may be used after this
  GArena(const GArena&) = delete;
  GArena& operator=(const GArena&) = delete;

  // alloc: a free G (status idle), or a fresh one (`*fresh` set: the caller registers it).
  // Throws std::bad_alloc.
  G* alloc(bool* fresh);
  // take: moves up to `max` free G's into out; returns how many.
  int take(G** out, int max) noexcept;
  // give: returns n idle G's to the free list.
  void give(G* const* gs, int n) noexcept;

 private:
  static constexpr std::size_t kChunk = 256;  // G's per chunk
  SpinLock lock_;
  G* free_ = nullptr;  // linked by schedlink (lock_)
  G* next_ = nullptr;  // the next uncarved G of the newest chunk (lock_)
  G* end_ = nullptr;
  std::vector<G*> chunks_;  // (lock_)
};

}  // namespace colony::sched
