// colony::select: Go's select statement over channels of any element types.
//
//   std::size_t i = colony::select(
//       colony::on_recv(numbers, [](std::optional<int> v) { ... }),   // nullopt: closed
//       colony::on_send(words, std::string("hi"), [] { ... }),
//       colony::on_timeout(100ms, [] { ... }),                          // optional
//       colony::on_default([] { ... }));                                // optional
//
// Blocks (parks a fiber, blocks a plain thread) until one channel case can proceed, runs its
// handler and returns its position in the argument list. When several cases are ready, one is
// chosen uniformly at random. With on_default, never blocks; with on_timeout, gives up after the
// duration. A select with no case at all blocks forever, like Go's `select {}`. Sending on a
// closed channel throws ChannelClosed, as Chan::send does.
//
// A case on a nil channel (Chan<T> = nullptr) is never chosen, as in Go: set a channel to nullptr
// to turn its case off. With only nil cases, the select takes on_default, else on_timeout, else
// blocks forever like `select {}`.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "colony/chan.hpp"

namespace colony {

namespace detail {

struct Noop {
  template <class... A>
  void operator()(A&&...) const noexcept {}
};

// SelectCase: one channel case, type-erased for select_impl.
struct SelectCase {
  ChanCore* chan = nullptr;
  bool is_send = false;
  void* elem = nullptr;  // recv: std::optional<T>*; send: T*
  ChanStatus (*try_op)(ChanCore*, bool is_send, void* elem, sched::Waiter** wake) = nullptr;
};

template <class T>
ChanStatus select_try_op(ChanCore* c, bool is_send, void* elem, sched::Waiter** wake) {
  auto* st = static_cast<ChanState<T>*>(c);
  if (is_send) return st->try_send_locked(*static_cast<T*>(elem), wake);
  return st->try_recv_locked(*static_cast<std::optional<T>*>(elem), wake);
}

// select_impl: returns the index of the channel case taken (its status in *status), or n for
// the default case, n + 1 for the timeout. deadline_ns < 0: none.
std::size_t select_impl(SelectCase* cases, std::size_t n, bool has_default,
                        std::int64_t deadline_ns, ChanStatus* status);

template <class T, class F>
struct RecvCase {
  Chan<T> ch;
  F fn;
  std::optional<T> slot{};
};
template <class T, class F>
struct SendCase {
  Chan<T> ch;
  T value;
  F fn;
};
template <class F>
struct DefaultCase {
  F fn;
};
template <class F>
struct TimeoutCase {
  std::chrono::nanoseconds d;
  F fn;
};

template <class C> struct is_chan_case : std::false_type {};
template <class T, class F> struct is_chan_case<RecvCase<T, F>> : std::true_type {};
template <class T, class F> struct is_chan_case<SendCase<T, F>> : std::true_type {};
template <class C> struct is_default_case : std::false_type {};
template <class F> struct is_default_case<DefaultCase<F>> : std::true_type {};
template <class C> struct is_timeout_case : std::false_type {};
template <class F> struct is_timeout_case<TimeoutCase<F>> : std::true_type {};

// describe: the case as select_impl sees it; false (nothing written) for a nil channel, whose
// case is left out.
template <class T, class F>
bool describe(RecvCase<T, F>& c, SelectCase& out) {
  ChanState<T>* st = c.ch.state();
  if (!st) [[unlikely]]
    return false;
  out = {st, false, &c.slot, &select_try_op<T>};
  return true;
}
template <class T, class F>
bool describe(SendCase<T, F>& c, SelectCase& out) {
  ChanState<T>* st = c.ch.state();
  if (!st) [[unlikely]]
    return false;
  out = {st, true, &c.value, &select_try_op<T>};
  return true;
}

template <class T, class F>
void run_case(RecvCase<T, F>& c, ChanStatus) {
  c.fn(std::move(c.slot));
}
template <class T, class F>
void run_case(SendCase<T, F>& c, ChanStatus s) {
  if (s == ChanStatus::closed) throw ChannelClosed("colony::select: send on closed channel");
  c.fn();
}

}  // namespace detail

// on_recv: a receive case; fn(std::optional<T>) gets the value, or nullopt if the channel closed.
template <class T, class F = detail::Noop>
detail::RecvCase<T, std::decay_t<F>> on_recv(const Chan<T>& ch, F&& fn = {}) {
  return {ch, std::forward<F>(fn)};
}
// on_send: a send case of v; fn() runs once it is sent.
template <class T, class U, class F = detail::Noop>
detail::SendCase<T, std::decay_t<F>> on_send(const Chan<T>& ch, U&& v, F&& fn = {}) {
  return {ch, T(std::forward<U>(v)), std::forward<F>(fn)};
}
// on_default: taken when no channel case is ready.
template <class F = detail::Noop>
detail::DefaultCase<std::decay_t<F>> on_default(F&& fn = {}) {
  return {std::forward<F>(fn)};
}
// on_timeout: taken when no channel case became ready within d.
template <class Rep, class Period, class F = detail::Noop>
detail::TimeoutCase<std::decay_t<F>> on_timeout(std::chrono::duration<Rep, Period> d, F&& fn = {}) {
  return {sched::saturate(d), std::forward<F>(fn)};
}

template <class... Cases>
std::size_t select(Cases&&... cases) {
  constexpr std::size_t kChan = (0 + ... + (detail::is_chan_case<std::decay_t<Cases>>::value ? 1 : 0));
  constexpr std::size_t kDefault = (0 + ... + (detail::is_default_case<std::decay_t<Cases>>::value ? 1 : 0));
  constexpr std::size_t kTimeout = (0 + ... + (detail::is_timeout_case<std::decay_t<Cases>>::value ? 1 : 0));
  static_assert(kChan + kDefault + kTimeout == sizeof...(Cases),
                "colony::select: cases are made with on_recv, on_send, on_default, on_timeout");
  static_assert(kDefault <= 1, "colony::select: at most one on_default");
  static_assert(kTimeout <= 1, "colony::select: at most one on_timeout");

  auto all = std::forward_as_tuple(cases...);
  detail::SelectCase descs[kChan > 0 ? kChan : 1];
  std::size_t arg_of[kChan > 0 ? kChan : 1] = {};  // channel case -> argument position
  std::size_t n = 0;                               // channel cases, less those on nil channels
  std::int64_t deadline = -1;
  std::size_t default_arg = 0, timeout_arg = 0;
  {
    auto visit = [&](auto& c, std::size_t pos) {
      using C = std::decay_t<decltype(c)>;
      if constexpr (detail::is_chan_case<C>::value) {
        if (detail::describe(c, descs[n])) arg_of[n++] = pos;
      } else if constexpr (detail::is_default_case<C>::value) {
        default_arg = pos;
      } else {
        deadline = detail::deadline_after(c.d);
        timeout_arg = pos;
      }
    };
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (visit(std::get<I>(all), I), ...);
    }(std::index_sequence_for<Cases...>{});
  }
  ChanStatus status = ChanStatus::success;
  const std::size_t chosen = detail::select_impl(descs, n, kDefault > 0, deadline, &status);
  const std::size_t arg = chosen < n ? arg_of[chosen] : chosen == n ? default_arg : timeout_arg;
  auto dispatch = [&](auto& c, std::size_t pos) {
    if (pos != arg) return;
    using C = std::decay_t<decltype(c)>;
    if constexpr (detail::is_chan_case<C>::value) detail::run_case(c, status);
    else c.fn();
  };
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (dispatch(std::get<I>(all), I), ...);
  }(std::index_sequence_for<Cases...>{});
  return arg;
}

}  // namespace colony
