// colony::Context: cancellation and deadlines across fibers, as Go's context package; and
// colony::Group, Go's errgroup.
//
//   auto [ctx, cancel] = colony::with_timeout(colony::background(), 100ms);
//   colony::select(colony::on_recv(results, ...), colony::on_recv(ctx.done(), [&](auto) {
//     /* ctx.err() == colony::context_errc::deadline_exceeded */ }));
//
// A Context is a handle (copies share the state) and safe to use from any fiber or thread.
// Cancelling a context cancels all contexts derived from it; done() is a channel closed at
// cancellation, usable in select; err() says why (an std::error_code of category "context").
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>
#include <variant>

#include "colony/chan.hpp"
#include "colony/go.hpp"
#include "colony/sched/deadline.hpp"

namespace colony {

// context_errc: why a context is done (Go's context.Canceled and context.DeadlineExceeded).
enum class context_errc { canceled = 1, deadline_exceeded = 2 };
const std::error_category& context_category() noexcept;
inline std::error_code make_error_code(context_errc e) noexcept {
  return {static_cast<int>(e), context_category()};
}

namespace detail {
struct ContextState;
}

class Context {
 public:
  // Context(): the background context.
  Context();
  // done: closed when the context is cancelled (never, for background()).
  const Chan<std::monostate>& done() const noexcept;
  // err: empty while not done; then context_errc::canceled or ::deadline_exceeded.
  std::error_code err() const;
  bool is_done() const { return static_cast<bool>(err()); }
  // deadline: when it will be cancelled on its own, if it has a deadline.
  std::optional<std::chrono::steady_clock::time_point> deadline() const noexcept;

 private:
  friend Context background();
  friend std::pair<Context, std::function<void()>> with_cancel(const Context&);
  friend std::pair<Context, std::function<void()>> with_deadline(
      const Context&, std::chrono::steady_clock::time_point);
  friend std::function<bool()> after_func(const Context&, std::function<void()>);
  explicit Context(std::shared_ptr<detail::ContextState> s) : st_(std::move(s)) {}
  std::shared_ptr<detail::ContextState> st_;
};

// background: the root context, never cancelled.
Context background();
// with_cancel: a child cancelled by calling the returned function (idempotent), or with its
// parent. Call the function when done with the context: it frees the child's registration.
std::pair<Context, std::function<void()>> with_cancel(const Context& parent);
// with_deadline / with_timeout: also cancelled (deadline_exceeded) at the time point / after d.
std::pair<Context, std::function<void()>> with_deadline(const Context& parent,
                                                       std::chrono::steady_clock::time_point t);
std::pair<Context, std::function<void()>> with_timeout(const Context& parent,
                                                      std::chrono::nanoseconds d);
// The same for any clock and duration, saturating (colony/sched/deadline.hpp): a deadline beyond
// the clock's range is none, a past one is already exceeded.
template <class Clock, class Dur>
std::pair<Context, std::function<void()>> with_deadline(const Context& parent,
                                                       std::chrono::time_point<Clock, Dur> t) {
  const std::int64_t when = sched::deadline_at(t);
  using Steady = std::chrono::steady_clock;
  return with_deadline(parent, when == sched::kNoDeadline
                                   ? Steady::time_point::max()
                                   : Steady::time_point(std::chrono::nanoseconds(when)));
}
template <class Rep, class Period>
std::pair<Context, std::function<void()>> with_timeout(const Context& parent,
                                                      std::chrono::duration<Rep, Period> d) {
  return with_timeout(parent, sched::saturate(d));
}

// after_func: arranges for f() to run once ctx is done (Go 1.21's context.AfterFunc); runs it at
// once, on the calling thread, if ctx is already done. f runs on the thread that cancels the
// context (possibly inside a timer callback, for a deadline): it must be short and must not
// block (to block, hand the work to a fiber, e.g. with Chan::try_send). Returns `stop`: stop()
// unregisters f and returns true if f had not started; false if it has already run, or is
// running, in which case stop() waits until f has returned (unlike Go: after stop(), f is
// never running, so it may use objects the caller frees next; do not call stop() from f).
// Registrations on background() cost nothing (it is never done). Safe from any fiber or thread.
std::function<bool()> after_func(const Context& ctx, std::function<void()> f);

// Group: fibers started together; wait() returns when all have finished and rethrows the first
// exception any of them threw. The first exception also cancels the group's context, so the
// others can stop early (Go's errgroup.WithContext).
class Group {
 public:
  explicit Group(const Context& parent = background());
  ~Group();  // waits for the fibers still running (never rethrows)
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  // context: cancelled when a fiber of the group throws, or after wait() returns.
  const Context& context() const noexcept { return ctx_; }
  // go: runs f() — or f(context()) if it takes a Context — in a new fiber of the group.
  template <class F>
  void go(F&& f, const SourceLocation& loc = SourceLocation::current());
  // wait: until every fiber of the group has finished; rethrows the first exception.
  void wait();

 private:
  void add();
  void finish(std::exception_ptr e) noexcept;

  Context ctx_;
  std::function<void()> cancel_;
  sched::SpinLock lock_;
  sched::WaitList waiters_;
  long running_ = 0;
  std::exception_ptr first_;
};

template <class F>
void Group::go(F&& f, const SourceLocation& loc) {
  add();
  try {
    detail::start_fiber(
        sched::current_or_default(), {},
        [this, fn = std::forward<F>(f)]() mutable {
          std::exception_ptr e;
          try {
            if constexpr (std::is_invocable_v<decltype(fn)&, const Context&>) fn(ctx_);
            else fn();
          } catch (const FiberUnwind&) {
            finish(nullptr);
            throw;
          } catch (...) {
            e = std::current_exception();
          }
          finish(e);
        },
        loc);
  } catch (...) {
    finish(nullptr);
    throw;
  }
}

}  // namespace colony

template <>
struct std::is_error_code_enum<colony::context_errc> : std::true_type {};
