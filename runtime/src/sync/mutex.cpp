// Mutex: Go's sync.Mutex for fibers and threads (colony/sync.hpp).
//
// Go's sync.Mutex, with the semaphore replaced by a WaitList under lock_. state_ holds
//   kLocked   held by someone;
//   kWoken    an acquirer woken by unlock() (or spinning) is on its way: unlock() need not
//             wake another. Owned by at most one party, which clears it when it takes the lock
//             or queues (or gives it up: drop_woken);
//   kStarving starvation mode: unlock() hands the lock to the first waiter, which wakes owning
//             it (kLocked never drops), and nobody else may take it;
//   kWaiters  waiters_ is not empty.
// Invariants: kWaiters and kStarving change only under lock_; kStarving implies kLocked and,
// outside lock_, kWaiters. An acquirer queues only after a CAS (under lock_) that saw kLocked, so
// the unlock() that clears kLocked afterwards sees kWaiters and wakes someone, unless kWoken says
// that someone is already on the way. Timeouts and unwinding go through abandon().
// Lifetime: unlock() picks the waiter to wake while it still holds the lock; its last touch of
// the mutex is the CAS that clears kLocked (or, in starvation mode, releasing lock_ while the
// lock stays held for the waiter), so a party that locks after it may destroy the mutex.
//
// The waiter protocol is described in sync_detail.hpp.
#include <cstdint>
#include <stdexcept>
#include <thread>

#include "colony/sched/runtime.hpp"
#include "colony/sync.hpp"
#include "sync/sync_detail.hpp"

namespace colony {

using sched::WaitReason;

namespace {
constexpr std::int64_t kStarvationNs = 1'000'000;  // Go's starvationThresholdNs
constexpr int kActiveSpin = 4;                     // Go's active_spin
constexpr int kSpinPauses = 30;                    // Go's active_spin_cnt
constexpr std::uint8_t kWokenUp = 1, kHandedOff = 2;

// can_spin: Go's runtime_canSpin. Spinning only pays when the holder runs in parallel and
// will release the lock soon: a few rounds, only with more than one CPU and (on a fiber) more
// than one processor, and only while this processor has no other fiber to run.
bool can_spin(int iter) noexcept {
  if (iter >= kActiveSpin) return false;
  static const bool multi_cpu = std::thread::hardware_concurrency() > 1;
  if (!multi_cpu) return false;
  return sched::spin_may_pay();
}

// push_front: WaitList::push_back at the head (WaitList has no push_front).
void push_front(sched::WaitList& l, sched::Waiter* w) noexcept {
  w->prev = nullptr;
  w->next = l.head;
  if (l.head)
    l.head->prev = w;
  else
    l.tail = w;
  l.head = w;
  w->linked = true;
  w->list = &l;
  ++l.size;
}
}  // namespace

// Queued: an acquirer in waiters_.
struct Mutex::Queued : sched::Waiter {
  std::int64_t since = 0;    // when it first queued (nanotime): starvation is measured from here
  std::uint8_t outcome = 0;  // set by the unlocker under lock_: kWokenUp or kHandedOff
};

// Abandon: runs abandon() when a wait ends without the lock: a timeout, or FiberUnwind.
struct Mutex::Abandon {
  Mutex* m;
  Queued* w;
  bool armed = true;
  ~Abandon() {
    if (armed) m->abandon(*w);
  }
};

bool Mutex::try_lock() noexcept {
  std::uint32_t old = state_.load(std::memory_order_relaxed);
  while (!(old & (kLocked | kStarving)))
    if (state_.compare_exchange_weak(old, old | kLocked, std::memory_order_acquire,
                                     std::memory_order_relaxed))
      return true;
  return false;
}

bool Mutex::try_lock_until_ns(std::int64_t deadline) {
  std::uint32_t expected = 0;
  if (state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                     std::memory_order_relaxed))
    return true;
  return lock_slow(deadline);
}

bool Mutex::lock_slow(std::int64_t deadline) {
  std::int64_t since = 0;  // when this caller first queued; 0 = never
  bool awoke = false;      // this caller owns kWoken
  int iter = 0;
  std::uint32_t old = state_.load(std::memory_order_relaxed);
  for (;;) {
    // Spin while the holder (probably running) keeps it, unless the lock belongs to waiters.
    if ((old & (kLocked | kStarving)) == kLocked && can_spin(iter)) {
      // Claim kWoken so that unlock() does not wake a waiter we would compete with.
      if (!awoke && !(old & kWoken) && (old & kWaiters) &&
          state_.compare_exchange_strong(old, old | kWoken, std::memory_order_relaxed))
        awoke = true;
      for (int i = 0; i < kSpinPauses; ++i) sched::spin_pause();
      ++iter;
      old = state_.load(std::memory_order_relaxed);
      continue;
    }
    if (!(old & (kLocked | kStarving))) {
      std::uint32_t next = old | kLocked;
      if (awoke) next &= ~kWoken;
      if (state_.compare_exchange_weak(old, next, std::memory_order_acquire,
                                       std::memory_order_relaxed))
        return true;
      continue;
    }
    // Held (or handed to the waiters): queue.
    const std::int64_t now = sched::nanotime();
    if (now >= deadline) {
      if (awoke) drop_woken();
      return false;
    }
    lock_.lock();
    old = state_.load(std::memory_order_relaxed);
    if (!(old & (kLocked | kStarving))) {  // released meanwhile: try again
      lock_.unlock();
      continue;
    }
    std::uint32_t next = old | kWaiters;
    if (awoke) next &= ~kWoken;
    // A waiter that has waited too long switches to starvation mode. It only gets here when the
    // mutex is locked, so kStarving implies kLocked.
    if (since != 0 && now - since > kStarvationNs) next |= kStarving;
    if (!state_.compare_exchange_strong(old, next, std::memory_order_relaxed)) {
      lock_.unlock();
      continue;
    }
    awoke = false;
    const bool requeue = since != 0;
    if (!requeue) since = now;
    Queued w;
    w.since = since;
    // A woken waiter that lost the race goes back to the front: it has waited longest.
    if (requeue)
      push_front(waiters_, &w);
    else
      waiters_.push_back(&w);
    Abandon guard{this, &w};
    if (!sched::wait_until(w, lock_, WaitReason::mutex, deadline)) return false;  // guard repairs
    guard.armed = false;
    if (w.outcome == kHandedOff) return true;  // starvation mode: we own it already
    awoke = true;                              // we own kWoken: compete for it
    iter = 0;
    old = state_.load(std::memory_order_relaxed);
  }
}

void Mutex::unlock_slow(std::uint32_t old) {
  for (;;) {
    if (!(old & kLocked)) throw std::logic_error("colony::Mutex: unlock of unlocked mutex");
    if (old & kStarving) {
      if (hand_off()) return;
      old = state_.load(std::memory_order_relaxed);  // starvation ended meanwhile
      continue;
    }
    if ((old & kWaiters) && !(old & kWoken)) {
      if (wake_one_and_release()) return;
      old = state_.load(std::memory_order_relaxed);
      continue;
    }
    // Nobody to wake (or a woken acquirer is on its way): this CAS is the last touch.
    if (state_.compare_exchange_weak(old, old & ~kLocked, std::memory_order_release,
                                     std::memory_order_relaxed))
      return;
  }
}

// wake_one_and_release: normal mode: dequeue the first waiter to compete for the lock (giving
// it kWoken) while still holding the lock, then release it: clearing kLocked is the last touch
// of the mutex, after which another party may lock, unlock and destroy it. Meanwhile nobody can
// set kStarving: only a woken acquirer (the owner of kWoken, now the dequeued waiter) can.
// False if there is nobody to wake after all.
bool Mutex::wake_one_and_release() noexcept {
  lock_.lock();
  std::uint32_t old = state_.load(std::memory_order_relaxed);
  for (;;) {
    if ((old & kStarving) || !(old & kWaiters) || (old & kWoken)) {
      lock_.unlock();
      return false;
    }
    if (waiters_.empty()) {  // a timed-out waiter left; it repairs the bit itself, but help
      if (state_.compare_exchange_weak(old, old & ~kWaiters, std::memory_order_relaxed)) {
        lock_.unlock();
        return false;
      }
      continue;
    }
    std::uint32_t next = old | kWoken;
    if (waiters_.size == 1) next &= ~kWaiters;
    if (state_.compare_exchange_weak(old, next, std::memory_order_relaxed)) break;
  }
  auto* w = static_cast<Queued*>(waiters_.pop_front());
  w->outcome = kWokenUp;
  lock_.unlock();
  old = state_.load(std::memory_order_relaxed);
  while (!state_.compare_exchange_weak(old, old & ~kLocked, std::memory_order_release,
                                       std::memory_order_relaxed)) {
  }
  sched::notify(*w);  // touches only the waiter, which cannot return before this
  return true;
}

// hand_off: starvation mode: pass the lock (kLocked stays set) to the first waiter. False if
// there is no waiter any more (the mode was then ended and the caller unlocks normally).
bool Mutex::hand_off() noexcept {
  lock_.lock();
  auto* w = static_cast<Queued*>(waiters_.head);
  if (!(state_.load(std::memory_order_relaxed) & kStarving) || !w) {
    clear_bits_locked(w ? kStarving : kStarving | kWaiters);
    lock_.unlock();
    return false;
  }
  waiters_.pop_front();
  std::uint32_t clear = 0;
  if (waiters_.empty()) clear |= kWaiters | kStarving;  // the last waiter is served
  if (sched::nanotime() - w->since < kStarvationNs) clear |= kStarving;  // it was not starving
  clear_bits_locked(clear);
  w->outcome = kHandedOff;
  lock_.unlock();
  sched::notify(*w);  // everything before unlock() is visible to it (notify's ordering)
  return true;
}

// wake_one: wake the first waiter to compete for the (free) lock, unless it was taken meanwhile
// or an acquirer is already on its way (their unlock / acquisition takes over). Used by an
// acquirer that gives up kWoken; it is inside a call, so the mutex cannot be destroyed.
void Mutex::wake_one() noexcept {
  lock_.lock();
  std::uint32_t old = state_.load(std::memory_order_relaxed);
  for (;;) {
    if (!(old & kWaiters) || (old & (kLocked | kWoken | kStarving))) {
      lock_.unlock();
      return;
    }
    if (waiters_.empty()) {  // a timed-out waiter left; it repairs the bit itself, but help
      if (state_.compare_exchange_weak(old, old & ~kWaiters, std::memory_order_relaxed)) {
        lock_.unlock();
        return;
      }
      continue;
    }
    std::uint32_t next = old | kWoken;
    if (waiters_.size == 1) next &= ~kWaiters;
    if (state_.compare_exchange_weak(old, next, std::memory_order_relaxed)) break;
  }
  auto* w = static_cast<Queued*>(waiters_.pop_front());
  w->outcome = kWokenUp;
  lock_.unlock();
  sched::notify(*w);
}

// drop_woken: an acquirer that owns kWoken gives up (timeout or unwinding): release the token,
// and wake the next waiter if the lock is free, as the wake-up was meant to keep the queue going.
void Mutex::drop_woken() noexcept {
  std::uint32_t old = state_.load(std::memory_order_relaxed);
  while (!state_.compare_exchange_weak(old, old & ~kWoken, std::memory_order_relaxed)) {
  }
  old &= ~kWoken;
  if ((old & kWaiters) && !(old & (kLocked | kStarving))) wake_one();
}

// abandon: a queued acquirer leaves without the lock (timeout, or FiberUnwind while parked).
void Mutex::abandon(Queued& w) noexcept {
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    if (w.linked) waiters_.remove(&w);
    if (waiters_.empty()) clear_bits_locked(kWaiters | kStarving);
  }
  if (w.outcome == kHandedOff) {
    unlock();  // it was handed the lock before it could return: pass it on
  } else if (w.outcome == kWokenUp) {
    drop_woken();
  }
}

void Mutex::clear_bits_locked(std::uint32_t bits) noexcept {
  std::uint32_t old = state_.load(std::memory_order_relaxed);
  while ((old & bits) &&
         !state_.compare_exchange_weak(old, old & ~bits, std::memory_order_relaxed)) {
  }
}

}  // namespace colony
