#include "colony/sched/wait.hpp"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <climits>
#include <mutex>

#include "sched.hpp"

namespace colony::sched {

void spin_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

void spin_backoff(int round) noexcept {
  // Runtime critical sections are a few dozen instructions: spin for a few microseconds
  // (exponential up to 64 pauses a round) before giving the CPU away.
  if (round < 64) {
    const int n = round < 6 ? (1 << round) : 64;
    for (int i = 0; i < n; ++i) spin_pause();
  } else {
    ::sched_yield();
  }
}

void futex_wait(std::atomic<std::uint32_t>* addr, std::uint32_t expected) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), FUTEX_WAIT_PRIVATE, expected,
            nullptr, nullptr, 0);
}

bool futex_wait_until(std::atomic<std::uint32_t>* addr, std::uint32_t expected,
                      std::int64_t deadline_ns) noexcept {
  timespec ts;
  ts.tv_sec = deadline_ns / 1000000000;
  ts.tv_nsec = deadline_ns % 1000000000;
  long r = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr),
                     FUTEX_WAIT_BITSET_PRIVATE, expected, &ts, nullptr, FUTEX_BITSET_MATCH_ANY);
  if (r == -1 && errno == ETIMEDOUT) return false;
  return true;
}

void futex_wake(std::atomic<std::uint32_t>* addr, int count) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), FUTEX_WAKE_PRIVATE, count, nullptr,
            nullptr, 0);
}

Waiter::~Waiter() {
  if (!lock) return;
  // Resumed by its notifier, or by its own time-out, the waiter was unlinked under the lock
  // before it resumed (the ready orders that write before this read). Resumed by shutdown's
  // unwinder instead, a plain thread may be popping it from its list right now: only the lock
  // orders that, so while the fiber's runtime unwinds, take it whatever `linked` reads. (A
  // thread waiter is never unwound.)
  const bool unwinding = g && g->sched->is_unwinding();
  if (!unwinding && !linked) return;
  {
    std::lock_guard<SpinLock> lk(*lock);
    if (linked) {
      list->remove(this);
      return;
    }
    if (timed_out || !unwinding) return;
  }
  // Unwinding, and a notifier popped this waiter: it is between releasing the lock and readying
  // g, and this fiber must not finish (and its runtime be destroyed under the notifier) before
  // the ready has pinned the runtime (notify sets `handed` then). Bounded: a notifier that pops
  // without notifying (a select case whose claim another case won) never sets it.
  for (int round = 0; round < 1000 && !handed.load(std::memory_order_acquire); ++round)
    spin_backoff(round);
}

void wait(Waiter& w, SpinLock& lock, WaitReason reason) {
  w.lock = &lock;
  if (G* g = current_g()) {
    w.g = g;
    park([](G*, void* l) { static_cast<SpinLock*>(l)->unlock(); return true; }, &lock, reason);
    return;
  }
  w.g = nullptr;
  outside_thread_sleep(w);
  lock.unlock();
  outside_thread_slept();
  while (w.woken.load(std::memory_order_acquire) == 0) futex_wait(&w.woken, 0);
}

bool wait_until(Waiter& w, SpinLock& lock, WaitReason reason, std::int64_t deadline_ns) {
  if (deadline_ns == kNoDeadline) {  // no timer, and a thread counts as asleep
    wait(w, lock, reason);
    return true;
  }
  w.lock = &lock;
  if (G* g = current_g()) {
    w.g = g;
    Timer t;
    t.when = deadline_ns;
    t.arg = &w;
    t.fn = [](Timer* tm) {
      auto* wt = static_cast<Waiter*>(tm->arg);
      G* target = nullptr;
      {
        std::lock_guard<SpinLock> lk(*wt->lock);
        if (wt->linked) {
          wt->list->remove(wt);
          wt->timed_out = true;
          target = wt->g;
        }
      }
      if (target) ready(target);
    };
    struct Ctx {
      SpinLock* lock;
      Timer* timer;
    } c{&lock, &t};
    struct Guard {
      Timer* t;
      ~Guard() { del_timer(t); }
    } guard{&t};
    park(
        [](G*, void* a) {
          auto* cx = static_cast<Ctx*>(a);
          add_timer(cx->timer);
          cx->lock->unlock();
          return true;
        },
        &c, reason);
    return !w.timed_out;
  }
  w.g = nullptr;
  lock.unlock();
  while (w.woken.load(std::memory_order_acquire) == 0) {
    if (futex_wait_until(&w.woken, 0, deadline_ns)) continue;
    std::unique_lock<SpinLock> lk(lock);
    if (w.linked) {
      w.list->remove(&w);
      w.timed_out = true;
      return false;
    }
    lk.unlock();
    // A notifier unlinked us first and is about to wake us.
    while (w.woken.load(std::memory_order_acquire) == 0) futex_wait(&w.woken, 0);
    return true;
  }
  return true;
}

void notify(Waiter& w) noexcept {
  if (G* g = w.g) {
    g->sched->ready_g(g, true, &w.handed);
    return;
  }
  outside_thread_woken(w);  // before the wake: the count must not read zero meanwhile
  std::atomic<std::uint32_t>* word = w.wake_word ? w.wake_word : &w.woken;
  word->store(1, std::memory_order_release);
  futex_wake(word, 1);
}

}  // namespace colony::sched
