// The interposed data calls: read, write, readv, writev, recv, recvfrom, recvmsg, send, sendto,
// sendmsg (and the _FORTIFY_SOURCE entry points __read_chk, __recv_chk, __recvfrom_chk).
//
// On a fiber, for a socket, each becomes io_loop (hook.hpp): the same call with MSG_DONTWAIT,
// and on EAGAIN a wait on the netpoller. MSG_DONTWAIT makes one call non-blocking without
// touching the socket's O_NONBLOCK flag, so the caller's mode, as fcntl(F_GETFL) shows it and
// as a plain thread using the same socket relies on it, never changes. read/write/readv/writev
// on a socket are recv/send/recvmsg/sendmsg with no flags, so they go the same way.
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "hook.hpp"
#include "real.hpp"

using namespace colony::hooks::detail;
namespace real = colony::hooks::real;

namespace {

std::size_t iov_bytes(const iovec* iov, std::size_t n) noexcept {
  std::size_t t = 0;
  for (std::size_t i = 0; i < n; ++i) t += iov[i].iov_len;
  return t;
}

// iov_tail: the part of iov after `skip` bytes (a partial write went out), in `out`.
void iov_tail(const iovec* iov, std::size_t n, std::size_t skip, std::vector<iovec>& out) {
  out.clear();
  for (std::size_t i = 0; i < n; ++i) {
    if (skip >= iov[i].iov_len) {
      skip -= iov[i].iov_len;
      continue;
    }
    out.push_back({static_cast<char*>(iov[i].iov_base) + skip, iov[i].iov_len - skip});
    skip = 0;
  }
}

// stream: SOCK_STREAM, where MSG_WAITALL means "until n bytes" (datagrams ignore it).
bool stream(int fd) noexcept {
  int type = 0;
  socklen_t len = sizeof type;
  return ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

ssize_t hooked_recv(int fd, Fd* e, void* buf, std::size_t n, int flags, sockaddr* from,
                    socklen_t* fromlen) {
  const bool all = (flags & MSG_WAITALL) && stream(fd);
  char* p = static_cast<char*>(buf);
  return io_loop(
      fd, e, PollMode::read, n, all,
      [&](std::size_t done) {
        return real::recvfrom(fd, p + done, n - done, (flags & ~MSG_WAITALL) | MSG_DONTWAIT, from,
                              fromlen);
      },
      [&](std::size_t done) {
        return real::recvfrom(fd, p + done, n - done, flags, from, fromlen);
      });
}

ssize_t hooked_send(int fd, Fd* e, const void* buf, std::size_t n, int flags, const sockaddr* to,
                    socklen_t tolen) {
  const char* p = static_cast<const char*>(buf);
  return io_loop(
      fd, e, PollMode::write, n, true,
      [&](std::size_t done) {
        return real::sendto(fd, p + done, n - done, flags | MSG_DONTWAIT, to, tolen);
      },
      [&](std::size_t done) { return real::sendto(fd, p + done, n - done, flags, to, tolen); });
}

ssize_t hooked_sendmsg(int fd, Fd* e, const msghdr* msg, int flags) {
  std::vector<iovec> tail;
  const std::size_t want = iov_bytes(msg->msg_iov, msg->msg_iovlen);
  auto rest = [&](std::size_t done) {
    msghdr m = *msg;
    if (done > 0) {  // the rest of a partial write; ancillary data went with the first part
      iov_tail(msg->msg_iov, msg->msg_iovlen, done, tail);
      m.msg_iov = tail.data();
      m.msg_iovlen = tail.size();
      m.msg_control = nullptr;
      m.msg_controllen = 0;
    }
    return m;
  };
  return io_loop(
      fd, e, PollMode::write, want, true,
      [&](std::size_t done) {
        msghdr m = rest(done);
        return real::sendmsg(fd, &m, flags | MSG_DONTWAIT);
      },
      [&](std::size_t done) {
        msghdr m = rest(done);
        return real::sendmsg(fd, &m, flags);
      });
}

}  // namespace

extern "C" {

ssize_t read(int fd, void* buf, size_t n) {
  Fd* e = hooked(fd);
  const ssize_t r = e ? hooked_recv(fd, e, buf, n, 0, nullptr, nullptr) : kNotSocket;
  return r == kNotSocket ? real::read(fd, buf, n) : r;
}

ssize_t write(int fd, const void* buf, size_t n) {
  Fd* e = hooked(fd);
  const ssize_t r = e ? hooked_send(fd, e, buf, n, 0, nullptr, 0) : kNotSocket;
  return r == kNotSocket ? real::write(fd, buf, n) : r;
}

ssize_t readv(int fd, const iovec* iov, int iovcnt) {
  Fd* e = iovcnt > 0 ? hooked(fd) : nullptr;
  if (!e) return real::readv(fd, iov, iovcnt);
  const ssize_t r = io_loop(
      fd, e, PollMode::read, 0, false,
      [&](std::size_t) {
        msghdr m{};
        m.msg_iov = const_cast<iovec*>(iov);
        m.msg_iovlen = static_cast<std::size_t>(iovcnt);
        return real::recvmsg(fd, &m, MSG_DONTWAIT);
      },
      [&](std::size_t) { return real::readv(fd, iov, iovcnt); });
  return r == kNotSocket ? real::readv(fd, iov, iovcnt) : r;
}

ssize_t writev(int fd, const iovec* iov, int iovcnt) {
  Fd* e = iovcnt > 0 ? hooked(fd) : nullptr;
  if (!e) return real::writev(fd, iov, iovcnt);
  msghdr m{};
  m.msg_iov = const_cast<iovec*>(iov);
  m.msg_iovlen = static_cast<std::size_t>(iovcnt);
  const ssize_t r = hooked_sendmsg(fd, e, &m, 0);
  return r == kNotSocket ? real::writev(fd, iov, iovcnt) : r;
}

ssize_t recv(int fd, void* buf, size_t n, int flags) {
  Fd* e = (flags & MSG_DONTWAIT) ? nullptr : hooked(fd);
  if (!e) return real::recv(fd, buf, n, flags);
  const ssize_t r = hooked_recv(fd, e, buf, n, flags, nullptr, nullptr);
  return r == kNotSocket ? real::recv(fd, buf, n, flags) : r;
}

ssize_t recvfrom(int fd, void* __restrict buf, size_t n, int flags, sockaddr* __restrict from,
                 socklen_t* __restrict fromlen) {
  Fd* e = (flags & MSG_DONTWAIT) ? nullptr : hooked(fd);
  if (!e) return real::recvfrom(fd, buf, n, flags, from, fromlen);
  const ssize_t r = hooked_recv(fd, e, buf, n, flags, from, fromlen);
  return r == kNotSocket ? real::recvfrom(fd, buf, n, flags, from, fromlen) : r;
}

ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  Fd* e = (flags & MSG_DONTWAIT) ? nullptr : hooked(fd);
  if (!e) return real::recvmsg(fd, msg, flags);
  if ((flags & MSG_WAITALL) && stream(fd))  // rare: the real call, with the processor handed off
    return in_blocking([&] { return real::recvmsg(fd, msg, flags); });
  const ssize_t r = io_loop(
      fd, e, PollMode::read, 0, false,
      [&](std::size_t) { return real::recvmsg(fd, msg, flags | MSG_DONTWAIT); },
      [&](std::size_t) { return real::recvmsg(fd, msg, flags); });
  return r == kNotSocket ? real::recvmsg(fd, msg, flags) : r;
}

ssize_t send(int fd, const void* buf, size_t n, int flags) {
  Fd* e = (flags & MSG_DONTWAIT) ? nullptr : hooked(fd);
  if (!e) return real::send(fd, buf, n, flags);
  const ssize_t r = hooked_send(fd, e, buf, n, flags, nullptr, 0);
  return r == kNotSocket ? real::send(fd, buf, n, flags) : r;
}

ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* to, socklen_t tolen) {
  Fd* e = (flags & MSG_DONTWAIT) ? nullptr : hooked(fd);
  if (!e) return real::sendto(fd, buf, n, flags, to, tolen);
  const ssize_t r = hooked_send(fd, e, buf, n, flags, to, tolen);
  return r == kNotSocket ? real::sendto(fd, buf, n, flags, to, tolen) : r;
}

ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  Fd* e = (flags & MSG_DONTWAIT) ? nullptr : hooked(fd);
  if (!e) return real::sendmsg(fd, msg, flags);
  const ssize_t r = hooked_sendmsg(fd, e, msg, flags);
  return r == kNotSocket ? real::sendmsg(fd, msg, flags) : r;
}

// _FORTIFY_SOURCE: a caller built with it (Debian builds its packages so) calls these when the
// compiler knows the buffer's size. Same checks as glibc's, then the hooked call.
ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen) {
  if (n > buflen) __chk_fail();
  return read(fd, buf, n);
}

ssize_t __recv_chk(int fd, void* buf, size_t n, size_t buflen, int flags) {
  if (n > buflen) __chk_fail();
  return recv(fd, buf, n, flags);
}

ssize_t __recvfrom_chk(int fd, void* __restrict buf, size_t n, size_t buflen, int flags,
                       sockaddr* __restrict from, socklen_t* __restrict fromlen) {
  if (n > buflen) __chk_fail();
  return recvfrom(fd, buf, n, flags, from, fromlen);
}

}  // extern "C"
