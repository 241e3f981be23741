// The checked transitions of a fiber's status (the state machine in g.hpp), for every file of
// the scheduler. A transition is made by one party only (park first, unlock second), so it is a
// checked load and store, not a CAS; only ready_status, which shutdown's unwinding may race, is
// a CAS. A mismatch is a bug in the runtime: it is reported, with both statuses, and aborts.
#pragma once

#include <atomic>
#include <cstdio>

#include "g.hpp"

namespace colony::sched {

// fatal: prints "colony: fatal: <msg> (fiber <id>)" to stderr and aborts. `g` may be null.
[[noreturn]] void fatal(const char* msg, const G* g) noexcept;

// ready_status: a parked fiber is being made runnable: waiting -> runnable, atomically, so
// that of two parties racing to do it exactly one wins (false: the other did). Only shutdown's
// unwinding may race a waker from outside the runtime (unwind_all, ready_g).
inline bool ready_status(G* g) noexcept {
  GStatus expected = GStatus::waiting;
  return g->status.compare_exchange_strong(expected, GStatus::runnable, std::memory_order_acq_rel);
}

// set_status: g goes from `from` to `to`; any other status found is a bug (fatal). Always
// inlined: it is on every switch, and its check is a load and a compare.
[[gnu::always_inline]] inline void set_status(G* g, GStatus from, GStatus to) noexcept {
  GStatus cur = g->status.load(std::memory_order_relaxed);
  if (__builtin_expect(cur != from, 0)) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "fiber status is %s, expected %s on the way to %s",
                  to_string(cur).data(), to_string(from).data(), to_string(to).data());
    fatal(buf, g);
  }
  g->status.store(to, std::memory_order_release);
}

}  // namespace colony::sched
