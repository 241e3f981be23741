// colony sync: WaitGroup, Mutex, RWMutex, CondVar, Once, Semaphore (see colony/sync.hpp).
//
// Every primitive follows the Waiter protocol of colony/sched/wait.hpp: its own SpinLock guards
// its WaitList; a waiter links itself under the lock and hands the lock to sched::wait (park
// first, unlock second); a notifier unlinks a waiter under the lock, records the outcome in it,
// and notifies it after unlocking. When a notifier wakes several, it first moves them to a local
// chain (through `next`) and reads `next` before each notify, because a woken waiter may return
// and destroy its Waiter at once.
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
#include "colony/sync.hpp"

#include <stdexcept>
#include <thread>

#include "colony/context.hpp"
#include "context_wait.hpp"
#include "colony/sched/runtime.hpp"

namespace colony {

namespace {

using sched::WaitReason;
using sync_detail::kNoDeadline;

// Chain: a singly linked list of Waiters already unlinked from their WaitList, to be notified
// after the primitive's lock is released.
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
void notify_chain(sched::Waiter* w) noexcept {
  while (w) {
    sched::Waiter* next = w->next;
    sched::notify(*w);
    w = next;
  }
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

// wait_deadline: sched::wait or sched::wait_until; true if notified, false on timeout.
bool wait_deadline(sched::Waiter& w, sched::SpinLock& lock, WaitReason reason,
                   std::int64_t deadline) {
  if (deadline == kNoDeadline) {
    sched::wait(w, lock, reason);
    return true;
  }
  return sched::wait_until(w, lock, reason, deadline);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// WaitGroup

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
    while (sched::Waiter* w = waiters_.pop_front()) woken.add(w);
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
  if (wait_deadline(w, lock_, WaitReason::waitgroup, deadline) && !w.timed_out) {
    guard.armed = false;
    return true;
  }
  return false;  // (the counter may reach zero right now: a later wait() sees it)
}

// ---------------------------------------------------------------------------------------------
// Mutex
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
    if (!wait_deadline(w, lock_, WaitReason::mutex, deadline)) return false;  // guard repairs
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

// ---------------------------------------------------------------------------------------------
// RWMutex
//
// One state word (see sync.hpp) and three queues under lock_. A writer claims kWriter with a
// CAS that sees it clear; if readers are inside it waits in drain_ and the last reader out wakes
// it. While kWriter is set, new readers queue in readers_ and new writers in writers_. The owner
// of kWriter hands it on when it unlocks (release_writer): if only writers wait and no reader
// is inside, straight to the first writer; otherwise it admits every queued reader at once
// (counting them in state_ on their behalf) and, if a writer waits, that writer claims kWriter
// and drains those readers. If nobody waits, one CAS clears kWriter and that is the last touch.

namespace {
constexpr bool kAsReader = false, kAsWriter = true;
}

struct RWMutex::Abandon {
  RWMutex* rw;
  sched::Waiter* w;
  bool writer;
  bool armed = true;
  ~Abandon() {
    if (armed) rw->abandon(*w, writer);
  }
};

void RWMutex::sync_waiters_locked() noexcept {
  const bool any = !readers_.empty() || !writers_.empty() || !drain_.empty();
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint32_t next = any ? s | kWaiters : s & ~kWaiters;
    if (next == s || state_.compare_exchange_weak(s, next, std::memory_order_relaxed)) return;
  }
}

void RWMutex::lock() {
  std::uint32_t s = 0;
  if (state_.compare_exchange_strong(s, kWriter, std::memory_order_acquire,
                                     std::memory_order_relaxed))
    return;
  lock_.lock();
  s = state_.load(std::memory_order_relaxed);
  sched::WaitList* queue;
  for (;;) {
    // The decision to queue and kWaiters are one CAS that still sees kWriter: the owner clears
    // kWriter without lock_ only while kWaiters is clear, so it cannot miss us.
    if (s & kWriter) {
      // Another writer holds or drains: queue; it hands us kWriter and we wake holding the lock
      // (if it admitted readers first, we were moved to drain_ and their last one woke us).
      if (state_.compare_exchange_weak(s, s | kWaiters, std::memory_order_relaxed)) {
        queue = &writers_;
        break;
      }
      continue;
    }
    // Claim kWriter. Readers inside: wait in drain_ for the last one (new ones queue behind).
    const bool drain = (s & kReaders) != 0;
    if (state_.compare_exchange_weak(s, s | kWriter | (drain ? kWaiters : 0),
                                     std::memory_order_acquire, std::memory_order_relaxed)) {
      if (!drain) {
        lock_.unlock();
        return;
      }
      queue = &drain_;
      break;
    }
  }
  sched::Waiter w;
  queue->push_back(&w);
  Abandon guard{this, &w, kAsWriter};
  sched::wait(w, lock_, WaitReason::rwmutex_write);
  guard.armed = false;
}

bool RWMutex::try_lock() noexcept {
  std::uint32_t s = 0;
  return state_.compare_exchange_strong(s, kWriter, std::memory_order_acquire,
                                        std::memory_order_relaxed);
}

void RWMutex::unlock() {
  const std::uint32_t s = state_.load(std::memory_order_relaxed);
  if (!(s & kWriter) || (s & kReaders) != 0)
    throw std::logic_error("colony::RWMutex: unlock of an RWMutex that is not write-locked");
  release_writer();
}

// release_writer: the owner of kWriter (holding the lock, or withdrawing from drain_) hands it
// on, or clears it when nobody waits.
void RWMutex::release_writer() noexcept {
  for (;;) {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while (!(s & kWaiters))  // nobody waits: this CAS is the last touch
      if (state_.compare_exchange_weak(s, s & ~kWriter, std::memory_order_release,
                                       std::memory_order_relaxed))
        return;
    sched::Waiter* wake = nullptr;
    bool done = true;
    lock_.lock();
    if (readers_.empty() && writers_.empty()) {
      sync_waiters_locked();  // kWaiters was stale (a waiter left): clear it, then retry
      done = false;
    } else {
      wake = hand_on_locked();
    }
    lock_.unlock();
    notify_chain(wake);  // those woken are inside lock calls: the object lives on
    if (done) return;
  }
}

// hand_on_locked: see the overview. lock_ held, readers_ or writers_ not empty.
sched::Waiter* RWMutex::hand_on_locked() noexcept {
  Chain wake;
  sched::Waiter* writer = writers_.head;
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  if (writer && readers_.empty() && (s & kReaders) == 0) {
    writers_.pop_front();  // kWriter passes to it as is: it wakes holding the lock
    wake.add(writer);
    sync_waiters_locked();
    return wake.first;
  }
  const auto admitted = static_cast<std::uint32_t>(readers_.size);
  while (sched::Waiter* r = readers_.pop_front()) wake.add(r);
  if (writer) {  // it claims kWriter now and waits for the readers (admitted or inside)
    writers_.remove(writer);
    drain_.push_back(writer);
  }
  const bool waiting = !writers_.empty() || !drain_.empty();
  for (;;) {
    std::uint32_t next = (s & kReaders) + admitted;
    if (writer) next |= kWriter;
    if (waiting) next |= kWaiters;
    if (state_.compare_exchange_weak(s, next, std::memory_order_release, std::memory_order_relaxed))
      return wake.first;
  }
}

void RWMutex::lock_shared() {
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  while (!(s & kWriter))
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                     std::memory_order_relaxed))
      return;
  lock_.lock();
  s = state_.load(std::memory_order_relaxed);
  for (;;) {
    if (!(s & kWriter)) {  // the writer left meanwhile
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        lock_.unlock();
        return;
      }
      continue;
    }
    // Queue, with a CAS that still sees kWriter (see lock()).
    if (state_.compare_exchange_weak(s, s | kWaiters, std::memory_order_relaxed)) break;
  }
  sched::Waiter w;
  readers_.push_back(&w);
  Abandon guard{this, &w, kAsReader};
  sched::wait(w, lock_, WaitReason::rwmutex_read);
  guard.armed = false;  // admitted by a writer's hand-on: counted in state_ already
}

bool RWMutex::try_lock_shared() noexcept {
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  while (!(s & kWriter))
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                     std::memory_order_relaxed))
      return true;
  return false;
}

void RWMutex::unlock_shared() {
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  do {
    if ((s & kReaders) == 0)
      throw std::logic_error(
          "colony::RWMutex: unlock_shared of an RWMutex that is not read-locked");
  } while (!state_.compare_exchange_weak(s, s - 1, std::memory_order_acq_rel,
                                         std::memory_order_relaxed));
  // The last reader out while a writer drains wakes it. kWriter is set, so nobody can take the
  // lock meanwhile and the object lives on.
  if ((s & kWriter) && (s & kReaders) == 1) wake_drainer();
}

void RWMutex::wake_drainer() noexcept {
  sched::Waiter* w = nullptr;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    const std::uint32_t s = state_.load(std::memory_order_acquire);
    if ((s & kWriter) && (s & kReaders) == 0 && (w = drain_.pop_front())) sync_waiters_locked();
  }
  if (w) sched::notify(*w);
}

// abandon: a waiter unwound at shutdown. Still queued: dequeue it; a draining writer owns
// kWriter and hands it on (admitting the readers it held back). Already woken: it holds what
// it was granted (a read lock, or the write lock): release it.
void RWMutex::abandon(sched::Waiter& w, bool writer) noexcept {
  lock_.lock();
  if (w.linked) {
    const bool draining = w.list == &drain_;
    w.list->remove(&w);
    sync_waiters_locked();
    lock_.unlock();
    if (draining) release_writer();
    return;
  }
  lock_.unlock();
  if (writer)
    release_writer();
  else
    unlock_shared();
}

// ---------------------------------------------------------------------------------------------
// CondVar
//
// Two steps, so that the user's lock is never released under our lock_: enqueue() links the
// waiter (unarmed) before the caller releases its lock, so a notify from then on finds it;
// block() arms and parks it, unless a notifier already dequeued it. A notifier wakes only armed
// waiters; an unarmed one it just dequeues, and that waiter sees it in block() and returns.

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
    return wait_deadline(w, lock_, WaitReason::cond, deadline);
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

// ---------------------------------------------------------------------------------------------
// Once

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
    while (sched::Waiter* w = waiters_.pop_front()) woken.add(w);
  }
  notify_chain(woken.first);
}

// ---------------------------------------------------------------------------------------------
// Semaphore (golang.org/x/sync/semaphore.Weighted)

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
  if (!wait_deadline(w, lock_, WaitReason::semaphore, deadline) || w.timed_out) return false;
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
