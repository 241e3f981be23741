// The interposed connect, accept and accept4.
//
// Neither has a per-call MSG_DONTWAIT, so on a fiber each attempt runs with the socket made
// O_NONBLOCK for its duration (NonblockScope, fdtable.hpp) and then restored: the caller's mode
// is back before the call returns. While an attempt runs, a plain thread calling accept on the
// same listener may see EAGAIN (docs/hooks.md, "Limits").
#include <poll.h>
#include <sys/socket.h>

#include <cstdint>

#include "hook.hpp"
#include "real.hpp"

using namespace colony::hooks::detail;
namespace real = colony::hooks::real;

namespace {

int ms_until(std::int64_t deadline_ns) noexcept {
  if (deadline_ns == INT64_MAX) return -1;
  const std::int64_t d = deadline_ns - colony::sched::nanotime();
  if (d <= 0) return 0;
  return d / 1'000'000 >= INT32_MAX ? INT32_MAX : static_cast<int>((d + 999'999) / 1'000'000);
}

int hooked_accept(int fd, Fd* e, sockaddr* addr, socklen_t* len, int flags) {
  const ssize_t r = io_loop(
      fd, e, PollMode::read, 0, false,
      [&](std::size_t) -> ssize_t {
        NonblockScope nb(fd, e);
        return real::accept4(fd, addr, len, flags);
      },
      [&](std::size_t) -> ssize_t { return real::accept4(fd, addr, len, flags); });
  if (r == kNotSocket) return real::accept4(fd, addr, len, flags);
  if (r >= 0) mark_socket(static_cast<int>(r));
  return static_cast<int>(r);
}

}  // namespace

extern "C" {

int connect(int fd, const sockaddr* addr, socklen_t len) {
  Fd* e = hooked(fd);
  if (!e || user_nonblocking(fd, e)) return real::connect(fd, addr, len);
  int r, err;
  {
    NonblockScope nb(fd, e);
    if (!nb.ok()) return in_blocking([&] { return real::connect(fd, addr, len); });
    r = real::connect(fd, addr, len);
    err = errno;
  }
  if (r == 0) return 0;
  if (err == EAGAIN) {  // a unix socket whose listener's backlog is full: nothing in progress
    return in_blocking([&] { return real::connect(fd, addr, len); });
  }
  if (err != EINPROGRESS) {
    set_errno(err);
    return -1;
  }
  // In progress: wait until the socket is writable (connected) or reports an error. A blocking
  // connect's SO_SNDTIMEO ends it with EINPROGRESS (socket(7)); the connection goes on.
  const std::int64_t deadline = timeout_deadline(fd, PollMode::write);
  for (;;) {
    const WaitResult w = wait_fd(fd, e, PollMode::write, deadline);
    pollfd p{fd, POLLOUT, 0};
    if (w == WaitResult::nopoll) {
      const int n = in_blocking([&] { return real::poll(&p, 1, ms_until(deadline)); });
      if (n == 0) {
        set_errno(EINPROGRESS);
        return -1;
      }
      break;
    }
    if (w == WaitResult::closed) {
      set_errno(EBADF);
      return -1;
    }
    if (real::poll(&p, 1, 0) > 0) break;  // connected, refused, reset, ...
    if (w == WaitResult::timedout) {
      set_errno(EINPROGRESS);
      return -1;
    }
  }
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) return -1;
  if (soerr != 0) {
    set_errno(soerr);
    return -1;
  }
  return 0;
}

int accept(int fd, sockaddr* __restrict addr, socklen_t* __restrict len) {
  Fd* e = hooked(fd);
  if (!e) return real::accept(fd, addr, len);
  return hooked_accept(fd, e, addr, len, 0);
}

int accept4(int fd, sockaddr* __restrict addr, socklen_t* __restrict len, int flags) {
  Fd* e = hooked(fd);
  if (!e) return real::accept4(fd, addr, len, flags);
  return hooked_accept(fd, e, addr, len, flags);
}

}  // extern "C"
