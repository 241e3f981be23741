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
//
// Values (Go's context.WithValue), with typed keys: two libraries cannot collide, no cast:
//
//   inline const colony::ContextKey<std::string> request_id;   // one object per key
//   colony::Context ctx = colony::with_value(parent, request_id, std::string("r-17"));
//   if (const std::string* id = ctx.value(request_id)) ...     // nullptr if nobody set it
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>
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
struct ContextValue;
}

// ContextKey<T>: a key for with_value / Context::value whose values are T. Keys are compared by
// identity (the object's address), as Go recommends an unexported key type per package: make
// one object per key (a namespace-scope `inline const` variable, or a static member) and keep
// it alive as long as contexts may be looked up with it. Neither copyable nor movable.
template <class T>
class ContextKey {
  static_assert(std::is_object_v<T> && !std::is_array_v<T>,
                "colony::ContextKey<T>: T must be an object type (store a pointer for a "
                "reference, a std::array for an array)");

 public:
  constexpr ContextKey() noexcept = default;
  ContextKey(const ContextKey&) = delete;
  ContextKey& operator=(const ContextKey&) = delete;

 private:
  // A writable byte: no linker folds two keys together as identical read-only constants.
  mutable char unique_ = 0;
};

namespace detail {
// ContextValue: one with_value, in a chain that ends at the nearest ancestor's value. Immutable
// once made; shared by every context derived from it, freed with the last one.
struct ContextValue {
  const void* key;                             // the ContextKey's address
  std::shared_ptr<const ContextValue> parent;  // the next value up, or null
};
template <class T>
struct ContextValueOf : ContextValue {
  template <class V>
  ContextValueOf(const void* k, std::shared_ptr<const ContextValue> p, V&& v)
      : ContextValue{k, std::move(p)}, value(std::forward<V>(v)) {}
  T value;
};
}  // namespace detail

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
  // value: the value with_value set for `key` on this context or the nearest ancestor that set
  // one; nullptr if none did (Go's ctx.Value(key), typed). The pointer is valid while this
  // context, or any context derived from the one that set it, lives. O(number of values above).
  template <class T>
  const T* value(const ContextKey<T>& key) const noexcept {
    for (const detail::ContextValue* v = vals_.get(); v; v = v->parent.get())
      if (v->key == &key) return &static_cast<const detail::ContextValueOf<T>*>(v)->value;
    return nullptr;
  }

 private:
  friend Context background();
  friend std::pair<Context, std::function<void()>> with_cancel(const Context&);
  friend std::pair<Context, std::function<void()>> with_deadline(
      const Context&, std::chrono::steady_clock::time_point);
  friend std::function<bool()> after_func(const Context&, std::function<void()>);
  template <class T>
  friend Context with_value(const Context&, const ContextKey<T>&, std::type_identity_t<T>);
  explicit Context(std::shared_ptr<detail::ContextState> s,
                   std::shared_ptr<const detail::ContextValue> v = nullptr)
      : st_(std::move(s)), vals_(std::move(v)) {}
  // st_: cancellation, deadline, done (a value context shares its parent's). vals_: the
  // nearest value, null for a context under which with_value was never called.
  std::shared_ptr<detail::ContextState> st_;
  std::shared_ptr<const detail::ContextValue> vals_;
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

// with_value: a child of parent that carries `value` for `key` (Go's context.WithValue). It has
// no cancel function and no state of its own: its done(), err() and deadline() are the parent's
// (done() is the same channel), so it is cancelled exactly when the parent is. value(key) on it,
// or on any context derived from it (with_cancel, with_timeout, another with_value, a Group's),
// finds `value`, unless a nearer with_value set the same key. The value is moved (or copied)
// in once, never modified, and destroyed with the last context that refers to it. As Go says:
// use values for request-scoped data that crosses APIs, not to pass optional parameters.
template <class T>
Context with_value(const Context& parent, const ContextKey<T>& key, std::type_identity_t<T> value) {
  return Context(parent.st_,
                 std::make_shared<detail::ContextValueOf<T>>(&key, parent.vals_, std::move(value)));
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
    sched::launch(
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
