// Worker: the state of one worker fiber, on that fiber's own stack (it lives exactly as long as
// the fiber's loop). Fields marked (lock) are guarded by the pool's lock.
#pragma once

#include <cstdint>

#include "colony/pool/task.hpp"
#include "colony/sched/wait.hpp"

namespace colony::detail {

struct Worker {
  PoolTask task;                    // (lock) a task handed over while it was idle
  sched::WaitList wl;               // (lock) holds `parked` while idle
  sched::Waiter* parked = nullptr;  // (lock) its Waiter while idle (on its stack)
  std::int64_t last_used = 0;       // (lock) coarse clock, when it last became idle
  Worker* next_stale = nullptr;     // (lock) chains workers taken out of IdleWorkers
  bool idle = false;                // (lock) in IdleWorkers
  bool exit = false;                // (lock) told to exit (purge, release, tune down)
};

}  // namespace colony::detail
