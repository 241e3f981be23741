// colony::this_fiber: operations on the calling fiber. Each also works on a plain OS thread,
// where it acts on the thread (yield -> std::this_thread::yield, sleeps block the thread).
#pragma once

#include <chrono>
#include <cstdint>

#include "colony/sched/deadline.hpp"
#include "colony/sched/fiber.hpp"

namespace colony::this_fiber {

// yield: let the other runnable fibers of this processor run first (Go's runtime.Gosched).
inline void yield() { sched::yield(); }

// sleep_until / sleep_for: park the fiber until the time point / for the duration.
// Any clock and duration, saturating (colony/sched/deadline.hpp): a time in the past or a
// duration <= 0 only yields; max() sleeps for ever.
template <class Clock, class Dur>
void sleep_until(std::chrono::time_point<Clock, Dur> t) {
  sched::sleep_until_ns(sched::deadline_at(t));
}
template <class Rep, class Period>
void sleep_for(std::chrono::duration<Rep, Period> d) {
  sched::sleep_for_ns(sched::saturating_ns(d));
}

// id: the calling fiber's id (unique within its runtime, never 0); 0 on a plain thread.
inline std::uint64_t id() noexcept { return sched::fiber_id(sched::current_g()); }

// in_fiber: whether the caller runs on a colony fiber.
inline bool in_fiber() noexcept { return sched::current_g() != nullptr; }

}  // namespace colony::this_fiber
