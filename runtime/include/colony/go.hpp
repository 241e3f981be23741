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
// go and spawn are function templates: `colony::go(worker);` starts a fiber running worker.
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

// Task: the decayed function and arguments, invoked once.
template <class F, class... Args>
struct Task {
  std::decay_t<F> fn;
  std::tuple<std::decay_t<Args>...> args;
  decltype(auto) operator()() { return std::apply(
      [this](auto&... a) -> decltype(auto) { return std::invoke(std::move(fn), std::move(a)...); },
      args); }
};

// SpawnTask: a spawned fiber's callable: runs the task into the future's promise (which gives
// the future broken_promise if the fiber never runs).
template <class R, class F, class... Args>
struct SpawnTask {
  Promise<R> promise;
  Task<F, Args...> task;
  void operator()() { promise.run(task); }
};

template <class F, class... Args>
using spawn_result_t = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;

}  // namespace detail

namespace detail {

// CallSite: the caller's source location, as the defaulted last parameter of go and spawn. Its
// constructor is explicit, so an argument meant for the fiber's function (even a SourceLocation)
// is never taken for it.
struct CallSite {
  explicit constexpr CallSite(SourceLocation l) noexcept : loc(l) {}
  SourceLocation loc;
};

template <class F>
concept NotOptions = !std::is_same_v<std::remove_cvref_t<F>, SpawnOptions>;

template <class F, class... Args>
void go_start(const SpawnOptions& opts, const SourceLocation& loc, F&& f, Args&&... args) {
  static_assert(std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>,
                "colony::go: the function cannot be called with these arguments");
  sched::launch(sched::current_or_default(), opts,
                Task<F, Args...>{std::forward<F>(f), {std::forward<Args>(args)...}}, loc);
}

template <class F, class... Args>
Future<spawn_result_t<F, Args...>> spawn_start(const SpawnOptions& opts, const SourceLocation& loc,
                                               F&& f, Args&&... args) {
  static_assert(std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>,
                "colony::spawn: the function cannot be called with these arguments");
  using R = spawn_result_t<F, Args...>;
  Promise<R> promise;
  Future<R> future = promise.get_future();
  sched::launch(sched::current_or_default(), opts,
                SpawnTask<R, F, Args...>{
                    std::move(promise),
                    Task<F, Args...>{std::forward<F>(f), {std::forward<Args>(args)...}}},
                loc);
  return future;
}

}  // namespace detail

// go / spawn: function templates, one overload per argument count (up to 8), each ending in a
// defaulted detail::CallSite that records the caller's location at no run-time cost. A pack
// cannot be followed by a defaulted parameter, hence the overloads; more than 8 arguments still
// compile (the variadic overload at the end) but record no spawn site: bind them in a lambda.
#define COLONY_CALL_SITE \
  detail::CallSite site = detail::CallSite(SourceLocation::current())
template <class F>
  requires detail::NotOptions<F>
void go(F&& f, COLONY_CALL_SITE) {
  detail::go_start({}, site.loc, std::forward<F>(f));
}
template <class F>
void go(const SpawnOptions& opts, F&& f, COLONY_CALL_SITE) {
  detail::go_start(opts, site.loc, std::forward<F>(f));
}
template <class F>
  requires detail::NotOptions<F>
Future<detail::spawn_result_t<F>> spawn(F&& f, COLONY_CALL_SITE) {
  return detail::spawn_start({}, site.loc, std::forward<F>(f));
}
template <class F>
Future<detail::spawn_result_t<F>> spawn(const SpawnOptions& opts, F&& f,
                                                           COLONY_CALL_SITE) {
  return detail::spawn_start(opts, site.loc, std::forward<F>(f));
}
template <class F, class A1>
  requires detail::NotOptions<F>
void go(F&& f, A1&& a1, COLONY_CALL_SITE) {
  detail::go_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1));
}
template <class F, class A1>
void go(const SpawnOptions& opts, F&& f, A1&& a1, COLONY_CALL_SITE) {
  detail::go_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1));
}
template <class F, class A1>
  requires detail::NotOptions<F>
Future<detail::spawn_result_t<F, A1>> spawn(F&& f, A1&& a1, COLONY_CALL_SITE) {
  return detail::spawn_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1));
}
template <class F, class A1>
Future<detail::spawn_result_t<F, A1>> spawn(const SpawnOptions& opts, F&& f, A1&& a1,
                                                           COLONY_CALL_SITE) {
  return detail::spawn_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1));
}
template <class F, class A1, class A2>
  requires detail::NotOptions<F>
void go(F&& f, A1&& a1, A2&& a2, COLONY_CALL_SITE) {
  detail::go_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2));
}
template <class F, class A1, class A2>
void go(const SpawnOptions& opts, F&& f, A1&& a1, A2&& a2, COLONY_CALL_SITE) {
  detail::go_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2));
}
template <class F, class A1, class A2>
  requires detail::NotOptions<F>
Future<detail::spawn_result_t<F, A1, A2>> spawn(F&& f, A1&& a1, A2&& a2, COLONY_CALL_SITE) {
  return detail::spawn_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2));
}
template <class F, class A1, class A2>
Future<detail::spawn_result_t<F, A1, A2>> spawn(const SpawnOptions& opts, F&& f, A1&& a1, A2&& a2,
                                                           COLONY_CALL_SITE) {
  return detail::spawn_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2));
}
template <class F, class A1, class A2, class A3>
  requires detail::NotOptions<F>
void go(F&& f, A1&& a1, A2&& a2, A3&& a3, COLONY_CALL_SITE) {
  detail::go_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3));
}
template <class F, class A1, class A2, class A3>
void go(const SpawnOptions& opts, F&& f, A1&& a1, A2&& a2, A3&& a3, COLONY_CALL_SITE) {
  detail::go_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3));
}
template <class F, class A1, class A2, class A3>
  requires detail::NotOptions<F>
Future<detail::spawn_result_t<F, A1, A2, A3>> spawn(F&& f, A1&& a1, A2&& a2, A3&& a3, COLONY_CALL_SITE) {
  return detail::spawn_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3));
}
template <class F, class A1, class A2, class A3>
Future<detail::spawn_result_t<F, A1, A2, A3>> spawn(const SpawnOptions& opts, F&& f, A1&& a1, A2&& a2, A3&& a3,
                                                           COLONY_CALL_SITE) {
  return detail::spawn_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3));
}
template <class F, class A1, class A2, class A3, class A4>
  requires detail::NotOptions<F>
void go(F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, COLONY_CALL_SITE) {
  detail::go_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4));
}
template <class F, class A1, class A2, class A3, class A4>
void go(const SpawnOptions& opts, F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, COLONY_CALL_SITE) {
  detail::go_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4));
}
template <class F, class A1, class A2, class A3, class A4>
  requires detail::NotOptions<F>
Future<detail::spawn_result_t<F, A1, A2, A3, A4>> spawn(F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, COLONY_CALL_SITE) {
  return detail::spawn_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4));
}
template <class F, class A1, class A2, class A3, class A4>
Future<detail::spawn_result_t<F, A1, A2, A3, A4>> spawn(const SpawnOptions& opts, F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4,
                                                           COLONY_CALL_SITE) {
  return detail::spawn_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4));
}
template <class F, class A1, class A2, class A3, class A4, class A5>
  requires detail::NotOptions<F>
void go(F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, COLONY_CALL_SITE) {
  detail::go_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5));
}
template <class F, class A1, class A2, class A3, class A4, class A5>
void go(const SpawnOptions& opts, F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, COLONY_CALL_SITE) {
  detail::go_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5));
}
template <class F, class A1, class A2, class A3, class A4, class A5>
  requires detail::NotOptions<F>
Future<detail::spawn_result_t<F, A1, A2, A3, A4, A5>> spawn(F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, COLONY_CALL_SITE) {
  return detail::spawn_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5));
}
template <class F, class A1, class A2, class A3, class A4, class A5>
Future<detail::spawn_result_t<F, A1, A2, A3, A4, A5>> spawn(const SpawnOptions& opts, F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5,
                                                           COLONY_CALL_SITE) {
  return detail::spawn_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5));
}
template <class F, class A1, class A2, class A3, class A4, class A5, class A6>
  requires detail::NotOptions<F>
void go(F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6, COLONY_CALL_SITE) {
  detail::go_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6));
}
template <class F, class A1, class A2, class A3, class A4, class A5, class A6>
void go(const SpawnOptions& opts, F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6, COLONY_CALL_SITE) {
  detail::go_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6));
}
template <class F, class A1, class A2, class A3, class A4, class A5, class A6>
  requires detail::NotOptions<F>
Future<detail::spawn_result_t<F, A1, A2, A3, A4, A5, A6>> spawn(F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6, COLONY_CALL_SITE) {
  return detail::spawn_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6));
}
template <class F, class A1, class A2, class A3, class A4, class A5, class A6>
Future<detail::spawn_result_t<F, A1, A2, A3, A4, A5, A6>> spawn(const SpawnOptions& opts, F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6,
                                                           COLONY_CALL_SITE) {
  return detail::spawn_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6));
}
template <class F, class A1, class A2, class A3, class A4, class A5, class A6, class A7>
  requires detail::NotOptions<F>
void go(F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6, A7&& a7, COLONY_CALL_SITE) {
  detail::go_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6), std::forward<A7>(a7));
}
template <class F, class A1, class A2, class A3, class A4, class A5, class A6, class A7>
void go(const SpawnOptions& opts, F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6, A7&& a7, COLONY_CALL_SITE) {
  detail::go_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6), std::forward<A7>(a7));
}
template <class F, class A1, class A2, class A3, class A4, class A5, class A6, class A7>
  requires detail::NotOptions<F>
Future<detail::spawn_result_t<F, A1, A2, A3, A4, A5, A6, A7>> spawn(F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6, A7&& a7, COLONY_CALL_SITE) {
  return detail::spawn_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6), std::forward<A7>(a7));
}
template <class F, class A1, class A2, class A3, class A4, class A5, class A6, class A7>
Future<detail::spawn_result_t<F, A1, A2, A3, A4, A5, A6, A7>> spawn(const SpawnOptions& opts, F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6, A7&& a7,
                                                           COLONY_CALL_SITE) {
  return detail::spawn_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6), std::forward<A7>(a7));
}
template <class F, class A1, class A2, class A3, class A4, class A5, class A6, class A7, class A8>
  requires detail::NotOptions<F>
void go(F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6, A7&& a7, A8&& a8, COLONY_CALL_SITE) {
  detail::go_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6), std::forward<A7>(a7), std::forward<A8>(a8));
}
template <class F, class A1, class A2, class A3, class A4, class A5, class A6, class A7, class A8>
void go(const SpawnOptions& opts, F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6, A7&& a7, A8&& a8, COLONY_CALL_SITE) {
  detail::go_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6), std::forward<A7>(a7), std::forward<A8>(a8));
}
template <class F, class A1, class A2, class A3, class A4, class A5, class A6, class A7, class A8>
  requires detail::NotOptions<F>
Future<detail::spawn_result_t<F, A1, A2, A3, A4, A5, A6, A7, A8>> spawn(F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6, A7&& a7, A8&& a8, COLONY_CALL_SITE) {
  return detail::spawn_start({}, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6), std::forward<A7>(a7), std::forward<A8>(a8));
}
template <class F, class A1, class A2, class A3, class A4, class A5, class A6, class A7, class A8>
Future<detail::spawn_result_t<F, A1, A2, A3, A4, A5, A6, A7, A8>> spawn(const SpawnOptions& opts, F&& f, A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6, A7&& a7, A8&& a8,
                                                           COLONY_CALL_SITE) {
  return detail::spawn_start(opts, site.loc, std::forward<F>(f), std::forward<A1>(a1), std::forward<A2>(a2), std::forward<A3>(a3), std::forward<A4>(a4), std::forward<A5>(a5), std::forward<A6>(a6), std::forward<A7>(a7), std::forward<A8>(a8));
}
// More than 8 arguments: no spawn site (see above).
template <class F, class... Args>
  requires(detail::NotOptions<F> && sizeof...(Args) > 8)
void go(F&& f, Args&&... args) {
  detail::go_start({}, SourceLocation(), std::forward<F>(f), std::forward<Args>(args)...);
}
template <class F, class... Args>
  requires(sizeof...(Args) > 8)
void go(const SpawnOptions& opts, F&& f, Args&&... args) {
  detail::go_start(opts, SourceLocation(), std::forward<F>(f), std::forward<Args>(args)...);
}
template <class F, class... Args>
  requires(detail::NotOptions<F> && sizeof...(Args) > 8)
Future<detail::spawn_result_t<F, Args...>> spawn(F&& f, Args&&... args) {
  return detail::spawn_start({}, SourceLocation(), std::forward<F>(f), std::forward<Args>(args)...);
}
template <class F, class... Args>
  requires(sizeof...(Args) > 8)
Future<detail::spawn_result_t<F, Args...>> spawn(const SpawnOptions& opts, F&& f,
                                                             Args&&... args) {
  return detail::spawn_start(opts, SourceLocation(), std::forward<F>(f), std::forward<Args>(args)...);
}
#undef COLONY_CALL_SITE

}  // namespace colony
