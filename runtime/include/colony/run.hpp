// colony::run: start a runtime, run main_fn as its first fiber, wait for it on the calling
// thread, shut the runtime down (every fiber still parked is unwound: its destructors run) and
// return main_fn's int result (0 for a void function). An exception escaping main_fn is rethrown
// by run() after the shutdown.
//
// Deadlock detection: if every fiber ends up parked with nothing left that could wake one, run()
// reports "all fibers are asleep - deadlock!" with the fiber dump, and aborts (or calls
// Config::on_deadlock and then throws colony::Deadlock). It stays silent while any thread outside
// the runtime could still wake a fiber, i.e. unless every other thread of the process is blocked,
// without a deadline, in a colony primitive. See docs/design.md, "Deadlock detection".
//
//   int main() { return colony::run([] { ...; return 0; }, {.max_procs = 4}); }
#pragma once

#include <functional>
#include <stdexcept>
#include "colony/sched/source_location.hpp"
#include <type_traits>
#include <utility>

#include "colony/sched/config.hpp"

namespace colony {

// Deadlock: thrown by run() after Config::on_deadlock returned; what() is the report.
class Deadlock : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
int run_impl(std::function<int()> main_fn, const Config& cfg, const colony::SourceLocation& loc);
}

template <class F>
int run(F&& main_fn, const Config& cfg = {},
        const colony::SourceLocation& loc = colony::SourceLocation::current()) {
  using R = std::invoke_result_t<std::decay_t<F>>;
  static_assert(std::is_void_v<R> || std::is_convertible_v<R, int>,
                "colony::run: main_fn must return void or int");
  return detail::run_impl(
      [fn = std::forward<F>(main_fn)]() mutable -> int {
        if constexpr (std::is_void_v<R>) {
          fn();
          return 0;
        } else {
          return static_cast<int>(fn());
        }
      },
      cfg, loc);
}

}  // namespace colony
