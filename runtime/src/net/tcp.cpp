// TcpStream and TcpListener: TCP connections and listening sockets on the netpoller.
//
// The socket core and its protocol (calls in progress, close, deadlines) are in socket.hpp.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <stdexcept>
#include <system_error>

#include "colony/net.hpp"
#include "net/socket.hpp"

namespace colony::net {

using detail::checked;
using detail::last_errno;
using detail::make_socket;
using detail::Op;
using detail::open_bound;
using detail::PollMode;
using detail::set_socket_deadline;
using detail::setopt;
using detail::Socket;
using detail::SocketPtr;
using detail::sockname;
using detail::throw_closed;
using detail::throw_code;
using detail::throw_errno;

TcpStream::TcpStream() noexcept : s_(nullptr) {}
TcpStream::TcpStream(detail::SocketPtr s) noexcept : s_(std::move(s)) {}
TcpStream::~TcpStream() = default;
TcpStream::TcpStream(TcpStream&&) noexcept = default;
TcpStream& TcpStream::operator=(TcpStream&&) noexcept = default;

TcpStream TcpStream::connect(const Address& addr, std::chrono::nanoseconds timeout) {
  return connect_impl(addr, sched::deadline_after(timeout), nullptr);
}

TcpStream TcpStream::connect(const Address& addr, const Context& ctx) {
  return connect_impl(addr, sched::kNoDeadline, &ctx);
}

TcpStream TcpStream::connect_impl(const Address& addr, std::int64_t deadline_ns,
                                  const Context* ctx) {
  if (addr.is_unspecified())
    throw std::invalid_argument("colony::net: connect: unspecified address");
  if (ctx) {
    if (std::error_code e = ctx->err()) throw_code(e, "connect", nullptr, &addr);
  }
  int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int e = last_errno();
    throw_errno(e, "connect", nullptr, &addr);
  }
  SocketPtr s = make_socket(fd, "tcp");
  s->peer = addr;
  int r = ::connect(fd, addr.sockaddr_ptr(), addr.sockaddr_len());
  if (r != 0) {
    int e = last_errno();
    if (e != EINPROGRESS && e != EINTR) throw_errno(e, "connect", s.get(), &addr);
    Op op(*s, PollMode::write, ctx, "connect");
    for (;;) {
      if (!op.wait_until(deadline_ns))
        throw_code(std::make_error_code(std::errc::timed_out), "connect", s.get(), &addr);
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = last_errno();
      if (err == EINPROGRESS || err == EALREADY || err == EINTR) continue;
      if (err != 0) throw_errno(err, "connect", s.get(), &addr);
      // SO_ERROR is 0 also before the handshake ends (a wake-up is a hint): ask the kernel.
      sockaddr_storage ss{};
      socklen_t sl = sizeof ss;
      if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &sl) == 0) break;
      err = last_errno();
      if (err != ENOTCONN) throw_errno(err, "connect", s.get(), &addr);
    }
  }
  return TcpStream(std::move(s));
}

std::size_t TcpStream::read(void* buf, std::size_t n) {
  return read_impl(buf, n, nullptr);
}
std::size_t TcpStream::read(void* buf, std::size_t n, const Context& ctx) {
  return read_impl(buf, n, &ctx);
}
std::size_t TcpStream::read_exact(void* buf, std::size_t n) {
  return read_exact_impl(buf, n, nullptr);
}
std::size_t TcpStream::read_exact(void* buf, std::size_t n, const Context& ctx) {
  return read_exact_impl(buf, n, &ctx);
}
std::size_t TcpStream::write(const void* buf, std::size_t n) {
  return write_impl(buf, n, nullptr);
}
std::size_t TcpStream::write(const void* buf, std::size_t n, const Context& ctx) {
  return write_impl(buf, n, &ctx);
}
void TcpStream::write_all(const void* buf, std::size_t n) {
  write_all_impl(buf, n, nullptr);
}
void TcpStream::write_all(const void* buf, std::size_t n, const Context& ctx) {
  write_all_impl(buf, n, &ctx);
}

std::size_t TcpStream::read_impl(void* buf, std::size_t n, const Context* ctx) {
  Socket& s = checked(s_, "read");
  if (n == 0) return 0;
  Op op(s, PollMode::read, ctx, "read");
  for (;;) {
    ssize_t r = ::recv(s.fd, buf, n, 0);
    if (r >= 0) return static_cast<std::size_t>(r);
    int e = last_errno();
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) throw_errno(e, "read", &s);
    op.wait();
  }
}

std::size_t TcpStream::read_exact_impl(void* buf, std::size_t n, const Context* ctx) {
  Socket& s = checked(s_, "read");
  std::size_t got = 0;
  if (n == 0) return 0;
  Op op(s, PollMode::read, ctx, "read");
  auto* p = static_cast<char*>(buf);
  while (got < n) {
    ssize_t r = ::recv(s.fd, p + got, n - got, 0);
    if (r > 0) {
      got += static_cast<std::size_t>(r);
      continue;
    }
    if (r == 0) break;  // end of stream
    int e = last_errno();
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) throw_errno(e, "read", &s);
    op.wait();
  }
  return got;
}

std::size_t TcpStream::write_impl(const void* buf, std::size_t n, const Context* ctx) {
  Socket& s = checked(s_, "write");
  if (n == 0) return 0;
  Op op(s, PollMode::write, ctx, "write");
  for (;;) {
    ssize_t r = ::send(s.fd, buf, n, MSG_NOSIGNAL);
    if (r >= 0) return static_cast<std::size_t>(r);
    int e = last_errno();
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) throw_errno(e, "write", &s);
    op.wait();
  }
}

void TcpStream::write_all_impl(const void* buf, std::size_t n, const Context* ctx) {
  Socket& s = checked(s_, "write");
  if (n == 0) return;
  Op op(s, PollMode::write, ctx, "write");
  auto* p = static_cast<const char*>(buf);
  std::size_t done = 0;
  while (done < n) {
    ssize_t r = ::send(s.fd, p + done, n - done, MSG_NOSIGNAL);
    if (r >= 0) {
      done += static_cast<std::size_t>(r);
      continue;
    }
    int e = last_errno();
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) throw_errno(e, "write", &s);
    op.wait();
  }
}

void TcpStream::write_all(std::string_view a, std::string_view b) {
  Socket& s = checked(s_, "write");
  if (a.empty() && b.empty()) return;
  Op op(s, PollMode::write, nullptr, "write");
  iovec iov[2] = {{const_cast<char*>(a.data()), a.size()}, {const_cast<char*>(b.data()), b.size()}};
  int first = 0;
  while (first < 2) {
    if (iov[first].iov_len == 0) {
      ++first;
      continue;
    }
    msghdr msg{};
    msg.msg_iov = iov + first;
    msg.msg_iovlen = static_cast<std::size_t>(2 - first);
    ssize_t r = ::sendmsg(s.fd, &msg, MSG_NOSIGNAL);
    if (r >= 0) {
      auto left = static_cast<std::size_t>(r);
      while (first < 2 && left >= iov[first].iov_len) {
        left -= iov[first].iov_len;
        iov[first].iov_len = 0;
        ++first;
      }
      if (first < 2) {
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
      continue;
    }
    int e = last_errno();
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) throw_errno(e, "write", &s);
    op.wait();
  }
}

std::size_t TcpStream::readv(std::span<const iovec> bufs) {
  return readv_impl(bufs, nullptr);
}
std::size_t TcpStream::readv(std::span<const iovec> bufs, const Context& ctx) {
  return readv_impl(bufs, &ctx);
}
std::size_t TcpStream::writev(std::span<const iovec> bufs) {
  return writev_impl(bufs, nullptr);
}
std::size_t TcpStream::writev(std::span<const iovec> bufs, const Context& ctx) {
  return writev_impl(bufs, &ctx);
}

namespace {
// msg_of: a msghdr over at most IOV_MAX of `bufs`; false when they hold no byte at all.
bool msg_of(std::span<const iovec> bufs, msghdr& msg) {
  msg = msghdr{};
  const std::size_t n = std::min<std::size_t>(bufs.size(), IOV_MAX);
  bool any = false;
  for (std::size_t i = 0; i < n && !any; ++i) any = bufs[i].iov_len != 0;
  msg.msg_iov = const_cast<iovec*>(bufs.data());
  msg.msg_iovlen = n;
  return any;
}
}  // namespace

std::size_t TcpStream::readv_impl(std::span<const iovec> bufs, const Context* ctx) {
  Socket& s = checked(s_, "read");
  msghdr msg;
  if (!msg_of(bufs, msg)) return 0;
  Op op(s, PollMode::read, ctx, "read");
  for (;;) {
    ssize_t r = ::recvmsg(s.fd, &msg, 0);
    if (r >= 0) return static_cast<std::size_t>(r);
    int e = last_errno();
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) throw_errno(e, "read", &s);
    op.wait();
  }
}

std::size_t TcpStream::writev_impl(std::span<const iovec> bufs, const Context* ctx) {
  Socket& s = checked(s_, "write");
  msghdr msg;
  if (!msg_of(bufs, msg)) return 0;
  Op op(s, PollMode::write, ctx, "write");
  for (;;) {
    ssize_t r = ::sendmsg(s.fd, &msg, MSG_NOSIGNAL);
    if (r >= 0) return static_cast<std::size_t>(r);
    int e = last_errno();
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) throw_errno(e, "write", &s);
    op.wait();
  }
}

void TcpStream::shutdown(Shutdown how) {
  Socket& s = checked(s_, "shutdown");
  if (s.closing()) throw_closed("shutdown", &s);
  const int h = how == Shutdown::read ? SHUT_RD : how == Shutdown::write ? SHUT_WR : SHUT_RDWR;
  if (::shutdown(s.fd, h) != 0) {
    int e = last_errno();
    throw_errno(e, "shutdown", &s);
  }
  // Parked calls of the closed direction retry their syscall: a read then sees end of stream,
  // a write EPIPE.
  if (how != Shutdown::write) sched::poll_interrupt(s.pd, PollMode::read);
  if (how != Shutdown::read) sched::poll_interrupt(s.pd, PollMode::write);
}

void TcpStream::close() noexcept {
  if (s_) s_->close();
}

void TcpStream::set_read_deadline(Deadline t) noexcept {
  set_socket_deadline(s_.get(), PollMode::read, t);
}
void TcpStream::set_write_deadline(Deadline t) noexcept {
  set_socket_deadline(s_.get(), PollMode::write, t);
}
void TcpStream::set_deadline(Deadline t) noexcept {
  set_socket_deadline(s_.get(), PollMode::read, t);
  set_socket_deadline(s_.get(), PollMode::write, t);
}

void TcpStream::set_nodelay(bool on) {
  Socket& s = checked(s_, "set_nodelay");
  setopt(s.fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0, "TCP_NODELAY");
}

Address TcpStream::local_address() const {
  return sockname(checked(s_, "local_address"));
}
Address TcpStream::peer_address() const {
  return checked(s_, "peer_address").peer;
}
int TcpStream::fd() const noexcept {
  return s_ && !s_->closing() ? s_->fd : -1;
}

// =============================================================================================
// TcpListener

TcpListener::TcpListener() noexcept : s_(nullptr) {}
TcpListener::~TcpListener() = default;
TcpListener::TcpListener(TcpListener&&) noexcept = default;
TcpListener& TcpListener::operator=(TcpListener&&) noexcept = default;

TcpListener TcpListener::listen(const Address& addr, const ListenOptions& opts) {
  int fd = open_bound(addr, SOCK_STREAM, opts, "listen");
  if (::listen(fd, opts.backlog > 0 ? opts.backlog : SOMAXCONN) != 0) {
    int e = last_errno();
    ::close(fd);
    throw std::system_error(e, std::generic_category(), "colony::net: listen " + addr.to_string());
  }
  TcpListener l;
  l.s_ = make_socket(fd, "tcp");
  return l;
}

TcpStream TcpListener::accept() {
  return accept_impl(nullptr);
}
TcpStream TcpListener::accept(const Context& ctx) {
  return accept_impl(&ctx);
}

TcpStream TcpListener::accept_impl(const Context* ctx) {
  Socket& s = checked(s_, "accept");
  Op op(s, PollMode::read, ctx, "accept");
  std::int64_t backoff = 0;
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(s.fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      SocketPtr c = make_socket(fd, "tcp");
      c->peer = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
      return TcpStream(std::move(c));
    }
    int e = last_errno();
    switch (e) {
      case EINTR:
      case ECONNABORTED:
      // Network errors already pending on the new connection (accept(2)): try the next one.
      case EPROTO:
      case ENOPROTOOPT:
      case EHOSTDOWN:
      case ENONET:
      case EHOSTUNREACH:
      case ENETUNREACH:
      case ENETDOWN:
        continue;
      case EAGAIN:
        op.wait();
        continue;
      case EMFILE:
      case ENFILE:
      case ENOBUFS:
      case ENOMEM: {
        // Out of descriptors (or memory): the connection stays queued and, the poller being
        // edge-triggered, nothing would wake us for it again. Back off and retry, waking only
        // for close, cancellation or the deadline (new connections do not cut the back-off).
        backoff = backoff == 0 ? 5'000'000 : std::min<std::int64_t>(backoff * 2, 1'000'000'000);
        s.backoffs.fetch_add(1, std::memory_order_relaxed);
        const std::int64_t until = sched::nanotime() + backoff;
        while (sched::nanotime() < until) {
          const std::int64_t dl = s.deadline[0].load(std::memory_order_acquire);
          if (!op.wait_until(std::min(until, dl)) && sched::nanotime() >= dl)
            throw_code(std::make_error_code(std::errc::timed_out), "accept", &s);
        }
        continue;
      }
      default:
        throw_errno(e, "accept", &s);
    }
  }
}

void TcpListener::set_deadline(Deadline t) noexcept {
  set_socket_deadline(s_.get(), PollMode::read, t);
}
void TcpListener::close() noexcept {
  if (s_) s_->close();
}
Address TcpListener::local_address() const {
  return sockname(checked(s_, "local_address"));
}
int TcpListener::fd() const noexcept {
  return s_ && !s_->closing() ? s_->fd : -1;
}
std::uint64_t TcpListener::backoffs() const noexcept {
  return s_ ? s_->backoffs.load(std::memory_order_relaxed) : 0;
}

}  // namespace colony::net
