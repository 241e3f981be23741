// colony::net on the netpoller (colony/sched/netpoll.hpp). See docs/net.md.
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
#include "colony/net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "colony/sched/fiber.hpp"
#include "colony/sched/netpoll.hpp"

namespace colony::net {

using sched::PollMode;

namespace {
constexpr std::int64_t kNever = sched::kNoDeadline;
constexpr std::uint32_t kClosing = 1u << 31;

// last_errno: the calling thread's errno, looked up afresh at every call. glibc declares
// __errno_location() const, so within one function the compiler may reuse errno's address from
// before a park, when the fiber ran on another thread (it did: a connect read the old thread's
// EINPROGRESS after its wait). Reading errno right after the syscall is not enough: every read
// goes through this opaque call (no inlining; the asm keeps it from being treated as pure).
[[gnu::noinline]] int last_errno() noexcept {
  int e = errno;
  asm volatile("" ::: "memory");
  return e;
}

std::int64_t to_ns(Deadline t) noexcept { return sched::deadline_at(t); }
}  // namespace

bool is_timeout(const std::error_code& e) noexcept {
  return e == std::errc::timed_out || e == context_errc::deadline_exceeded;
}
bool is_closed(const std::error_code& e) noexcept {
  return e == std::errc::bad_file_descriptor;
}

// =============================================================================================
// Address

Address::Address() noexcept : ss_{}, len_(0) {
  ss_.ss_family = AF_UNSPEC;
}

int Address::family() const noexcept {
  return ss_.ss_family;
}

std::uint16_t Address::port() const noexcept {
  if (is_v4()) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss_)->sin_port);
  if (is_v6()) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss_)->sin6_port);
  return 0;
}

Address Address::with_port(std::uint16_t port) const noexcept {
  Address a = *this;
  if (a.is_v4()) reinterpret_cast<sockaddr_in*>(&a.ss_)->sin_port = htons(port);
  if (a.is_v6()) reinterpret_cast<sockaddr_in6*>(&a.ss_)->sin6_port = htons(port);
  return a;
}

std::string Address::host() const {
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {};
  if (is_v4()) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss_)->sin_addr, buf, sizeof buf);
    return buf;
  }
  if (is_v6()) {
    auto* s6 = reinterpret_cast<const sockaddr_in6*>(&ss_);
    ::inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
    std::string h = buf;
    if (s6->sin6_scope_id != 0) h += "%" + std::to_string(s6->sin6_scope_id);
    return h;
  }
  return {};
}

std::string Address::to_string() const {
  if (is_v4()) return host() + ":" + std::to_string(port());
  if (is_v6()) return "[" + host() + "]:" + std::to_string(port());
  return {};
}

bool operator==(const Address& a, const Address& b) noexcept {
  if (a.family() != b.family()) return false;
  if (a.is_v4()) {
    auto* x = reinterpret_cast<const sockaddr_in*>(&a.ss_);
    auto* y = reinterpret_cast<const sockaddr_in*>(&b.ss_);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.is_v6()) {
    auto* x = reinterpret_cast<const sockaddr_in6*>(&a.ss_);
    auto* y = reinterpret_cast<const sockaddr_in6*>(&b.ss_);
    return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
           std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return true;
}

Address Address::from_sockaddr(const sockaddr* sa, socklen_t len) noexcept {
  Address a;
  if (!sa) return a;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    std::memcpy(&a.ss_, sa, sizeof(sockaddr_in));
    a.len_ = sizeof(sockaddr_in);
  } else if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    std::memcpy(&a.ss_, sa, sizeof(sockaddr_in6));
    a.len_ = sizeof(sockaddr_in6);
  }
  return a;
}

namespace {

// parse_host: fills `a` from a numeric host and port; the error message on failure.
const char* parse_host(std::string_view host, std::uint16_t port, sockaddr_storage& ss,
                       socklen_t& len) noexcept {
  if (host.size() > INET6_ADDRSTRLEN + IF_NAMESIZE) return "host too long";
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {};
  std::memcpy(buf, host.data(), host.size());
  ss = {};
  if (host.find(':') == std::string_view::npos) {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    if (::inet_pton(AF_INET, buf, &s4->sin_addr) != 1) return "not a numeric IPv4 address";
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
    return nullptr;
  }
  auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
  char* pct = std::strchr(buf, '%');
  if (pct) {
    *pct = '\0';
    const char* zone = pct + 1;
    if (*zone == '\0') return "empty IPv6 zone";
    char* end = nullptr;
    unsigned long id = std::strtoul(zone, &end, 10);
    if (*end != '\0') id = ::if_nametoindex(zone);
    if (id == 0) return "unknown IPv6 zone";
    s6->sin6_scope_id = static_cast<std::uint32_t>(id);
  }
  if (::inet_pton(AF_INET6, buf, &s6->sin6_addr) != 1) return "not a numeric IPv6 address";
  s6->sin6_family = AF_INET6;
  s6->sin6_port = htons(port);
  len = sizeof(sockaddr_in6);
  return nullptr;
}

// parse_address: "host:port", "[v6]:port" or ":port"; the error message on failure.
const char* parse_address(std::string_view s, sockaddr_storage& ss, socklen_t& len) noexcept {
  std::string_view host, port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) return "missing ']' in address";
    host = s.substr(1, close - 1);
    if (close + 1 >= s.size() || s[close + 1] != ':') return "missing port in address";
    port = s.substr(close + 2);
    if (host.find(':') == std::string_view::npos) return "not an IPv6 address between []";
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return "missing port in address";
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return "IPv6 address must be in []";
    if (host.empty()) host = "0.0.0.0";
  }
  if (port.empty() || port.size() > 5) return "invalid port";
  unsigned p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return "invalid port";
    p = p * 10 + static_cast<unsigned>(c - '0');
  }
  if (p > 65535) return "port out of range";
  return parse_host(host, static_cast<std::uint16_t>(p), ss, len);
}

}  // namespace

std::optional<Address> Address::try_parse(std::string_view s) noexcept {
  Address a;
  if (parse_address(s, a.ss_, a.len_)) return std::nullopt;
  return a;
}

Address Address::parse(std::string_view s) {
  Address a;
  if (const char* err = parse_address(s, a.ss_, a.len_))
    throw std::invalid_argument("colony::net::Address: " + std::string(err) + ": \"" +
                                std::string(s) + "\"");
  return a;
}

Address Address::ip(std::string_view host, std::uint16_t port) {
  Address a;
  if (const char* err = parse_host(host, port, a.ss_, a.len_))
    throw std::invalid_argument("colony::net::Address: " + std::string(err) + ": \"" +
                                std::string(host) + "\"");
  return a;
}

namespace {
Address make_v4(std::uint32_t addr, std::uint16_t port) noexcept {
  sockaddr_in s{};
  s.sin_family = AF_INET;
  s.sin_port = htons(port);
  s.sin_addr.s_addr = htonl(addr);
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&s), sizeof s);
}
Address make_v6(const in6_addr& addr, std::uint16_t port) noexcept {
  sockaddr_in6 s{};
  s.sin6_family = AF_INET6;
  s.sin6_port = htons(port);
  s.sin6_addr = addr;
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&s), sizeof s);
}
}  // namespace

Address Address::loopback_v4(std::uint16_t port) noexcept {
  return make_v4(INADDR_LOOPBACK, port);
}
Address Address::loopback_v6(std::uint16_t port) noexcept {
  return make_v6(in6addr_loopback, port);
}
Address Address::any_v4(std::uint16_t port) noexcept {
  return make_v4(INADDR_ANY, port);
}
Address Address::any_v6(std::uint16_t port) noexcept {
  return make_v6(in6addr_any, port);
}

// =============================================================================================
// Socket: the shared core of every handle.

namespace detail {

struct Socket {
  int fd = -1;
  sched::PollDesc* pd = nullptr;
  bool owns_fd = true;                 // false for PollFd
  const char* proto = "";              // "tcp", "udp", "" (foreign fd): for messages
  std::atomic<std::uint32_t> refs{0};  // calls in progress | kClosing
  std::atomic<std::int64_t> deadline[2] = {kNever, kNever};  // per PollMode
  std::atomic<std::uint64_t> backoffs{0};                    // listeners: accept back-offs
  Address peer;                                              // connected streams
  std::atomic<bool> closed{false};                           // close() has finished

  bool closing() const noexcept { return refs.load(std::memory_order_acquire) & kClosing; }
  void close() noexcept;
};

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

}  // namespace detail

namespace {

using detail::Socket;
using detail::SocketPtr;

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

[[noreturn]] void throw_errno(int err, const char* op, const Socket* s,
                              const Address* remote = nullptr) {
  throw std::system_error(err, std::generic_category(), describe(op, s, remote));
}
[[noreturn]] void throw_code(std::error_code ec, const char* op, const Socket* s,
                             const Address* remote = nullptr) {
  throw std::system_error(ec, describe(op, s, remote));
}
[[noreturn]] void throw_closed(const char* op, const Socket* s) {
  throw std::system_error(std::make_error_code(std::errc::bad_file_descriptor),
                          describe(op, s) + ": use of closed socket");
}

// make_socket: wraps a non-blocking fd (closing it if registration fails).
SocketPtr make_socket(int fd, const char* proto, bool owns_fd = true) {
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

Socket& checked(const SocketPtr& s, const char* op) {
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
  void wait() {
    const int m = static_cast<int>(mode_);
    if (!wait_until(s_.deadline[m].load(std::memory_order_acquire)) &&
        sched::nanotime() >= s_.deadline[m].load(std::memory_order_acquire))
      throw_code(std::make_error_code(std::errc::timed_out), name_, &s_);
    // else: the deadline was moved while we waited; retry with the new one.
  }

  // wait_until: parks until a hint (readiness, an interruption: returns true) or until
  // `deadline_ns` passes (returns false). Throws when the socket is closed or ctx is done.
  bool wait_until(std::int64_t deadline_ns) {
    if (s_.closing()) throw_closed(name_, &s_);
    std::int64_t cdl = kNever;
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

 private:
  Socket& s_;
  PollMode mode_;
  const Context* ctx_;
  const char* name_;
  bool armed_ = false;
  std::int64_t cdl_ = kNever;
  std::function<bool()> stop_;
};

void set_socket_deadline(Socket* s, PollMode mode, Deadline t) noexcept {
  if (!s) return;
  s->deadline[static_cast<int>(mode)].store(to_ns(t), std::memory_order_release);
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

// open_bound: a socket of `type` bound to addr, with the options applied.
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

}  // namespace

// =============================================================================================
// TcpStream

TcpStream::TcpStream() noexcept : s_(nullptr) {}
TcpStream::TcpStream(detail::SocketPtr s) noexcept : s_(std::move(s)) {}
TcpStream::~TcpStream() = default;
TcpStream::TcpStream(TcpStream&&) noexcept = default;
TcpStream& TcpStream::operator=(TcpStream&&) noexcept = default;

TcpStream TcpStream::connect(const Address& addr, std::chrono::nanoseconds timeout) {
  return connect_impl(addr, sched::deadline_after(timeout), nullptr);
}

TcpStream TcpStream::connect(const Address& addr, const Context& ctx) {
  return connect_impl(addr, kNever, &ctx);
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

// =============================================================================================
// UdpSocket

UdpSocket::UdpSocket() noexcept : s_(nullptr) {}
UdpSocket::~UdpSocket() = default;
UdpSocket::UdpSocket(UdpSocket&&) noexcept = default;
UdpSocket& UdpSocket::operator=(UdpSocket&&) noexcept = default;

UdpSocket UdpSocket::bind(const Address& addr, const ListenOptions& opts) {
  int fd = open_bound(addr, SOCK_DGRAM, opts, "bind");
  UdpSocket u;
  u.s_ = make_socket(fd, "udp");
  return u;
}

UdpSocket::Received UdpSocket::recv_from(void* buf, std::size_t n) {
  return recv_impl(buf, n, nullptr);
}
UdpSocket::Received UdpSocket::recv_from(void* buf, std::size_t n, const Context& ctx) {
  return recv_impl(buf, n, &ctx);
}
std::size_t UdpSocket::send_to(const void* buf, std::size_t n, const Address& to) {
  return send_impl(buf, n, to, nullptr);
}
std::size_t UdpSocket::send_to(const void* buf, std::size_t n, const Address& to,
                               const Context& ctx) {
  return send_impl(buf, n, to, &ctx);
}

UdpSocket::Received UdpSocket::recv_impl(void* buf, std::size_t n, const Context* ctx) {
  Socket& s = checked(s_, "recv_from");
  Op op(s, PollMode::read, ctx, "recv_from");
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ssize_t r = ::recvfrom(s.fd, buf, n, 0, reinterpret_cast<sockaddr*>(&ss), &len);
    if (r >= 0)
      return {static_cast<std::size_t>(r),
              Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len)};
    int e = last_errno();
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) throw_errno(e, "recv_from", &s);
    op.wait();
  }
}

std::size_t UdpSocket::send_impl(const void* buf, std::size_t n, const Address& to,
                                 const Context* ctx) {
  Socket& s = checked(s_, "send_to");
  Op op(s, PollMode::write, ctx, "send_to");
  for (;;) {
    ssize_t r = ::sendto(s.fd, buf, n, MSG_NOSIGNAL, to.sockaddr_ptr(), to.sockaddr_len());
    if (r >= 0) return static_cast<std::size_t>(r);
    int e = last_errno();
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) throw_errno(e, "send_to", &s, &to);
    op.wait();
  }
}

void UdpSocket::set_read_deadline(Deadline t) noexcept {
  set_socket_deadline(s_.get(), PollMode::read, t);
}
void UdpSocket::set_write_deadline(Deadline t) noexcept {
  set_socket_deadline(s_.get(), PollMode::write, t);
}
void UdpSocket::close() noexcept {
  if (s_) s_->close();
}
Address UdpSocket::local_address() const {
  return sockname(checked(s_, "local_address"));
}
int UdpSocket::fd() const noexcept {
  return s_ && !s_->closing() ? s_->fd : -1;
}

// =============================================================================================
// wait_readable / wait_writable / PollFd

namespace {
bool wait_fd(Socket& s, PollMode mode, std::int64_t deadline_ns, const Context* ctx) {
  Op op(s, mode, ctx, mode == PollMode::read ? "wait_readable" : "wait_writable");
  return op.wait_until(deadline_ns);
}
}  // namespace

PollFd::PollFd(int fd) : s_(make_socket(fd, "", false)) {}
PollFd::~PollFd() = default;
PollFd::PollFd(PollFd&&) noexcept = default;
PollFd& PollFd::operator=(PollFd&&) noexcept = default;
void PollFd::reset() noexcept {
  s_.reset();
}
int PollFd::fd() const noexcept {
  return s_ ? s_->fd : -1;
}

bool PollFd::wait_readable(Deadline d) {
  return wait_fd(checked(s_, "wait_readable"), PollMode::read, to_ns(d), nullptr);
}
bool PollFd::wait_writable(Deadline d) {
  return wait_fd(checked(s_, "wait_writable"), PollMode::write, to_ns(d), nullptr);
}
bool PollFd::wait_readable(const Context& ctx) {
  return wait_fd(checked(s_, "wait_readable"), PollMode::read, kNever, &ctx);
}
bool PollFd::wait_writable(const Context& ctx) {
  return wait_fd(checked(s_, "wait_writable"), PollMode::write, kNever, &ctx);
}

bool wait_readable(int fd, Deadline d) {
  return PollFd(fd).wait_readable(d);
}
bool wait_writable(int fd, Deadline d) {
  return PollFd(fd).wait_writable(d);
}
bool wait_readable(int fd, const Context& ctx) {
  return PollFd(fd).wait_readable(ctx);
}
bool wait_writable(int fd, const Context& ctx) {
  return PollFd(fd).wait_writable(ctx);
}

}  // namespace colony::net
