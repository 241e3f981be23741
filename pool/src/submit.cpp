// PoolCore::submit: how a task finds a worker (an idle one, a new one, the queue, or a wait),
// and CtxWatch, which ends a submit(ctx, ...)'s wait when its context ends. The lock and the
// invariants are at the top of pool_core.hpp; the design is in docs/pool.md.
#include <optional>
#include <variant>

#include "colony/chan.hpp"
#include "colony/select.hpp"
#include "pool_core.hpp"

namespace colony::detail {

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

namespace {

constexpr std::uint32_t kYieldBacklog = 16;
constexpr std::uint32_t kYieldBacklogCold = 64;
constexpr std::size_t kColdIdle = 1024;

// yield_to_worker: lets queued workers run first (docs/pool.md, "When a submit yields").
void yield_to_worker(std::size_t idle_left) {
  if (!sched::current_g()) return;
  const std::uint32_t backlog = sched::local_backlog();
  const std::uint32_t limit = idle_left >= kColdIdle ? kYieldBacklogCold : kYieldBacklog;
  if (backlog >= limit || (backlog > 0 && sched::current_nprocs() == 1)) sched::yield();
}

}  // namespace

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
    // No clock read without a deadline.
    if (deadline_ns != sched::kNoDeadline && deadline_ns <= sched::nanotime()) {
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

}  // namespace colony::detail
