// colony::blocking: run a call that blocks its OS thread (file I/O, DNS, a C library, a
// std::mutex held elsewhere) without stalling the other fibers, as Go does around a system call.
//
//   std::string text = colony::blocking([&] { return read_whole_file(path); });
//
// On a fiber, the fiber's processor (P) is handed to another OS thread for the duration of the
// call, so the other fibers keep running even with max_procs = 1; afterwards the fiber takes an
// idle processor back, or waits in the run queue for one. The call runs on the fiber's own
// stack, on the same thread. On a plain thread, f is simply called. The value f returns, or the
// exception it throws, is passed on.
//
// Each fiber inside blocking() holds an OS thread; threads are reused afterwards. A call that
// would need more than Config::max_threads threads throws std::system_error
// (std::errc::resource_unavailable_try_again) without calling f.
//
// Use it for calls that block for long (> ~10 us): the hand-off costs a few microseconds. A
// blocking call made without it holds the processor, see HACKING.md, "What blocks what".
#pragma once

#include <functional>
#include <type_traits>
#include <utility>

#include "colony/sched/fiber.hpp"

namespace colony {

template <class F, class... Args>
std::invoke_result_t<F, Args...> blocking(F&& f, Args&&... args) {
  sched::enter_blocking();
  struct Exit {
    ~Exit() { sched::exit_blocking(); }
  } exit;
  return std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
}

}  // namespace colony
