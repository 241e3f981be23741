// The scheduler's runtime interface (colony/sched/runtime.hpp): thin calls into Scheduler.
#include "colony/sched/runtime.hpp"

#include <atomic>

#include "sched.hpp"

namespace colony::sched {

void SchedulerDelete::operator()(Scheduler* s) const noexcept { delete s; }

SchedulerPtr make_scheduler(const Config& cfg) { return SchedulerPtr(new Scheduler(cfg)); }

bool shutdown(Scheduler& s, std::int64_t grace_ns) { return s.shutdown(grace_ns); }

void set_deadlock_hook(Scheduler& s, std::function<void()> hook) { s.set_deadlock_hook(std::move(hook)); }

SchedulerStats stats(Scheduler& s) {
  SchedulerStats out;
  out.max_procs = s.nprocs();
  out.threads = s.num_threads();
  out.fibers = s.live_fibers();
  out.stack_bytes_mapped = s.stack_mapped_bytes();
  out.guarded_stacks = s.guarded_stacks();
  out.stack_guard = s.stack_guard();
  out.stack_guard_bytes = s.stack_guard_bytes();
  out.long_runs = s.long_runs();
  out.retakes = s.retakes();
  out.procs = s.proc_stats();
  return out;
}

int nprocs(Scheduler& s) noexcept { return s.nprocs(); }

std::int64_t live_fibers(Scheduler& s) noexcept { return s.live_fibers(); }

bool spin_may_pay() noexcept {
  M* m = current_m();
  if (!m || !m->curg) return true;  // a plain thread (or the scheduler's own code)
  if (m->sched->nprocs() <= 1) return false;
  P* p = m->p;
  return !(p && (p->runnext.load(std::memory_order_relaxed) || !p->runq.empty()));
}

}  // namespace colony::sched
