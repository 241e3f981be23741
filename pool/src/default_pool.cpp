// The default pool (ants' defaultAntsPool): capacity INT32_MAX, default options, and its fibers
// always on the default runtime, whichever runtime or thread uses it. It is created on first use
// and deliberately never destroyed: at exit the default runtime unwinds its idle workers, and a
// destructor that waited for them could hang the exit.
#include "pool_core.hpp"

namespace colony {

Pool& default_pool() {
  static Pool* pool = [] {
    static detail::PinnedRuntime pinned{&sched::default_scheduler()};
    return new Pool(kDefaultPoolSize, PoolOptions{}, SourceLocation::current(), &pinned);
  }();
  return *pool;
}

}  // namespace colony
