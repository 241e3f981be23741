// The scheduler's interface for making, stopping and observing a runtime: what colony::run,
// colony::stats() and the sync primitives' spin check need, without the scheduler's types.
// Internal: for the layers above the scheduler (colony::runtime, colony::pool), not for users.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "colony/sched/config.hpp"
#include "colony/sched/fiber.hpp"

namespace colony::sched {

// A runtime's scheduler, owned. Destroying it shuts the runtime down (unwinding every fiber
// still parked) and frees it.
struct SchedulerDelete {
  void operator()(Scheduler* s) const noexcept;
};
using SchedulerPtr = std::unique_ptr<Scheduler, SchedulerDelete>;

// make_scheduler: a new runtime with cfg (its processors and sysmon start at once).
SchedulerPtr make_scheduler(const Config& cfg);
// shutdown: stop every M once its fiber reaches a switch point, then unwind the fibers still
// alive. grace_ns < 0: wait as long as it takes; otherwise give up on Ms still running a fiber
// after that long and return false. Idempotent; not from one of s's own fibers.
bool shutdown(Scheduler& s, std::int64_t grace_ns = -1);
// set_deadlock_hook: run once when every fiber of s is found blocked (Config::detect_deadlocks).
void set_deadlock_hook(Scheduler& s, std::function<void()> hook);

// A snapshot of a runtime's counters (colony::stats()).
struct SchedulerStats {
  int max_procs = 0;
  int threads = 0;
  std::int64_t fibers = 0;
  std::size_t stack_bytes_mapped = 0;
  std::size_t guarded_stacks = 0;
  StackGuard stack_guard = StackGuard::none;
  std::size_t stack_guard_bytes = 0;
  std::uint64_t long_runs = 0;
  std::uint64_t retakes = 0;
  std::vector<ProcStats> procs;
};
SchedulerStats stats(Scheduler& s);
int nprocs(Scheduler& s) noexcept;
std::int64_t live_fibers(Scheduler& s) noexcept;

// spin_may_pay: Go's canSpin, the scheduler's half: false on a fiber whose runtime has one
// processor, or whose processor has other fibers waiting to run (spinning would delay them).
// True on a plain thread. The caller adds its own limits (rounds, CPU count).
bool spin_may_pay() noexcept;

}  // namespace colony::sched
