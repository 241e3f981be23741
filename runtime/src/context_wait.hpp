// ContextWake: how a blocking primitive's wait also ends when a Context is done (the
// context-aware waits: Semaphore::acquire(ctx, n), WaitGroup::wait(ctx), Future::wait(ctx)).
// Private to colony::runtime; implemented in context.cpp.
//
// It is an after_func registration that acts on the waiter as a deadline does: under the
// primitive's lock, fire() unlinks the Waiter if it is still queued, sets w.timed_out and then
// notifies it, so the primitive's existing timeout repair (give back what was granted, serve the
// waiters behind) covers cancellation too. It wakes only through the wait list: no polling, no
// extra fiber or timer (a context with a deadline has its own timer already).
//
//   Waiter w;                             // first: it must outlive the registration
//   ContextWake wake(ctx, lock_, w);      // NOT holding lock_: fire() takes it, and after_func
//                                         // runs it at once if ctx is done already
//   lock_.lock();
//   if (wake.fired()) { lock_.unlock(); return ctx.err(); }   // ctx ended before we queued
//   list.push_back(&w);
//   sched::wait(w, lock_, reason);
//   if (w.timed_out) -> ctx ended: repair as after a time-out, return ctx.err()
//
// Lock order: fire() runs on the cancelling thread with no context lock held (a timer callback
// for a deadline, holding no scheduler lock) and takes only the primitive's lock, so no order
// between a ContextState's lock and a primitive's lock is created. disarm() (also run by the
// destructor) unregisters and, if fire() is running, waits for it to return: after it, fire()
// never touches the Waiter again. Never call it holding the primitive's lock.
#pragma once

#include <functional>

#include "colony/context.hpp"
#include "colony/sched/spinlock.hpp"
#include "colony/sched/wait.hpp"

namespace colony::detail {

class ContextWake {
 public:
  ContextWake(const Context& ctx, sched::SpinLock& lock, sched::Waiter& w);
  ~ContextWake() { disarm(); }
  ContextWake(const ContextWake&) = delete;
  ContextWake& operator=(const ContextWake&) = delete;

  // fired: ctx has ended and fire() has run or is running (read it under the lock).
  bool fired() const noexcept { return fired_; }
  // disarm: see the top of the file. Idempotent.
  void disarm() noexcept;

 private:
  void fire() noexcept;

  sched::SpinLock& lock_;
  sched::Waiter& w_;
  bool fired_ = false;  // (lock_)
  std::function<bool()> stop_;
};

}  // namespace colony::detail
