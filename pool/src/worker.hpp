// Worker: the state of one worker fiber, on that fiber's own stack (it lives exactly as long as
// the fiber's loop). Fields marked (lock) are guarded by the pool's lock.
#pragma once

#include <atomic>
#include <cstdint>

#include "colony/pool/task.hpp"
#include "colony/sched/fiber.hpp"

namespace colony::detail {

// Going idle and being woken do not hold the pool's lock across the worker's switch (a parked
// fiber's unlock step runs only after the next fiber has been picked and switched to, and the
// pool's lock is the hottest one there is). Instead `wake` settles the race between the worker
// parking and whoever takes it out of IdleWorkers:
//   worker:  (lock) wake = kAwake, insert into IdleWorkers; unlock;
//            park, whose unlock step CASes wake kAwake -> kParked; if that fails (kWoken), the
//            park is undone and the worker runs on at once.
//   waker:   (lock) take it out of IdleWorkers [an exit: set exit]; unlock;
//            [a submitter: clear idle, set task: nobody else can reach the worker now]
//            wake_worker(): g = w->g; if wake.exchange(kWoken) == kParked, ready(g).
// Exactly one of the two makes the worker runnable again. The waker must read everything it
// needs from the Worker before the exchange: after it, the worker may run on and vanish.
struct Worker {
  static constexpr std::uint32_t kAwake = 0;
  static constexpr std::uint32_t kParked = 1;
  static constexpr std::uint32_t kWoken = 2;

  PoolTask task;                    // a task handed over while it was idle (see above)
  sched::G* g = nullptr;            // the worker's fiber
  std::atomic<std::uint32_t> wake{kAwake};  // see above
  std::int64_t last_used = 0;       // (lock) coarse clock, when it last became idle
  Worker* next_stale = nullptr;     // (lock) chains workers taken out of IdleWorkers
  bool idle = false;                // (lock) in IdleWorkers; cleared as `task` is set
  bool exit = false;                // (lock) told to exit (purge, release, tune down)
  bool unaccounted = false;         // its own: a task ran that is not yet counted as done
};

}  // namespace colony::detail
