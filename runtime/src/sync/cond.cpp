// CondVar: a condition variable for fibers and threads, with any lock (colony/sync.hpp).
//
// Two steps, so that the user's lock is never released under our lock_: enqueue() links the
// waiter (unarmed) before the caller releases its lock, so a notify from then on finds it;
// block() arms and parks it, unless a notifier already dequeued it. A notifier wakes only armed
// waiters; an unarmed one it just dequeues, and that waiter sees it in block() and returns.
//
// The waiter protocol is described in sync_detail.hpp.
#include <cstdint>
#include <mutex>

#include "colony/sync.hpp"
#include "sync/sync_detail.hpp"

namespace colony {

using sched::WaitReason;
using sched::Chain;
using sched::kNoDeadline;
using sched::notify_chain;

void CondVar::enqueue(sync_detail::CondWaiter& w) noexcept {
  std::lock_guard<sched::SpinLock> lk(lock_);
  waiters_.push_back(&w);
  w.lock = &lock_;  // lets ~Waiter dequeue it if the caller leaves before block()
}

bool CondVar::block(sync_detail::CondWaiter& w, std::int64_t deadline) {
  lock_.lock();
  if (!w.linked) {  // notified between enqueue() and now
    lock_.unlock();
    return true;
  }
  if (deadline != kNoDeadline && sched::nanotime() >= deadline) {
    waiters_.remove(&w);
    lock_.unlock();
    return false;
  }
  w.armed = true;
  try {
    return sched::wait_until(w, lock_, WaitReason::cond, deadline);
  } catch (...) {  // FiberUnwind: leave the queue before the caller re-locks (then rethrow)
    std::lock_guard<sched::SpinLock> lk(lock_);
    if (w.linked) waiters_.remove(&w);
    throw;
  }
}

void CondVar::notify_one() noexcept {
  sched::Waiter* wake = nullptr;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    auto* w = static_cast<sync_detail::CondWaiter*>(waiters_.pop_front());
    if (w && w->armed) wake = w;  // an unarmed one sees itself dequeued: it must not be touched
  }
  if (wake) sched::notify(*wake);
}

void CondVar::notify_all() noexcept {
  Chain woken;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    while (auto* w = static_cast<sync_detail::CondWaiter*>(waiters_.pop_front()))
      if (w->armed) woken.add(w);
  }
  notify_chain(woken.first);
}

}  // namespace colony
