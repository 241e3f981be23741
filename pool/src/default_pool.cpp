// The default pool (ants' defaultAntsPool): capacity INT32_MAX, default options, and its fibers
// always on the default runtime, whichever runtime or thread uses it. It is created on first use
// and deliberately never destroyed: at exit the default runtime unwinds its idle workers, and a
// destructor that waited for them could hang the exit.
#include <thread>

#include "pool_core.hpp"

namespace colony {

namespace {

// default_runtime: the process's default runtime. sched::current_or_default() returns the
// calling fiber's runtime on a fiber, so from a fiber it is looked up on a short-lived plain
// thread (once; this blocks the fiber's thread for the time it takes to start a thread).
sched::Scheduler* default_runtime() {
  if (!sched::current_scheduler()) return &sched::current_or_default();
  sched::Scheduler* s = nullptr;
  std::exception_ptr error;
  std::thread t([&] {
    try {
      s = &sched::current_or_default();
    } catch (...) {
      error = std::current_exception();
    }
  });
  t.join();
  if (error) std::rethrow_exception(error);
  return s;
}

}  // namespace

Pool& default_pool() {
  static Pool* pool = [] {
    static detail::PinnedRuntime pinned{default_runtime()};
    return new Pool(INT32_MAX, PoolOptions{}, SourceLocation::current(), &pinned);
  }();
  return *pool;
}

}  // namespace colony
