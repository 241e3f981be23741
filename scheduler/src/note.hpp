// Note: a one-shot wake-up for an M sleeping on a futex (Go's note). sleep() returns once
// wakeup() has been called since the last clear(); sleep_until() may also return at the deadline.
#pragma once

#include <atomic>
#include <cstdint>

#include "colony/sched/wait.hpp"

namespace colony::sched {

class Note {
 public:
  void clear() noexcept { key_.store(0, std::memory_order_relaxed); }
  // seq_cst: wake_m reads Scheduler::netpoll_m_ after this, the poller M this after setting it.
  void wakeup() noexcept {
    key_.store(1, std::memory_order_seq_cst);
    futex_wake(&key_, 1);
  }
  bool woken() const noexcept { return key_.load(std::memory_order_seq_cst) != 0; }
  void sleep() noexcept {
    while (key_.load(std::memory_order_acquire) == 0) futex_wait(&key_, 0);
  }
  // Returns true if woken, false at the deadline.
  bool sleep_until(std::int64_t deadline_ns) noexcept {
    while (key_.load(std::memory_order_acquire) == 0)
      if (!futex_wait_until(&key_, 0, deadline_ns))
        return key_.load(std::memory_order_acquire) != 0;
    return true;
  }

 private:
  std::atomic<std::uint32_t> key_{0};
};

}  // namespace colony::sched
