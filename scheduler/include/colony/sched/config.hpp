// colony::Config: the settings of one runtime (one scheduler), set with designated initialisers:
//   colony::run(main_fn, {.max_procs = 4, .stack_size = 64 * 1024});
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>

#include "colony/sched/source_location.hpp"

namespace colony {

struct Config {
  // max_procs: number of processors (P), i.e. fibers running in parallel.
  // 0 = the COLONY_MAXPROCS environment variable if set, else std::thread::hardware_concurrency().
  int max_procs = 0;
  // stack_size: default usable stack of each fiber, in bytes (rounded up to pages). Committed
  // lazily: a fiber only costs the pages it touches. Overridable per spawn (SpawnOptions).
  std::size_t stack_size = 256 * 1024;
  // stack_guard_size: bytes of guard below every fiber stack, rounded up to pages (at least one
  // page, at most 64 MiB). An access there faults, and colony reports the overflowing fiber.
  // Large enough that a frame of up to this size cannot jump over it. On Linux 6.13+ guards are
  // guard regions (madvise MADV_GUARD_INSTALL): every stack has one, they cost no memory beyond
  // page-table entries (~120 bytes per stack at 64 KiB; docs/design.md, "Stacks"), and
  // colony::stats().stack_guard says StackGuard::regions.
  std::size_t stack_guard_size = 64 * 1024;
  // guard_page_budget: only on kernels without guard regions (StackGuard::budgeted): how many
  // fiber stacks get a PROT_NONE guard (each costs two kernel memory mappings, and
  // vm.max_map_count is 65530 by default). Stacks beyond the budget are checked at every switch
  // instead (stack pointer in bounds, control-block magic intact), which misses overflows that
  // are over by the next switch. -1 = derived from vm.max_map_count (a third of it); 0 = none.
  long guard_page_budget = -1;
  // on_panic: called with an exception that escaped a `go` fiber and the fiber's id. Empty = print
  // "panic in fiber N: what() [spawned at file:line]" to stderr and abort, as Go does.
  std::function<void(std::exception_ptr, std::uint64_t fiber_id)> on_panic;
  // on_long_run: called (on the runtime's monitor thread) when a fiber has run for
  // long_run_threshold without reaching a switch point (colony cannot preempt it: it holds its
  // processor meanwhile), with its id, how long it had run when noticed, and its spawn site.
  // Counted in colony::stats().long_runs either way. Empty = count only.
  std::function<void(std::uint64_t fiber_id, std::chrono::nanoseconds ran_for,
                     const SourceLocation& spawned_at)>
      on_long_run;
  std::chrono::milliseconds long_run_threshold{10};
  // max_threads: cap on the runtime's OS threads (Ms). Fibers in colony::blocking calls each
  // hold one; a blocking call that would need more than max_threads - max_procs of them throws
  // std::system_error (resource_unavailable_try_again) instead. Go's default is 10000 too.
  int max_threads = 10000;
  // retake_blocked: sysmon takes the processor of a thread that a fiber has blocked in the
  // kernel without colony::blocking (a system call, a std::mutex, a synchronous client library)
  // and hands it to another thread, as Go's sysmon retakes the P of a thread in a system call;
  // the fiber gets a processor back at its next call into colony (docs/design.md, "Retaking a
  // blocked thread's P"). A fiber that computes is never taken from. Counted in
  // colony::stats().retakes. Needs membarrier(2) (Linux 4.14); off where it is missing.
  bool retake_blocked = true;
  // Deadlock detection (colony::run only; docs/design.md, "Deadlock detection"): when every
  // fiber is parked and nothing can ever wake one (no runnable fiber, no pending timer, no plain
  // thread known to the runtime still awake), the runtime reports "all fibers are asleep -
  // deadlock!" followed by the fiber dump. detect_deadlocks = false turns the check off.
  bool detect_deadlocks = true;
  // on_deadlock: receives that report, on a runtime thread. Empty = print it to stderr and
  // abort, as Go does. If it returns, run() unwinds every fiber and throws colony::Deadlock.
  std::function<void(const std::string& report)> on_deadlock;
  // stack_trim_after: a cached (free) fiber stack idle this long gives its pages back (madvise).
  std::chrono::milliseconds stack_trim_after{1000};
};

// SpawnOptions: per-spawn settings, e.g. colony::go(colony::SpawnOptions{.stack_size = 1 << 20}, f).
struct SpawnOptions {
  // stack_size: usable stack in bytes; 0 = the runtime's Config::stack_size.
  std::size_t stack_size = 0;
};

}  // namespace colony
