// colony::Pool: the worker loop, submit, the purger, tune, release. The design and the reasons
// behind it are in docs/pool.md; the lock and the invariants are at the top of pool_core.hpp.
#include <cxxabi.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <typeinfo>
#include <vector>

#include "colony/chan.hpp"
#include "colony/sched/demangle.hpp"
#include "colony/select.hpp"
#include "pool_core.hpp"

namespace colony {
namespace detail {

namespace {

// add_locked: adds d to a counter that is only written under the pool's lock: a plain load and
// store, not a locked read-modify-write (readers without the lock see either value).
template <class T>
T add_locked(std::atomic<T>& a, T d,
             std::memory_order order = std::memory_order_relaxed) noexcept {
  const T v = a.load(std::memory_order_relaxed) + d;
  a.store(v, order);
  return v;
}

// wake_worker: makes a worker taken out of IdleWorkers (its task or exit set under the lock)
// run again (see Worker). Call after unlocking.
void wake_worker(Worker* w) noexcept {
  sched::G* g = w->g;  // w lives on its fiber's stack: read before the exchange
  if (w->wake.exchange(Worker::kWoken, std::memory_order_acq_rel) == Worker::kParked)
    sched::ready(g);
}

// notify_workers: wakes a chain of workers taken out of IdleWorkers.
void notify_workers(Worker* w) noexcept {
  while (w) {
    Worker* next = w->next_stale;  // read before the wake
    wake_worker(w);
    w = next;
  }
}

// park_idle: the unlock step of an idle worker's park (see Worker).
bool park_idle(sched::G*, void* arg) {
  auto* w = static_cast<Worker*>(arg);
  std::uint32_t expected = Worker::kAwake;
  return w->wake.compare_exchange_strong(expected, Worker::kParked, std::memory_order_acq_rel);
}

// describe_current: the exception being handled, for logs. Call inside a catch block.
std::string describe_current() {
  try {
    throw;
  } catch (const std::exception& e) {
    return sched::demangle(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    return "non-std exception of type " + (t ? sched::demangle(t->name()) : std::string("unknown"));
  }
}

std::string site_text(const SourceLocation& s) {
  std::string out = s.file_name();
  out += ':';
  out += std::to_string(s.line());
  if (*s.function_name()) {
    out += " in ";
    out += s.function_name();
  }
  return out;
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

struct PurgerMain {
  std::shared_ptr<PoolCore> core;
  std::uint64_t gen;
  PurgerMain(std::shared_ptr<PoolCore> c, std::uint64_t g) noexcept : core(std::move(c)), gen(g) {}
  PurgerMain(PurgerMain&&) noexcept = default;
  ~PurgerMain() {
    if (core) core->purger_gone(gen);
  }
  void operator()() {
    std::shared_ptr<PoolCore> c = std::move(core);
    c->purger_loop(gen);
  }
};

}  // namespace

// CtxWatch: while a submit(ctx, ...) waits for a worker, a small fiber selects on the context's
// done() channel and on `stop`; if the context ends first it takes the submitter out of the
// wait queue (PoolCore::cancel_wait). Started only when the submitter has to wait, and stopped
// and joined before the submit returns.
class CtxWatch {
 public:
  CtxWatch(PoolCore& core, const Context& ctx) : core_(core) {
    done_ = colony::spawn([this, ctx] {
      colony::select(colony::on_recv(ctx.done()), colony::on_recv(stop_));
      if (ctx.is_done()) core_.cancel_wait(*this);
    });
  }
  ~CtxWatch() {
    try {
      stop_.close();
      done_.wait();
    } catch (...) {  // NOLINT: only while unwinding at shutdown, when waiting is impossible
    }
  }
  CtxWatch(const CtxWatch&) = delete;
  CtxWatch& operator=(const CtxWatch&) = delete;

  bool fired = false;               // (core lock) the context ended
  sched::Waiter* waiter = nullptr;  // (core lock) the submitter's Waiter while parked

 private:
  PoolCore& core_;
  Chan<std::monostate> stop_;
  Future<void> done_;
};

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

PoolCore::PoolCore(int capacity, PoolOptions opts, const SourceLocation& site,
                   PinnedRuntime* pinned)
    : capacity_(capacity), opts_(std::move(opts)), site_(site), pinned_(pinned) {
  idle_.init(opts_.pre_alloc, opts_.pre_alloc ? static_cast<std::size_t>(capacity) : 0);
}

std::error_code PoolCore::reject(std::error_code ec) noexcept {
  stats_.rejected.fetch_add(1, std::memory_order_relaxed);
  return ec;
}

void PoolCore::accept_locked() noexcept {
  add_locked<std::int64_t>(pending_, 1);
  add_locked<std::uint64_t>(submitted_, 1);
}

void PoolCore::add_running_locked() noexcept {
  const int n = add_locked(running_, 1);
  ++live_;
  peak_running_ = std::max(peak_running_, n);
}

void PoolCore::left_service_locked(Worker* w) noexcept {
  if (w) w->exit = true;
  add_locked(running_, -1);
}

Worker* PoolCore::tell_exit_locked(Worker* chain) noexcept {
  for (Worker* w = chain; w; w = w->next_stale) {
    w->idle = false;
    left_service_locked(w);
  }
  return chain;
}

PoolTask PoolCore::pop_queue_locked() noexcept {
  PoolTask t = std::move(queue_.front());
  queue_.pop_front();
  queued_.store(queue_.size(), std::memory_order_relaxed);
  return t;
}

// ---------------------------------------------------------------------------------- submit

// yield_to_worker: after a fiber handed a task to a worker (or started one), the worker is
// next in line on the fiber's processor (runnext), pushing any worker handed earlier into the
// local run queue. A submitter that never blocks would ready idle workers faster than they run:
// every idle worker ends up queued and each task lands on a cold stack (an unbounded pool fed
// empty tasks then cycles through ~10,000 workers at ~0.8 us a submit). So once a backlog of
// fibers waits in this processor's queue, the submitter yields and lets them run. How much:
//  * kYieldBacklog (16) while few workers are idle: they are the ones that ran moments ago and
//    are still in cache; letting them run and come back promptly keeps reusing that small set.
//  * kYieldBacklogCold (64) once kColdIdle (1024) or more are idle (idle_left: what the
//    submit left behind): tasks then come back faster than this submitter hands them out, the
//    worker it takes has been idle for milliseconds and is cold wherever it runs, and a yield
//    only takes the processor away from the bottleneck while the other processors steal the
//    backlog. In ants' sleep benchmark (thousands idle at 85-90% of the takes) this took the
//    pool from ~1.05x raw fibers to 0.90-0.97x on two processors (before the timer changes of
//    the scheduler sped raw fibers up more than the pool); empty tasks (few idle) are
//    unaffected.
//  * Never sooner with more than one processor: a switch per task serialises submitter and
//    worker on one processor while the others steal, and cost the sleep benchmark up to half
//    its throughput.
// With a single processor there is nobody to steal, and the longer the submitter runs ahead
// the longer workers stay idle and the colder they are when reused: there it yields as soon as
// one fiber waits besides runnext (ants likewise switches to the worker on every submit under
// GOMAXPROCS=1), which took the sleep benchmark on one processor from 1.2x raw fibers to within
// a few percent, at ~10% on empty tasks. On a plain thread: nothing. The figures behind the
// thresholds are in docs/pool.md.
constexpr std::uint32_t kYieldBacklog = 16;
constexpr std::uint32_t kYieldBacklogCold = 64;
constexpr std::size_t kColdIdle = 1024;

static void yield_to_worker(std::size_t idle_left) {
  if (!sched::current_g()) return;
  const std::uint32_t backlog = sched::local_backlog();
  const std::uint32_t limit = idle_left >= kColdIdle ? kYieldBacklogCold : kYieldBacklog;
  if (backlog >= limit || (backlog > 0 && sched::current_nprocs() == 1)) sched::yield();
}

std::error_code PoolCore::submit(PoolTask& t, std::int64_t deadline_ns, const Context* ctx) {
  if (closed_.load(std::memory_order_acquire)) return reject(pool_errc::pool_closed);
  if (ctx) {
    if (std::error_code e = ctx->err()) return reject(e);
  }
  std::optional<CtxWatch> watch;  // started the first time this submit has to wait
  lock_.lock();
  for (;;) {
    if (closed_.load(std::memory_order_relaxed)) {
      lock_.unlock();
      return reject(pool_errc::pool_closed);
    }
    if (Worker* w = idle_.detach(sched::current_proc())) {
      const std::size_t idle_left = idle_.size();
      accept_locked();
      lock_.unlock();
      // Out of idle_, w is ours alone until we wake it: its fields (on its stack, likely in
      // another core's cache) are written after unlocking, not while every worker coming back
      // waits for the lock. The wake's exchange publishes them.
      w->idle = false;
      w->task = std::move(t);
      wake_worker(w);
      yield_to_worker(idle_left);
      return {};
    }
    const int cap = capacity_.load(std::memory_order_relaxed);
    if (cap < 0 || running_.load(std::memory_order_relaxed) < cap) {
      add_running_locked();
      accept_locked();
      lock_.unlock();
      spawn_worker(std::move(t));
      yield_to_worker(0);  // the new worker is next in line too (sched::start_fiber's runnext)
      return {};
    }
    if (queue_.size() < opts_.queue_capacity) {
      queue_.push_back(std::move(t));
      queued_.store(queue_.size(), std::memory_order_relaxed);
      accept_locked();
      lock_.unlock();
      return {};
    }
    if (opts_.nonblocking ||
        (opts_.max_blocking_tasks > 0 &&
         waiters_.size >= static_cast<std::size_t>(opts_.max_blocking_tasks))) {
      lock_.unlock();
      return reject(pool_errc::pool_overload);
    }
    if (ctx && !watch) {
      lock_.unlock();  // spawning may switch: never with the lock held
      watch.emplace(*this, *ctx);
      lock_.lock();
      continue;  // the world may have changed meanwhile
    }
    if (watch && watch->fired) {
      lock_.unlock();
      return reject(ctx->err());
    }
    if (deadline_ns != sched::kNoDeadline && deadline_ns <= sched::nanotime()) {  // no clock read if none
      lock_.unlock();
      return reject(pool_errc::timeout);
    }

    std::uint8_t result;
    {
      sched::Waiter w;
      w.data = &t;
      waiters_.push_back(&w);
      if (watch) watch->waiter = &w;
      // Clears the watch's pointer to `w` before `w` goes away, however this wait ends.
      struct Unwatch {
        PoolCore* c;
        CtxWatch* watch;
        ~Unwatch() {
          c->waiting_.fetch_sub(1, std::memory_order_relaxed);
          if (!watch) return;
          std::lock_guard<sched::SpinLock> lk(c->lock_);
          watch->waiter = nullptr;
        }
      } unwatch{this, watch ? &*watch : nullptr};
      waiting_.fetch_add(1, std::memory_order_relaxed);
      if (!sched::wait_until(w, lock_, sched::WaitReason::pool, deadline_ns))
        return reject(pool_errc::timeout);
      result = w.result;
    }
    switch (result) {
      case kHanded:
        return {};
      case kClosed:
        return reject(pool_errc::pool_closed);
      case kCancelled:
        return reject(ctx->err());
      default:  // kRetry
        break;
    }
    lock_.lock();
  }
}

void PoolCore::cancel_wait(CtxWatch& watch) noexcept {
  sched::Waiter* w = nullptr;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    watch.fired = true;
    if (watch.waiter && watch.waiter->linked) {
      w = watch.waiter;
      waiters_.remove(w);
      w->result = kCancelled;
    }
  }
  if (w) sched::notify(*w);
}

void PoolCore::spawn_worker(PoolTask&& t) {
  // If anything below throws, wm's destructor gives the slot and the task back.
  WorkerMain wm(shared_from_this(), std::move(t));
  sched::Scheduler& s = pinned_ ? *pinned_->sched : sched::current_or_default();
  sched::launch(s, SpawnOptions{opts_.stack_size}, std::move(wm), site_);
  stats_.workers_started.fetch_add(1, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------------- workers

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

void PoolCore::on_panic(std::exception_ptr e, const std::string& what, const SourceLocation& site) {
  stats_.panics.fetch_add(1, std::memory_order_relaxed);
  if (opts_.panic_handler) {
    try {
      opts_.panic_handler(std::move(e));
    } catch (const FiberUnwind&) {
      throw;
    } catch (...) {
      log("colony::Pool: the panic handler threw " + describe_current() + " while handling " +
          what + " [task submitted at " + site_text(site) + "]");
    }
    return;
  }
  log("colony::Pool: task panicked: " + what + " [submitted at " + site_text(site) +
      "]; the worker carries on");
}

void PoolCore::log(const std::string& line) noexcept {
  if (opts_.logger) {
    try {
      opts_.logger(line);
      return;
    } catch (...) {  // NOLINT: a logger that throws falls back to stderr (even FiberUnwind:
    }                // this function is noexcept, and the caller reaches a park soon)
  }
  std::string out = line;
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stderr);
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

// ---------------------------------------------------------------------------------- purger

void PoolCore::start_purger_unlocking() {
  purger_running_ = true;
  ++purgers_alive_;
  const std::uint64_t gen = ++purger_gen_;
  lock_.unlock();
  bool ok = true;
  try {
    PurgerMain pm(shared_from_this(), gen);  // its destructor undoes the above if not started
    sched::Scheduler& s = pinned_ ? *pinned_->sched : sched::current_or_default();
    sched::launch(s, SpawnOptions{}, std::move(pm), site_);
  } catch (const std::exception&) {
    ok = false;  // purging is best effort; the pool works without it
  }
  lock_.lock();
  if (!ok) purger_failed_ = true;
}

void PoolCore::purger_loop(std::uint64_t gen) {
  struct Gone {  // however the loop ends (also unwound at shutdown)
    PoolCore* c;
    std::uint64_t gen;
    ~Gone() { c->purger_gone(gen); }
  } gone{this, gen};
  const std::int64_t expiry = opts_.expiry_duration.count();
  const std::int64_t period = std::max<std::int64_t>(expiry, 1'000'000);  // at least 1 ms
  lock_.lock();
  for (;;) {
    // In service while the pool is open and has workers; the next idle worker starts another.
    if (closed_.load(std::memory_order_relaxed) || gen != purger_gen_ ||
        running_.load(std::memory_order_relaxed) == 0) {
      if (gen == purger_gen_) purger_running_ = false;
      break;
    }
    sched::Waiter pw;
    purge_wl_.push_back(&pw);
    const bool woken =
        sched::wait_until(pw, lock_, sched::WaitReason::pool, sched::nanotime() + period);
    lock_.lock();
    if (woken) continue;  // release() woke us: re-check

    Worker* stale = tell_exit_locked(idle_.take_stale(sched::coarse_now() - expiry));
    std::uint64_t n = 0;
    for (Worker* w = stale; w; w = w->next_stale) ++n;
    stats_.workers_purged.fetch_add(n, std::memory_order_relaxed);
    // As ants: if the pool went dormant with submitters still waiting, let one start a worker.
    sched::Waiter* retry = nullptr;
    const int cap = capacity_.load(std::memory_order_relaxed);
    if (cap < 0 || running_.load(std::memory_order_relaxed) < cap) {
      if ((retry = waiters_.pop_front())) retry->result = kRetry;
    }
    lock_.unlock();
    notify_workers(stale);
    if (retry) sched::notify(*retry);
    lock_.lock();
  }
  lock_.unlock();
}

void PoolCore::purger_gone(std::uint64_t gen) noexcept {
  Wakeups wk;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    --purgers_alive_;
    if (gen == purger_gen_) purger_running_ = false;  // unwound, or never ran
    if (live_ == 0 && purgers_alive_ == 0) wk.done.take_all(done_wl_);
  }
  wk.notify();
}

// ---------------------------------------------------------------------------------- control

void PoolCore::tune(int size) {
  std::vector<PoolTask> start;  // queued tasks that get new workers
  sched::Chain retry;  // waiting submitters that may now start a worker
  Worker* retire = nullptr;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    const int old = capacity_.load(std::memory_order_relaxed);
    if (old < 0 || size <= 0 || size == old || opts_.pre_alloc) return;
    capacity_.store(size, std::memory_order_relaxed);
    const int running = running_.load(std::memory_order_relaxed);
    if (size > old) {
      int slots = size - running;
      if (!closed_.load(std::memory_order_relaxed)) {
        while (slots > 0 && !queue_.empty()) {
          start.push_back(pop_queue_locked());
          add_running_locked();
          --slots;
        }
        for (; slots > 0; --slots) {
          sched::Waiter* s = waiters_.pop_front();
          if (!s) break;
          s->result = kRetry;
          retry.add(s);
        }
      }
    } else if (running > size) {
      retire = tell_exit_locked(idle_.take(static_cast<std::size_t>(running - size)));
      for (Worker* w = retire; w; w = w->next_stale)
        stats_.workers_retired.fetch_add(1, std::memory_order_relaxed);
    }
  }
  notify_workers(retire);
  sched::notify_chain(retry.first);
  for (PoolTask& t : start) spawn_worker(std::move(t));
}

void PoolCore::release() {
  bool open = false;
  if (!closed_.compare_exchange_strong(open, true, std::memory_order_acq_rel)) return;
  Worker* idle;
  sched::Chain woken;  // waiting submitters (kClosed), then the purger
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    idle = tell_exit_locked(idle_.take(idle_.size()));
    while (sched::Waiter* s = waiters_.pop_front()) {
      s->result = kClosed;
      woken.add(s);
    }
    woken.take_all(purge_wl_);
  }
  notify_workers(idle);
  sched::notify_chain(woken.first);
}

std::error_code PoolCore::await_exit(std::int64_t deadline_ns) {
  lock_.lock();
  for (;;) {
    if (live_ == 0 && purgers_alive_ == 0 && queue_.empty()) {
      lock_.unlock();
      return {};
    }
    sched::Waiter w;
    done_wl_.push_back(&w);
    if (!sched::wait_until(w, lock_, sched::WaitReason::pool, deadline_ns))
      return pool_errc::timeout;
    lock_.lock();
  }
}

void PoolCore::reboot() noexcept {
  bool closed = true;
  if (!closed_.compare_exchange_strong(closed, false, std::memory_order_acq_rel)) return;
  std::lock_guard<sched::SpinLock> lk(lock_);
  purger_failed_ = false;  // the next idle worker starts a purger
}

bool PoolCore::wait_drained(std::int64_t deadline_ns) {
  if (pending_.load(std::memory_order_acquire) == 0) return true;
  lock_.lock();
  if (pending_.load(std::memory_order_relaxed) == 0) {
    lock_.unlock();
    return true;
  }
  sched::Waiter w;
  drain_wl_.push_back(&w);
  return sched::wait_until(w, lock_, sched::WaitReason::pool, deadline_ns);
}

PoolStats PoolCore::stats() const {
  PoolStats s;
  s.submitted = submitted_.load(std::memory_order_relaxed);
  s.completed = completed_.load(std::memory_order_relaxed);
  s.panics = stats_.panics.load(std::memory_order_relaxed);
  s.rejected = stats_.rejected.load(std::memory_order_relaxed);
  s.workers_started = stats_.workers_started.load(std::memory_order_relaxed);
  s.workers_purged = stats_.workers_purged.load(std::memory_order_relaxed);
  s.workers_retired = stats_.workers_retired.load(std::memory_order_relaxed);
  std::lock_guard<sched::SpinLock> lk(lock_);
  s.peak_running = peak_running_;
  s.running = running_.load(std::memory_order_relaxed);
  s.idle = static_cast<int>(idle_.size());
  s.waiting = waiting_.load(std::memory_order_relaxed);
  s.queued = queue_.size();
  return s;
}

// ---------------------------------------------------------------------------------- API glue

std::shared_ptr<PoolCore> make_pool_core(int capacity, PoolOptions opts, const SourceLocation& site,
                                         PinnedRuntime* pinned) {
  if (!opts.disable_purge) {
    if (opts.expiry_duration.count() < 0)
      detail::throw_pool_error(pool_errc::invalid_pool_expiry,
                               "colony::Pool: expiry_duration must not be negative (0 means the "
                               "default, kDefaultCleanInterval)");
    if (opts.expiry_duration.count() == 0) opts.expiry_duration = kDefaultCleanInterval;
  }
  if (capacity <= 0) capacity = -1;
  if (opts.pre_alloc && capacity < 0)
    detail::throw_pool_error(pool_errc::invalid_pre_alloc_size,
                             "colony::Pool: pre_alloc needs a capacity > 0 (or drop pre_alloc)");
  if (opts.max_blocking_tasks < 0)
    throw std::invalid_argument(
        "colony::Pool: max_blocking_tasks must not be negative (0 means no limit)");
  return std::make_shared<PoolCore>(capacity, std::move(opts), site, pinned);
}

std::error_code pool_submit(PoolCore& c, PoolTask& t, std::int64_t deadline_ns,
                            const Context* ctx) {
  return c.submit(t, deadline_ns, ctx);
}

void pool_attach(PoolCore& c, std::shared_ptr<const void> p) {
  c.attach(std::move(p));
}

std::error_code pool_await_exit(PoolCore& c, std::int64_t deadline_ns) {
  return c.await_exit(deadline_ns);
}

}  // namespace detail

Pool::Pool(int capacity, PoolOptions opts, const SourceLocation& loc)
    : core_(detail::make_pool_core(capacity, std::move(opts), loc, nullptr)) {}

Pool::Pool(int capacity, PoolOptions opts, const SourceLocation& loc, detail::PinnedRuntime* pinned)
    : core_(detail::make_pool_core(capacity, std::move(opts), loc, pinned)) {}

Pool::~Pool() {
  if (!core_) return;
  core_->release();
  try {
    core_->await_exit(sched::kNoDeadline);
  } catch (...) {  // NOLINT: FiberUnwind while this fiber is already being unwound at shutdown
  }
}

int Pool::running() const noexcept {
  return core_->running_.load(std::memory_order_relaxed);
}
int Pool::free() const noexcept {
  const int c = cap();
  return c < 0 ? -1 : c - running();
}
int Pool::waiting() const noexcept {
  return core_->waiting_.load(std::memory_order_relaxed);
}
int Pool::cap() const noexcept {
  return core_->capacity_.load(std::memory_order_relaxed);
}
std::size_t Pool::queued() const noexcept {
  return core_->queued_.load(std::memory_order_relaxed);
}
std::int64_t Pool::pending() const noexcept {
  return core_->pending_.load(std::memory_order_relaxed);
}
bool Pool::is_closed() const noexcept {
  return core_->closed_.load(std::memory_order_acquire);
}
void Pool::tune(int size) {
  core_->tune(size);
}
void Pool::release() {
  core_->release();
}
std::error_code Pool::release_timeout(std::chrono::nanoseconds d) {
  if (is_closed()) return pool_errc::pool_closed;
  const std::int64_t deadline = sched::deadline_after(d);
  core_->release();
  return core_->await_exit(deadline);
}
void Pool::reboot() {
  core_->reboot();
}
void Pool::wait() {
  core_->wait_drained(sched::kNoDeadline);
}
bool Pool::wait_until_ns(std::int64_t deadline_ns) {
  return core_->wait_drained(deadline_ns);
}
PoolStats Pool::stats() const {
  return core_->stats();
}

}  // namespace colony
