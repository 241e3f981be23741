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
//
// Select over a run-time set of cases (Go's reflect.Select), for channels of one element type:
//
//   std::vector<colony::SelectCase<int>> cases;
//   for (auto& ch : inputs) cases.push_back(colony::SelectCase<int>::recv(ch));
//   cases.push_back(colony::SelectCase<int>::send(out, 7));
//   colony::Selected<int> r = colony::select(cases);        // or a std::span of cases
//   if (r.index < inputs.size() && !r.ok) cases[r.index].set_chan(nullptr);  // closed: off
//
// It blocks until one case can proceed and returns which (Selected::index, the position in
// `cases`), with the value for a receive (nullopt, ok == false, once the channel is closed).
// Fair as the static form: among ready cases one is chosen uniformly at random. Trailing
// on_default(fn) and on_timeout(d, fn) work as in the static form (index is cases.size() for the
// default, cases.size() + 1 for the timeout; their flags in Selected say so too). A case whose
// channel is nil is never chosen. A send case's value is moved to the receiver when the case is
// taken; the case then holds no value until set_value() gives it one (selecting with an empty
// send case throws std::logic_error). Cases on a closed channel: as in the static form.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

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
// the default case, n + 1 for the timeout. sched::kNoDeadline: none.
std::size_t select_impl(SelectCase* cases, std::size_t n, bool has_default,
                        std::int64_t deadline_ns, ChanStatus* status);

// The case refers to the caller's channel handle (no reference count is touched): it lives for
// the select's full expression, as the temporaries made by on_recv/on_send do.
template <class T, class F>
struct RecvCase {
  const Chan<T>* ch;
  F fn;
  std::optional<T> slot{};
};
template <class T, class F>
struct SendCase {
  const Chan<T>* ch;
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
  ChanState<T>* st = c.ch->state();
  if (!st) [[unlikely]]
    return false;
  out = {st, false, &c.slot, &select_try_op<T>};
  return true;
}
template <class T, class F>
bool describe(SendCase<T, F>& c, SelectCase& out) {
  ChanState<T>* st = c.ch->state();
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

template <class T> struct SelectCaseAccess;
template <class C> struct is_case_range : std::false_type {};

}  // namespace detail

// on_recv: a receive case; fn(std::optional<T>) gets the value, or nullopt if the channel closed.
// Cases refer to the channel handle they were made from: make them in the select call.
template <class T, class F = detail::Noop>
detail::RecvCase<T, std::decay_t<F>> on_recv(const Chan<T>& ch, F&& fn = {}) {
  return {&ch, std::forward<F>(fn)};
}
// on_send: a send case of v; fn() runs once it is sent.
template <class T, class U, class F = detail::Noop>
detail::SendCase<T, std::decay_t<F>> on_send(const Chan<T>& ch, U&& v, F&& fn = {}) {
  return {&ch, T(std::forward<U>(v)), std::forward<F>(fn)};
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
  requires(!(detail::is_case_range<std::remove_cvref_t<Cases>>::value || ...))
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
  std::int64_t deadline = sched::kNoDeadline;
  std::size_t default_arg = 0, timeout_arg = 0;
  {
    auto visit = [&](auto& c, std::size_t pos) {
      using C = std::decay_t<decltype(c)>;
      if constexpr (detail::is_chan_case<C>::value) {
        if (detail::describe(c, descs[n])) arg_of[n++] = pos;
      } else if constexpr (detail::is_default_case<C>::value) {
        default_arg = pos;
      } else {
        deadline = sched::deadline_after(c.d);
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

// SelectCase<T>: one case of a select over a run-time set of cases (Go's reflect.SelectCase).
// A receive case receives into itself; a send case holds the value it sends.
template <class T>
class SelectCase {
 public:
  enum class Dir : std::uint8_t { recv, send };

  static SelectCase recv(Chan<T> ch) { return SelectCase(std::move(ch), Dir::recv); }
  template <class U>
  static SelectCase send(Chan<T> ch, U&& v) {
    SelectCase c(std::move(ch), Dir::send);
    c.slot_.emplace(std::forward<U>(v));
    return c;
  }

  Dir dir() const noexcept { return dir_; }
  const Chan<T>& chan() const noexcept { return ch_; }
  // nullptr turns the case off (Go: cases[i].Chan = reflect.Value{} or a nil channel).
  void set_chan(Chan<T> ch) noexcept { ch_ = std::move(ch); }
  // A send case's value: set_value gives it the next one to send; has_value is false once sent.
  template <class U>
  void set_value(U&& v) {
    if (dir_ != Dir::send) throw std::logic_error("colony::SelectCase::set_value: not a send case");
    slot_.emplace(std::forward<U>(v));
  }
  bool has_value() const noexcept { return dir_ == Dir::send && slot_.has_value(); }

 private:
  friend struct detail::SelectCaseAccess<T>;
  SelectCase(Chan<T> ch, Dir d) : ch_(std::move(ch)), dir_(d) {}
  Chan<T> ch_;
  Dir dir_;
  std::optional<T> slot_;  // send: the value to send; recv: where the value lands
};

// Selected<T>: what a select over a run-time set of cases did.
template <class T>
struct Selected {
  std::size_t index = 0;     // the case taken; cases.size(): on_default; cases.size() + 1: on_timeout
  std::optional<T> value;    // a receive case: the value, or nullopt when the channel was closed
  bool ok = false;           // Go's recvOK: a value was received (a send case taken: true)
  bool defaulted = false;    // on_default was taken
  bool timed_out = false;    // on_timeout was taken
};

namespace detail {

template <class T>
struct SelectCaseAccess {
  static std::optional<T>& slot(::colony::SelectCase<T>& c) noexcept { return c.slot_; }
};
template <class T, std::size_t E> struct is_case_range<std::span<::colony::SelectCase<T>, E>> : std::true_type {};
template <class T, class A> struct is_case_range<std::vector<::colony::SelectCase<T>, A>> : std::true_type {};

// Inline room for this many cases; larger sets take one allocation per call.
inline constexpr std::size_t kInlineCases = 16;

template <class X>
class CaseBuffer {
 public:
  explicit CaseBuffer(std::size_t n) {
    if (n > kInlineCases) heap_.reset(new X[n]);
    p = heap_ ? heap_.get() : inline_;
  }
  CaseBuffer(const CaseBuffer&) = delete;
  CaseBuffer& operator=(const CaseBuffer&) = delete;

 private:
  X inline_[kInlineCases];
  std::unique_ptr<X[]> heap_;

 public:
  X* p = nullptr;
};

}  // namespace detail

template <class T, std::size_t E, class... Opts>
Selected<T> select(std::span<SelectCase<T>, E> cases, Opts&&... opts) {
  constexpr std::size_t kDefault = (0 + ... + (detail::is_default_case<std::decay_t<Opts>>::value ? 1 : 0));
  constexpr std::size_t kTimeout = (0 + ... + (detail::is_timeout_case<std::decay_t<Opts>>::value ? 1 : 0));
  static_assert(kDefault + kTimeout == sizeof...(Opts),
                "colony::select(cases, ...): after the cases come only on_default and on_timeout");
  static_assert(kDefault <= 1, "colony::select: at most one on_default");
  static_assert(kTimeout <= 1, "colony::select: at most one on_timeout");

  const std::size_t total = cases.size();
  detail::CaseBuffer<detail::SelectCase> descs(total);
  detail::CaseBuffer<std::size_t> index_of(total);  // described case -> position in `cases`
  std::size_t n = 0;
  for (std::size_t i = 0; i < total; ++i) {
    SelectCase<T>& c = cases[i];
    detail::ChanState<T>* st = c.chan().state();
    if (!st) continue;  // a nil channel: never chosen
    std::optional<T>& slot = detail::SelectCaseAccess<T>::slot(c);
    const bool is_send = c.dir() == SelectCase<T>::Dir::send;
    void* elem;
    if (is_send) {
      if (!slot) throw std::logic_error("colony::select: a send case has no value (it was sent; set_value)");
      elem = &*slot;
    } else {
      slot.reset();
      elem = &slot;
    }
    descs.p[n] = {st, is_send, elem, &detail::select_try_op<T>};
    index_of.p[n++] = i;
  }
  std::int64_t deadline = sched::kNoDeadline;
  auto timeout_of = [&](auto& o) {
    if constexpr (detail::is_timeout_case<std::decay_t<decltype(o)>>::value)
      deadline = sched::deadline_after(o.d);
  };
  (timeout_of(opts), ...);
  (void)timeout_of;  // unused when no option is given
  ChanStatus status = ChanStatus::success;
  const std::size_t chosen = detail::select_impl(descs.p, n, kDefault > 0, deadline, &status);
  Selected<T> r;
  if (chosen < n) {
    r.index = index_of.p[chosen];
    SelectCase<T>& c = cases[r.index];
    std::optional<T>& slot = detail::SelectCaseAccess<T>::slot(c);
    if (c.dir() == SelectCase<T>::Dir::send) {
      if (status == ChanStatus::closed) throw ChannelClosed("colony::select: send on closed channel");
      slot.reset();  // moved to the receiver
      r.ok = true;
    } else {
      r.ok = status == ChanStatus::success;
      r.value = std::move(slot);
      slot.reset();
    }
    return r;
  }
  const bool is_default = chosen == n;
  r.index = is_default ? total : total + 1;
  r.defaulted = is_default;
  r.timed_out = !is_default;
  auto fire = [&](auto& o) {
    using O = std::decay_t<decltype(o)>;
    if (detail::is_default_case<O>::value == is_default) o.fn();
  };
  (fire(opts), ...);
  (void)fire;
  return r;
}

template <class T, class A, class... Opts>
Selected<T> select(std::vector<SelectCase<T>, A>& cases, Opts&&... opts) {
  return select(std::span<SelectCase<T>>(cases), std::forward<Opts>(opts)...);
}

}  // namespace colony
