// colony::net: TCP and UDP sockets for fibers, on the runtime's netpoller (Go's net package).
//
//   auto ln = colony::net::TcpListener::listen(colony::net::Address::parse("127.0.0.1:8080"));
//   for (;;) {
//     colony::go([](colony::net::TcpStream c) {
//       char buf[4096];
//       while (std::size_t n = c.read(buf, sizeof buf)) c.write_all(buf, n);  // 0 = EOF
//     }, ln.accept());
//   }
//
// What blocks what: every call that waits (accept, connect, read, write, recv_from, send_to,
// wait_readable, ...) parks the calling fiber on the netpoller (its thread runs other fibers; the
// fiber dump shows it as "IO wait") and blocks the calling thread when called from a plain OS
// thread. Sockets are created non-blocking and close-on-exec, and registered with the poller of
// the runtime that creates them (the calling fiber's, else the default runtime's).
//
// Errors are std::system_error carrying the errno, with the operation and the addresses in the
// message ("colony::net: read tcp 127.0.0.1:41234->127.0.0.1:8080: Connection reset by peer").
// End of stream is a value: read() returns 0, read_exact() returns fewer bytes than asked.
// Time-outs and cancellation (docs/net.md, "Deadlines and cancellation"):
//  * a socket deadline (set_read_deadline, set_write_deadline, TcpListener::set_deadline, the
//    timeout of connect) that passes throws std::errc::timed_out;
//  * the overloads taking a colony::Context give up when the context is done and throw the
//    context's error: context_errc::canceled or context_errc::deadline_exceeded.
// net::is_timeout(e) is true for both kinds of deadline. A call that fails this way leaves the
// socket usable (a read that timed out consumed nothing).
//
// Sockets are move-only RAII handles; the destructor closes. close() may be called by another
// fiber or thread while calls on the socket are parked: they wake and throw
// std::errc::bad_file_descriptor ("use of closed socket"), and close() returns once they have
// left. The object itself must outlive every call on it. Different fibers may read and write
// one TcpStream at the same time (one reader and one writer at a time, as with any stream).
// Addresses are numeric (no name resolution).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "colony/context.hpp"
#include "colony/sched/deadline.hpp"

namespace colony::net {

// Deadline: a point on the steady clock; kNoDeadline (the default everywhere) means none.
using Deadline = std::chrono::steady_clock::time_point;
inline constexpr Deadline kNoDeadline = Deadline::max();

// is_timeout: whether an error is a passed deadline (std::errc::timed_out, or a Context's
// context_errc::deadline_exceeded).
bool is_timeout(const std::error_code& e) noexcept;
inline bool is_timeout(const std::system_error& e) noexcept {
  return is_timeout(e.code());
}
// is_closed: whether an error says the socket was closed under the call
// (errc::bad_file_descriptor).
bool is_closed(const std::error_code& e) noexcept;

// Address: an IPv4 or IPv6 socket address (with port; IPv6 may carry a numeric scope id).
class Address {
 public:
  // Address(): unspecified (family AF_UNSPEC); formats as "".
  Address() noexcept;
  // parse: "127.0.0.1:8080", "[::1]:8080", "[fe80::1%2]:80", ":8080" (0.0.0.0:8080), "0.0.0.0:0".
  // Throws std::invalid_argument saying what is wrong.
  static Address parse(std::string_view s);
  static std::optional<Address> try_parse(std::string_view s) noexcept;
  // ip: a host ("127.0.0.1", "::1") and a port. Throws std::invalid_argument.
  static Address ip(std::string_view host, std::uint16_t port);
  static Address loopback_v4(std::uint16_t port) noexcept;  // 127.0.0.1:port
  static Address loopback_v6(std::uint16_t port) noexcept;  // [::1]:port
  static Address any_v4(std::uint16_t port) noexcept;       // 0.0.0.0:port
  static Address any_v6(std::uint16_t port) noexcept;       // [::]:port
  // from_sockaddr: copies an AF_INET / AF_INET6 address (others give an unspecified Address).
  static Address from_sockaddr(const sockaddr* sa, socklen_t len) noexcept;

  int family() const noexcept;  // AF_INET, AF_INET6 or AF_UNSPEC
  bool is_v4() const noexcept { return family() == AF_INET; }
  bool is_v6() const noexcept { return family() == AF_INET6; }
  bool is_unspecified() const noexcept { return family() == AF_UNSPEC; }
  std::uint16_t port() const noexcept;
  Address with_port(std::uint16_t port) const noexcept;
  // host: "127.0.0.1", "::1", "fe80::1%2"; to_string: "127.0.0.1:8080", "[::1]:8080".
  std::string host() const;
  std::string to_string() const;

  const sockaddr* sockaddr_ptr() const noexcept { return reinterpret_cast<const sockaddr*>(&ss_); }
  socklen_t sockaddr_len() const noexcept { return len_; }

  friend bool operator==(const Address& a, const Address& b) noexcept;

 private:
  sockaddr_storage ss_;
  socklen_t len_;
};

// Shutdown: which half of a TCP connection shutdown() closes.
enum class Shutdown { read, write, both };

// ListenOptions: TcpListener::listen and UdpSocket::bind settings.
struct ListenOptions {
  // backlog: the accept queue's length (the kernel caps it at net.core.somaxconn).
  int backlog = 4096;
  // reuse_addr: SO_REUSEADDR (rebind a port whose old connections are in TIME_WAIT), as Go.
  bool reuse_addr = true;
  // reuse_port: SO_REUSEPORT (several sockets share the port; the kernel spreads connections).
  bool reuse_port = false;
  // v6_only: IPV6_V6ONLY for an IPv6 address (false: [::] also accepts IPv4 connections).
  bool v6_only = false;
};

namespace detail {
struct Socket;  // the fd, its PollDesc, deadlines, and the count of calls in progress
struct SocketDeleter {
  void operator()(Socket* s) const noexcept;
};
using SocketPtr = std::unique_ptr<Socket, SocketDeleter>;
}  // namespace detail

// TcpStream: a connected TCP socket.
class TcpStream {
 public:
  TcpStream() noexcept;  // not connected (is_open() false)
  ~TcpStream();
  TcpStream(TcpStream&&) noexcept;
  TcpStream& operator=(TcpStream&&) noexcept;  // closes the socket it held

  // connect: connects to addr, giving up after `timeout` (errc::timed_out) or when ctx is done.
  // Any duration, saturating: beyond nanoseconds::max() waits without a timeout.
  static TcpStream connect(const Address& addr,
                           std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());
  template <class Rep, class Period>
  static TcpStream connect(const Address& addr, std::chrono::duration<Rep, Period> timeout) {
    return connect(addr, sched::saturate(timeout));
  }
  static TcpStream connect(const Address& addr, const Context& ctx);

  // read: reads at least one byte (waiting for them) and at most n; returns 0 at end of stream
  // (or when n is 0).
  std::size_t read(void* buf, std::size_t n);
  std::size_t read(void* buf, std::size_t n, const Context& ctx);
  std::size_t read(std::span<std::byte> buf) { return read(buf.data(), buf.size()); }
  // read_exact: reads exactly n bytes unless the stream ends first; returns the count read
  // (n, or fewer at end of stream). On an exception, the bytes read so far are lost.
  std::size_t read_exact(void* buf, std::size_t n);
  std::size_t read_exact(void* buf, std::size_t n, const Context& ctx);
  // write: writes at least one byte and at most n (waiting for room); returns the count.
  std::size_t write(const void* buf, std::size_t n);
  std::size_t write(const void* buf, std::size_t n, const Context& ctx);
  // write_all: writes all n bytes (several writes if the socket's buffer fills up). A broken
  // connection throws (EPIPE, ECONNRESET); SIGPIPE is never raised. On a time-out some prefix
  // may have been written.
  void write_all(const void* buf, std::size_t n);
  void write_all(const void* buf, std::size_t n, const Context& ctx);
  void write_all(std::string_view s) { write_all(s.data(), s.size()); }
  void write_all(std::string_view s, const Context& ctx) { write_all(s.data(), s.size(), ctx); }
  void write_all(std::span<const std::byte> b) { write_all(b.data(), b.size()); }
  // write_all: two buffers in one go (writev), e.g. a header and a body.
  void write_all(std::string_view a, std::string_view b);
  // readv: scatter read (readv(2)): waits for at least one byte, fills the buffers in order and
  // returns the count; 0 at end of stream (or when every buffer is empty). writev: gather write
  // (writev(2)): writes at least one byte and returns the count (partial, like write). At most
  // IOV_MAX buffers are used per call. These are what <colony/net/asio.hpp>'s read_some and
  // write_some on buffer sequences call.
  std::size_t readv(std::span<const iovec> bufs);
  std::size_t readv(std::span<const iovec> bufs, const Context& ctx);
  std::size_t writev(std::span<const iovec> bufs);
  std::size_t writev(std::span<const iovec> bufs, const Context& ctx);

  // shutdown: ends one or both directions (the peer reads end of stream after a write
  // shutdown). Parked reads (for read or both) wake up and see end of stream.
  void shutdown(Shutdown how);
  // close: closes the socket (idempotent); parked calls throw errc::bad_file_descriptor.
  void close() noexcept;
  bool is_open() const noexcept { return s_ != nullptr; }

  // Deadlines, Go style: apply to every later (and, best effort, every parked) call of that
  // direction until changed; kNoDeadline removes them. A passed deadline throws errc::timed_out.
  void set_read_deadline(Deadline t) noexcept;
  void set_write_deadline(Deadline t) noexcept;
  void set_deadline(Deadline t) noexcept;  // both

  void set_nodelay(bool on);  // TCP_NODELAY (disable Nagle's algorithm)
  Address local_address() const;
  Address peer_address() const;
  int fd() const noexcept;  // -1 when not open

 private:
  friend class TcpListener;
  explicit TcpStream(detail::SocketPtr s) noexcept;
  static TcpStream connect_impl(const Address& addr, std::int64_t deadline_ns, const Context* ctx);
  std::size_t read_impl(void* buf, std::size_t n, const Context* ctx);
  std::size_t write_impl(const void* buf, std::size_t n, const Context* ctx);
  std::size_t read_exact_impl(void* buf, std::size_t n, const Context* ctx);
  void write_all_impl(const void* buf, std::size_t n, const Context* ctx);
  std::size_t readv_impl(std::span<const iovec> bufs, const Context* ctx);
  std::size_t writev_impl(std::span<const iovec> bufs, const Context* ctx);
  detail::SocketPtr s_;
};

// TcpListener: a listening TCP socket.
class TcpListener {
 public:
  TcpListener() noexcept;
  ~TcpListener();
  TcpListener(TcpListener&&) noexcept;
  TcpListener& operator=(TcpListener&&) noexcept;

  // listen: binds to addr (port 0: the kernel picks one; see local_address) and listens.
  static TcpListener listen(const Address& addr, const ListenOptions& opts = {});
  // accept: waits for the next connection. When file descriptors run out (EMFILE, ENFILE,
  // ENOBUFS, ENOMEM) it does not spin: it backs off (5 ms doubling up to 1 s, as Go's net/http
  // server) and retries, until its deadline, cancellation or close. ECONNABORTED is skipped.
  TcpStream accept();
  TcpStream accept(const Context& ctx);
  // set_deadline: for accept (Go's Listener.SetDeadline); kNoDeadline removes it.
  void set_deadline(Deadline t) noexcept;
  // close: stops listening (idempotent); a parked accept throws errc::bad_file_descriptor.
  void close() noexcept;
  bool is_open() const noexcept { return s_ != nullptr; }
  Address local_address() const;
  int fd() const noexcept;
  // backoffs: how many times accept has backed off because descriptors ran out (tests, stats).
  std::uint64_t backoffs() const noexcept;

 private:
  TcpStream accept_impl(const Context* ctx);
  detail::SocketPtr s_;
};

// UdpSocket: a UDP socket (datagrams are sent and received whole).
class UdpSocket {
 public:
  UdpSocket() noexcept;
  ~UdpSocket();
  UdpSocket(UdpSocket&&) noexcept;
  UdpSocket& operator=(UdpSocket&&) noexcept;

  // bind: a socket bound to addr (port 0: any); only reuse_addr, reuse_port, v6_only apply.
  static UdpSocket bind(const Address& addr, const ListenOptions& opts = {.reuse_addr = false});

  struct Received {
    std::size_t size = 0;  // bytes stored (a longer datagram is truncated to the buffer)
    Address from;
  };
  // recv_from: waits for a datagram.
  Received recv_from(void* buf, std::size_t n);
  Received recv_from(void* buf, std::size_t n, const Context& ctx);
  // send_to: sends one datagram; returns its size.
  std::size_t send_to(const void* buf, std::size_t n, const Address& to);
  std::size_t send_to(const void* buf, std::size_t n, const Address& to, const Context& ctx);

  void set_read_deadline(Deadline t) noexcept;
  void set_write_deadline(Deadline t) noexcept;
  void close() noexcept;
  bool is_open() const noexcept { return s_ != nullptr; }
  Address local_address() const;
  int fd() const noexcept;

 private:
  Received recv_impl(void* buf, std::size_t n, const Context* ctx);
  std::size_t send_impl(const void* buf, std::size_t n, const Address& to, const Context* ctx);
  detail::SocketPtr s_;
};

// wait_readable / wait_writable: wait until a non-blocking fd that colony::net does not own (a
// pipe, an eventfd, a foreign library's socket) is ready. Returns true when ready (readiness is
// a hint: retry the operation, and wait again on EAGAIN), false when the deadline passed.
// Throws the context's error when ctx is done first. Each call registers the fd with the poller
// and unregisters it (two epoll_ctl calls); for repeated waits on one fd use PollFd.
bool wait_readable(int fd, Deadline deadline = kNoDeadline);
bool wait_writable(int fd, Deadline deadline = kNoDeadline);
bool wait_readable(int fd, const Context& ctx);
bool wait_writable(int fd, const Context& ctx);

// PollFd: a lasting registration of a non-blocking fd it does not own (it never closes it).
// Destroy it (or call reset) before closing the fd.
class PollFd {
 public:
  PollFd() noexcept = default;
  explicit PollFd(int fd);  // throws std::system_error (e.g. EPERM for a regular file)
  ~PollFd();
  PollFd(PollFd&&) noexcept;
  PollFd& operator=(PollFd&&) noexcept;
  bool wait_readable(Deadline deadline = kNoDeadline);
  bool wait_writable(Deadline deadline = kNoDeadline);
  bool wait_readable(const Context& ctx);
  bool wait_writable(const Context& ctx);
  void reset() noexcept;  // unregisters
  int fd() const noexcept;

 private:
  detail::SocketPtr s_;
};

}  // namespace colony::net
