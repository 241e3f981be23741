// RWMutex: Go's sync.RWMutex for fibers and threads (colony/sync.hpp).
//
// One state word (see sync.hpp) and three queues under lock_. A writer claims kWriter with a
// CAS that sees it clear; if readers are inside it waits in drain_ and the last reader out wakes
// it. While kWriter is set, new readers queue in readers_ and new writers in writers_. The owner
// of kWriter hands it on when it unlocks (release_writer): if only writers wait and no reader
// is inside, straight to the first writer; otherwise it admits every queued reader at once
// (counting them in state_ on their behalf) and, if a writer waits, that writer claims kWriter
// and drains those readers. If nobody waits, one CAS clears kWriter and that is the last touch.
//
// The waiter protocol is described in sync_detail.hpp.
#include <cstdint>
#include <mutex>
#include <stdexcept>

#include "colony/sync.hpp"
#include "sync/sync_detail.hpp"

namespace colony {

using sched::WaitReason;
using sched::Chain;
using sched::notify_chain;

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
  wake.take_all(readers_);
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

}  // namespace colony
