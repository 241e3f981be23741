// PoolCore: the state and algorithms behind colony::Pool (docs/pool.md has the design essay).
//
// Lock: one sched::SpinLock, lock_, guards everything marked (lock): the idle workers, the
// waiting submitters, the task queue, the purger's bookkeeping, and the gauges' writes. It is
// never held across a switch: every wait hands it to sched::wait as the park's unlock step
// (park first, unlock second), and every notify happens after it is released. The lock shares
// its cache line with the gauges and counters written under it, pending_ included: the
// submitter counts a task in and its worker counts it out, both under the lock they take anyway.
//
// Counters: running_ counts workers in service (ants' Running): it drops as soon as a worker is
// told, or decides, to exit. live_ counts worker fibers until they have actually left their
// loop (release_timeout and ~Pool wait for it to reach zero). Both change only under lock_;
// running_ is atomic so that running() can read it without the lock.
//
// Invariants (under lock_):
//  * idle_ non-empty => waiters_ and queue_ are empty. A worker coming back serves the queue,
//    then the longest waiting submitter, and only then goes idle; a submitter takes an idle
//    worker before anything else.
//  * queue_ non-empty => every worker in service is busy and running_ >= cap (or the pool is
//    closed and draining).
//  * A worker in idle_ is parked, or about to park (Worker::wake settles which). Whoever takes
//    it out of idle_ owns it until it calls wake_worker after unlocking: a submitter sets
//    Worker::idle and Worker::task after unlocking, an exit sets Worker::exit under the lock.
//    Exactly one party makes it runnable again. An idle worker's park does not hold lock_.
//  * A submitter parked in waiters_ has Waiter::data -> its PoolTask. Whoever unlinks it sets
//    Waiter::result: kHanded (a worker or the queue took the task), kRetry (a slot opened: try
//    again), kClosed (released) or kCancelled (its context ended).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include "colony/pool/pool.hpp"
#include "colony/sched/fiber.hpp"
#include "colony/sched/spinlock.hpp"
#include "colony/sched/wait.hpp"
#include "idle_workers.hpp"
#include "worker.hpp"

namespace colony::detail {

// PinnedRuntime: a runtime a pool always starts its fibers on (the default pool's).
struct PinnedRuntime {
  sched::Scheduler* sched = nullptr;
};

// Waiter::result values of submitters parked in PoolCore::waiters_.
inline constexpr std::uint8_t kHanded = 1;
inline constexpr std::uint8_t kRetry = 2;
inline constexpr std::uint8_t kClosed = 3;
inline constexpr std::uint8_t kCancelled = 4;

class CtxWatch;

class PoolCore : public std::enable_shared_from_this<PoolCore> {
 public:
  PoolCore(int capacity, PoolOptions opts, const SourceLocation& site, PinnedRuntime* pinned);
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  std::error_code submit(PoolTask& t, std::int64_t deadline_ns, const Context* ctx);
  void tune(int size);
  void release();
  std::error_code await_exit(std::int64_t deadline_ns);
  void reboot() noexcept;
  bool wait_drained(std::int64_t deadline_ns);
  PoolStats stats() const;
  void attach(std::shared_ptr<const void> p) { attachment_ = std::move(p); }

  // Fiber bodies and their exits (worker.cpp, purger.cpp).
  void worker_loop(PoolTask first);
  void worker_never_ran(PoolTask& first) noexcept;
  void purger_loop(std::uint64_t gen);
  void purger_gone(std::uint64_t gen) noexcept;
  // cancel_wait: a context watcher saw its context end: wake its submitter, if parked.
  void cancel_wait(CtxWatch& w) noexcept;

 private:
  // One cache line, written on every submit and every task: the lock and what changes under it.
  alignas(64) mutable sched::SpinLock lock_;
  std::atomic<std::uint64_t> submitted_{0};  // stats: written under lock_
  std::atomic<std::uint64_t> completed_{0};  // stats: written under lock_

 public:
  // Gauges, readable without the lock.
  std::atomic<int> capacity_;    // -1: unbounded; written under lock_
  std::atomic<int> running_{0};  // workers in service; written under lock_
  std::atomic<int> waiting_{0};  // submitters blocked
  std::atomic<bool> closed_{false};
  std::atomic<std::size_t> queued_{0};    // mirror of queue_.size()
  std::atomic<std::int64_t> pending_{0};  // accepted, not finished; written under lock_

 private:
  struct Wakeups;

  void spawn_worker(PoolTask&& t);
  void start_purger_unlocking();  // lock_ held on entry and on return; released meanwhile
  bool next_task(Worker& w, PoolTask& t);
  void run_task(PoolTask& t);
  void worker_exit(Worker& w) noexcept;
  void done_locked(bool completed, sched::Chain& drained) noexcept;
  void task_done() noexcept;  // done_locked(false) for a task dropped unrun, taking the lock
  void accept_locked() noexcept;
  void add_running_locked() noexcept;
  void left_service_locked(Worker* w) noexcept;  // w told / decided to exit
  void fiber_gone_locked(Wakeups& wk) noexcept;  // a worker fiber left its loop
  Worker* tell_exit_locked(Worker* chain) noexcept;
  PoolTask pop_queue_locked() noexcept;
  void on_panic(std::exception_ptr e, const std::string& what, const SourceLocation& site);
  void log(const std::string& line) noexcept;
  std::error_code reject(std::error_code ec) noexcept;

  const PoolOptions opts_;
  const SourceLocation site_;
  PinnedRuntime* const pinned_;
  std::shared_ptr<const void> attachment_;

  alignas(64) IdleWorkers idle_;              // (lock)
  sched::WaitList waiters_;       // (lock) blocked submitters
  std::deque<PoolTask> queue_;    // (lock) queued tasks (queue_capacity)
  sched::WaitList purge_wl_;      // (lock) the purger, between ticks
  sched::WaitList done_wl_;       // (lock) await_exit callers
  int live_ = 0;                  // (lock) worker fibers not yet gone
  int purgers_alive_ = 0;         // (lock) purger fibers not yet gone
  bool purger_running_ = false;   // (lock) a purger is in service
  bool purger_failed_ = false;    // (lock) starting one failed; not retried until reboot
  std::uint64_t purger_gen_ = 0;  // (lock) the generation of the purger in service
  int peak_running_ = 0;          // (lock)

  sched::WaitList drain_wl_;      // (lock) wait() callers

  struct Counters {
    std::atomic<std::uint64_t> panics{0}, rejected{0},
        workers_started{0}, workers_purged{0}, workers_retired{0};
  };
  alignas(64) Counters stats_;
};

// Helpers shared by the files of the pool (pool.cpp, submit.cpp, worker.cpp, purger.cpp,
// panic.cpp).

// add_locked: adds d to a counter that is only written under the pool's lock: a plain load and
// store, not a locked read-modify-write (readers without the lock see either value).
template <class T>
T add_locked(std::atomic<T>& a, T d,
             std::memory_order order = std::memory_order_relaxed) noexcept {
  const T v = a.load(std::memory_order_relaxed) + d;
  a.store(v, order);
  return v;
}

// describe_current: the exception being handled, for logs. Call inside a catch block.
std::string describe_current();

// wake_worker: makes a worker taken out of IdleWorkers (its task or exit set under the lock)
// run again (see Worker). Call after unlocking.
inline void wake_worker(Worker* w) noexcept {
  sched::G* g = w->g;  // w lives on its fiber's stack: read before the exchange
  if (w->wake.exchange(Worker::kWoken, std::memory_order_acq_rel) == Worker::kParked)
    sched::ready(g);
}

// notify_workers: wakes a chain of workers taken out of IdleWorkers.
inline void notify_workers(Worker* w) noexcept {
  while (w) {
    Worker* next = w->next_stale;  // read before the wake
    wake_worker(w);
    w = next;
  }
}

// Wakeups: what a worker or the purger leaving collects under the lock, to wake after unlocking.
struct PoolCore::Wakeups {
  sched::Waiter* retry = nullptr;  // a submitter that may now start a worker
  sched::Chain done;               // await_exit callers
  sched::Chain drained;            // wait() callers
  void notify() noexcept {
    if (retry) sched::notify(*retry);
    sched::notify_chain(done.first);
    sched::notify_chain(drained.first);
  }
};

}  // namespace colony::detail
