// colony::this_fiber: operations on the calling fiber. Each also works on a plain OS thread,
// where it acts on the thread (yield -> std::this_thread::yield, sleeps block the thread).
#pragma once

#include <chrono>
#include <cstdint>

#include "colony/sched/fiber.hpp"

namespace colony::this_fiber {

// yield: let the other runnable fibers of this processor run first (Go's runtime.Gosched).
inline void yield() { sched::yield(); }

// sleep_until / sleep_for: park the fiber until the time point / for the duration.
template <class Clock, class Dur>
void sleep_until(std::chrono::time_point<Clock, Dur> t) {
  auto steady = std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(t - Clock::now());
  sched::sleep_until_ns(sched::to_nanotime(steady));
}
template <class Rep, class Period>
void sleep_for(std::chrono::duration<Rep, Period> d) {
  if (d <= d.zero()) {
    sched::yield();
    return;
  }
  using std::chrono::nanoseconds;
  // Beyond ~292 years (nanoseconds::max()) the cast would overflow: sleep "forever" instead.
  if (d >= std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(nanoseconds::max()))
    sched::sleep_for_ns(nanoseconds::max().count());
  else
    sched::sleep_for_ns(std::chrono::duration_cast<nanoseconds>(d).count());
}

// id: the calling fiber's id (unique within its runtime, never 0); 0 on a plain thread.
inline std::uint64_t id() noexcept { return sched::fiber_id(sched::current_g()); }

// in_fiber: whether the caller runs on a colony fiber.
inline bool in_fiber() noexcept { return sched::current_g() != nullptr; }

}  // namespace colony::this_fiber
