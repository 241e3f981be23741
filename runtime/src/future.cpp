// FutureCore: the type-independent half of Future and spawn's shared state (colony/future.hpp).
#include "colony/future.hpp"

#include <exception>
#include <mutex>
#include <stdexcept>

#include "colony/context.hpp"
#include "colony/go.hpp"
#include "colony/sched/wait.hpp"
#include "context_wait.hpp"

namespace colony::detail {

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
  sched::Chain woken;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    done_ = true;
    woken.take_all(waiters_);
  }
  // ready_ is published after lock_ is released, as the last access to *this: a waiter that
  // sees it (without the lock, in is_ready()) may destroy the state at once (a Latch on its
  // stack, say), and must not race with this thread still releasing the lock. A waiter that
  // saw done_ under the lock first waits for this store (await_ready).
  ready_.store(true, std::memory_order_release);
  sched::notify_chain(woken.first);
}

std::exception_ptr unwound_error() {
  return std::make_exception_ptr(
      std::runtime_error("colony: the runtime shut down before the fiber finished"));
}

}  // namespace colony::detail
