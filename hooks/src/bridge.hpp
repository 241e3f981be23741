// The hooks' way into colony's scheduler (colony/sched/*), and the one place that knows how it
// is reached. Linked into a program (colony::hooks), these are ordinary calls. In the LD_PRELOAD
// object (COLONY_HOOKS_PRELOAD) they are weak references, bound at load time to the program's
// own colony, which must export its symbols (ENABLE_EXPORTS / -rdynamic, or colony built as
// shared libraries). When they stay unbound, available() is false and every hook runs the real
// call: a preloaded library never breaks a program that does not use colony.
#pragma once

#include <cerrno>
#include <cstdint>

#include "colony/sched/fiber.hpp"
#include "colony/sched/netpoll.hpp"

#if defined(COLONY_HOOKS_PRELOAD)
namespace colony::sched {
[[gnu::weak]] G* current_g() noexcept;
[[gnu::weak]] std::int64_t nanotime() noexcept;
[[gnu::weak]] void yield();
[[gnu::weak]] void sleep_for_ns(std::int64_t ns);
[[gnu::weak]] void enter_blocking();
[[gnu::weak]] void exit_blocking() noexcept;
[[gnu::weak]] PollDesc* poll_open(int fd);
[[gnu::weak]] void poll_close(PollDesc* pd) noexcept;
[[gnu::weak]] int poll_wait(PollDesc* pd, PollMode mode, std::int64_t deadline_ns);
[[gnu::weak]] void poll_interrupt(PollDesc* pd, PollMode mode) noexcept;
}  // namespace colony::sched
#endif

namespace colony::hooks::detail {

// available: the scheduler's functions can be called.
inline bool available() noexcept {
#if defined(COLONY_HOOKS_PRELOAD)
  return &sched::current_g && &sched::nanotime && &sched::yield && &sched::sleep_for_ns &&
         &sched::enter_blocking && &sched::exit_blocking && &sched::poll_open &&
         &sched::poll_close && &sched::poll_wait && &sched::poll_interrupt;
#else
  return true;
#endif
}

// on_fiber: the caller runs on a colony fiber (not on a plain thread, not on an M's g0 where the
// scheduler itself reads its eventfd and sleeps): only then does a hook do anything but the
// real call.
inline bool on_fiber() noexcept {
  return available() && sched::current_g() != nullptr;
}

// The errno of the calling thread, through a call the compiler cannot see into: after a park
// the fiber may run on another thread, and glibc's __errno_location is declared const, so an
// address computed before the park could be reused (HACKING.md, rule 8).
[[gnu::noinline]] int get_errno() noexcept;
[[gnu::noinline]] void set_errno(int e) noexcept;

}  // namespace colony::hooks::detail
