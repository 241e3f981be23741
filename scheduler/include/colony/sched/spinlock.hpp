// SpinLock: a test-and-test-and-set lock for the runtime's short critical sections (queue
// manipulation, never a fiber switch). BasicLockable. Falls back to sched_yield when contended
// for long, so a preempted holder on an oversubscribed machine does not stall the waiter.
#pragma once

#include <atomic>

namespace colony::sched {

void spin_pause() noexcept;     // one CPU relax hint
void spin_backoff(int round) noexcept;  // pause a while, then yield the thread

class SpinLock {
 public:
  void lock() noexcept {
    int round = 0;
    for (;;) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      while (locked_.load(std::memory_order_relaxed)) spin_backoff(round++);
    }
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace colony::sched
