// colony::Batch<R>: a group of tasks run on a pool whose results are read from a channel in
// completion order, with cancellation of the tasks that have not started (go-playground/pool's
// Batch, beyond ants).
//
//   colony::Batch<int> batch(pool, urls.size());       // room for this many results
//   for (auto& u : urls) batch.queue([&u](const colony::Context& ctx) { return fetch(u, ctx); });
//   batch.queue_complete();                            // results() closes after the last one
//   for (colony::BatchResult<int>& r : batch.results()) {
//     if (r.error) ...; else use(*r.value);
//     if (enough) batch.cancel();                      // the rest report `canceled`
//   }
//
// Every queued task reports exactly one result: its value, its exception, `canceled` (cancel()
// came before it started, or its runtime shut down before it ran), or the pool's refusal
// (error holds std::system_error with the pool_errc). results() has room for max_tasks results,
// so a task never blocks on reporting, and a batch may be queued in full before it is read.
// queue() blocks like Pool::submit while the pool is full. A task may take a `const Context&`:
// the batch's context, cancelled by cancel().
//
// ~Batch calls queue_complete() and waits until every queued task has reported (the tasks may
// refer to the caller's locals); it does not cancel them.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include "colony/chan.hpp"
#include "colony/context.hpp"
#include "colony/pool/pool.hpp"
#include "colony/sync.hpp"

namespace colony {

// BatchResult<R>: what one task of a batch reported.
template <class R>
struct BatchResult {
  using value_type = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
  std::size_t index = 0;            // the task's position in queue() order, from 0
  std::optional<value_type> value;  // set when the task returned
  std::exception_ptr error;         // its exception, or std::system_error if the pool refused it
  bool canceled = false;            // it never ran (cancel(), or its runtime shut down)

  bool ok() const noexcept { return value.has_value(); }
  // get: the value; rethrows `error`; std::system_error(operation_canceled) if canceled.
  value_type get() {
    if (error) std::rethrow_exception(error);
    if (!value) throw std::system_error(std::make_error_code(std::errc::operation_canceled));
    return std::move(*value);
  }
};

namespace detail {

template <class R>
struct BatchCore {
  explicit BatchCore(std::size_t max) : out(max) {
    auto [c, cancel] = with_cancel(background());
    ctx = std::move(c);
    cancel_ctx = std::move(cancel);
  }
  ~BatchCore() { cancel_ctx(); }

  // report: delivers one result (never blocks: the channel has a slot for every task), then
  // closes the channel after the last one once queue_complete() was called.
  void report(BatchResult<R>&& r) noexcept {
    (void)out.try_send(std::move(r));
    bool close = false;
    {
      std::lock_guard<sched::SpinLock> lk(lock);
      ++reported;
      close = complete && reported == queued && !closed;
      if (close) closed = true;
    }
    if (close) out.close();
    wg.done();
  }

  Chan<BatchResult<R>> out;
  sched::SpinLock lock;
  std::size_t queued = 0;    // (lock)
  std::size_t reported = 0;  // (lock)
  bool complete = false;     // (lock) queue_complete() was called
  bool closed = false;       // (lock) out was closed
  std::atomic<bool> canceled{false};
  Context ctx;
  std::function<void()> cancel_ctx;
  WaitGroup wg;  // tasks queued and not yet reported
};

// BatchTask: the pool task of one batch entry. If it is destroyed without having run (the pool
// refused it, or its runtime shut down), its destructor reports that.
template <class R, class F>
struct BatchTask {
  std::shared_ptr<BatchCore<R>> core;
  std::size_t index;
  F fn;
  std::error_code refused;  // set by Batch::queue when the pool refused the task

  BatchTask(std::shared_ptr<BatchCore<R>> c, std::size_t i, F f)
      : core(std::move(c)), index(i), fn(std::move(f)) {}
  BatchTask(BatchTask&&) noexcept(std::is_nothrow_move_constructible_v<F>) = default;
  ~BatchTask() {
    if (!core) return;
    BatchResult<R> r;
    r.index = index;
    if (refused)
      r.error = std::make_exception_ptr(std::system_error(refused));
    else
      r.canceled = true;
    core->report(std::move(r));
  }

  void operator()() {
    std::shared_ptr<BatchCore<R>> c = std::move(core);
    BatchResult<R> r;
    r.index = index;
    if (c->canceled.load(std::memory_order_acquire)) {
      r.canceled = true;
    } else {
      try {
        if constexpr (std::is_void_v<R>) {
          call(*c);
          r.value.emplace();
        } else {
          r.value.emplace(call(*c));
        }
      } catch (const FiberUnwind&) {
        r.canceled = true;
        c->report(std::move(r));
        throw;
      } catch (...) {
        r.error = std::current_exception();
      }
    }
    c->report(std::move(r));
  }

 private:
  decltype(auto) call(BatchCore<R>& c) {
    if constexpr (std::is_invocable_v<F&, const Context&>)
      return fn(std::as_const(c.ctx));
    else
      return fn();
  }
};

}  // namespace detail

template <class R = void>
class Batch {
 public:
  // Batch: a batch of at most max_tasks tasks on `pool` (which must outlive it). Throws
  // std::invalid_argument if max_tasks is 0.
  Batch(Pool& pool, std::size_t max_tasks)
      : pool_(pool),
        max_(checked(max_tasks)),
        core_(std::make_shared<detail::BatchCore<R>>(max_tasks)) {}
  ~Batch() {
    queue_complete();
    try {
      core_->wg.wait();
    } catch (...) {  // NOLINT: FiberUnwind while this fiber is already being unwound
    }
  }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  // queue: submits f() (or f(context())) to the pool; it must return R. Returns the pool's
  // refusal, if any (that task's result then carries it too). Throws std::length_error beyond
  // max_tasks and std::logic_error after queue_complete().
  template <class F>
  std::error_code queue(F&& f, const SourceLocation& loc = SourceLocation::current()) {
    using T = detail::BatchTask<R, std::decay_t<F>>;
    std::size_t index;
    {
      std::lock_guard<sched::SpinLock> lk(core_->lock);
      if (core_->complete) throw std::logic_error("colony::Batch: queue() after queue_complete()");
      if (core_->queued == max_)
        throw std::length_error("colony::Batch: more tasks than the batch's max_tasks");
      index = core_->queued++;
    }
    core_->wg.add(1);
    detail::PoolTask t(T(core_, index, std::forward<F>(f)), loc);
    std::error_code ec = detail::pool_submit(pool_.core(), t, sched::kNoDeadline, nullptr);
    if (ec) t.template target<T>()->refused = ec;  // t's destructor reports the refusal
    return ec;
  }
  // queue_complete: no more tasks; results() closes once every queued task has reported.
  // Idempotent.
  void queue_complete() {
    bool close = false;
    {
      std::lock_guard<sched::SpinLock> lk(core_->lock);
      core_->complete = true;
      close = core_->reported == core_->queued && !core_->closed;
      if (close) core_->closed = true;
    }
    if (close) core_->out.close();
  }
  // results: one BatchResult per queued task, in completion order.
  const Chan<BatchResult<R>>& results() const noexcept { return core_->out; }
  // cancel: tasks that have not started report `canceled` without running; context() is
  // cancelled, for the running ones to notice. Idempotent.
  void cancel() {
    core_->canceled.store(true, std::memory_order_release);
    core_->cancel_ctx();
  }
  const Context& context() const noexcept { return core_->ctx; }
  // wait: until every task queued so far has reported.
  void wait() { core_->wg.wait(); }
  // size: tasks queued so far.
  std::size_t size() const {
    std::lock_guard<sched::SpinLock> lk(core_->lock);
    return core_->queued;
  }

 private:
  static std::size_t checked(std::size_t n) {
    if (n == 0) throw std::invalid_argument("colony::Batch: max_tasks must be > 0");
    return n;
  }
  Pool& pool_;
  const std::size_t max_;
  std::shared_ptr<detail::BatchCore<R>> core_;
};

}  // namespace colony
