// What every interposed call shares: when to take over a call (hooked), the SO_RCVTIMEO /
// SO_SNDTIMEO deadline, the retry loop around a non-blocking attempt (io_loop), and the
// fallback that runs the real blocking call with the processor handed off (in_blocking).
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <system_error>

#include "bridge.hpp"
#include "fdtable.hpp"

// glibc's report of a failed _FORTIFY_SOURCE check (exported, not declared in its headers).
extern "C" [[noreturn]] void __chk_fail(void);

namespace colony::hooks::detail {

using sched::PollMode;

// hooked: the entry of fd when the call is ours to handle (on a fiber, and fd is a socket);
// nullptr: run the real call.
inline Fd* hooked(int fd) noexcept {
  if (!on_fiber()) return nullptr;
  Fd* e = fd_get(fd);
  if (!e || !is_socket(fd, e)) return nullptr;
  return e;
}

// timeout_deadline: now + the socket's SO_RCVTIMEO (read) or SO_SNDTIMEO (write), or INT64_MAX
// when it has none: the kernel's own timeout of a blocking call, turned into poll_wait's.
inline std::int64_t timeout_deadline(int fd, PollMode mode) noexcept {
  timeval tv{};
  socklen_t len = sizeof tv;
  const int saved = errno;
  const int opt = mode == PollMode::read ? SO_RCVTIMEO : SO_SNDTIMEO;
  if (::getsockopt(fd, SOL_SOCKET, opt, &tv, &len) != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0)) {
    errno = saved;
    return INT64_MAX;
  }
  return sched::nanotime() + std::int64_t{tv.tv_sec} * 1'000'000'000 +
         std::int64_t{tv.tv_usec} * 1'000;
}

// in_blocking: runs f (a real blocking call) inside sched::enter_blocking / exit_blocking, as
// colony::blocking does: the fiber's processor goes to another thread meanwhile. errno is
// carried across exit_blocking, after which the fiber may be on another thread. When no thread
// may be added (Config::max_threads), f runs holding the processor.
template <class F>
auto in_blocking(F&& f) -> decltype(f()) {
  count_fallback();
  try {
    sched::enter_blocking();
  } catch (const std::system_error&) {
    return f();
  }
  struct Exit {
    ~Exit() { sched::exit_blocking(); }
  };
  decltype(f()) r;
  int err;
  {
    Exit exit;
    r = f();
    err = errno;
  }
  set_errno(err);
  return r;
}

// finish: the result of a call that made `done` bytes of progress and then failed with err:
// the progress if any (as the kernel returns a short count), else -1 with errno = err.
inline ssize_t finish(std::size_t done, int err) noexcept {
  if (done > 0) return static_cast<ssize_t>(done);
  set_errno(err);
  return -1;
}

// kNotSocket: io_loop's answer when the fd turned out not to be a socket (no real call returns
// it); the caller then makes its real call.
inline constexpr ssize_t kNotSocket = -2;

// io_loop: the blocking call, made of non-blocking attempts and netpoller waits.
//   attempt(done): one non-blocking try at the rest (after `done` bytes); returns like the call.
//   blocking(done): the real blocking call for the rest, when the fd cannot be polled.
//   all: keep going until `want` bytes (a blocking stream write, recv with MSG_WAITALL); a
//        0-byte read (end of stream) stops it.
// A socket the caller made non-blocking gets the attempt's EAGAIN. On the socket's timeout the
// call returns what it has done, or EAGAIN; on a close by another fiber, EBADF.
template <class Attempt, class Blocking>
ssize_t io_loop(int fd, Fd* e, PollMode mode, std::size_t want, bool all, Attempt&& attempt,
                Blocking&& blocking) {
  std::size_t done = 0;
  std::int64_t deadline = -1;
  for (;;) {
    const ssize_t n = attempt(done);
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
      if (!all || n == 0 || done >= want) return static_cast<ssize_t>(done);
      continue;
    }
    const int err = errno;
    if (err == ENOTSOCK && done == 0) {
      // A stale "socket" mark: the number was closed behind the hooks' back (fclose of an
      // fdopen'd socket, syscall(SYS_close)) and reused for a file or a pipe. Forget the mark;
      // the caller makes its real call, as for any non-socket.
      e->kind.store(Kind::other, std::memory_order_release);
      return kNotSocket;
    }
    if (err != EAGAIN && err != EWOULDBLOCK) return finish(done, err);
    if (user_nonblocking(fd, e)) return finish(done, err);
    if (deadline < 0) deadline = timeout_deadline(fd, mode);
    switch (wait_fd(fd, e, mode, deadline)) {
      case WaitResult::ready:
        continue;
      case WaitResult::timedout:
        return finish(done, EAGAIN);
      case WaitResult::closed:
        return finish(done, EBADF);
      case WaitResult::nopoll: {
        const ssize_t r = in_blocking([&] { return blocking(done); });
        if (r < 0) return finish(done, get_errno());
        return static_cast<ssize_t>(done + static_cast<std::size_t>(r));
      }
    }
  }
}

}  // namespace colony::hooks::detail
