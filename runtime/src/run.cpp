// run: starts a runtime, runs main on it, reports a deadlock, and shuts it down (colony/run.hpp).
#include "colony/run.hpp"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>

#include "colony/debug.hpp"
#include "colony/future.hpp"
#include "colony/go.hpp"
#include "colony/sched/runtime.hpp"

namespace colony::detail {

int run_impl(std::function<int()> main_fn, const Config& cfg, const colony::SourceLocation& loc) {
  sched::SchedulerPtr s = sched::make_scheduler(cfg);
  // Shared with the deadlock hook, which fails the main fiber's future.
  auto promise = std::make_shared<Promise<int>>();
  Future<int> fut = promise->get_future();
  if (cfg.detect_deadlocks) {
    // Runs once, on whichever thread noticed (an M about to sleep, or a plain thread about to
    // block). Failing the main fiber's future wakes this thread, which shuts the runtime down.
    sched::set_deadlock_hook(*s, [sp = s.get(), promise, on_deadlock = cfg.on_deadlock] {
      std::ostringstream os;
      os << "all fibers are asleep - deadlock!\n\n";
      dump_fibers(os, sched::fibers(*sp));
      std::string report = os.str();
      if (!on_deadlock) {
        std::fputs(report.c_str(), stderr);
        std::fflush(stderr);
        std::abort();
      }
      on_deadlock(report);
      promise->set_exception(std::make_exception_ptr(Deadlock(report)));
    });
  }
  {
    // Start main_fn on the new runtime (not on the caller's).
    sched::launch(*s, SpawnOptions{},
                  [promise, fn = std::move(main_fn)]() mutable { promise->run(std::move(fn)); },
                  loc);
  }
  fut.wait();
  sched::shutdown(*s, -1);
  return fut.get();
}

}  // namespace colony::detail
