// colony::net::AsioStream: a TcpStream as an Asio SyncReadStream and SyncWriteStream, so that
// Boost.Asio's and Boost.Beast's synchronous algorithms run on fibers unchanged:
//
//   #include <colony/net/asio.hpp>
//   colony::net::AsioStream s(listener.accept());
//   boost::beast::flat_buffer buf;
//   boost::beast::http::request<boost::beast::http::string_body> req;
//   boost::beast::http::read(s, buf, req);              // parks the fiber, not its thread
//   boost::beast::websocket::stream<colony::net::AsioStream> ws(std::move(tcp));
//   ws.accept(); ws.read(buf); ws.write(buf.data());
//
// This header is optional glue: colony::runtime never includes it and does not link Asio. It
// needs only Boost's headers (Asio, System and beast/core/role.hpp are header-only in Boost 1.74)
// and pthread. TLS on top of it is <colony/net/tls.hpp> (docs/net.md, "Asio, Beast and TLS").
//
// What blocks what: read_some and write_some are TcpStream::readv / writev. On a fiber they park
// the fiber on the netpoller ("IO wait"); on a plain thread they block the thread.
//
// Errors: the error_code overloads never throw for I/O failures; the others throw
// boost::system::system_error, as Asio's own sockets do. colony's errors map to Asio's
// (to_asio_error): end of stream -> asio::error::eof; a socket deadline -> error::timed_out;
// a Context's deadline_exceeded -> error::timed_out, its canceled -> error::operation_aborted;
// errno values keep their value in the system category (ECONNRESET == error::connection_reset,
// EPIPE == error::broken_pipe, a socket closed under the call EBADF == error::bad_descriptor).
// FiberUnwind (runtime shutdown) and std::bad_alloc still propagate as exceptions.
//
// Deadlines and cancellation work through the stream: set_deadline / set_read_deadline /
// set_write_deadline are the TcpStream's, and set_context(ctx) makes every later read_some and
// write_some use the Context overloads (docs/net.md, "Deadlines and cancellation").
//
// The executor: get_executor() returns the executor of an io_context, by default
// default_io_context(), a process-wide one that colony never runs. Asio and Beast need an
// executor to construct the timers their asynchronous operations use (websocket::stream and
// ssl::stream make one at construction), and a timer needs a real execution context with its
// services; the synchronous operations this type supports never post anything to it. Pass your
// own io_context to the constructor if you run one and want get_executor() to reach it. The
// asynchronous operations (async_read_some, ...) are not provided.
#pragma once

#include <sys/uio.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>
#include <cstddef>
#include <optional>
#include <span>
#include <system_error>
#include <utility>

#include "colony/context.hpp"
#include "colony/net.hpp"

namespace colony::net {

// to_asio_error: a colony error (an errno in the generic or system category, or a Context's
// context_errc) as the boost::system::error_code Asio would report for it (see the top).
inline boost::system::error_code to_asio_error(const std::error_code& e) noexcept {
  if (!e) return {};
  if (e.category() == std::generic_category() || e.category() == std::system_category())
    return {e.value(), boost::asio::error::get_system_category()};
  if (e.category() == context_category())
    return e.value() == static_cast<int>(context_errc::deadline_exceeded)
               ? boost::asio::error::timed_out
               : boost::asio::error::operation_aborted;
  return boost::system::errc::make_error_code(boost::system::errc::io_error);
}

// default_io_context: the io_context whose executor AsioStream hands out when given none. Never
// run by colony (see the top of the file); created on first use, one per process.
inline boost::asio::io_context& default_io_context() {
  static boost::asio::io_context ioc;
  return ioc;
}

// AsioStream: owns a TcpStream and models SyncReadStream and SyncWriteStream (see the top).
// Move-only. lowest_layer() is the AsioStream itself (what asio::ssl::stream and
// beast::get_lowest_layer reach), so deadlines and close are also here.
class AsioStream {
 public:
  using executor_type = boost::asio::io_context::executor_type;
  using lowest_layer_type = AsioStream;

  // AsioStream(): not connected (reads and writes fail with error::bad_descriptor).
  AsioStream() : ioc_(&default_io_context()) {}
  explicit AsioStream(TcpStream s, boost::asio::io_context& ioc = default_io_context())
      : s_(std::move(s)), ioc_(&ioc) {}
  AsioStream(AsioStream&&) noexcept = default;
  AsioStream& operator=(AsioStream&&) noexcept = default;

  executor_type get_executor() noexcept { return ioc_->get_executor(); }
  lowest_layer_type& lowest_layer() noexcept { return *this; }
  const lowest_layer_type& lowest_layer() const noexcept { return *this; }

  // tcp: the TcpStream underneath (addresses, set_nodelay, fd, ...).
  TcpStream& tcp() noexcept { return s_; }
  const TcpStream& tcp() const noexcept { return s_; }

  // read_some: reads at least one byte into the buffers (parking until there is one); returns
  // the count. At end of stream: 0 and error::eof. Empty buffers: 0 and no error.
  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers, boost::system::error_code& ec) {
    Iovecs v(buffers);
    ec = {};
    if (v.bytes == 0) return 0;
    try {
      std::size_t n = ctx_ ? s_.readv(v.span(), *ctx_) : s_.readv(v.span());
      if (n == 0) ec = boost::asio::error::eof;
      return n;
    } catch (const std::system_error& e) {
      ec = to_asio_error(e.code());
      return 0;
    }
  }
  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers) {
    boost::system::error_code ec;
    std::size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec, "colony::net: read_some");
    return n;
  }

  // write_some: writes at least one byte of the buffers (parking until there is room); returns
  // the count. Empty buffers: 0 and no error.
  template <class ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
    Iovecs v(buffers);
    ec = {};
    if (v.bytes == 0) return 0;
    try {
      return ctx_ ? s_.writev(v.span(), *ctx_) : s_.writev(v.span());
    } catch (const std::system_error& e) {
      ec = to_asio_error(e.code());
      return 0;
    }
  }
  template <class ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers) {
    boost::system::error_code ec;
    std::size_t n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec, "colony::net: write_some");
    return n;
  }

  // set_context: later reads and writes give up when ctx is done (error::operation_aborted, or
  // error::timed_out for its deadline). clear_context: back to socket deadlines only.
  void set_context(Context ctx) { ctx_ = std::move(ctx); }
  void clear_context() noexcept { ctx_.reset(); }

  // Deadlines: the TcpStream's (an expired one is error::timed_out).
  void set_deadline(Deadline t) noexcept { s_.set_deadline(t); }
  void set_read_deadline(Deadline t) noexcept { s_.set_read_deadline(t); }
  void set_write_deadline(Deadline t) noexcept { s_.set_write_deadline(t); }

  // shutdown: TcpStream::shutdown, reporting failure in ec.
  void shutdown(Shutdown how, boost::system::error_code& ec) noexcept {
    ec = {};
    try {
      s_.shutdown(how);
    } catch (const std::system_error& e) {
      ec = to_asio_error(e.code());
    }
  }
  // close: closes the socket (idempotent); calls parked on it fail with error::bad_descriptor.
  void close() noexcept { s_.close(); }
  bool is_open() const noexcept { return s_.is_open(); }

  // beast_close_socket: Beast's customization point (beast::close_socket).
  friend void beast_close_socket(AsioStream& s) noexcept { s.close(); }

 private:
  // Iovecs: the first kMax buffers of a sequence as iovecs (Asio's own sockets take 64 too; a
  // short count is allowed by read_some/write_some, and the composed algorithms loop).
  struct Iovecs {
    static constexpr std::size_t kMax = 64;
    iovec iov[kMax];
    std::size_t count = 0;
    std::size_t bytes = 0;
    template <class Buffers>
    explicit Iovecs(const Buffers& b) {
      auto end = boost::asio::buffer_sequence_end(b);
      for (auto it = boost::asio::buffer_sequence_begin(b); it != end && count < kMax; ++it) {
        auto buf = *it;  // a mutable_buffer or a const_buffer
        if (buf.size() == 0) continue;
        iov[count].iov_base = const_cast<void*>(static_cast<const void*>(buf.data()));
        iov[count].iov_len = buf.size();
        bytes += buf.size();
        ++count;
      }
    }
    std::span<const iovec> span() const noexcept { return {iov, count}; }
  };

  TcpStream s_;
  boost::asio::io_context* ioc_;
  std::optional<Context> ctx_;
};

// teardown: Beast's websocket customization point (found by ADL), what websocket::stream's
// close() and a received close frame call to end the TCP connection. As Beast's for Asio's
// sockets: the server ends its side first, then both drain what the peer still sends until end
// of stream, then close. The socket's read deadline bounds the drain.
inline void teardown(boost::beast::role_type role, AsioStream& s, boost::system::error_code& ec) {
  if (role == boost::beast::role_type::server) {
    s.shutdown(Shutdown::write, ec);
    if (ec) return;
  }
  for (;;) {
    char buf[2048];
    std::size_t n = s.read_some(boost::asio::buffer(buf), ec);
    if (ec == boost::asio::error::eof) {
      ec = {};
      break;
    }
    if (ec) return;
    if (n == 0) break;
  }
  if (role == boost::beast::role_type::client) {
    s.shutdown(Shutdown::write, ec);
    // The peer may have closed already (ENOTCONN): the connection is down, as wanted.
    if (ec == boost::asio::error::not_connected) ec = {};
    if (ec) return;
  }
  s.close();
}

}  // namespace colony::net
