// stats, num_fibers, max_procs: observing the current runtime (colony/stats.hpp).
#include "colony/stats.hpp"

#include <utility>

#include "colony/sched/runtime.hpp"

namespace colony {

static sched::Scheduler& current() {
  return sched::current_or_default();
}

std::int64_t num_fibers() {
  return sched::live_fibers(current());
}
int max_procs() {
  return sched::nprocs(current());
}

Stats stats() {
  sched::SchedulerStats s = sched::stats(current());
  Stats out;
  out.max_procs = s.max_procs;
  out.threads = s.threads;
  out.fibers = s.fibers;
  out.stack_bytes_mapped = s.stack_bytes_mapped;
  out.guarded_stacks = s.guarded_stacks;
  out.stack_guard = s.stack_guard;
  out.stack_guard_bytes = s.stack_guard_bytes;
  out.long_runs = s.long_runs;
  out.retakes = s.retakes;
  out.procs = std::move(s.procs);
  for (const auto& p : out.procs) {
    out.total.switches += p.switches;
    out.total.parks += p.parks;
    out.total.yields += p.yields;
    out.total.steals += p.steals;
    out.total.stolen += p.stolen;
    out.total.spawns += p.spawns;
    out.total.global_gets += p.global_gets;
    out.total.timers_fired += p.timers_fired;
  }
  return out;
}

}  // namespace colony
