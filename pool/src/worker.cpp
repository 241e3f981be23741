// The worker fibers: starting one, its loop (run a task, then take the next one or go idle),
// counting tasks done, and its exit. Worker (worker.hpp) says how going idle and being woken
// settle their race; the lock and the invariants are at the top of pool_core.hpp.
#include <exception>
#include <memory>

#include "pool_core.hpp"

namespace colony::detail {

namespace {

// park_idle: the unlock step of an idle worker's park (see Worker).
bool park_idle(sched::G*, void* arg) {
  auto* w = static_cast<Worker*>(arg);
  std::uint32_t expected = Worker::kAwake;
  return w->wake.compare_exchange_strong(expected, Worker::kParked, std::memory_order_acq_rel);
}

// WorkerMain: the callable of a worker fiber. If the fiber never runs (its runtime shut down
// first, or starting it failed), the destructor gives back its slot and its first task.
struct WorkerMain {
  std::shared_ptr<PoolCore> core;
  PoolTask first;
  WorkerMain(std::shared_ptr<PoolCore> c, PoolTask t) noexcept
      : core(std::move(c)), first(std::move(t)) {}
  WorkerMain(WorkerMain&&) noexcept = default;
  ~WorkerMain() {
    if (core) core->worker_never_ran(first);
  }
  void operator()() {
    std::shared_ptr<PoolCore> c = std::move(core);  // keeps the core alive until we are gone
    c->worker_loop(std::move(first));
  }
};

}  // namespace

void PoolCore::spawn_worker(PoolTask&& t) {
  // If anything below throws, wm's destructor gives the slot and the task back.
  WorkerMain wm(shared_from_this(), std::move(t));
  sched::Scheduler& s = pinned_ ? *pinned_->sched : sched::current_or_default();
  sched::launch(s, SpawnOptions{opts_.stack_size}, std::move(wm), site_);
  stats_.workers_started.fetch_add(1, std::memory_order_relaxed);
}

void PoolCore::worker_loop(PoolTask first) {
  Worker w;
  w.g = sched::current_g();
  struct Exit {
    PoolCore* c;
    Worker* w;
    ~Exit() { c->worker_exit(*w); }
  } exit{this, &w};
  PoolTask t = std::move(first);
  for (;;) {
    w.unaccounted = true;  // next_task (or worker_exit, if unwound) counts it as done
    run_task(t);
    if (!next_task(w, t)) return;
  }
}

// run_task: runs t and destroys it (its captures go before wait() can return). Returns when the
// task returned or threw; a FiberUnwind (shutdown) passes through.
void PoolCore::run_task(PoolTask& t) {
  struct Reset {
    PoolTask& t;
    ~Reset() { t.reset(); }
  } reset{t};
  try {
    t();
  } catch (const FiberUnwind&) {
    throw;
  } catch (...) {
    on_panic(std::current_exception(), describe_current(), t.site());
  }
}

// done_locked: one accepted task is over (ran, or was dropped unrun at shutdown). Counting it
// under lock_, where the submitter counted it in, keeps the counters on the lock's cache line:
// no atomic read-modify-write that bounces between the submitter's and the worker's cores.
// If it was the last one, moves the wait() callers to `drained`, to notify after unlocking.
void PoolCore::done_locked(bool completed, sched::Chain& drained) noexcept {
  if (completed) add_locked<std::uint64_t>(completed_, 1);
  // Release: wait()'s check without the lock acquires it.
  const std::int64_t left = add_locked<std::int64_t>(pending_, -1, std::memory_order_release);
  if (left == 0) drained.take_all(drain_wl_);
}

void PoolCore::task_done() noexcept {
  sched::Chain drained;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    done_locked(false, drained);
  }
  sched::notify_chain(drained.first);
}

bool PoolCore::next_task(Worker& w, PoolTask& t) {
  const std::int64_t now = sched::coarse_now();  // read before locking; it is for going idle
  lock_.lock();
  w.unaccounted = false;
  sched::Chain drained;
  done_locked(true, drained);
  if (!drained.empty()) {  // rare: wait() callers to wake
    lock_.unlock();
    sched::notify_chain(drained.first);
    lock_.lock();
  }
  for (;;) {
    const bool closed = closed_.load(std::memory_order_relaxed);
    if (!queue_.empty()) {
      t = pop_queue_locked();
      sched::Waiter* s = nullptr;
      if (!closed && (s = waiters_.pop_front())) {  // its task takes the freed queue slot
        queue_.push_back(std::move(*static_cast<PoolTask*>(s->data)));
        queued_.store(queue_.size(), std::memory_order_relaxed);
        accept_locked();
        s->result = kHanded;
      }
      lock_.unlock();
      if (s) sched::notify(*s);
      return true;
    }
    const int cap = capacity_.load(std::memory_order_relaxed);
    if (closed || (cap > 0 && running_.load(std::memory_order_relaxed) > cap)) {
      if (!closed) stats_.workers_retired.fetch_add(1, std::memory_order_relaxed);
      left_service_locked(&w);
      lock_.unlock();
      return false;
    }
    if (sched::Waiter* s = waiters_.pop_front()) {  // hand ourselves to the longest waiter
      t = std::move(*static_cast<PoolTask*>(s->data));
      accept_locked();
      s->result = kHanded;
      lock_.unlock();
      sched::notify(*s);
      return true;
    }
    if (!opts_.disable_purge && !purger_running_ && !purger_failed_) {
      start_purger_unlocking();
      continue;
    }
    // Go idle: park until a submitter hands us a task, or we are told to exit (see Worker).
    w.last_used = now;
    w.idle = true;
    w.wake.store(Worker::kAwake, std::memory_order_relaxed);
    idle_.insert(&w, sched::current_proc());
    lock_.unlock();
    sched::park(park_idle, &w, sched::WaitReason::pool);
    // Whoever took us out of idle_ set w.exit or w.task under the lock before waking us. If
    // shutdown unwinds us instead, park throws FiberUnwind and worker_exit takes us out.
    if (w.exit) return false;
    t = std::move(w.task);
    return true;
  }
}

void PoolCore::fiber_gone_locked(Wakeups& wk) noexcept {
  --live_;
  const int cap = capacity_.load(std::memory_order_relaxed);
  if (!closed_.load(std::memory_order_relaxed) &&
      (cap < 0 || running_.load(std::memory_order_relaxed) < cap)) {
    if ((wk.retry = waiters_.pop_front())) wk.retry->result = kRetry;
  }
  if (live_ == 0 && purgers_alive_ == 0) wk.done.take_all(done_wl_);
}

void PoolCore::worker_exit(Worker& w) noexcept {
  Wakeups wk;
  PoolTask leftover;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    if (w.idle) {  // unwound at shutdown while idle
      idle_.remove(&w);
      w.idle = false;
    }
    if (!w.exit) left_service_locked(&w);  // unwound: it never left service
    leftover = std::move(w.task);          // handed over, but unwound before it ran
    if (w.unaccounted) {                   // unwound out of its task
      w.unaccounted = false;
      done_locked(false, wk.drained);
    }
    fiber_gone_locked(wk);
  }
  wk.notify();
  if (leftover) {
    leftover.reset();
    task_done();
  }
}

void PoolCore::worker_never_ran(PoolTask& first) noexcept {
  Wakeups wk;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    left_service_locked(nullptr);
    fiber_gone_locked(wk);
  }
  wk.notify();
  if (first) {
    first.reset();
    task_done();
  }
}

}  // namespace colony::detail
