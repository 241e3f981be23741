// The waiter protocol the sync primitives share, and its helpers (private to colony::runtime).
//
// Every primitive of colony/sync.hpp follows the Waiter protocol of colony/sched/wait.hpp: its
// own SpinLock guards its WaitList; a waiter links itself under the lock and hands the lock to
// sched::wait (park first, unlock second); a notifier unlinks a waiter under the lock, records
// the outcome in it, and notifies it after unlocking. When a notifier wakes several, it first
// moves them to a local Chain (through `next`) and reads `next` before each notify, because a
// woken waiter may return and destroy its Waiter at once.
//
// Leaving a wait early (a timeout, or FiberUnwind at shutdown) is handled by an RAII guard that
// runs before ~Waiter: still queued -> dequeue it and repair the primitive's summary state; already
// dequeued by a notifier -> give back whatever the notifier granted (a handed-over lock,
// semaphore units, a read lock, the Mutex's "woken" token).
//
// Context-aware waits (WaitGroup::wait(ctx), Semaphore::acquire(ctx, n)) register a
// ContextWake (context_wait.hpp) before queuing: when the context ends it unlinks the waiter
// and marks it timed out, so the same guards repair the primitive.
//
// Lock order: a primitive's SpinLock is taken before any scheduler lock (sched::notify readies
// a fiber, which may take Scheduler::lock_), and no SpinLock here is held across a switch.
// Only CondVar nests: it releases the user's lock (e.g. a Mutex, which takes its own SpinLock)
// with its own lock NOT held.
#pragma once

#include <cstdint>

#include "colony/sched/deadline.hpp"
#include "colony/sched/spinlock.hpp"
#include "colony/sched/wait.hpp"

namespace colony::sync_detail {

// Chain: a singly linked list of Waiters already unlinked from their WaitList, to be notified
// after the primitive's lock is released (FutureCore::complete uses it too). Not a local
// WaitList: a waiter marked linked in a local list could be "removed" from it, under the
// primitive's lock, by its own timeout, a ContextWake or an unwinding ~Waiter.
struct Chain {
  sched::Waiter* first = nullptr;
  sched::Waiter** tail = &first;
  void add(sched::Waiter* w) noexcept {
    w->next = nullptr;
    *tail = w;
    tail = &w->next;
  }
};

// notify_chain: wakes every waiter of a chain. Reads `next` before each notify: the woken waiter
// may destroy its Waiter at once.
inline void notify_chain(sched::Waiter* w) noexcept {
  while (w) {
    sched::Waiter* next = w->next;
    sched::notify(*w);
    w = next;
  }
}

// wait_deadline: sched::wait or sched::wait_until; true if notified, false on timeout.
inline bool wait_deadline(sched::Waiter& w, sched::SpinLock& lock, sched::WaitReason reason,
                          std::int64_t deadline) {
  if (deadline == sched::kNoDeadline) {
    sched::wait(w, lock, reason);
    return true;
  }
  return sched::wait_until(w, lock, reason, deadline);
}

}  // namespace colony::sync_detail
