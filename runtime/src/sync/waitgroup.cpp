// WaitGroup: Go's sync.WaitGroup for fibers and threads (colony/sync.hpp).
//
// The waiter protocol is described in sync_detail.hpp.
#include <cstdint>
#include <stdexcept>

#include "colony/context.hpp"
#include "colony/sync.hpp"
#include "context_wait.hpp"
#include "sync/sync_detail.hpp"

namespace colony {

using sched::WaitReason;
using sched::Chain;
using sched::kNoDeadline;
using sched::notify_chain;

namespace {
std::uint64_t wg_pack(long counter, std::uint32_t nwaiters) noexcept {
  return (std::uint64_t{static_cast<std::uint32_t>(static_cast<std::int32_t>(counter))} << 32) |
         nwaiters;
}
long wg_next(long counter, long delta) {
  if (delta < 0 ? delta < -counter : delta > INT32_MAX - counter) {
    if (delta < 0) throw std::logic_error("colony::WaitGroup: negative counter");
    throw std::overflow_error("colony::WaitGroup: counter above 2^31 - 1");
  }
  return counter + delta;
}
}  // namespace

void WaitGroup::add(long delta) {
  std::uint64_t old = state_.load(std::memory_order_relaxed);
  for (;;) {
    const long next = wg_next(counter(old), delta);
    if (next == 0 && nwaiters(old) != 0) {
      release_waiters(delta);
      return;
    }
    // With nobody waiting this CAS is the last touch: a waiter that sees zero may destroy us.
    if (state_.compare_exchange_weak(old, wg_pack(next, nwaiters(old)), std::memory_order_acq_rel,
                                     std::memory_order_relaxed))
      return;
  }
}

// release_waiters: add(delta) that takes the counter to zero while waiters are queued: under
// lock_, so that the CAS and the dequeuing of exactly the waiters it releases are one step
// (a waiter queues under lock_ too). Touching the WaitGroup after the CAS is safe: the waiters
// it dequeues are still inside wait().
void WaitGroup::release_waiters(long delta) {
  Chain woken;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    std::uint64_t old = state_.load(std::memory_order_relaxed);
    for (;;) {
      const long next = wg_next(counter(old), delta);
      const auto popped = static_cast<std::uint32_t>(next == 0 ? waiters_.size : 0);
      if (state_.compare_exchange_weak(old, wg_pack(next, nwaiters(old) - popped),
                                       std::memory_order_acq_rel, std::memory_order_relaxed)) {
        if (popped == 0) return;  // the counter moved meanwhile, or only leaving waiters count
        break;
      }
    }
    woken.take_all(waiters_);
  }
  notify_chain(woken.first);
}

void WaitGroup::wait() {
  (void)wait_until_ns(kNoDeadline);
}

bool WaitGroup::wait_until_ns(std::int64_t deadline) {
  if (counter(state_.load(std::memory_order_acquire)) == 0) return true;
  sched::Waiter w;
  return queue_and_wait(w, deadline, nullptr);
}

std::error_code WaitGroup::wait(const Context& ctx) {
  if (counter(state_.load(std::memory_order_acquire)) == 0) return {};
  if (std::error_code e = ctx.err()) return e;
  sched::Waiter w;
  detail::ContextWake wake(ctx, lock_, w);  // before lock_: it may fire at once
  if (queue_and_wait(w, kNoDeadline, &wake)) return {};
  return ctx.err();
}

// queue_and_wait: true if the counter reached zero; false if the deadline passed or the
// context (wake) ended first.
bool WaitGroup::queue_and_wait(sched::Waiter& w, std::int64_t deadline, detail::ContextWake* wake) {
  lock_.lock();
  std::uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (counter(s) == 0) {
      lock_.unlock();
      return true;
    }
    if ((deadline != kNoDeadline && sched::nanotime() >= deadline) || (wake && wake->fired())) {
      lock_.unlock();
      return false;
    }
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                     std::memory_order_acquire))  // count ourselves as waiting
      break;
  }
  waiters_.push_back(&w);
  // Leaving without being released (timeout, context, FiberUnwind): still counted, so uncount.
  // The timer (or the ContextWake) unlinks such a waiter but leaves the count to it.
  struct Uncount {
    WaitGroup* wg;
    sched::Waiter* w;
    bool armed = true;
    ~Uncount() {
      if (!armed) return;
      std::lock_guard<sched::SpinLock> lk(wg->lock_);
      if (w->linked)
        wg->waiters_.remove(w);
      else if (!w->timed_out)
        return;  // released by release_waiters, which uncounted it
      wg->state_.fetch_sub(1, std::memory_order_relaxed);
    }
  } guard{this, &w};
  if (sched::wait_until(w, lock_, WaitReason::waitgroup, deadline) && !w.timed_out) {
    guard.armed = false;
    return true;
  }
  return false;  // (the counter may reach zero right now: a later wait() sees it)
}

}  // namespace colony
