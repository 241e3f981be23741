// colony::Chan<T>: Go's channels for fibers and threads.
//
//   colony::Chan<int> ch(10);          // buffered (FIFO, 10 slots); Chan<int>() is unbuffered
//   ch.send(1);                        // parks while full (a rendezvous when unbuffered)
//   std::optional<int> v = ch.recv();  // parks while empty; nullopt once closed and drained
//   ch.close();                        // wakes every receiver; parked senders throw
//   for (int x : ch) ...               // receives until closed and drained
//   ch = nullptr;                      // Go's `ch = nil`: blocks for ever, select skips it
//
// A Chan is a handle: copies refer to the same channel (like a Go chan value), and its
// operations are const (they act on the shared channel, not on the handle). Operations park
// a fiber (never its thread) and block a plain OS thread; both may use one channel at once.
// Sending on a closed channel and closing one twice throw colony::ChannelClosed (Go panics).
// The try_/_for/_until forms return a ChanStatus instead of blocking past their deadline.
//
// Nil channels (Go's `var ch chan T`, or `ch = nil` to disable a select case): a Chan made from,
// or assigned, nullptr is nil; copies of it are nil and all nil channels compare equal (and equal
// to nullptr). It owns no channel. send and recv block for ever (a fiber parks until shutdown
// unwinds it; deadlock detection counts it as blocked, as Go does); the _for/_until forms wait
// for the deadline and return timeout; try_send returns full, try_recv empty; close throws
// std::logic_error (Go panics); size and capacity are 0; a select never chooses a nil case.
// Unlike Go's zero value, a default-constructed Chan<T> is an unbuffered channel, not nil.
//
// Semantics follow Go's chan.go: a send to a parked receiver copies straight into it and makes
// it the next fiber to run on the sender's processor (runnext); likewise a receive from a parked
// sender. Invariant (under the channel's lock): at least one of the send and receive queues is
// empty; a buffered channel with parked senders is full, with parked receivers is empty.
// Memory ordering: everything a sender did before send() is visible to the receiver after it
// received that value.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>

#include "colony/sched/deadline.hpp"
#include "colony/sched/fiber.hpp"
#include "colony/sched/wait.hpp"

namespace colony {

// ChannelClosed: a send on a closed channel, or a second close.
class ChannelClosed : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// ChanStatus: outcome of the non-throwing channel operations (Boost.Fiber's channel_op_status).
enum class ChanStatus { success, empty, full, closed, timeout };
const char* to_string(ChanStatus s) noexcept;

namespace detail {

// Waiter::result values written by the party that completes a parked channel operation.
inline constexpr std::uint8_t kChanDone = 1;
inline constexpr std::uint8_t kChanClosed = 2;

// ChanCore: the type-independent part of a channel. Guarded by `lock`.
struct ChanCore {
  explicit ChanCore(std::size_t capacity) : cap(capacity) {}
  sched::SpinLock lock;
  sched::WaitList recvq;   // parked receivers: Waiter::data -> std::optional<T>
  sched::WaitList sendq;   // parked senders:   Waiter::data -> T (moved from)
  std::size_t cap;
  std::size_t count = 0;   // values in the buffer
  bool closed = false;
};

template <class T>
class ChanState : public ChanCore {
 public:
  explicit ChanState(std::size_t capacity)
      : ChanCore(capacity), buf_(capacity ? new std::optional<T>[capacity] : nullptr) {}

  // try_send_locked: with `lock` held; delivers v (moved from on success) to a parked receiver
  // or the buffer. Returns success, full (would block) or closed. The receiver to wake, if
  // any, is returned in *wake (notify it after unlocking).
  ChanStatus try_send_locked(T& v, sched::Waiter** wake) {
    if (closed) return ChanStatus::closed;
    if (sched::Waiter* r = recvq.pop_claimed()) {
      static_cast<std::optional<T>*>(r->data)->emplace(std::move(v));
      r->result = kChanDone;
      *wake = r;
      return ChanStatus::success;
    }
    if (count < cap) {
      buf_[(head_ + count) % cap].emplace(std::move(v));
      ++count;
      return ChanStatus::success;
    }
    return ChanStatus::full;
  }

  // try_recv_locked: with `lock` held; takes a value from the buffer (refilling it from a
  // parked sender) or straight from a parked sender. Returns success, empty or closed (closed
  // only once the buffer is drained). The sender to wake is returned in *wake.
  ChanStatus try_recv_locked(std::optional<T>& out, sched::Waiter** wake) {
    if (count > 0) {
      out.emplace(std::move(*buf_[head_]));
      buf_[head_].reset();
      head_ = (head_ + 1) % cap;
      --count;
      if (sched::Waiter* s = sendq.pop_claimed()) {  // room now: take a parked sender's value
        buf_[(head_ + count) % cap].emplace(std::move(*static_cast<T*>(s->data)));
        ++count;
        s->result = kChanDone;
        *wake = s;
      }
      return ChanStatus::success;
    }
    if (sched::Waiter* s = sendq.pop_claimed()) {
      out.emplace(std::move(*static_cast<T*>(s->data)));
      s->result = kChanDone;
      *wake = s;
      return ChanStatus::success;
    }
    return closed ? ChanStatus::closed : ChanStatus::empty;
  }

 private:
  std::unique_ptr<std::optional<T>[]> buf_;
  std::size_t head_ = 0;
};

// close_core: marks closed and wakes every parked receiver (result closed, slot left empty) and
// sender (result closed: its send throws). Throws ChannelClosed if already closed, and
// std::logic_error if c is null (a nil channel).
void close_core(ChanCore* c);

// nil_wait: a wait that nothing can complete: a send or receive on a nil channel (reason
// chan_send_nil / chan_receive_nil), or a select with no case left (select_no_cases).
// A deadline: waits until then (a fiber sleeps, a thread blocks) and returns timeout.
// sched::kNoDeadline: never returns; a fiber parks until shutdown unwinds it (FiberUnwind), a
// plain thread blocks for good, counted asleep by deadlock detection.
[[gnu::cold]] ChanStatus nil_wait(sched::WaitReason r, std::int64_t deadline_ns);

}  // namespace detail

template <class T>
class Chan {
 public:
  using value_type = T;

  // Chan: a channel with `capacity` buffer slots; 0 (the default) makes it unbuffered.
  explicit Chan(std::size_t capacity = 0)
      : st_(std::make_shared<detail::ChanState<T>>(capacity)) {}
  // Chan(nullptr): a nil channel (see the top of the file); allocates nothing. Also what makes
  // `ch = nullptr` and `ch == nullptr` work. Only nullptr itself: a literal 0 still means
  // capacity 0 (`Chan<int> ch(0)`), and `ch = 0` / `ch == 0` do not compile.
  template <class N>
    requires std::same_as<N, std::nullptr_t>
  Chan(N) noexcept {}

  // send: delivers v, parking while the channel is full (or, unbuffered, until a receiver
  // takes it). Throws ChannelClosed if the channel is or becomes closed.
  void send(T v) const {
    if (send_impl(v, sched::kNoDeadline) == ChanStatus::closed)
      throw ChannelClosed("colony::Chan: send on closed channel");
  }
  // try_send: never blocks. success, full, or closed.
  ChanStatus try_send(T v) const { return try_send_ref(v); }
  // send_for / send_until: as send, giving up at the deadline (timeout). closed instead of
  // throwing.
  template <class Rep, class Period>
  ChanStatus send_for(T v, std::chrono::duration<Rep, Period> d) const {
    return send_impl(v, sched::deadline_after(d));
  }
  template <class Clock, class Dur>
  ChanStatus send_until(T v, std::chrono::time_point<Clock, Dur> t) const {
    return send_impl(v, sched::deadline_at(t));
  }

  // recv: the next value, parking while the channel is empty; nullopt once it is closed and
  // drained.
  std::optional<T> recv() const {
    std::optional<T> out;
    recv_impl(out, sched::kNoDeadline);
    return out;
  }
  // try_recv: never blocks. success (value in out), empty, or closed (and drained).
  ChanStatus try_recv(T& out) const {
    if (!st_) [[unlikely]]
      return ChanStatus::empty;  // nil: never ready
    std::optional<T> v;
    ChanStatus s;
    sched::Waiter* wake = nullptr;
    {
      std::lock_guard<sched::SpinLock> lk(st_->lock);
      s = st_->try_recv_locked(v, &wake);
    }
    if (wake) sched::notify(*wake);
    if (s == ChanStatus::success) out = std::move(*v);
    return s;
  }
  // recv_for / recv_until: as recv, giving up at the deadline (timeout).
  template <class Rep, class Period>
  ChanStatus recv_for(T& out, std::chrono::duration<Rep, Period> d) const {
    return recv_into(out, sched::deadline_after(d));
  }
  template <class Clock, class Dur>
  ChanStatus recv_until(T& out, std::chrono::time_point<Clock, Dur> t) const {
    return recv_into(out, sched::deadline_at(t));
  }

  // close: no more sends; receivers drain the buffer, then get nullopt / closed. Parked senders
  // throw ChannelClosed. Closing twice throws ChannelClosed; closing a nil channel throws
  // std::logic_error.
  void close() const { detail::close_core(st_.get()); }
  // is_closed: whether close() was called (false for a nil channel).
  bool is_closed() const {
    if (!st_) [[unlikely]]
      return false;
    std::lock_guard<sched::SpinLock> lk(st_->lock);
    return st_->closed;
  }
  // size: values buffered now; capacity: buffer slots (0: unbuffered). Both 0 for a nil channel.
  std::size_t size() const {
    if (!st_) [[unlikely]]
      return 0;
    std::lock_guard<sched::SpinLock> lk(st_->lock);
    return st_->count;
  }
  std::size_t capacity() const noexcept { return st_ ? st_->cap : 0; }

  // Handles are equal when they refer to the same channel, or are both nil.
  friend bool operator==(const Chan& a, const Chan& b) noexcept { return a.st_ == b.st_; }
  template <class N>
    requires std::same_as<N, std::nullptr_t>
  friend bool operator==(const Chan& a, N) noexcept { return a.st_ == nullptr; }

  // Range-for: receives until the channel is closed and drained.
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(const Chan* c) : c_(c) { ++*this; }
    T& operator*() { return *v_; }
    iterator& operator++() {
      v_ = c_->recv();
      if (!v_) c_ = nullptr;
      return *this;
    }
    bool operator==(const iterator& o) const noexcept { return c_ == o.c_; }

   private:
    const Chan* c_ = nullptr;
    std::optional<T> v_;
  };
  iterator begin() const { return iterator(this); }
  iterator end() const { return iterator(); }

  // For select (colony/select.hpp): the channel, or nullptr for a nil channel.
  detail::ChanState<T>* state() const noexcept { return st_.get(); }

 private:
  ChanStatus try_send_ref(T& v) const {
    if (!st_) [[unlikely]]
      return ChanStatus::full;  // nil: never ready
    sched::Waiter* wake = nullptr;
    ChanStatus s;
    {
      std::lock_guard<sched::SpinLock> lk(st_->lock);
      s = st_->try_send_locked(v, &wake);
    }
    if (wake) sched::notify(*wake);
    return s;
  }

  ChanStatus send_impl(T& v, std::int64_t deadline_ns) const {
    if (!st_) [[unlikely]]
      return detail::nil_wait(sched::WaitReason::chan_send_nil, deadline_ns);
    detail::ChanState<T>& c = *st_;
    sched::Waiter* wake = nullptr;
    c.lock.lock();
    ChanStatus s = c.try_send_locked(v, &wake);
    if (s != ChanStatus::full) {
      c.lock.unlock();
      if (wake) sched::notify(*wake);
      return s;
    }
    sched::Waiter w;
    w.data = &v;
    c.sendq.push_back(&w);
    if (!sched::wait_until(w, c.lock, sched::WaitReason::chan_send, deadline_ns))
      return ChanStatus::timeout;
    return w.result == detail::kChanDone ? ChanStatus::success : ChanStatus::closed;
  }

  ChanStatus recv_impl(std::optional<T>& out, std::int64_t deadline_ns) const {
    if (!st_) [[unlikely]]
      return detail::nil_wait(sched::WaitReason::chan_receive_nil, deadline_ns);
    detail::ChanState<T>& c = *st_;
    sched::Waiter* wake = nullptr;
    c.lock.lock();
    ChanStatus s = c.try_recv_locked(out, &wake);
    if (s != ChanStatus::empty) {
      c.lock.unlock();
      if (wake) sched::notify(*wake);
      return s;
    }
    sched::Waiter w;
    w.data = &out;
    c.recvq.push_back(&w);
    if (!sched::wait_until(w, c.lock, sched::WaitReason::chan_receive, deadline_ns))
      return ChanStatus::timeout;
    return w.result == detail::kChanDone ? ChanStatus::success : ChanStatus::closed;
  }

  ChanStatus recv_into(T& out, std::int64_t deadline_ns) const {
    std::optional<T> v;
    ChanStatus s = recv_impl(v, deadline_ns);
    if (s == ChanStatus::success) out = std::move(*v);
    return s;
  }

  std::shared_ptr<detail::ChanState<T>> st_;  // null: a nil channel
};

}  // namespace colony
