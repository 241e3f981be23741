// Semaphore: a weighted semaphore, golang.org/x/sync/semaphore.Weighted (colony/sync.hpp).
//
// The waiter protocol is described in sync_detail.hpp.
#include <mutex>
#include <stdexcept>
#include <string>

#include "colony/context.hpp"
#include "colony/sync.hpp"
#include "context_wait.hpp"
#include "sync/sync_detail.hpp"

namespace colony {

using sched::WaitReason;
using sched::Chain;
using sched::kNoDeadline;
using sched::notify_chain;

struct Semaphore::Queued : sched::Waiter {
  long n = 0;            // units requested
  bool granted = false;  // set under lock_ by grant_locked: the units are ours
};

struct Semaphore::Abandon {
  Semaphore* s;
  Queued* w;
  bool armed = true;
  ~Abandon() {
    if (armed) s->abandon(*w);
  }
};

Semaphore::Semaphore(long size) : size_(size) {
  if (size < 0)
    throw std::invalid_argument("colony::Semaphore: size must be >= 0, got " +
                                std::to_string(size));
}

void Semaphore::check(long n) const {
  if (n < 0)
    throw std::invalid_argument("colony::Semaphore: cannot acquire a negative count (" +
                                std::to_string(n) + ")");
  if (n > size_)
    throw std::invalid_argument("colony::Semaphore: acquiring " + std::to_string(n) +
                                " units of a semaphore of size " + std::to_string(size_) +
                                " could never succeed");
}

void Semaphore::acquire(long n) {
  (void)acquire_until_ns(n, kNoDeadline);
}

bool Semaphore::try_acquire(long n) {
  check(n);
  std::lock_guard<sched::SpinLock> lk(lock_);
  if (size_ - cur_ < n || !waiters_.empty()) return false;
  cur_ += n;
  return true;
}

bool Semaphore::acquire_until_ns(long n, std::int64_t deadline) {
  check(n);
  Queued w;
  w.n = n;
  return acquire_queued(w, deadline, nullptr);
}

// acquire(ctx, n): Go's Weighted.Acquire, step by step (see sync.hpp).
std::error_code Semaphore::acquire(const Context& ctx, long n) {
  if (n < 0) check(n);                          // throws
  if (std::error_code e = ctx.err()) return e;  // done before the call: fail even if free
  if (n > size_) {                              // doomed: wait for ctx, outside the queue
    (void)ctx.done().recv();
    return ctx.err();
  }
  {
    std::lock_guard<sched::SpinLock> lk(lock_);  // the fast path registers nothing
    if (size_ - cur_ >= n && waiters_.empty()) {
      cur_ += n;
      return {};
    }
  }
  Queued w;
  w.n = n;
  detail::ContextWake wake(ctx, lock_, w);  // before lock_: it may fire at once
  if (!acquire_queued(w, kNoDeadline, &wake)) return ctx.err();
  wake.disarm();
  if (std::error_code e = ctx.err()) {  // granted as ctx ended: give the units back (as Go)
    release(n);
    return e;
  }
  return {};
}

// acquire_queued: takes n = w.n units, queuing w if they are not free; false (nothing taken,
// the queue repaired) if the deadline passes or the context (wake) ends first.
bool Semaphore::acquire_queued(Queued& w, std::int64_t deadline, detail::ContextWake* wake) {
  const long n = w.n;
  lock_.lock();
  if (wake && wake->fired()) {  // first, as Go checks ctx before the fast path
    lock_.unlock();
    return false;
  }
  if (size_ - cur_ >= n && waiters_.empty()) {
    cur_ += n;
    lock_.unlock();
    return true;
  }
  if (deadline != kNoDeadline && sched::nanotime() >= deadline) {
    lock_.unlock();
    return false;
  }
  waiters_.push_back(&w);
  Abandon guard{this, &w};
  // Not granted: timed out, or the context ended (timed_out too): the guard repairs.
  if (!sched::wait_until(w, lock_, WaitReason::semaphore, deadline) || w.timed_out) return false;
  guard.armed = false;  // granted: grant_locked counted our units
  return true;
}

void Semaphore::release(long n) {
  if (n < 0)
    throw std::invalid_argument("colony::Semaphore: cannot release a negative count (" +
                                std::to_string(n) + ")");
  sched::Waiter* granted;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    if (n > cur_)
      throw std::logic_error("colony::Semaphore: released more than held (" + std::to_string(n) +
                             " > " + std::to_string(cur_) + ")");
    cur_ -= n;
    granted = grant_locked();
  }
  notify_chain(granted);
}

// grant_locked: serve waiters from the head while they fit; the first that does not fit blocks
// the rest (FIFO, as x/sync: no starvation of large requests).
sched::Waiter* Semaphore::grant_locked() noexcept {
  Chain granted;
  while (auto* w = static_cast<Queued*>(waiters_.head)) {
    if (size_ - cur_ < w->n) break;
    cur_ += w->n;
    waiters_.pop_front();
    w->granted = true;
    granted.add(w);
  }
  return granted.first;
}

// abandon: a waiter gives up (timeout or FiberUnwind). Dequeued or not, it may have been the
// head that blocked smaller requests, so serve again; units granted to it go back first.
void Semaphore::abandon(Queued& w) noexcept {
  sched::Waiter* granted;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    if (w.linked)
      waiters_.remove(&w);
    else if (w.granted)
      cur_ -= w.n;
    granted = grant_locked();
  }
  notify_chain(granted);
}

}  // namespace colony
