// colony sync: Go's `sync` package for fibers (and golang.org/x/sync/semaphore): WaitGroup,
// Mutex, RWMutex, CondVar, Once and a weighted Semaphore.
//
// What blocks what: every blocking call here parks the calling fiber (its thread runs other
// fibers) and blocks the calling thread when called from a plain OS thread. Fibers of any
// runtime and plain threads may be mixed on one object. None of them ever blocks a thread that
// runs fibers. The locks are BasicLockable / Lockable / TimedLockable, so std::lock_guard,
// std::unique_lock, std::scoped_lock and std::shared_lock work with them.
//
// Memory ordering: each primitive orders like its std:: counterpart. Everything a party did
// before it released (unlock, done, release, notify, the end of Once's function) is visible to
// the party that acquires after it (the next owner, the woken waiter, every Once caller).
//
// Shutdown: when the runtime shuts down while a fiber is parked in one of these calls, the call
// throws colony::FiberUnwind (do not catch it) and leaves the primitive as if the fiber had never
// waited: it is dequeued, and anything already granted to it (a lock handed over, semaphore
// units, a read lock) is given back.
//
// Lifetime: as with std::mutex, an object may be destroyed as soon as no call on it is in
// progress and none will start, even while the call that released it last (an unlock(), done(),
// the end of Once's function) has not returned yet: a releasing call touches the object after
// its release only when it has seen, in the same atomic step, that some party is still inside
// a call (a waiter to wake), e.g. `WaitGroup wg; ...; wg.wait(); }` is safe.
//
// Contexts: Semaphore::acquire(ctx, n) and WaitGroup::wait(ctx) also end when a colony::Context
// is done (cancelled or past its deadline) and then return ctx.err(), as Go's x/sync semaphore
// does. This header only declares Context (colony/context.hpp includes channels and go.hpp):
// include colony/context.hpp to make one. Mutex and RWMutex take no context, as in Go.
//
// Misuse is an exception, as Go's panics and fatal errors are: std::logic_error for unlocking
// what is not locked, a negative WaitGroup counter or releasing unheld semaphore units;
// std::invalid_argument for impossible requests. Objects are neither copyable nor movable, and
// must outlive every call on them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>  // std::cv_status
#include <cstdint>
#include <functional>
#include <mutex>
#include <system_error>
#include <type_traits>
#include <utility>

#include "colony/sched/deadline.hpp"
#include "colony/sched/fiber.hpp"
#include "colony/sched/spinlock.hpp"
#include "colony/sched/wait.hpp"

namespace colony {

class Context;  // colony/context.hpp
namespace detail {
class ContextWake;
}

namespace sync_detail {

// CondWaiter: a CondVar's queue entry. `armed` (guarded by the CondVar's lock) says the waiter
// has parked or is about to: only then does the notifier wake it; a waiter dequeued before it
// armed sees itself unlinked and returns without parking.
struct CondWaiter : sched::Waiter {
  bool armed = false;
};

// IsUniqueLock: whether T is a std::unique_lock (CondVar re-locks those without blocking when
// a waiter is unwound at shutdown).
template <class T>
struct IsUniqueLock : std::false_type {};
template <class M>
struct IsUniqueLock<std::unique_lock<M>> : std::true_type {};

}  // namespace sync_detail

// WaitGroup: waits for a collection of fibers (or threads) to finish, as Go's sync.WaitGroup.
// The counter starts at zero. add(n) before starting each piece of work, done() when it ends,
// wait() until the counter is zero. Everything done before a done() is visible after the wait()
// that it releases. A WaitGroup may be reused once its waiters have returned.
class WaitGroup {
 public:
  WaitGroup() = default;
  WaitGroup(const WaitGroup&) = delete;
  WaitGroup& operator=(const WaitGroup&) = delete;

  // add: adds delta (may be negative) to the counter; never blocks. When the counter reaches
  // zero every waiter wakes. A counter that would go negative is left unchanged and
  // std::logic_error("colony::WaitGroup: negative counter") is thrown; one that would exceed
  // 2^31 - 1, std::overflow_error.
  void add(long delta = 1);
  // done: add(-1).
  void done() { add(-1); }
  // wait: blocks (parks a fiber) until the counter is zero; returns at once if it is.
  void wait();
  // wait(ctx): wait() that gives up when ctx is done: an empty error_code if the counter reached
  // zero (at once if it is zero, even with ctx done), else ctx.err() (context_errc::canceled or
  // ::deadline_exceeded). Go has no such method; it is the usual
  //   go func() { wg.Wait(); close(ch) }(); select { case <-ch: case <-ctx.Done(): }
  // without the extra goroutine (which would leak while the counter stays above zero).
  [[nodiscard]] std::error_code wait(const Context& ctx);
  // wait_for / wait_until: wait() with a timeout; true if the counter reached zero, false if the
  // time ran out first.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    return wait_until_ns(sched::deadline_after(d));
  }
  template <class Clock, class Dur>
  bool wait_until(std::chrono::time_point<Clock, Dur> t) {
    return wait_until_ns(sched::deadline_at(t));
  }
  // count: the counter now (for diagnostics; it may change at once).
  long count() const noexcept { return counter(state_.load(std::memory_order_relaxed)); }

 private:
  // state_: the counter (signed, high 32 bits) and the number of queued waiters (low 32 bits),
  // as Go's WaitGroup. The waiter count changes only under lock_, so an add() that takes the
  // counter to zero sees in the same CAS whether anyone waits: if nobody does, that CAS is its
  // last touch of the WaitGroup; if someone does, it takes the counter to zero under lock_.
  static long counter(std::uint64_t s) noexcept {
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(s >> 32));
  }
  static std::uint32_t nwaiters(std::uint64_t s) noexcept { return static_cast<std::uint32_t>(s); }
  bool wait_until_ns(std::int64_t deadline);
  bool queue_and_wait(sched::Waiter& w, std::int64_t deadline, detail::ContextWake* wake);
  void release_waiters(long delta);

  std::atomic<std::uint64_t> state_{0};
  sched::SpinLock lock_;     // guards waiters_ and the waiter count in state_
  sched::WaitList waiters_;  // woken when the counter reaches zero
};

// Mutex: a mutual exclusion lock for fibers and threads, as Go's sync.Mutex. Lockable and
// TimedLockable. At most one party holds it; lock() blocks (parks a fiber) while another holds
// it. Everything the unlocking party did before unlock() is visible to the next owner.
//
// Acquisition: one CAS when free; otherwise a short spin (only with more than one processor and
// CPU), then a FIFO wait queue. Normal mode: unlock() wakes the first waiter, which competes with
// arriving callers (who may barge in, which is what makes the lock fast); a woken waiter that
// loses re-queues at the front. Starvation mode: a waiter that has waited more than 1 ms switches
// the mutex to it; unlock() then hands the lock directly to the first waiter and newcomers queue
// at the back. The mode ends when the last waiter is served, or when the one served had waited
// less than 1 ms. Not recursive: locking it twice from one fiber deadlocks that fiber.
class Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  // lock: blocks (parks a fiber) until the caller holds the mutex.
  void lock() {
    std::uint32_t expected = 0;
    if (state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                       std::memory_order_relaxed))
      return;
    lock_slow(sched::kNoDeadline);
  }
  // try_lock: takes the mutex if that needs no waiting; never blocks. False if it is held, or
  // in starvation mode (it then belongs to the waiters).
  bool try_lock() noexcept;
  // try_lock_for / try_lock_until: lock() giving up at the timeout; true if the caller now holds
  // the mutex.
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> d) {
    return try_lock_until_ns(sched::deadline_after(d));
  }
  template <class Clock, class Dur>
  bool try_lock_until(std::chrono::time_point<Clock, Dur> t) {
    return try_lock_until_ns(sched::deadline_at(t));
  }
  // unlock: releases the mutex (any party may unlock it, as in Go; normally its owner). Never
  // blocks. Throws std::logic_error if the mutex is not locked.
  void unlock() {
    std::uint32_t expected = kLocked;
    if (state_.compare_exchange_strong(expected, 0, std::memory_order_release,
                                       std::memory_order_relaxed))
      return;
    unlock_slow(expected);
  }

 private:
  struct Queued;
  struct Abandon;
  // state_ bits. kWaiters and kStarving change only under lock_; kStarving implies kLocked and
  // kWaiters. kWoken: a woken (or spinning) acquirer is on its way, so unlock need not wake
  // another; at most one party owns it.
  static constexpr std::uint32_t kLocked = 1, kWoken = 2, kStarving = 4, kWaiters = 8;

  bool try_lock_until_ns(std::int64_t deadline);
  bool lock_slow(std::int64_t deadline);  // false: the deadline passed
  void unlock_slow(std::uint32_t old);
  bool hand_off() noexcept;              // starvation mode: pass the lock to the first waiter
  bool wake_one_and_release() noexcept;  // normal mode: wake the first waiter, then unlock
  void wake_one() noexcept;              // wake the first waiter if the lock is free
  void drop_woken() noexcept;            // an acquirer gives up kWoken
  void abandon(Queued& w) noexcept;      // a queued acquirer leaves (timeout, unwinding)
  void clear_bits_locked(std::uint32_t bits) noexcept;

  std::atomic<std::uint32_t> state_{0};
  sched::SpinLock lock_;     // guards waiters_
  sched::WaitList waiters_;  // FIFO of blocked acquirers (woken ones re-queue at the front)
};

// RWMutex: a reader/writer lock, as Go's sync.RWMutex. Any number of readers, or one writer.
// Lockable for writers (lock/try_lock/unlock) and SharedLockable for readers
// (lock_shared/try_lock_shared/unlock_shared), so std::unique_lock and std::shared_lock work.
// Writer preference: once a writer waits, new readers block until it has had its turn, so
// readers cannot starve writers; when a writer unlocks, the readers that queued behind it get
// in before the next writer, so writers cannot starve readers either. Writers are served in
// FIFO order. Everything a writer did before unlock() is visible to the next readers and
// writer; everything readers did before unlock_shared() is visible to the next writer. Not
// recursive for readers either: a reader that read-locks again while a writer waits deadlocks
// (as in Go).
class RWMutex {
 public:
  RWMutex() = default;
  RWMutex(const RWMutex&) = delete;
  RWMutex& operator=(const RWMutex&) = delete;

  // lock: blocks (parks a fiber) until the caller holds the lock exclusively: behind earlier
  // writers, then until the readers inside have left. New readers block from the moment it
  // waits for them.
  void lock();
  // try_lock: takes the write lock if nobody holds the lock or waits for it; never blocks.
  bool try_lock() noexcept;
  // unlock: releases the write lock: the readers that queued behind it get in, then the next
  // writer. Throws std::logic_error if it is not write-locked.
  void unlock();
  // lock_shared: blocks (parks a fiber) while a writer holds the lock or waits for it.
  void lock_shared();
  // try_lock_shared: takes a read lock if no writer holds or waits; never blocks.
  bool try_lock_shared() noexcept;
  // unlock_shared: releases one read lock; the last reader out admits a waiting writer. Throws
  // std::logic_error if no read lock is held.
  void unlock_shared();

 private:
  struct Abandon;
  // state_: kWriter (a writer holds the lock, or has claimed it and waits in drain_ for the
  // readers inside to leave), kWaiters (readers_, writers_ or drain_ is not empty; changes only
  // under lock_) and the number of readers inside, which includes readers admitted by a
  // writer's unlock before they run. kWriter is set by a CAS that sees no kWriter (the fast path
  // only from 0) and cleared only by its owner.
  static constexpr std::uint32_t kWriter = 1u << 31, kWaiters = 1u << 30, kReaders = kWaiters - 1;

  void release_writer() noexcept;            // the owner of kWriter hands it on or clears it
  sched::Waiter* hand_on_locked() noexcept;  // ... with lock_ held; returns those to wake
  void sync_waiters_locked() noexcept;       // kWaiters := some queue is not empty
  void wake_drainer() noexcept;              // the last reader out wakes the draining writer
  void abandon(sched::Waiter& w, bool writer) noexcept;  // a waiter unwound at shutdown

  std::atomic<std::uint32_t> state_{0};
  sched::SpinLock lock_;     // guards readers_, writers_, drain_
  sched::WaitList readers_;  // readers blocked by a writer
  sched::WaitList writers_;  // writers waiting for the current writer (FIFO)
  sched::WaitList drain_;    // the writer that owns kWriter and waits for readers (at most one)
};

// CondVar: a condition variable for fibers and threads, as Go's sync.Cond and
// std::condition_variable_any. wait(lock) atomically releases `lock` (any BasicLockable, e.g.
// std::unique_lock<colony::Mutex>) and blocks (parks a fiber) until notified, then re-acquires
// the lock before returning. No wake-up is lost: the waiter is queued before the lock is
// released, so a notify after that (under the lock or not) finds it. No spurious wake-ups, but
// another party may change the state between the notify and the re-lock: wait in a loop, or
// use the predicate overloads. A notify happens-before the return of the wait it wakes.
//
// Shutdown: if the runtime unwinds a waiting fiber, FiberUnwind propagates from wait() after
// the lock is re-acquired if that is possible without blocking (a fiber cannot park while it is
// unwound). Pass a std::unique_lock: one that could not be re-acquired is left not owning its
// mutex (owns_lock() false), so its destructor does not unlock a mutex it does not hold. With a
// bare lockable (e.g. a colony::Mutex passed directly) a failed re-lock cannot be reported, and
// the caller's guard would unlock a mutex it does not hold.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // wait: releases `lock`, blocks until notified, re-acquires `lock`. Precondition: the caller
  // holds `lock`.
  template <class Lock>
  void wait(Lock& lock) {
    wait_impl(lock, sched::kNoDeadline);
  }
  void wait(std::unique_lock<Mutex>& lock) { wait_impl(lock, sched::kNoDeadline); }
  // wait(lock, pred): while (!pred()) wait(lock).
  template <class Lock, class Pred>
  void wait(Lock& lock, Pred pred) {
    while (!pred()) wait(lock);
  }
  // wait_until / wait_for: wait() that gives up at the timeout: std::cv_status::timeout if it
  // was not notified in time (the lock is re-acquired either way).
  template <class Lock, class Clock, class Dur>
  std::cv_status wait_until(Lock& lock, std::chrono::time_point<Clock, Dur> t) {
    return wait_impl(lock, sched::deadline_at(t)) ? std::cv_status::no_timeout
                                                        : std::cv_status::timeout;
  }
  template <class Lock, class Rep, class Period>
  std::cv_status wait_for(Lock& lock, std::chrono::duration<Rep, Period> d) {
    return wait_impl(lock, sched::deadline_after(d)) ? std::cv_status::no_timeout
                                                           : std::cv_status::timeout;
  }
  // wait_until / wait_for with a predicate: wait until pred() holds or the time is up; returns
  // pred() (so true means the condition holds, whether or not time ran out).
  template <class Lock, class Clock, class Dur, class Pred>
  bool wait_until(Lock& lock, std::chrono::time_point<Clock, Dur> t, Pred pred) {
    const std::int64_t deadline = sched::deadline_at(t);
    while (!pred())
      if (!wait_impl(lock, deadline)) return pred();
    return true;
  }
  template <class Lock, class Rep, class Period, class Pred>
  bool wait_for(Lock& lock, std::chrono::duration<Rep, Period> d, Pred pred) {
    const std::int64_t deadline = sched::deadline_after(d);
    while (!pred())
      if (!wait_impl(lock, deadline)) return pred();
    return true;
  }
  // notify_one: wakes the longest-waiting waiter, if any; never blocks.
  void notify_one() noexcept;
  // notify_all: wakes every current waiter; never blocks.
  void notify_all() noexcept;

 private:
  // wait_impl: true if notified, false if the deadline passed first.
  template <class Lock>
  bool wait_impl(Lock& lock, std::int64_t deadline) {
    sync_detail::CondWaiter w;
    enqueue(w);  // before unlocking: no lost wake-up. ~Waiter dequeues it if unlock() throws.
    lock.unlock();
    bool notified;
    try {
      notified = block(w, deadline);
    } catch (const FiberUnwind&) {
      relock_unwinding(lock);
      throw;
    }
    lock.lock();
    return notified;
  }
  template <class Lock>
  static void relock_unwinding(Lock& lock) noexcept {
    if constexpr (sync_detail::IsUniqueLock<Lock>::value) {
      // try_lock: blocking is impossible while unwinding; on failure owns_lock() stays false.
      try {
        (void)lock.try_lock();
      } catch (...) {  // NOLINT: the FiberUnwind being propagated is rethrown by the caller
      }
    } else {
      try {
        lock.lock();
      } catch (...) {  // NOLINT: likewise; the caller rethrows the original FiberUnwind
      }
    }
  }
  void enqueue(sync_detail::CondWaiter& w) noexcept;
  bool block(sync_detail::CondWaiter& w, std::int64_t deadline);

  sched::SpinLock lock_;     // guards waiters_ and each waiter's `armed`
  sched::WaitList waiters_;  // FIFO of CondWaiters
};

// Once: runs a function exactly once, as Go's sync.Once (and std::call_once). call(f, args...)
// runs f on the first call; concurrent callers block (park a fiber) until it has finished, and
// later callers return at once. Everything f did is visible to every caller after call()
// returns. If f throws, the exception propagates to the caller that ran it and the Once is not
// done: one of the blocked callers (or the next caller) runs its own f. Calling call() from
// inside f deadlocks, as in Go.
class Once {
 public:
  Once() = default;
  Once(const Once&) = delete;
  Once& operator=(const Once&) = delete;

  // call: see the class comment.
  template <class F, class... Args>
  void call(F&& f, Args&&... args) {
    if (state_.load(std::memory_order_acquire) & kDone) return;
    if (!begin()) return;
    struct Finish {
      Once* once;
      bool ok = false;
      ~Finish() { once->finish(ok); }
    } fin{this};
    std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
    fin.ok = true;
  }
  // done: whether a call has completed (f returned).
  bool done() const noexcept { return state_.load(std::memory_order_acquire) & kDone; }

 private:
  // state_: kDone (f returned), kRunning (a caller runs f), kWaiters (callers may be queued in
  // waiters_; set under lock_). finish() publishes with one exchange and touches the Once
  // afterwards only if kWaiters was set.
  static constexpr std::uint32_t kDone = 1, kRunning = 2, kWaiters = 4;

  bool begin();                   // true: the caller runs f; false: it is done
  void finish(bool ok) noexcept;  // after f: mark done (ok) or let a waiter retry

  std::atomic<std::uint32_t> state_{0};
  sched::SpinLock lock_;     // guards waiters_
  sched::WaitList waiters_;  // callers waiting for the runner
};

// Semaphore: a weighted semaphore, as golang.org/x/sync/semaphore.Weighted. It has `size` units;
// acquire(n) blocks (parks a fiber) until n units are free and takes them, release(n) gives them
// back. Fair: waiters are served strictly in FIFO order, so a large request at the head blocks
// smaller ones behind it until it fits (no starvation of large requests). Everything a party
// did before release() is visible to the parties whose acquire() those units satisfy.
class Semaphore {
 public:
  // Semaphore: `size` units, all free. Throws std::invalid_argument if size < 0.
  explicit Semaphore(long size);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  // acquire: blocks until n units are free (and every earlier waiter served), then takes them.
  // Throws std::invalid_argument if n < 0 or n > size (it could never succeed).
  void acquire(long n = 1);
  // acquire(ctx, n): x/sync's Acquire(ctx, n), exactly as Go (golang.org/x/sync v0.5.0 and
  // later, golang/go#63615): an empty error_code once the n units are taken; ctx.err() if ctx
  // is done first, and then nothing is taken and the waiters behind this one are served as if
  // it had never queued. A context already done fails at once even if the units are free
  // (older x/sync acquired then). Units granted while ctx was ending are given back, and the
  // call fails. A request larger than size() waits for ctx and returns its error (Go does not
  // panic; it stays out of the queue, so others are not blocked behind it). Throws
  // std::invalid_argument if n < 0.
  [[nodiscard]] std::error_code acquire(const Context& ctx, long n = 1);
  // try_acquire: takes n units if they are free and nobody waits; never blocks. Throws as
  // acquire.
  bool try_acquire(long n = 1);
  // try_acquire_for / try_acquire_until: acquire() giving up at the timeout; true if the units
  // were taken. A request that gives up lets the smaller ones behind it proceed.
  template <class Rep, class Period>
  bool try_acquire_for(long n, std::chrono::duration<Rep, Period> d) {
    return acquire_until_ns(n, sched::deadline_after(d));
  }
  template <class Clock, class Dur>
  bool try_acquire_until(long n, std::chrono::time_point<Clock, Dur> t) {
    return acquire_until_ns(n, sched::deadline_at(t));
  }
  // release: gives back n units, waking the waiters that now fit (in FIFO order); never
  // blocks. Throws std::logic_error if more units are released than are held, and
  // std::invalid_argument if n < 0.
  void release(long n = 1);
  // size: the number of units.
  long size() const noexcept { return size_; }

 private:
  struct Queued;
  struct Abandon;
  bool acquire_until_ns(long n, std::int64_t deadline);
  bool acquire_queued(Queued& w, std::int64_t deadline, detail::ContextWake* wake);
  void check(long n) const;
  sched::Waiter* grant_locked() noexcept;  // serves the head waiters that fit; returns a chain
  void abandon(Queued& w) noexcept;

  const long size_;
  sched::SpinLock lock_;     // guards cur_, waiters_
  long cur_ = 0;             // units held
  sched::WaitList waiters_;  // FIFO of Semaphore::Queued
};

}  // namespace colony
