// Once: Go's sync.Once for fibers and threads, retried if the function throws (colony/sync.hpp).
//
// The waiter protocol is described in sync_detail.hpp.
#include <cstdint>
#include <mutex>

#include "colony/sync.hpp"
#include "sync/sync_detail.hpp"

namespace colony {

using sched::WaitReason;
using sched::Chain;
using sched::notify_chain;

bool Once::begin() {
  std::uint32_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (s & kDone) return false;
    if (!(s & kRunning)) {
      if (state_.compare_exchange_weak(s, s | kRunning, std::memory_order_acquire,
                                       std::memory_order_acquire))
        return true;  // the caller runs f
      continue;
    }
    // Someone runs f: queue (kWaiters set under lock_, so finish() finds us in waiters_).
    lock_.lock();
    s = state_.load(std::memory_order_acquire);
    bool queue = false;
    while (!(s & kDone) && (s & kRunning)) {
      if ((s & kWaiters) || state_.compare_exchange_weak(s, s | kWaiters, std::memory_order_acquire,
                                                         std::memory_order_acquire)) {
        queue = true;
        break;
      }
    }
    if (!queue) {
      lock_.unlock();
      continue;
    }
    sched::Waiter w;
    waiters_.push_back(&w);
    sched::wait(w, lock_, WaitReason::once);
    // Woken by finish(): done, or the runner failed and one of us runs f next.
    s = state_.load(std::memory_order_acquire);
  }
}

void Once::finish(bool ok) noexcept {
  // One exchange publishes the outcome; without queued callers it is the last touch.
  const std::uint32_t old = state_.exchange(ok ? kDone : 0, std::memory_order_acq_rel);
  if (!(old & kWaiters)) return;
  Chain woken;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    woken.take_all(waiters_);
  }
  notify_chain(woken.first);
}

}  // namespace colony
