// colony::Future<R>: the result of colony::spawn. get() waits for the fiber and returns its
// value or rethrows its exception. Waiting parks a fiber, or blocks a plain thread.
// colony::Promise<R>: the producing side, for results that do not come from spawn (the pool's
// submit_future).
// wait(ctx) also gives up when a colony::Context is done; this header only declares Context
// (colony/context.hpp includes this one, through go.hpp).
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include "colony/sched/deadline.hpp"
#include "colony/sched/wait.hpp"

namespace colony {

class Context;  // colony/context.hpp
template <class R>
class Promise;

namespace detail {

std::exception_ptr unwound_error();  // "the runtime shut down before the fiber finished"

// FutureCore: readiness, waiters and the exception; FutureState<R> adds the value.
class FutureCore {
 public:
  bool is_ready() const noexcept { return ready_.load(std::memory_order_acquire); }
  void wait();
  bool wait_until_ns(std::int64_t deadline_ns);  // false on timeout
  std::error_code wait(const Context& ctx);      // ctx.err() if ctx ends first
  void set_exception(std::exception_ptr e) noexcept;
  std::exception_ptr exception() const noexcept { return error_; }

 protected:
  // complete: publish readiness and wake every waiter. Call after storing the result.
  void complete() noexcept;
  bool try_begin() noexcept;  // claims the right to set the result (once)

  template <class R>
  friend class colony::Promise;

  // await_ready: after seeing done_ under lock_, wait out the completer's last steps (it stores
  // ready_ after releasing lock_, as its last access to *this; see complete()).
  void await_ready() const noexcept;

  sched::SpinLock lock_;
  sched::WaitList waiters_;
  bool done_ = false;  // guarded by lock_: complete() has taken the waiters; no new one may queue
  std::atomic<bool> ready_{false};  // stored last: once true, the completer no longer touches *this
  std::atomic<bool> claimed_{false};
  bool retrieved_ = false;  // Promise::get_future was called (the promise's side only)
  std::exception_ptr error_;
};

template <class R>
class FutureState : public FutureCore {
 public:
  template <class... A>
  void set_value(A&&... a) {
    if (!try_begin()) return;
    value_.emplace(std::forward<A>(a)...);
    complete();
  }
  R take() { return std::move(*value_); }

 private:
  std::optional<R> value_;
};

template <>
class FutureState<void> : public FutureCore {
 public:
  void set_value() {
    if (!try_begin()) return;
    complete();
  }
  void take() {}
};

template <class R>
class FutureState<R&> : public FutureCore {
 public:
  void set_value(R& r) {
    if (!try_begin()) return;
    ptr_ = &r;
    complete();
  }
  R& take() { return *ptr_; }

 private:
  R* ptr_ = nullptr;
};

}  // namespace detail

template <class R>
class Future {
 public:
  Future() = default;
  explicit Future(std::shared_ptr<detail::FutureState<R>> st) : st_(std::move(st)) {}
  Future(Future&&) noexcept = default;
  Future& operator=(Future&&) noexcept = default;
  Future(const Future&) = delete;
  Future& operator=(const Future&) = delete;

  // valid: refers to a result that get() has not taken yet.
  bool valid() const noexcept { return st_ != nullptr; }
  // is_ready: the fiber has finished (returned or thrown).
  bool is_ready() const { return state().is_ready(); }
  // wait: until the fiber has finished.
  void wait() const { state().wait(); }
  // wait(ctx): wait() that gives up when ctx is done: an empty error_code if the fiber has
  // finished (at once if it had, even with ctx done), else ctx.err() (context_errc::canceled or
  // ::deadline_exceeded). The Go spelling is a select on the result channel and ctx.Done().
  [[nodiscard]] std::error_code wait(const Context& ctx) const { return state().wait(ctx); }
  template <class Rep, class Period>
  std::future_status wait_for(std::chrono::duration<Rep, Period> d) const {
    return wait_until_ns(sched::deadline_after(d));
  }
  template <class Clock, class Dur>
  std::future_status wait_until(std::chrono::time_point<Clock, Dur> t) const {
    return wait_until_ns(sched::deadline_at(t));
  }
  // wait_until_ns: until the fiber has finished or the runtime clock reaches deadline_ns.
  std::future_status wait_until_ns(std::int64_t deadline_ns) const {
    return state().wait_until_ns(deadline_ns) ? std::future_status::ready
                                              : std::future_status::timeout;
  }
  // get: waits, then returns the value or rethrows the fiber's exception. Once only:
  // afterwards valid() is false.
  R get() {
    state().wait();
    auto st = std::move(st_);
    if (auto e = st->exception()) std::rethrow_exception(e);
    if constexpr (std::is_void_v<R>) return;
    else return st->take();
  }

 private:
  detail::FutureState<R>& state() const {
    if (!st_) throw std::future_error(std::future_errc::no_state);
    return *st_;
  }
  std::shared_ptr<detail::FutureState<R>> st_;
};

// Promise<R>: the producing side of a Future, as std::promise. get_future() once, then set the
// result with set_value, set_exception or run; the first result set wins and later ones are
// ignored. Destroyed without a result, the future receives
// std::future_error(future_errc::broken_promise). Move-only; setting the result may happen on
// any fiber or thread, and wakes the future's waiters.
template <class R>
class Promise {
 public:
  Promise() : st_(std::make_shared<detail::FutureState<R>>()) {}
  Promise(Promise&&) noexcept = default;
  Promise& operator=(Promise&& o) noexcept {
    if (this != &o) {
      abandon();
      st_ = std::move(o.st_);
    }
    return *this;
  }
  Promise(const Promise&) = delete;
  Promise& operator=(const Promise&) = delete;
  ~Promise() { abandon(); }

  // get_future: the future of this promise's result. Throws std::future_error:
  // future_already_retrieved the second time, no_state on a moved-from promise.
  Future<R> get_future() {
    if (!st_) throw std::future_error(std::future_errc::no_state);
    if (st_->retrieved_) throw std::future_error(std::future_errc::future_already_retrieved);
    st_->retrieved_ = true;
    return Future<R>(st_);
  }
  // set_value / set_exception: store the result (once) and wake the future's waiters.
  template <class... A>
  void set_value(A&&... a) {
    state().set_value(std::forward<A>(a)...);
  }
  void set_exception(std::exception_ptr e) { state().set_exception(std::move(e)); }
  // run: invokes f() and stores what it returns, or the exception it throws. If the runtime
  // shuts down while f is parked (colony::FiberUnwind), the future receives a
  // std::runtime_error ("the runtime shut down before the fiber finished") and FiberUnwind
  // propagates. What a spawned fiber does with its function.
  template <class F>
  void run(F&& f) {
    detail::FutureState<R>& st = state();
    try {
      if constexpr (std::is_void_v<R>) {
        std::invoke(std::forward<F>(f));
        st.set_value();
      } else {
        st.set_value(std::invoke(std::forward<F>(f)));
      }
    } catch (const FiberUnwind&) {
      st.set_exception(detail::unwound_error());
      throw;
    } catch (...) {
      st.set_exception(std::current_exception());
    }
  }

 private:
  detail::FutureState<R>& state() const {
    if (!st_) throw std::future_error(std::future_errc::no_state);
    return *st_;
  }
  void abandon() noexcept {
    if (st_ && !st_->is_ready())
      st_->set_exception(
          std::make_exception_ptr(std::future_error(std::future_errc::broken_promise)));
  }

  std::shared_ptr<detail::FutureState<R>> st_;
};

}  // namespace colony
