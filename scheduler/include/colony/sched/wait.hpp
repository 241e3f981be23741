// Waiter and WaitList: the building blocks of every colony blocking primitive. One code path
// serves both kinds of waiter: a fiber parks (its thread runs other fibers), a plain OS thread
// blocks on a futex. The two may be mixed on one primitive.
//
// Protocol (the primitive owns a SpinLock guarding its WaitList):
//   waiter:   lock; list.push_back(&w); wait(w, lock, reason);        // returns unlocked
//   notifier: lock; Waiter* w = list.pop_front(); unlock; notify(*w);
//   several:  lock; Chain c; c.take_all(list) (or c.add(w) each); unlock; notify_chain(c.first);
// A Waiter is woken exactly once, by whoever unlinked it under the lock (a notifier, or the
// waiter's own timeout). Memory ordering: everything the notifier did before notify(w) is
// visible to the waiter after wait() returns.
#pragma once

#include <atomic>
#include <cstdint>

#include "colony/sched/deadline.hpp"
#include "colony/sched/fiber.hpp"
#include "colony/sched/spinlock.hpp"

namespace colony::sched {

struct Waiter {
  G* g = nullptr;                  // the parked fiber; null for a thread (set by wait())
  std::atomic<std::uint32_t> woken{0};  // a blocked thread's futex word
  Waiter* next = nullptr;
  Waiter* prev = nullptr;
  bool linked = false;             // in a WaitList; guarded by the primitive's lock
  bool timed_out = false;          // set when the deadline unlinked it
  // handed: set by notify() once the fiber's runtime cannot be destroyed before the ready is
  // done (see ~Waiter: a fiber unwound at shutdown waits for it after a notifier popped it).
  std::atomic<bool> handed{false};
  void* data = nullptr;            // primitive-specific payload (e.g. a channel slot)
  std::uintptr_t tag = 0;          // primitive-specific (e.g. select case index)
  std::uint8_t result = 0;         // primitive-specific outcome written by the notifier
  // A waiter that is one of several cases of a select: the notifier must first win the
  // select's claim (claim_select) and the blocked thread, if any, sleeps on `wake_word`.
  struct SelectState* select = nullptr;
  std::atomic<std::uint32_t>* wake_word = nullptr;
  bool thread_asleep = false;      // a plain thread counted asleep by deadlock detection
  SpinLock* lock = nullptr;        // set by wait(): for unlinking on timeout or unwind
  struct WaitList* list = nullptr; // likewise

  Waiter() = default;
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;
  // Unlinks itself if still queued (a fiber unwound at shutdown while parked).
  ~Waiter();
};

// SelectState: shared by the Waiters of one select. Exactly one party claims it (done 0 -> 1):
// a channel operation (which then records its Waiter as `winner`) or the select's timeout.
struct SelectState {
  std::atomic<std::uint32_t> done{0};
  Waiter* winner = nullptr;
  std::atomic<std::uint32_t> word{0};  // a blocked thread's futex word
  bool timed_out = false;
};

// claim: for a waiter just popped from a wait list, whether the popper may wake it. Always true
// for plain waiters; for select cases, true only for the first claim of that select.
inline bool claim(Waiter* w) noexcept {
  if (!w->select) return true;
  std::uint32_t expected = 0;
  if (!w->select->done.compare_exchange_strong(expected, 1, std::memory_order_acq_rel))
    return false;
  w->select->winner = w;
  return true;
}

// WaitList: an intrusive FIFO of Waiters. Guarded by the owning primitive's lock.
struct WaitList {
  Waiter* head = nullptr;
  Waiter* tail = nullptr;
  std::size_t size = 0;

  bool empty() const noexcept { return head == nullptr; }
  void push_back(Waiter* w) noexcept {
    w->next = nullptr;
    w->prev = tail;
    if (tail) tail->next = w; else head = w;
    tail = w;
    w->linked = true;
    w->list = this;
    ++size;
  }
  Waiter* pop_front() noexcept {
    Waiter* w = head;
    if (w) remove(w);
    return w;
  }
  // pop_claimed: the first waiter that may be woken (see claim); stale select cases are dropped.
  Waiter* pop_claimed() noexcept {
    while (Waiter* w = pop_front())
      if (claim(w)) return w;
    return nullptr;
  }
  void remove(Waiter* w) noexcept {
    if (w->prev) w->prev->next = w->next; else head = w->next;
    if (w->next) w->next->prev = w->prev; else tail = w->prev;
    w->next = w->prev = nullptr;
    w->linked = false;
    --size;
  }
};

// Chain: waiters already unlinked from their WaitList under the primitive's lock, to be notified
// after it is released: the one way a primitive wakes several waiters (Go's glist, then goready
// after unlocking). Chained through Waiter::next, in the order added. Not a local WaitList: a
// waiter marked linked in a local list could be "removed" from it, under the primitive's lock,
// by its own timeout, a ContextWake or an unwinding ~Waiter. Not movable (tail points into it):
// hand on `first`.
struct Chain {
  Waiter* first = nullptr;
  Waiter** tail = &first;

  Chain() = default;
  Chain(const Chain&) = delete;
  Chain& operator=(const Chain&) = delete;

  bool empty() const noexcept { return first == nullptr; }
  // add: appends w, which the caller has just unlinked under the lock.
  void add(Waiter* w) noexcept {
    w->next = nullptr;
    *tail = w;
    tail = &w->next;
  }
  // take_all: unlinks every waiter of l into the chain, in l's order.
  void take_all(WaitList& l) noexcept {
    while (Waiter* w = l.pop_front()) add(w);
  }
};

// wait: precondition: `lock` held and `w` linked into a list guarded by it. Releases the lock
// and blocks the calling fiber or thread until notify(w). Returns with the lock released.
void wait(Waiter& w, SpinLock& lock, WaitReason reason);
// wait_until: as wait(), but gives up at the monotonic deadline `deadline_ns`: the waiter then
// unlinks itself under the lock and returns false (w.timed_out is set). True if notified.
// kNoDeadline is wait() exactly (no timer; a plain thread counts as asleep for deadlock
// detection), so a primitive passes its deadline through whether it has one or not.
bool wait_until(Waiter& w, SpinLock& lock, WaitReason reason, std::int64_t deadline_ns);
// notify: wakes a waiter the caller has unlinked under the lock (may be called after unlocking).
void notify(Waiter& w) noexcept;

// notify_chain: notifies every waiter of a chain from `first` on (a Chain's `first`). Reads
// `next` before each notify: a woken waiter may return and destroy its Waiter at once.
inline void notify_chain(Waiter* first) noexcept {
  while (first) {
    Waiter* next = first->next;
    notify(*first);
    first = next;
  }
}

// Futex helpers for plain threads (Linux futex; private to the process).
// Plain threads as deadlock detection sees them (deadlock.cpp). A primitive that blocks a plain
// thread without a deadline, other than through wait(), calls outside_thread_sleep(w) for each of
// its waiters while still holding the lock, then outside_thread_slept() once after unlocking;
// notify() counts the thread awake again (outside_thread_woken). internal_thread(+1/-1): a
// thread of the runtime's own that is not an M (the SIGQUIT dumper) starts / ends.
void outside_thread_sleep(Waiter& w) noexcept;
void outside_thread_slept() noexcept;
void outside_thread_woken(Waiter& w) noexcept;
void internal_thread(int delta) noexcept;

void futex_wait(std::atomic<std::uint32_t>* addr, std::uint32_t expected) noexcept;
// Returns false on timeout.
bool futex_wait_until(std::atomic<std::uint32_t>* addr, std::uint32_t expected,
                      std::int64_t deadline_ns) noexcept;
void futex_wake(std::atomic<std::uint32_t>* addr, int count) noexcept;

}  // namespace colony::sched
