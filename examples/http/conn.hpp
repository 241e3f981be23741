// What the server's files share (not part of the library's interface): a connection's state,
// the connection loop, and the response and WebSocket helpers it calls.
#pragma once

#include <atomic>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <colony/net/asio.hpp>
#include <cstddef>
#include <list>
#include <string>
#include <string_view>

#include "http.hpp"

#if defined(COLONY_HTTP_HAVE_TLS)
#include <colony/net/tls.hpp>
#endif

namespace http {

namespace beast_http = boost::beast::http;
// The request body: a std::string that holds the whole (decoded) body.
using Body = beast_http::string_body;
using BeastRequest = beast_http::request<Body>;

// sv: a Beast string view as a std::string_view.
template <class View>
std::string_view sv(const View& v) noexcept {
  return {v.data(), v.size()};
}

// Server::Conn: one connection, owned by its fiber (handle()); `idle` and `tcp` are also read by
// shutdown() under Server::lock_.
struct Server::Conn {
  colony::net::TcpStream* tcp = nullptr;  // the socket under the (TLS) stream
  std::atomic<bool> idle{false};          // waiting for a request's first byte (or lingering)
  std::list<Conn*>::iterator pos;         // in Server::conns_
  boost::beast::flat_buffer in;           // bytes read and not yet parsed
  std::string out;                        // responses not yet written
  std::size_t counted = 0;  // in's and out's capacity as last added to Server::n_buffered_
};

// lowest: the AsioStream under a connection's stream (deadlines, the TcpStream).
inline colony::net::AsioStream& lowest(colony::net::AsioStream& s) noexcept {
  return s;
}
#if defined(COLONY_HTTP_HAVE_TLS)
inline colony::net::AsioStream& lowest(colony::net::TlsStream& s) noexcept {
  return s.next_layer();
}
#endif

// ConnLoop: serves the requests of one connection until it closes (conn.cpp). Stream is
// colony::net::AsioStream, or colony::net::TlsStream after its handshake. I/O errors end it
// with boost::system::system_error (caught by Server::handle).
template <class Stream>
class ConnLoop {
 public:
  ConnLoop(Server& srv, Stream& s, Server::Conn& c) : srv_(srv), s_(s), c_(c) {}
  void run();

 private:
  // Verdict: an error status to answer with and why (status 0: go on; -1: close quietly).
  struct Verdict {
    int status = 0;
    const char* why = "";
  };
  Verdict read_head(beast_http::request_parser<Body>& p);
  Verdict check_head(beast_http::request_parser<Body>& p, bool& expect_continue);
  Verdict read_body(beast_http::request_parser<Body>& p);
  void respond(const BeastRequest& m, Response& res, bool keep);
  void flush();
  void fail(Verdict v);
  void linger();
  void close_gracefully();
  void count_buffers();

  Server& srv_;
  Stream& s_;
  Server::Conn& c_;
};

// append_response: res's status line and header (with Date, Content-Length, and Connection
// when `close` or `http10_keep_alive`) serialised by Beast onto out, then its body unless
// head_only (response.cpp).
void append_response(std::string& out, const Response& res, bool head_only, bool close,
                     bool http10_keep_alive);
// append_error: a short text response with `status` that closes the connection.
void append_error(std::string& out, int status, const char* why);

// websocket_echo: completes the upgrade `req` on s and echoes every message until the client
// closes, the idle timeout passes, or the server stops (websocket.cpp). `idle` is set while it
// waits for a message, so that shutdown() ends the session as it ends idle connections.
template <class Stream>
void websocket_echo(Stream& s, const BeastRequest& req, const Options& opts,
                    std::atomic<bool>& idle, const std::atomic<bool>& stopping);

}  // namespace http
