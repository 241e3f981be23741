// The per-fd state of the hooks: a table indexed by fd number (fd numbers are dense), in chunks
// allocated on first use and never freed, so an entry's address is stable and a lookup is two
// loads. Safe from any thread; usable before main (the top level is constant-initialised).
//
// What an entry knows (docs/hooks.md, "Per-fd state"):
//   * kind: socket or not, from fstat on first use; set at once by the hooked socket(),
//     socketpair(), accept() and accept4(); forgotten (unknown) by the hooked close(), dup2(),
//     dup3() and dup(), so a reused number is classified again.
//   * the netpoller registration (pd) while fibers wait on the fd: opened by the first waiter,
//     closed by the last (so no PollDesc outlives the waits of its runtime);
//   * nb_holders / saved_nonblock: connect and accept make a blocking socket non-blocking for the
//     duration of one attempt; meanwhile the caller's own mode is the saved one.
//   * closing: a close/dup2 onto the fd is waiting for the fibers parked on it to leave.
// The O_NONBLOCK flag the caller set is not stored: it is read with fcntl(F_GETFL) when a call
// would have to wait, so fcntl, ioctl(FIONBIO) and SOCK_NONBLOCK need no hooks.
#pragma once

#include <atomic>
#include <cstdint>

#include "colony/sched/netpoll.hpp"

namespace colony::hooks::detail {

// Lock: a test-and-test-and-set lock with sched_yield after a while; held only for short
// sections that never park (an fcntl, an epoll_ctl at most). Header-only, unlike
// sched::SpinLock, so that the LD_PRELOAD object needs nothing more from the scheduler.
class Lock {
 public:
  void lock() noexcept;
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

enum class Kind : std::uint8_t { unknown = 0, socket = 1, other = 2 };

struct Fd {
  std::atomic<Kind> kind{Kind::unknown};
  Lock lock;
  bool closing = false;           // (lock)
  std::uint32_t waiters = 0;      // calls that hold pd (lock)
  sched::PollDesc* pd = nullptr;  // (lock)
  std::uint32_t nb_holders = 0;   // attempts running with O_NONBLOCK set by us (lock)
  bool saved_nonblock = false;    // the caller's mode while nb_holders > 0 (lock)
};

// fd_find: the entry of fd if its chunk exists (never allocates), else nullptr.
Fd* fd_find(int fd) noexcept;
// fd_get: the entry of fd, allocating its chunk; nullptr for a negative or huge fd, or when
// memory runs out (the caller then runs the real call).
Fd* fd_get(int fd) noexcept;
// is_socket: fd's kind, classified with fstat when unknown.
bool is_socket(int fd, Fd* e) noexcept;
// forget: the fd number was closed or replaced: its kind is unknown again.
void forget(int fd) noexcept;
// mark_socket: fd was just created as a socket by a hooked call.
void mark_socket(int fd) noexcept;

// retire: before fd is closed (or replaced by dup2/dup3): new calls on it wait until unretire,
// and the fibers parked on it are woken (their calls fail with EBADF) and waited for. The
// netpoller registration is gone when it returns. Returns the entry to pass to unretire (may be
// null: nothing to do).
Fd* retire(int fd);
void unretire(Fd* e) noexcept;

// user_nonblocking: the caller set O_NONBLOCK on fd (or F_GETFL failed: let the real call's
// EAGAIN through).
bool user_nonblocking(int fd, Fd* e) noexcept;

// NonblockScope: fd is O_NONBLOCK while it lives (for one connect or accept attempt), unless the
// caller had set it already. ok() is false if fcntl failed.
class NonblockScope {
 public:
  NonblockScope(int fd, Fd* e) noexcept;
  ~NonblockScope();
  NonblockScope(const NonblockScope&) = delete;
  NonblockScope& operator=(const NonblockScope&) = delete;
  bool ok() const noexcept { return ok_; }

 private:
  int fd_;
  Fd* e_;
  bool ok_ = false;
};

// WaitResult of wait_fd.
enum class WaitResult : std::uint8_t {
  ready,     // the fd may be ready: retry the call
  timedout,  // the deadline passed
  closed,    // the fd was closed (or dup2'd over) while waiting: the call fails with EBADF
  nopoll,    // the fd cannot be registered with the netpoller: run the call in blocking()
};
// wait_fd: parks the calling fiber until fd may be ready for `mode`, or deadline_ns
// (sched::nanotime clock, INT64_MAX = none). Registers the fd with the calling fiber's netpoller
// for the duration (shared by the fibers waiting on it at the same time).
WaitResult wait_fd(int fd, Fd* e, sched::PollMode mode, std::int64_t deadline_ns);

// count_*: the Stats counters.
void count_wait() noexcept;
void count_fallback() noexcept;
void count_sleep() noexcept;

}  // namespace colony::hooks::detail
