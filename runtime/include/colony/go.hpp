// colony::go and colony::spawn: start fibers.
//
//   colony::go(f, args...);                         // detached, like Go's `go f(args)`
//   colony::go(colony::SpawnOptions{.stack_size = 1 << 20}, f, args...);
//   auto fut = colony::spawn(f, args...);           // joinable: fut.get() returns or rethrows
//
// The function and arguments are copied/moved into the fiber (decayed, as std::thread does).
// The fiber goes to the calling fiber's runtime, or to the default runtime (started on first
// use, with Config{}) when called from a plain thread. An exception escaping a `go` fiber goes to
// Config::on_panic (by default: print and abort, as an unrecovered panic in Go); a `spawn`ed
// fiber's exception goes to its Future. The spawn site is recorded for dumps and panics.
// go and spawn are class templates so that a defaulted colony::SourceLocation can follow the
// arguments; use them as functions.
#pragma once

#include <functional>
#include <memory>
#include <new>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>

#include "colony/future.hpp"
#include "colony/sched/fiber.hpp"
#include "colony/sched/source_location.hpp"

namespace colony {

namespace detail {

template <class Fn>
void start_fiber(sched::Scheduler& s, const SpawnOptions& opts, Fn&& fn,
                 const colony::SourceLocation& loc) {
  using F = std::decay_t<Fn>;
  void* storage = nullptr;
  sched::G* g = sched::new_fiber(s, opts, sizeof(F), alignof(F), &storage, loc);
  try {
    ::new (storage) F(std::forward<Fn>(fn));
  } catch (...) {
    sched::abandon_fiber(g);
    throw;
  }
  sched::start_fiber(g, sched::FiberEntry{[](void* p) { (*static_cast<F*>(p))(); },
                                          [](void* p) { static_cast<F*>(p)->~F(); }});
}

// Task: the decayed function and arguments, invoked once.
template <class F, class... Args>
struct Task {
  std::decay_t<F> fn;
  std::tuple<std::decay_t<Args>...> args;
  decltype(auto) operator()() { return std::apply(
      [this](auto&... a) -> decltype(auto) { return std::invoke(std::move(fn), std::move(a)...); },
      args); }
};

std::exception_ptr unwound_error();  // "the runtime shut down before the fiber finished"

template <class R, class F, class... Args>
struct SpawnTask {
  std::shared_ptr<FutureState<R>> st;
  Task<F, Args...> task;
  SpawnTask(std::shared_ptr<FutureState<R>> s, Task<F, Args...> t)
      : st(std::move(s)), task(std::move(t)) {}
  SpawnTask(SpawnTask&&) = default;
  ~SpawnTask() {
    // Destroyed without having run (its runtime shut down first): the future must not hang.
    if (st && !st->is_ready())
      st->set_exception(std::make_exception_ptr(std::future_error(std::future_errc::broken_promise)));
  }
  void operator()() {
    try {
      if constexpr (std::is_void_v<R>) {
        task();
        st->set_value();
      } else {
        st->set_value(task());
      }
    } catch (const FiberUnwind&) {
      st->set_exception(unwound_error());
      throw;
    } catch (...) {
      st->set_exception(std::current_exception());
    }
  }
};

template <class F, class... Args>
using spawn_result_t = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;

}  // namespace detail

template <class F, class... Args>
struct go {
  static_assert(std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>,
                "colony::go: the function cannot be called with these arguments");
  explicit go(F&& f, Args&&... args,
              const colony::SourceLocation& loc = colony::SourceLocation::current()) {
    start({}, std::forward<F>(f), std::forward<Args>(args)..., loc);
  }
  go(const SpawnOptions& opts, F&& f, Args&&... args,
     const colony::SourceLocation& loc = colony::SourceLocation::current()) {
    start(opts, std::forward<F>(f), std::forward<Args>(args)..., loc);
  }

 private:
  static void start(const SpawnOptions& opts, F&& f, Args&&... args,
                    const colony::SourceLocation& loc) {
    detail::start_fiber(sched::current_or_default(), opts,
                        detail::Task<F, Args...>{std::forward<F>(f), {std::forward<Args>(args)...}},
                        loc);
  }
};
template <class F, class... Args>
  requires(!std::is_same_v<std::remove_cvref_t<F>, SpawnOptions>)
go(F&&, Args&&...) -> go<F, Args...>;
template <class F, class... Args>
go(const SpawnOptions&, F&&, Args&&...) -> go<F, Args...>;

template <class F, class... Args>
struct spawn : Future<detail::spawn_result_t<F, Args...>> {
  using R = detail::spawn_result_t<F, Args...>;
  explicit spawn(F&& f, Args&&... args,
                 const colony::SourceLocation& loc = colony::SourceLocation::current())
      : Future<R>(start({}, std::forward<F>(f), std::forward<Args>(args)..., loc)) {}
  spawn(const SpawnOptions& opts, F&& f, Args&&... args,
        const colony::SourceLocation& loc = colony::SourceLocation::current())
      : Future<R>(start(opts, std::forward<F>(f), std::forward<Args>(args)..., loc)) {}

 private:
  static std::shared_ptr<detail::FutureState<R>> start(const SpawnOptions& opts, F&& f,
                                                       Args&&... args,
                                                       const colony::SourceLocation& loc) {
    auto st = std::make_shared<detail::FutureState<R>>();
    detail::start_fiber(
        sched::current_or_default(), opts,
        detail::SpawnTask<R, F, Args...>{
            st, detail::Task<F, Args...>{std::forward<F>(f), {std::forward<Args>(args)...}}},
        loc);
    return st;
  }
};
template <class F, class... Args>
  requires(!std::is_same_v<std::remove_cvref_t<F>, SpawnOptions>)
spawn(F&&, Args&&...) -> spawn<F, Args...>;
template <class F, class... Args>
spawn(const SpawnOptions&, F&&, Args&&...) -> spawn<F, Args...>;

}  // namespace colony
