// Introspection of the calling fiber's runtime (or of the default runtime from a plain thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "colony/sched/fiber.hpp"

namespace colony {

using ProcStats = sched::ProcStats;
using StackGuard = sched::StackGuard;  // to_string(StackGuard) describes a mode

struct Stats {
  int max_procs = 0;                  // processors (P)
  int threads = 0;                    // OS threads (M) started so far
  std::int64_t fibers = 0;            // live fibers (started, not yet finished)
  std::size_t stack_bytes_mapped = 0; // address space reserved for stacks (not RSS)
  std::size_t guarded_stacks = 0;     // stacks carved with a guard
  StackGuard stack_guard = StackGuard::regions;  // how stacks are guarded (docs/design.md)
  std::size_t stack_guard_bytes = 0;  // size of each guard
  std::uint64_t long_runs = 0;        // fibers seen running past Config::long_run_threshold
  std::uint64_t retakes = 0;          // Ps taken from threads blocked in the kernel (sysmon)
  std::vector<ProcStats> procs;       // one entry per P
  ProcStats total;                    // sum over procs
};

// num_fibers: live fibers of the current runtime (like runtime.NumGoroutine).
std::int64_t num_fibers();
// max_procs: processors of the current runtime (like runtime.GOMAXPROCS(0)).
int max_procs();
// stats: scheduler counters of the current runtime.
Stats stats();

}  // namespace colony
