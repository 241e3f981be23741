// colony::hooks: interposed socket and sleep calls, so that a synchronous client library (hiredis,
// a hand-written protocol on read/write) parks its fiber instead of blocking its thread.
// Opt-in: link the target colony::hooks (an object library: its definitions of read, write,
// recv, ... replace libc's in the program), or run a program that exports colony's symbols with
// LD_PRELOAD=libcolony_hooks.so. What is interposed, what is not, and the pitfalls: docs/hooks.md.
//
// Nothing needs to be called: the interposed functions are the interface. This header only lets
// a program ask whether the hooks are in effect and how often they parked.
#pragma once

#include <cstdint>

namespace colony::hooks {

// active: true when the hooks are linked into the process and can reach colony's scheduler.
// False for the LD_PRELOAD object in a program that does not export colony's symbols (then
// every interposed call runs the real one).
bool active() noexcept;

// Stats: process-wide counters since start. They only grow.
struct Stats {
  std::uint64_t waits = 0;      // a call on a fiber parked on the netpoller ("IO wait")
  std::uint64_t fallbacks = 0;  // a call on a fiber ran the real blocking call inside
                                // colony::blocking (several fds in poll/select, a unix-socket
                                // connect with a full backlog, ...): the P was handed off
  std::uint64_t sleeps = 0;     // sleep/usleep/nanosleep on a fiber parked on a timer
};
Stats stats() noexcept;

}  // namespace colony::hooks

// The same, for C and for dlsym(RTLD_DEFAULT, "colony_hooks_active") in a program that was
// given the hooks by LD_PRELOAD and does not link them.
extern "C" int colony_hooks_active(void);
