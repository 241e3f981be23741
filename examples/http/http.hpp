// A small HTTP/1.1 server on colony::net and Boost.Beast: one fiber per connection, blocking-style
// code. Beast parses the requests (http::request_parser) and serialises the responses
// (http::response_serializer) over colony::net::AsioStream, or over a TlsStream for HTTPS.
//
// What it does: keep-alive; pipelining (requests of one connection are answered in order, and
// the responses to requests that arrived together go out in one write); Content-Length and
// chunked request bodies; Expect: 100-continue (the interim 100 goes out before the body is
// read); limits on the header's size, its number of fields and the body's size; 400 for
// malformed requests, 408 for clients too slow to send their header; a lingering close after
// an error response (the client gets to read it even while still sending); HTTPS
// (Options::tls); a WebSocket echo endpoint (Options::websocket_echo_path); and a graceful
// shutdown (stop accepting, let in-flight requests finish under a deadline). Lines of a request
// header may end in CR LF or a bare LF. An idle keep-alive connection holds a few KiB.
//
// Not supported: HTTP/2, transfer codings other than chunked (501), trailers are read and
// dropped.
//
//   http::Server srv([](const http::Request& req, http::Response& res) {
//     res.body = "Hello, World!\n";
//   });
//   auto ln = colony::net::TcpListener::listen(colony::net::Address::parse("127.0.0.1:8080"));
//   colony::go([&] { srv.serve(ln); });   // returns once shutdown() has begun
//   ...
//   srv.shutdown(std::chrono::seconds(5));
//
// The files: server.cpp (accepting, tracking and draining connections), conn.cpp (one
// connection's request loop), response.cpp (serialising responses), routes.cpp (demo_handler),
// websocket.cpp, tls.hpp (HTTPS settings from files), debug.hpp (/debug/fibers, /debug/vars,
// /metrics), pooled.hpp (handlers on a bounded colony::Pool).
#pragma once

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace http {

// Limits: what a request may be.
struct Limits {
  std::size_t max_header_bytes = 8192;       // request line + header fields (431 beyond)
  std::size_t max_headers = 100;             // header fields (431 beyond)
  std::size_t max_body_bytes = 1 << 20;      // a body, Content-Length or chunked (413 beyond)
  std::size_t max_message_bytes = 16 << 20;  // a WebSocket message (the connection closes beyond)
};

// Request: views into the connection's parsed request, valid during the handler call.
struct Request {
  std::string_view method, target, version;  // "GET", "/", "HTTP/1.1"
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  std::string_view body;           // the whole body (a chunked one decoded)
  std::size_t content_length = 0;  // the body's size
  bool keep_alive = true;  // what the client asked for (HTTP/1.1 default, Connection header)
  // ctx: cancelled when the server gives up on in-flight requests (the shutdown deadline).
  const colony::Context* ctx = nullptr;

  // header: the first field of that name (case-insensitive), or "".
  std::string_view header(std::string_view name) const;
  // path: target without the query; query: after '?', or "".
  std::string_view path() const;
  std::string_view query() const;
};

// Response: what the handler fills in. Content-Length and Date are always sent.
struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;  // extra fields
  std::string body;
};

using Handler = std::function<void(const Request&, Response&)>;

// demo_handler: the routes of examples/http_server.cpp (and the tests):
//   GET /            "Hello, World!\n" (the body of bench/go/servers/hello)
//   POST /echo       the request body
//   POST /count      the body's size in bytes, as text
//   GET /sleep?ms=N  waits N ms (at most 60 s; cut short by the server's shutdown deadline)
//   anything else    404
// (The WebSocket echo at /ws is the server's: Options::websocket_echo_path.)
Handler demo_handler();

// Options: the server's settings.
struct Options {
  Limits limits;
  // header_timeout: from a request's first byte to the end of its header (408 after); also the
  // time a TLS handshake may take.
  std::chrono::milliseconds header_timeout{10000};
  // idle_timeout: a keep-alive connection waiting for its next request (or a WebSocket waiting
  // for its next message) is closed after this.
  std::chrono::milliseconds idle_timeout{60000};
  // io_timeout: reading a body, writing a response.
  std::chrono::milliseconds io_timeout{30000};
  // After an error response (400, 408, 413, 417, 431, 501, 505) the server ends its side and
  // reads and discards what the client still sends, so that the client is not reset before it
  // has read the answer (a "lingering close"): until the client ends its side, or nothing came
  // for linger_quiet, or for at most linger_timeout in all.
  std::chrono::milliseconds linger_timeout{2000};
  std::chrono::milliseconds linger_quiet{500};
  // tls: when set, every connection is HTTPS with this server context (see tls.hpp); it must
  // outlive the server. Needs the library built with OpenSSL (COLONY_HTTP_HAVE_TLS).
  boost::asio::ssl::context* tls = nullptr;
  // websocket_echo_path: a WebSocket upgrade request for this path gets an echo endpoint (each
  // message sent back as it came, text or binary). Empty: no WebSocket (the handler sees the
  // request).
  std::string websocket_echo_path;
};

// Stats: counters since the server started.
struct Stats {
  std::uint64_t connections = 0, requests = 0, bad_requests = 0, timeouts = 0, open = 0;
  std::uint64_t websockets = 0;  // WebSocket sessions accepted
  // buffered: bytes of input and output buffer the open connections hold (their capacity). A
  // connection between requests holds at most 16 KiB of input buffer, and 16 KiB of output
  // buffer, whatever the size of the requests and responses it has served.
  std::uint64_t buffered = 0;
};

class Server {
 public:
  explicit Server(Handler handler, Options opts = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // serve: accepts on ln (one fiber per connection) until shutdown() begins or ln is closed.
  // Call it on a fiber; it returns once the accept loop has stopped.
  void serve(colony::net::TcpListener& ln);
  // shutdown: stops accepting, closes idle connections, lets in-flight requests finish (their
  // connections close after the response) and waits up to `drain`; then cancels the requests'
  // context and cuts the connections still open, and waits for their fibers. True if everything
  // finished within the drain period.
  bool shutdown(std::chrono::milliseconds drain);

  Stats stats() const;

  struct Conn;  // one connection's state (conn.hpp)

 private:
  template <class Stream>
  friend class ConnLoop;
  void handle(colony::net::TcpStream s);
  void track(Conn* c);
  void untrack(Conn* c);

  Handler handler_;
  Options opts_;
  colony::Context ctx_;  // cancelled at the end of the drain period
  std::function<void()> cancel_;
  std::atomic<bool> stopping_{false};
  std::atomic<colony::net::TcpListener*> listener_{nullptr};
  colony::WaitGroup conns_wg_;
  colony::WaitGroup serve_wg_;
  mutable colony::sched::SpinLock lock_;  // conns_
  std::list<Conn*> conns_;                // open connections (lock_)
  std::atomic<std::uint64_t> n_conns_{0}, n_requests_{0}, n_bad_{0}, n_timeouts_{0};
  std::atomic<std::uint64_t> n_websockets_{0}, n_buffered_{0};
};

}  // namespace http
