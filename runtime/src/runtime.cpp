#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "colony/context.hpp"
#include "colony/future.hpp"
#include "colony/go.hpp"
#include "colony/debug.hpp"
#include "colony/run.hpp"
#include "colony/stats.hpp"
#include "context_wait.hpp"
#include "colony/sched/runtime.hpp"

namespace colony {

namespace detail {

void FutureCore::wait() {
  if (is_ready()) return;
  lock_.lock();
  if (done_) {
    lock_.unlock();
    await_ready();
    return;
  }
  sched::Waiter w;
  waiters_.push_back(&w);
  sched::wait(w, lock_, sched::WaitReason::future);
}

bool FutureCore::wait_until_ns(std::int64_t deadline_ns) {
  if (is_ready()) return true;
  lock_.lock();
  if (done_) {
    lock_.unlock();
    await_ready();
    return true;
  }
  sched::Waiter w;
  waiters_.push_back(&w);
  return sched::wait_until(w, lock_, sched::WaitReason::future, deadline_ns);
}

std::error_code FutureCore::wait(const Context& ctx) {
  if (is_ready()) return {};
  if (std::error_code e = ctx.err()) return e;
  sched::Waiter w;
  ContextWake wake(ctx, lock_, w);  // before lock_: it may fire at once
  lock_.lock();
  if (done_) {
    lock_.unlock();
    await_ready();
    return {};
  }
  if (wake.fired()) {
    lock_.unlock();
    return ctx.err();
  }
  waiters_.push_back(&w);
  sched::wait(w, lock_, sched::WaitReason::future);
  wake.disarm();
  return w.timed_out ? ctx.err() : std::error_code();  // timed_out: unlinked by the context
}

void FutureCore::await_ready() const noexcept {
  for (int round = 0; !ready_.load(std::memory_order_acquire); ++round) sched::spin_backoff(round);
}

bool FutureCore::try_begin() noexcept {
  return !claimed_.exchange(true, std::memory_order_acq_rel);
}

void FutureCore::set_exception(std::exception_ptr e) noexcept {
  if (!try_begin()) return;
  error_ = std::move(e);
  complete();
}

void FutureCore::complete() noexcept {
  // The woken are chained through `next` and stay unlinked: a waiter marked linked in a local
  // list could be "removed" from it by a ContextWake or an unwinding ~Waiter under lock_.
  sched::Waiter* first = nullptr;
  sched::Waiter** tail = &first;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    done_ = true;
    while (sched::Waiter* w = waiters_.pop_front()) {
      w->next = nullptr;
      *tail = w;
      tail = &w->next;
    }
  }
  // ready_ is published after lock_ is released, as the last access to *this: a waiter that
  // sees it (without the lock, in is_ready()) may destroy the state at once (a Latch on its
  // stack, say), and must not race with this thread still releasing the lock. A waiter that
  // saw done_ under the lock first waits for this store (await_ready).
  ready_.store(true, std::memory_order_release);
  // Each waiter may vanish right after its notify: read `next` first.
  while (sched::Waiter* w = first) {
    first = w->next;
    sched::notify(*w);
  }
}

std::exception_ptr unwound_error() {
  return std::make_exception_ptr(
      std::runtime_error("colony: the runtime shut down before the fiber finished"));
}

int run_impl(std::function<int()> main_fn, const Config& cfg, const colony::SourceLocation& loc) {
  sched::SchedulerPtr s = sched::make_scheduler(cfg);
  auto st = std::make_shared<FutureState<int>>();
  if (cfg.detect_deadlocks) {
    // Runs once, on whichever thread noticed (an M about to sleep, or a plain thread about to
    // block). Failing the main fiber's future wakes this thread, which shuts the runtime down.
    sched::set_deadlock_hook(*s, [sp = s.get(), st, on_deadlock = cfg.on_deadlock] {
      std::ostringstream os;
      os << "all fibers are asleep - deadlock!\n\n";
      dump_fibers(os, sched::fibers(*sp));
      std::string report = os.str();
      if (!on_deadlock) {
        std::fputs(report.c_str(), stderr);
        std::fflush(stderr);
        std::abort();
      }
      on_deadlock(report);
      st->set_exception(std::make_exception_ptr(Deadlock(report)));
    });
  }
  {
    // Start main_fn on the new runtime (not on the caller's).
    auto task = SpawnTask<int, std::function<int()>>{st, Task<std::function<int()>>{std::move(main_fn), {}}};
    start_fiber(*s, SpawnOptions{}, std::move(task), loc);
  }
  Future<int> fut(st);
  fut.wait();
  sched::shutdown(*s, -1);
  return fut.get();
}

}  // namespace detail

static sched::Scheduler& current() { return sched::current_or_default(); }

std::int64_t num_fibers() { return sched::live_fibers(current()); }
int max_procs() { return sched::nprocs(current()); }

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
