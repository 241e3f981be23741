// Fiber dumps: what every live fiber is doing, like Go's goroutine dump.
//
//   colony::dump_fibers(std::cerr);
//   fiber 12 [chan receive, 3.2 s]:
//       spawned at server.cpp:41 in handle_client
//
// Shown for each fiber that has started and not finished: its id, its state (runnable,
// running, or the reason it waits and for how long — measured with a coarse clock, ~4 ms) and
// its spawn site. Fibers change state while the dump is taken: it is a snapshot, not a
// stop-the-world view.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "colony/sched/fiber.hpp"

namespace colony {

using FiberInfo = sched::FiberInfo;

// fibers: live fibers of the current runtime (the calling fiber's, else the default one).
std::vector<FiberInfo> fibers();
// dump_fibers: writes fibers() as text.
void dump_fibers(std::ostream& os);
void dump_fibers(std::ostream& os, const std::vector<FiberInfo>& fs);
std::string fiber_dump();
// install_sigquit_dump: opt-in; from then on SIGQUIT (Ctrl-\) prints the fibers of every live
// runtime to stderr, and the process keeps running. The dump is written by a helper thread,
// never inside the signal handler. Idempotent. Throws std::system_error if it cannot be set up.
void install_sigquit_dump();

}  // namespace colony
