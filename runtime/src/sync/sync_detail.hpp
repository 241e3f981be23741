// The waiter protocol the sync primitives share (private to colony::runtime). Its helpers are
// the scheduler's: Chain and notify_chain in colony/sched/wait.hpp, deadlines in
// colony/sched/deadline.hpp.
//
// Every primitive of colony/sync.hpp follows the Waiter protocol of colony/sched/wait.hpp: its
// own SpinLock guards its WaitList; a waiter links itself under the lock and hands the lock to
// sched::wait (park first, unlock second); a notifier unlinks a waiter under the lock, records
// the outcome in it, and notifies it after unlocking. When a notifier wakes several, it moves them
// to a local sched::Chain under the lock and calls sched::notify_chain after unlocking.
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

#include "colony/sched/deadline.hpp"
#include "colony/sched/spinlock.hpp"
#include "colony/sched/wait.hpp"
