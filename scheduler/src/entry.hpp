// Entering the scheduler from a fiber's own code: the M's half of the retake handshake.
//
// sysmon may take the P of an M whose fiber has blocked its thread in the kernel outside
// colony::blocking (retake.cpp). It must never do so while that M is using its P, so every
// scheduler call that a fiber's code makes and that uses the P (yield, park, spawn, ready,
// timers, blocking calls, the fiber's exit) brackets that use with rt_enter / rt_leave:
//
//   M (rt_enter)                         sysmon (try_retake)
//   in_rt = true                         retake = asked
//   compiler barrier                     membarrier(PRIVATE_EXPEDITED)
//   read retake                          read in_rt
//
// An asymmetric Dekker: membarrier makes every running thread of the process execute a full
// memory barrier, so the M's side needs no fence of its own (no cost on the hot path) and
// at least one side sees the other's store. Either sysmon sees in_rt true and backs off, or
// the M sees the request and waits for sysmon's decision (retaken), or both.
//
// in_rt is per M and true everywhere except in a fiber's own code: g0 is always inside the
// scheduler, a fiber switches only from inside a scheduler call (so the fiber it lands in is
// inside one too), and fiber_main clears it before a new fiber's function runs. Only the
// outermost call of a nest checks and clears (a call made by the scheduler itself, on g0 or
// in another call, finds in_rt already set). A fiber resumes on whichever M runs it: code after
// a switch must leave through the M it is on now (current_m()), not the one it entered on.
#pragma once

#include <atomic>

#include "sched.hpp"

namespace colony::sched {

inline constexpr std::uint8_t kRetakeNone = 0, kRetakeAsked = 1, kRetakeTaken = 2;

// rt_enter: the fiber running on m enters the scheduler. Returns whether this is the outermost
// entry (then the caller must rt_leave). After it, m->p is the P to use: null when sysmon handed
// it on and no idle P could be taken back (the call then goes on as a plain thread's would).
[[gnu::always_inline]] inline bool rt_enter(M* m) noexcept {
  if (m->in_rt.load(std::memory_order_relaxed)) return false;
  m->in_rt.store(true, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // see above: membarrier does the rest
  if (m->retake.load(std::memory_order_acquire) != kRetakeNone) [[unlikely]]
    m->sched->retaken(m);
  return true;
}

// rt_leave: back to the fiber's own code. Release: sysmon, once it reads false, may hand the P
// to another M, which must see everything this M did to it.
[[gnu::always_inline]] inline void rt_leave(M* m, bool outer) noexcept {
  if (outer) m->in_rt.store(false, std::memory_order_release);
}

// RtScope: rt_enter / rt_leave for a call that does not switch (so the M does not change).
// `m` may be null (a plain thread, or another runtime's M): then it does nothing.
struct RtScope {
  M* m;
  bool outer;
  [[gnu::always_inline]] explicit RtScope(M* m_) noexcept : m(m_), outer(m_ && rt_enter(m_)) {}
  [[gnu::always_inline]] ~RtScope() {
    if (outer) rt_leave(m, true);
  }
  RtScope(const RtScope&) = delete;
  RtScope& operator=(const RtScope&) = delete;
};

}  // namespace colony::sched
