// colony::MultiPool and colony::MultiPoolWithFunc<Arg>: several pools behind one submit, to
// spread the lock contention of one busy pool (ants' MultiPool / MultiPoolWithFunc). Each
// submit picks a pool by the load-balancing strategy:
//   round_robin   the pools in turn; if the chosen one is overloaded, retry once on the pool
//                 with the fewest tasks (as ants does)
//   least_tasks   the pool with the fewest unfinished tasks (ants counts running workers, which
//                 include idle ones; colony counts pending tasks, which is what the name says)
//
//   colony::MultiPool mp(4, 2500, colony::LoadBalancing::round_robin, {.nonblocking = true});
//   std::error_code ec = mp.submit([] { ... });
//   auto [n, ec2] = mp.running_by_index(2);   // ec2 == pool_errc::invalid_pool_index if out of
//   range
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "colony/pool/pool.hpp"

namespace colony {

namespace detail {

template <class P>
class BasicMultiPool {
 public:
  BasicMultiPool(const BasicMultiPool&) = delete;
  BasicMultiPool& operator=(const BasicMultiPool&) = delete;

  // size: the number of pools.
  std::size_t size() const noexcept { return pools_.size(); }
  // running / free / waiting / cap: sums over the pools (free is -1 if any pool is unbounded).
  int running() const noexcept {
    return sum([](const Pool& p) { return p.running(); });
  }
  int free() const noexcept {
    int n = 0;
    for (std::size_t i = 0; i < pools_.size(); ++i) {
      const int f = base(i).free();
      if (f < 0) return -1;
      n += f;
    }
    return n;
  }
  int waiting() const noexcept {
    return sum([](const Pool& p) { return p.waiting(); });
  }
  int cap() const noexcept {
    int n = 0;
    for (std::size_t i = 0; i < pools_.size(); ++i) {
      const int c = base(i).cap();
      if (c < 0) return -1;
      n += c;
    }
    return n;
  }
  // ..._by_index: one pool's figure, or {-1, pool_errc::invalid_pool_index}.
  std::pair<int, std::error_code> running_by_index(int i) const noexcept {
    return by_index(i, [](const Pool& p) { return p.running(); });
  }
  std::pair<int, std::error_code> free_by_index(int i) const noexcept {
    return by_index(i, [](const Pool& p) { return p.free(); });
  }
  std::pair<int, std::error_code> waiting_by_index(int i) const noexcept {
    return by_index(i, [](const Pool& p) { return p.waiting(); });
  }
  // tune: tunes every pool to `size` (per pool).
  void tune(int size) {
    for (std::size_t i = 0; i < pools_.size(); ++i) base(i).tune(size);
  }
  bool is_closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  // release_timeout: releases every pool, then waits (for all of them together at most d) until
  // their workers have exited. pool_closed if already released, timeout if some pool was not
  // done in time.
  template <class Rep, class Period>  // any duration, saturating (beyond ~292 years: no limit)
  std::error_code release_timeout(std::chrono::duration<Rep, Period> d) {
    return release_timeout(sched::saturate(d));
  }
  std::error_code release_timeout(std::chrono::nanoseconds d) { return release_impl(d, nullptr); }
  // release_timeout(d, timed_out): the same, and timed_out receives the indices of the pools
  // that were not done in time, in order (ants joins one "pool index i" error per such pool).
  template <class Rep, class Period>
  std::error_code release_timeout(std::chrono::duration<Rep, Period> d,
                                  std::vector<std::size_t>& timed_out) {
    timed_out.clear();
    return release_impl(sched::saturate(d), &timed_out);
  }
  // reboot: reopens a released multi-pool and all its pools.
  void reboot() {
    bool closed = true;
    if (!closed_.compare_exchange_strong(closed, false, std::memory_order_acq_rel)) return;
    index_.store(UINT32_MAX, std::memory_order_relaxed);
    for (std::size_t i = 0; i < pools_.size(); ++i) base(i).reboot();
  }
  // wait: until every task submitted to any of the pools so far has finished.
  void wait() {
    for (std::size_t i = 0; i < pools_.size(); ++i) base(i).wait();
  }

 protected:
  std::error_code release_impl(std::chrono::nanoseconds d, std::vector<std::size_t>* timed_out) {
    bool open = false;
    if (!closed_.compare_exchange_strong(open, true, std::memory_order_acq_rel))
      return pool_errc::pool_closed;
    const std::int64_t deadline = sched::deadline_after(d);
    for (std::size_t i = 0; i < pools_.size(); ++i) base(i).release();
    std::error_code result;
    for (std::size_t i = 0; i < pools_.size(); ++i) {
      if (std::error_code ec = pool_await_exit(base(i).core(), deadline)) {
        result = ec;
        if (timed_out) timed_out->push_back(i);
      }
    }
    return result;
  }

  template <class Make>
  BasicMultiPool(int size, LoadBalancing lbs, Make make) : lbs_(lbs) {
    if (size <= 0)
      detail::throw_pool_error(pool_errc::invalid_multi_pool_size,
                               "colony::MultiPool: the number of pools must be > 0");
    if (lbs != LoadBalancing::round_robin && lbs != LoadBalancing::least_tasks)
      detail::throw_pool_error(pool_errc::invalid_load_balancing_strategy,
                               "colony::MultiPool: round_robin or least_tasks");
    pools_.reserve(static_cast<std::size_t>(size));
    for (int i = 0; i < size; ++i) pools_.push_back(make());
  }
  ~BasicMultiPool() = default;

  Pool& base(std::size_t i) const noexcept { return static_cast<Pool&>(*pools_[i]); }
  P& pool(std::size_t i) const noexcept { return *pools_[i]; }

  // next: the index of the pool a task should go to.
  std::size_t next(LoadBalancing lbs) noexcept {
    if (lbs == LoadBalancing::round_robin)
      return (index_.fetch_add(1, std::memory_order_relaxed) + 1) % pools_.size();
    std::size_t best = 0;
    std::int64_t least = INT64_MAX;
    for (std::size_t i = 0; i < pools_.size(); ++i) {
      const std::int64_t n = base(i).pending();
      if (n < least) {
        least = n;
        best = i;
      }
    }
    return best;
  }

  // submit_task: `make(i)` builds the PoolTask for pool i.
  template <class Make>
  std::error_code submit_task(Make make, std::int64_t deadline_ns, const Context* ctx) {
    if (is_closed()) return pool_errc::pool_closed;
    const std::size_t i = next(lbs_);
    PoolTask t = make(i);
    std::error_code ec = pool_submit(base(i).core(), t, deadline_ns, ctx);
    if (ec == pool_errc::pool_overload && lbs_ == LoadBalancing::round_robin)
      ec = pool_submit(base(next(LoadBalancing::least_tasks)).core(), t, deadline_ns, ctx);
    return ec;
  }

 private:
  template <class F>
  int sum(F f) const noexcept {
    int n = 0;
    for (std::size_t i = 0; i < pools_.size(); ++i) n += f(base(i));
    return n;
  }
  template <class F>
  std::pair<int, std::error_code> by_index(int i, F f) const noexcept {
    if (i < 0 || static_cast<std::size_t>(i) >= pools_.size())
      return {-1, make_error_code(pool_errc::invalid_pool_index)};
    return {f(base(static_cast<std::size_t>(i))), {}};
  }

  std::vector<std::unique_ptr<P>> pools_;
  std::atomic<std::uint32_t> index_{UINT32_MAX};  // round robin: the first pick is pool 0
  std::atomic<bool> closed_{false};
  const LoadBalancing lbs_;
};

}  // namespace detail

class MultiPool : public detail::BasicMultiPool<Pool> {
 public:
  // MultiPool: `size` pools of `size_per_pool` workers each (<= 0: unbounded), all with `opts`.
  // Throws std::invalid_argument for size <= 0, an unknown strategy, or bad options.
  MultiPool(int size, int size_per_pool, LoadBalancing lbs, PoolOptions opts = {},
            const SourceLocation& loc = SourceLocation::current())
      : BasicMultiPool(size, lbs,
                       [&] { return std::make_unique<Pool>(size_per_pool, opts, loc); }) {}

  // submit: as Pool::submit, on the pool the strategy picks.
  template <class F>
  requires detail::NotContext<F> std::error_code submit(
      F&& task, const SourceLocation& loc = SourceLocation::current()) {
    detail::PoolTask t(std::forward<F>(task), loc);
    return submit_task([&](std::size_t) { return std::move(t); }, sched::kNoDeadline,
                       nullptr);
  }
  template <class F, class Rep, class Period>
  std::error_code submit_for(F&& task, std::chrono::duration<Rep, Period> d,
                             const SourceLocation& loc = SourceLocation::current()) {
    detail::PoolTask t(std::forward<F>(task), loc);
    return submit_task([&](std::size_t) { return std::move(t); }, sched::deadline_after(d),
                       nullptr);
  }
  template <class F>
  std::error_code submit(const Context& ctx, F&& task,
                         const SourceLocation& loc = SourceLocation::current()) {
    detail::PoolTask t(std::forward<F>(task), loc);
    return submit_task([&](std::size_t) { return std::move(t); }, sched::kNoDeadline, &ctx);
  }
};

template <class Arg>
class MultiPoolWithFunc : public detail::BasicMultiPool<PoolWithFunc<Arg>> {
  using Base = detail::BasicMultiPool<PoolWithFunc<Arg>>;

 public:
  using Fn = typename PoolWithFunc<Arg>::Fn;
  // MultiPoolWithFunc: `size` pools of `size_per_pool` workers, all running fn (one shared
  // copy). Throws std::invalid_argument as MultiPool, and for an empty fn. In ants' order: the
  // size, then the strategy, then fn (when the first pool is made), then the options.
  MultiPoolWithFunc(int size, int size_per_pool, Fn fn, LoadBalancing lbs, PoolOptions opts = {},
                    const SourceLocation& loc = SourceLocation::current())
      : Base(size, lbs, [&, f = std::move(fn), shared = std::shared_ptr<const Fn>()]() mutable {
          if (!shared) shared = PoolWithFunc<Arg>::checked(std::move(f));
          return std::unique_ptr<PoolWithFunc<Arg>>(new PoolWithFunc<Arg>(
              typename PoolWithFunc<Arg>::SharedFn{}, size_per_pool, shared, opts, loc));
        }) {}

  // invoke: as PoolWithFunc::invoke, on the pool the strategy picks.
  std::error_code invoke(Arg arg, const SourceLocation& loc = SourceLocation::current()) {
    return this->submit_task(
        [&](std::size_t i) { return detail::PoolTask(this->pool(i).bind(std::move(arg)), loc); },
        sched::kNoDeadline, nullptr);
  }
  template <class Rep, class Period>
  std::error_code invoke_for(Arg arg, std::chrono::duration<Rep, Period> d,
                             const SourceLocation& loc = SourceLocation::current()) {
    return this->submit_task(
        [&](std::size_t i) { return detail::PoolTask(this->pool(i).bind(std::move(arg)), loc); },
        sched::deadline_after(d), nullptr);
  }
};

}  // namespace colony
