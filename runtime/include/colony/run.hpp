// colony::run: start a runtime, run main_fn as its first fiber, wait for it on the calling
// thread, shut the runtime down (every fiber still parked is unwound: its destructors run) and
// return main_fn's int result (0 for a void function). An exception escaping main_fn is rethrown
// by run() after the shutdown.
//
//   int main() { return colony::run([] { ...; return 0; }, {.max_procs = 4}); }
#pragma once

#include <functional>
#include "colony/sched/source_location.hpp"
#include <type_traits>
#include <utility>

#include "colony/sched/config.hpp"

namespace colony {

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
