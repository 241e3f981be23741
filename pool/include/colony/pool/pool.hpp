// colony::Pool and colony::PoolWithFunc: ants' goroutine pool (github.com/panjf2000/ants, v2) on
// colony fibers. A pool runs tasks on long-lived worker fibers, at most cap() of them, reusing a
// worker for task after task instead of starting a fiber per task.
//
//   colony::Pool pool(10000, {.expiry_duration = 1s, .nonblocking = false});
//   std::error_code ec = pool.submit([] { ... });      // ants' Submit
//   auto fut = pool.submit_future([] { return 42; });   // a typed result, or the exception
//   pool.wait();                                         // every submitted task has finished
//   pool.release_timeout(3s);                            // close, wait for the workers to exit
//
// Submit takes an idle worker (the most recently idle one, LIFO; with pre_alloc the oldest, from
// a ring), else starts one if running() < cap(), else queues the task if a task queue is set up
// and has room, else fails with pool_overload (nonblocking, or max_blocking_tasks callers already
// wait), else waits until a worker comes back, the pool is released (pool_closed), or the
// deadline / context ends. A worker that finishes a task hands itself straight to the longest
// waiting submitter. Idle workers older than expiry_duration are retired by a purger fiber.
//
// Scheduling: on a fiber, a submit that handed its task to a worker (or started one) yields
// once, so that the worker runs the task at once on the same processor, as ants' unbuffered
// worker channel does; submit is therefore a switch point, like go/spawn.
//
// Where things run: workers are started with colony::go on the runtime of the fiber that needs
// one (the default runtime when that is a plain thread); the default pool always uses the default
// runtime. Every call may be made from fibers of any runtime and from plain threads: a blocked
// submit parks a fiber, or blocks a thread. Never call a blocking submit, wait() or a release
// that waits from a task of the same pool whose workers could all be doing the same: that is the
// nested-submit deadlock ants documents (use an unbounded or nonblocking pool there).
//
// Panics: an exception escaping a task never ends the worker, its thread or the process. It goes
// to panic_handler, or is logged (with what() and the submit site) through the logger, and the
// worker takes the next task. submit_future hands the exception to the future instead.
//
// Destruction releases the pool and waits until every worker has exited, which means running
// tasks finish first (like joining a thread). A pool must not be destroyed from one of its own
// tasks. See docs/pool.md for the design and the differences from ants.
#pragma once

#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "colony/context.hpp"
#include "colony/future.hpp"
#include "colony/go.hpp"
#include "colony/pool/errors.hpp"
#include "colony/pool/task.hpp"
#include "colony/sched/source_location.hpp"
#include "colony/sync.hpp"

namespace colony {

// kDefaultPoolSize: the default pool's capacity (ants' DefaultAntsPoolSize, math.MaxInt32).
inline constexpr int kDefaultPoolSize = INT32_MAX;
// kDefaultCleanInterval: the purger's period when expiry_duration is 0 (ants'
// DefaultCleanIntervalTime).
inline constexpr std::chrono::seconds kDefaultCleanInterval{1};

// PoolOptions: the settings of one pool (ants' Options), set with designated initialisers.
struct PoolOptions {
  // expiry_duration: the purger runs every expiry_duration and retires workers idle for longer.
  // 0 means 1 s (ants' DefaultCleanIntervalTime); negative is invalid unless disable_purge.
  std::chrono::nanoseconds expiry_duration{kDefaultCleanInterval};
  // pre_alloc: keep idle workers in a ring allocated up front for cap() workers (ants' loop
  // queue, FIFO) instead of a growing LIFO stack. Needs a capacity > 0; tune() is then a no-op.
  // Cost: the constructor allocates and zeroes 8 bytes per unit of capacity, however few workers
  // ever run: Pool(INT32_MAX, {.pre_alloc = true}) writes 16 GiB before it returns (100 million
  // took 763 MiB and about 4 s on a loaded two-core machine), and throws std::bad_alloc, or the
  // process is killed, where that memory is not there. ants allocates its ring eagerly too; give
  // pre_alloc a capacity you mean to reach (docs/pool.md, "The cost of pre_alloc").
  bool pre_alloc = false;
  // max_blocking_tasks: at most this many submitters wait for a worker; beyond it submit fails
  // with pool_overload. 0 = no limit.
  int max_blocking_tasks = 0;
  // nonblocking: submit never waits; pool_overload when no worker (and no queue slot) is free.
  bool nonblocking = false;
  // panic_handler: receives every exception that escapes a task. Empty = log it.
  std::function<void(std::exception_ptr)> panic_handler;
  // logger: receives one line per log message (panics without a handler). Empty = stderr.
  std::function<void(std::string_view)> logger;
  // disable_purge: idle workers are never retired (they stay until release).
  bool disable_purge = false;
  // queue_capacity (beyond ants): when every worker is busy and the pool is full, submit queues
  // the task (up to this many) instead of waiting; workers take queued tasks first, FIFO.
  // Beyond it the usual nonblocking / max_blocking_tasks / waiting rules apply. 0 = no queue.
  std::size_t queue_capacity = 0;
  // stack_size (beyond ants): the worker fibers' stack size; 0 = the runtime's default.
  std::size_t stack_size = 0;
};

// PoolStats: counters of one pool since construction (they survive release and reboot), and a
// snapshot of its gauges.
struct PoolStats {
  std::uint64_t submitted = 0;        // tasks accepted (started or queued)
  std::uint64_t completed = 0;        // tasks that finished (returned or threw)
  std::uint64_t panics = 0;           // exceptions caught from tasks
  std::uint64_t rejected = 0;         // submits that failed (closed, overload, timeout, context)
  std::uint64_t workers_started = 0;  // worker fibers started
  std::uint64_t workers_purged = 0;   // workers retired by the purger (idle too long)
  std::uint64_t workers_retired = 0;  // workers retired because tune() lowered the capacity
  int peak_running = 0;               // the highest running() seen
  int running = 0;                    // running() now
  int idle = 0;                       // workers idle now
  int waiting = 0;                    // waiting() now
  std::size_t queued = 0;             // tasks in the queue now
};

// LoadBalancing: how a MultiPool picks a pool (ants' LoadBalancingStrategy).
enum class LoadBalancing { round_robin = 1, least_tasks = 2 };

namespace detail {

class PoolCore;
struct PinnedRuntime;  // the default pool's runtime (default_pool.cpp)

std::shared_ptr<PoolCore> make_pool_core(int capacity, PoolOptions opts, const SourceLocation& site,
                                         PinnedRuntime* pinned);
// pool_submit: hands `t` to the pool (moved from on success only). deadline_ns is on the
// sched::nanotime() clock (sched::kNoDeadline: none); ctx may be null.
std::error_code pool_submit(PoolCore& c, PoolTask& t, std::int64_t deadline_ns, const Context* ctx);
// pool_attach: keeps `p` alive as long as the pool's workers (PoolWithFunc's function).
void pool_attach(PoolCore& c, std::shared_ptr<const void> p);
// pool_await_exit: waits until every worker and the purger have exited (or the deadline).
std::error_code pool_await_exit(PoolCore& c, std::int64_t deadline_ns);

template <class F>
using pool_result_t = std::invoke_result_t<std::decay_t<F>>;

// FutureTask: submit_future's task: runs fn into the promise (colony/future.hpp).
template <class R, class F>
struct FutureTask {
  Promise<R> promise;
  F fn;
  void operator()() { promise.run(std::move(fn)); }
};

template <class F>
concept NotContext = !std::is_same_v<std::remove_cvref_t<F>, Context>;

template <class P>
class BasicMultiPool;

}  // namespace detail

template <class Arg>
class MultiPoolWithFunc;
template <class R>
class Batch;

class Pool {
 public:
  // Pool: a pool of at most `capacity` workers; capacity <= 0 means unbounded (cap() == -1).
  // Throws std::invalid_argument for a negative expiry (unless disable_purge), pre_alloc with
  // capacity <= 0, or a negative max_blocking_tasks. No fiber is started until a task comes.
  explicit Pool(int capacity, PoolOptions opts = {},
                const SourceLocation& loc = SourceLocation::current());
  // ~Pool: release(), then wait until every worker has exited (running tasks finish first).
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // submit: runs task() on a worker (ants' Submit). Empty error_code when accepted; otherwise
  // pool_closed or pool_overload (see the header comment for when it waits).
  template <class F>
  requires detail::NotContext<F> std::error_code submit(
      F&& task, const SourceLocation& loc = SourceLocation::current()) {
    detail::PoolTask t(std::forward<F>(task), loc);
    return detail::pool_submit(*core_, t, sched::kNoDeadline, nullptr);
  }
  // submit_until / submit_for: submit that gives up waiting for a worker at the deadline
  // (pool_errc::timeout). A task that needs no waiting is accepted even past the deadline.
  template <class F, class Clock, class Dur>
  std::error_code submit_until(F&& task, std::chrono::time_point<Clock, Dur> t,
                               const SourceLocation& loc = SourceLocation::current()) {
    detail::PoolTask pt(std::forward<F>(task), loc);
    return detail::pool_submit(*core_, pt, sched::deadline_at(t), nullptr);
  }
  template <class F, class Rep, class Period>
  std::error_code submit_for(F&& task, std::chrono::duration<Rep, Period> d,
                             const SourceLocation& loc = SourceLocation::current()) {
    detail::PoolTask pt(std::forward<F>(task), loc);
    return detail::pool_submit(*core_, pt, sched::deadline_after(d), nullptr);
  }
  // submit(ctx, task): gives up waiting when ctx is done and returns ctx.err()
  // (context_errc::canceled or deadline_exceeded). A context already done is checked first:
  // the task is then not accepted even if a worker is free.
  template <class F>
  std::error_code submit(const Context& ctx, F&& task,
                         const SourceLocation& loc = SourceLocation::current()) {
    detail::PoolTask t(std::forward<F>(task), loc);
    return detail::pool_submit(*core_, t, sched::kNoDeadline, &ctx);
  }
  // submit_future (beyond ants): runs task() on a worker; the future receives its result or its
  // exception (which is then not a panic of the pool). If the pool refuses the task, the
  // future holds std::system_error with the pool_errc; if the task is dropped unrun (its
  // runtime shut down), std::future_error(broken_promise).
  template <class F>
  Future<detail::pool_result_t<F>> submit_future(
      F&& task, const SourceLocation& loc = SourceLocation::current()) {
    using R = detail::pool_result_t<F>;
    using T = detail::FutureTask<R, std::decay_t<F>>;
    Promise<R> promise;
    Future<R> future = promise.get_future();
    detail::PoolTask t(T{std::move(promise), std::forward<F>(task)}, loc);
    if (std::error_code ec = detail::pool_submit(*core_, t, sched::kNoDeadline, nullptr))
      t.target<T>()->promise.set_exception(std::make_exception_ptr(std::system_error(ec)));
    return future;
  }

  // running: live workers, busy or idle (ants' Running).
  int running() const noexcept;
  // free: cap() - running(), or -1 for an unbounded pool (ants' Free).
  int free() const noexcept;
  // waiting: submitters blocked waiting for a worker (ants' Waiting).
  int waiting() const noexcept;
  // cap: the capacity, -1 when unbounded (ants' Cap).
  int cap() const noexcept;
  // queued: tasks in the task queue (always 0 without queue_capacity).
  std::size_t queued() const noexcept;
  // pending: tasks accepted and not finished yet (queued, handed over or running).
  std::int64_t pending() const noexcept;
  bool is_closed() const noexcept;

  // tune: changes the capacity (ants' Tune); thread-safe. No-op for an unbounded or pre_alloc
  // pool, for size <= 0 and for the current size. Raising it lets waiting submitters start
  // workers at once; lowering it retires surplus idle workers now and busy ones as they finish.
  void tune(int size);
  // release: closes the pool (ants' Release): new submits fail with pool_closed, waiting
  // submitters wake with pool_closed, idle workers exit, running and queued tasks still run
  // (then their workers exit). Idempotent; does not wait.
  void release();
  // release_timeout: release(), then wait until every worker (and the purger) has exited:
  // empty error_code, or pool_errc::timeout (tasks still running or queued). pool_closed if the
  // pool was already released, as in ants.
  std::error_code release_timeout(std::chrono::nanoseconds d);
  template <class Rep, class Period>  // any duration, saturating (beyond ~292 years: no limit)
  std::error_code release_timeout(std::chrono::duration<Rep, Period> d) {
    return release_timeout(sched::saturate(d));
  }
  // reboot: reopens a released pool (ants' Reboot); the purger restarts with the next idle
  // worker. No-op on an open pool.
  void reboot();

  // wait (beyond ants): until every task submitted so far has finished (without releasing).
  // wait_for: the same, giving up after d; true if everything finished.
  void wait();
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    return wait_until_ns(sched::deadline_after(d));
  }
  // stats (beyond ants): counters and gauges, see PoolStats.
  PoolStats stats() const;

 private:
  friend Pool& default_pool();
  template <class Arg>
  friend class PoolWithFunc;
  template <class P>
  friend class detail::BasicMultiPool;
  template <class R>
  friend class Batch;

  Pool(int capacity, PoolOptions opts, const SourceLocation& loc, detail::PinnedRuntime* pinned);
  bool wait_until_ns(std::int64_t deadline_ns);
  detail::PoolCore& core() const noexcept { return *core_; }

  std::shared_ptr<detail::PoolCore> core_;
};

// PoolWithFunc<Arg>: a pool whose workers all run one function (ants' PoolWithFunc and
// PoolWithFuncGeneric): invoke(arg) runs fn(arg) on a worker. Everything else is Pool's.
template <class Arg>
class PoolWithFunc : private Pool {
  static_assert(!std::is_reference_v<Arg>, "colony::PoolWithFunc: Arg must be a value type");

 public:
  using Fn = std::function<void(Arg)>;
  // PoolWithFunc: throws std::invalid_argument if fn is empty (ants' ErrLackPoolFunc; checked
  // first, as ants does), then what Pool's constructor throws.
  PoolWithFunc(int capacity, Fn fn, PoolOptions opts = {},
               const SourceLocation& loc = SourceLocation::current())
      : Pool((check(fn), capacity), std::move(opts), loc),
        fn_(std::make_shared<const Fn>(std::move(fn))) {
    detail::pool_attach(core(), fn_);
  }

  // invoke: submits fn(arg) (ants' Invoke); as Pool::submit.
  std::error_code invoke(Arg arg, const SourceLocation& loc = SourceLocation::current()) {
    return Pool::submit(bind(std::move(arg)), loc);
  }
  template <class Clock, class Dur>
  std::error_code invoke_until(Arg arg, std::chrono::time_point<Clock, Dur> t,
                               const SourceLocation& loc = SourceLocation::current()) {
    return Pool::submit_until(bind(std::move(arg)), t, loc);
  }
  template <class Rep, class Period>
  std::error_code invoke_for(Arg arg, std::chrono::duration<Rep, Period> d,
                             const SourceLocation& loc = SourceLocation::current()) {
    return Pool::submit_for(bind(std::move(arg)), d, loc);
  }
  std::error_code invoke(const Context& ctx, Arg arg,
                         const SourceLocation& loc = SourceLocation::current()) {
    return Pool::submit(ctx, bind(std::move(arg)), loc);
  }

  using Pool::cap;
  using Pool::free;
  using Pool::is_closed;
  using Pool::pending;
  using Pool::queued;
  using Pool::reboot;
  using Pool::release;
  using Pool::release_timeout;
  using Pool::running;
  using Pool::stats;
  using Pool::tune;
  using Pool::wait;
  using Pool::wait_for;
  using Pool::waiting;

 private:
  template <class P>
  friend class detail::BasicMultiPool;
  friend class MultiPoolWithFunc<Arg>;

  struct SharedFn {};
  PoolWithFunc(SharedFn, int capacity, std::shared_ptr<const Fn> fn, PoolOptions opts,
               const SourceLocation& loc)
      : Pool(capacity, std::move(opts), loc), fn_(std::move(fn)) {
    detail::pool_attach(core(), fn_);
  }

  static void check(const Fn& fn) {
    if (!fn) detail::throw_pool_error(pool_errc::lack_pool_func, "colony::PoolWithFunc");
  }
  static std::shared_ptr<const Fn> checked(Fn fn) {
    check(fn);
    return std::make_shared<const Fn>(std::move(fn));
  }
  auto bind(Arg arg) const {
    // The function outlives every task: the pool core holds it (pool_attach).
    return [f = fn_.get(), a = std::move(arg)]() mutable { (*f)(std::move(a)); };
  }

  std::shared_ptr<const Fn> fn_;
};

// default_pool: the process's default pool (ants' defaultAntsPool): capacity INT32_MAX, default
// options, workers on the default runtime. Created on first use and never destroyed.
Pool& default_pool();

// submit: default_pool().submit(task) (ants' package-level Submit).
template <class F>
requires detail::NotContext<F> std::error_code submit(
    F&& task, const SourceLocation& loc = SourceLocation::current()) {
  return default_pool().submit(std::forward<F>(task), loc);
}

// colony::pool: ants' package-level functions, on the default pool. A namespace of its own so
// that colony::pool::running() (the default pool's busy workers) cannot be mistaken for anything
// of the runtime's (colony::num_fibers(), colony::stats()).
namespace pool {
template <class F>
requires detail::NotContext<F> std::error_code submit(
    F&& task, const SourceLocation& loc = SourceLocation::current()) {
  return default_pool().submit(std::forward<F>(task), loc);
}
inline int running() noexcept { return default_pool().running(); }  // ants.Running
inline int cap() noexcept { return default_pool().cap(); }          // ants.Cap
inline int free() noexcept { return default_pool().free(); }        // ants.Free
inline void release() { default_pool().release(); }                 // ants.Release
// ants.ReleaseTimeout; reboot() reopens it afterwards, as ants.Reboot.
template <class Rep, class Period>
std::error_code release_timeout(std::chrono::duration<Rep, Period> d) {
  return default_pool().release_timeout(d);
}
inline void reboot() { default_pool().reboot(); }  // ants.Reboot
}  // namespace pool

}  // namespace colony
