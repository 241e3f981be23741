// The socket core of socket.hpp: close under calls in progress, Op's waits, the shared helpers.
#include "net/socket.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "colony/context.hpp"
#include "colony/sched/fiber.hpp"

namespace colony::net {

bool is_timeout(const std::error_code& e) noexcept {
  return e == std::errc::timed_out || e == context_errc::deadline_exceeded;
}
bool is_closed(const std::error_code& e) noexcept {
  return e == std::errc::bad_file_descriptor;
}

namespace detail {

[[gnu::noinline]] int last_errno() noexcept {
  int e = errno;
  asm volatile("" ::: "memory");
  return e;
}

void SocketDeleter::operator()(Socket* s) const noexcept {
  s->close();
  // A call still inside (only possible when close() was cut short by the runtime's shutdown)
  // keeps using the object: leave it to the process, rather than free it under that call.
  if ((s->refs.load(std::memory_order_acquire) & ~kClosing) != 0) return;
  delete s;
}

void Socket::close() noexcept {
  const std::uint32_t old = refs.fetch_or(kClosing, std::memory_order_acq_rel);
  if (old & kClosing) {
    // Another close() is in progress (or done): wait for it, as the caller may free the fd's
    // resources next. It is short: the calls it waits for wake at once.
    while (!closed.load(std::memory_order_acquire)) {
      if (sched::current_g()) {
        try {
          sched::yield();
        } catch (const FiberUnwind&) {
          return;  // the runtime is shutting down: see below
        }
      } else {
        std::this_thread::yield();
      }
    }
    return;
  }
  for (int i = 0; (refs.load(std::memory_order_acquire) & ~kClosing) != 0; ++i) {
    sched::poll_interrupt(pd, PollMode::read);
    sched::poll_interrupt(pd, PollMode::write);
    if ((refs.load(std::memory_order_acquire) & ~kClosing) == 0) break;
    if (sched::current_g()) {
      try {
        if (i < 8)
          sched::yield();
        else
          sched::sleep_until_ns(sched::nanotime() + 100'000);
      } catch (const FiberUnwind&) {
        // The runtime is unwinding this fiber (we are in a destructor, or in a noexcept
        // close()): the calls we wait for are being unwound as well and will not retry their
        // syscalls. Close now; this fiber unwinds at its next park, which throws again at once.
        break;
      }
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  sched::poll_close(pd);
  if (owns_fd) ::close(fd);
  closed.store(true, std::memory_order_release);
}

namespace {

std::string local_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len).to_string();
}

// describe: "read tcp 127.0.0.1:41234->127.0.0.1:8080" (Go's OpError, in our words).
std::string describe(const char* op, const Socket* s, const Address* remote = nullptr) {
  std::string m = "colony::net: ";
  m += op;
  if (!s) return m;
  if (*s->proto) {
    m += ' ';
    m += s->proto;
  }
  m += ' ';
  if (remote) {
    m += remote->to_string();
    return m;
  }
  if (!s->closing()) m += local_of(s->fd);
  if (!s->peer.is_unspecified()) m += "->" + s->peer.to_string();
  if (!*s->proto) m += "fd " + std::to_string(s->fd);
  return m;
}

}  // namespace

[[noreturn]] void throw_errno(int err, const char* op, const Socket* s, const Address* remote) {
  throw std::system_error(err, std::generic_category(), describe(op, s, remote));
}
[[noreturn]] void throw_code(std::error_code ec, const char* op, const Socket* s,
                             const Address* remote) {
  throw std::system_error(ec, describe(op, s, remote));
}
[[noreturn]] void throw_closed(const char* op, const Socket* s) {
  throw std::system_error(std::make_error_code(std::errc::bad_file_descriptor),
                          describe(op, s) + ": use of closed socket");
}

SocketPtr make_socket(int fd, const char* proto, bool owns_fd) {
  SocketPtr s(nullptr);
  try {
    auto* raw = new Socket;
    raw->fd = fd;
    raw->proto = proto;
    raw->owns_fd = owns_fd;
    raw->pd = nullptr;
    try {
      raw->pd = sched::poll_open(fd);
    } catch (...) {
      delete raw;
      throw;
    }
    s.reset(raw);
  } catch (...) {
    if (owns_fd) ::close(fd);
    throw;
  }
  return s;
}

void Op::wait() {
  const int m = static_cast<int>(mode_);
  if (!wait_until(s_.deadline[m].load(std::memory_order_acquire)) &&
      sched::nanotime() >= s_.deadline[m].load(std::memory_order_acquire))
    throw_code(std::make_error_code(std::errc::timed_out), name_, &s_);
  // else: the deadline was moved while we waited; retry with the new one.
}

bool Op::wait_until(std::int64_t deadline_ns) {
  if (s_.closing()) throw_closed(name_, &s_);
  std::int64_t cdl = sched::kNoDeadline;
  if (ctx_) {
    if (!armed_) {
      armed_ = true;
      if (auto d = ctx_->deadline()) cdl_ = sched::deadline_at(*d);
      sched::PollDesc* pd = s_.pd;
      PollMode mode = mode_;
      stop_ = after_func(*ctx_, [pd, mode] { sched::poll_interrupt(pd, mode); });
    }
    cdl = cdl_;
    if (std::error_code e = ctx_->err()) throw_code(e, name_, &s_);
  }
  const int rc = sched::poll_wait(s_.pd, mode_, std::min(deadline_ns, cdl));
  if (rc != ETIMEDOUT) return true;  // ready, or interrupted: retry and re-check
  const std::int64_t now = sched::nanotime();
  if (cdl <= deadline_ns && now >= cdl) {
    std::error_code e = ctx_->err();  // its timer may not have run yet
    throw_code(e ? e : make_error_code(context_errc::deadline_exceeded), name_, &s_);
  }
  return now < deadline_ns;
}

void set_socket_deadline(Socket* s, PollMode mode, Deadline t) noexcept {
  if (!s) return;
  s->deadline[static_cast<int>(mode)].store(sched::deadline_at(t), std::memory_order_release);
  // Wake parked calls so that they wait again with the new deadline (best effort: a call about
  // to park still uses the deadline it read).
  if (!s->closing()) sched::poll_interrupt(s->pd, mode);
}

void setopt(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
    int e = last_errno();
    throw std::system_error(e, std::generic_category(),
                            std::string("colony::net: setsockopt ") + what);
  }
}

Address sockname(const Socket& s) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(s.fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    int e = last_errno();
    throw_errno(e, "getsockname", &s);
  }
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

int open_bound(const Address& addr, int type, const ListenOptions& opts, const char* op) {
  if (addr.is_unspecified())
    throw std::invalid_argument(std::string("colony::net: ") + op + ": unspecified address");
  int fd = ::socket(addr.family(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int e = last_errno();
    throw std::system_error(e, std::generic_category(),
                            std::string("colony::net: ") + op + " socket " + addr.to_string());
  }
  try {
    if (opts.reuse_addr) setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    if (opts.reuse_port) setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
    if (addr.is_v6()) setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, opts.v6_only ? 1 : 0, "IPV6_V6ONLY");
    if (::bind(fd, addr.sockaddr_ptr(), addr.sockaddr_len()) != 0) {
      int e = last_errno();
      throw std::system_error(e, std::generic_category(),
                              std::string("colony::net: ") + op + " bind " + addr.to_string());
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  return fd;
}

}  // namespace detail
}  // namespace colony::net
