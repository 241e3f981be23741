// The socket core every colony::net handle shares: Socket, Op and helpers (private to runtime).
//
// Every socket is a detail::Socket on the heap: the fd, its PollDesc, the two deadlines and
// `refs`, the count of calls in progress with a "closing" bit on top (Go's fdMutex, reduced to
// what we need). A call takes a reference (Op) for its whole duration, so close() can tell when
// the fd and the PollDesc are no longer used:
//
//   call:  refs++ (fails if closing) ; loop { syscall ; on EAGAIN: check closing, deadline,
//          context ; poll_wait } ; refs--
//   close: set closing ; loop { poll_interrupt(read), poll_interrupt(write) ; until refs == 0 } ;
//          poll_close ; ::close
//
// poll_interrupt only wakes the calls already parked; a call between its check of `closing` and
// its poll_wait would miss it, which is why close() repeats the interrupt until the calls have
// left (they notice `closing` at their next check). The Socket object stays alive until the
// owning handle is destroyed, so a call that races with close() never touches freed memory.
//
// Context cancellation goes through after_func: the first time a call with a Context must wait,
// it registers poll_interrupt(pd, mode) to run at cancellation, and unregisters it when it
// returns. Any wake-up is only a hint: the call retries its syscall and re-checks everything.
//
// errno is read right after each syscall, before anything that can park (HACKING rule 8).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <system_error>

#include "colony/net.hpp"
#include "colony/sched/deadline.hpp"
#include "colony/sched/netpoll.hpp"

namespace colony::net::detail {

using sched::PollMode;

inline constexpr std::uint32_t kClosing = 1u << 31;

// last_errno: the calling thread's errno, looked up afresh at every call. glibc declares
// __errno_location() const, so within one function the compiler may reuse errno's address from
// before a park, when the fiber ran on another thread (it did: a connect read the old thread's
// EINPROGRESS after its wait). Reading errno right after the syscall is not enough: every read
// goes through this opaque call (no inlining; the asm keeps it from being treated as pure).
[[gnu::noinline]] int last_errno() noexcept;

// Socket: the shared core of every handle (see the top of the file).
struct Socket {
  int fd = -1;
  sched::PollDesc* pd = nullptr;
  bool owns_fd = true;                 // false for PollFd
  const char* proto = "";              // "tcp", "udp", "" (foreign fd): for messages
  std::atomic<std::uint32_t> refs{0};  // calls in progress | kClosing
  // per PollMode
  std::atomic<std::int64_t> deadline[2] = {sched::kNoDeadline, sched::kNoDeadline};
  std::atomic<std::uint64_t> backoffs{0};                    // listeners: accept back-offs
  Address peer;                                              // connected streams
  std::atomic<bool> closed{false};                           // close() has finished

  bool closing() const noexcept { return refs.load(std::memory_order_acquire) & kClosing; }
  void close() noexcept;
};

// throw_errno, throw_code, throw_closed: std::system_error with a message that names the call,
// the protocol and the addresses ("read tcp 127.0.0.1:41234->127.0.0.1:8080").
[[noreturn]] void throw_errno(int err, const char* op, const Socket* s,
                              const Address* remote = nullptr);
[[noreturn]] void throw_code(std::error_code ec, const char* op, const Socket* s,
                             const Address* remote = nullptr);
[[noreturn]] void throw_closed(const char* op, const Socket* s);

// make_socket: wraps a non-blocking fd (closing it if registration fails).
SocketPtr make_socket(int fd, const char* proto, bool owns_fd = true);

// checked: the socket of a handle; throws errc::bad_file_descriptor if it has none.
inline Socket& checked(const SocketPtr& s, const char* op) {
  if (!s)
    throw std::system_error(std::make_error_code(std::errc::bad_file_descriptor),
                            std::string("colony::net: ") + op + ": socket not open");
  return *s;
}

// Op: one call in progress on a socket (see the top of the file).
class Op {
 public:
  Op(Socket& s, PollMode mode, const Context* ctx, const char* name)
      : s_(s), mode_(mode), ctx_(ctx), name_(name) {
    if (s_.refs.fetch_add(1, std::memory_order_acq_rel) & kClosing) {
      s_.refs.fetch_sub(1, std::memory_order_acq_rel);
      throw_closed(name_, &s_);
    }
  }
  ~Op() {
    if (stop_) stop_();
    s_.refs.fetch_sub(1, std::memory_order_acq_rel);
  }
  Op(const Op&) = delete;
  Op& operator=(const Op&) = delete;

  // wait: after EAGAIN, until the fd may be ready. Returns to retry the syscall; throws when
  // the socket is closed, its deadline passes (errc::timed_out) or ctx is done.
  void wait();

  // wait_until: parks until a hint (readiness, an interruption: returns true) or until
  // `deadline_ns` passes (returns false). Throws when the socket is closed or ctx is done.
  bool wait_until(std::int64_t deadline_ns);

 private:
  Socket& s_;
  PollMode mode_;
  const Context* ctx_;
  const char* name_;
  bool armed_ = false;
  std::int64_t cdl_ = sched::kNoDeadline;
  std::function<bool()> stop_;
};

// set_socket_deadline: a handle's set_*_deadline (nothing for a handle without a socket).
void set_socket_deadline(Socket* s, PollMode mode, Deadline t) noexcept;

// setopt: setsockopt of an int option; throws std::system_error naming `what`.
void setopt(int fd, int level, int name, int value, const char* what);

// sockname: the address the socket is bound to (getsockname).
Address sockname(const Socket& s);

// open_bound: a socket of `type` bound to addr, with the options applied.
int open_bound(const Address& addr, int type, const ListenOptions& opts, const char* op);

}  // namespace colony::net::detail
