// One connection's request loop (ConnLoop::run), on Beast's request_parser.
//
// The connection's bytes are read into Conn::in (a beast::flat_buffer) and handed to a
// request_parser with put(): first the header, which the server checks before it reads the
// body (limits, Host, transfer codings, Expect: 100-continue), then the body (Content-Length or
// chunked). If a request is incomplete, the responses queued so far are written first (so the
// answers to pipelined requests that arrived together go out in one write), then more is read.
// Each connection's deadlines:
//   waiting for a request's first byte   idle_timeout     (then: close quietly)
//   first byte .. end of header          header_timeout   (then: 408 and close)
//   reading the body, writing responses  io_timeout       (then: close)
//   after an error response              linger_quiet / linger_timeout (then: close)
//
// Beast's parser is stricter than RFC 9112 in two places where the server keeps its old answers,
// so the head is tidied before Beast sees it (tidy_head): empty lines before a request are
// skipped, and a line ending in a bare LF gets its CR. It is more lenient in one: it unfolds
// obsolete line folding, which the server refuses (400) as RFC 9112 recommends. Beast also
// waits for the whole header before it parses, so a request line that cannot be HTTP (a TLS
// handshake on the plain port) is refused early by looking at its first token.
//
// Memory: the input buffer goes back to at most kIdleBufferMax once a request is done, the
// output buffer is given up after a flush that found it grown past kIdleBufferMax, and a
// response body larger than kDirectBodyAbove is written from the Response, not copied.
#include "conn.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <cctype>
#include <chrono>
#include <cstring>
#include <exception>
#include <iterator>
#include <limits>

namespace http {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kReadSize = 4 * 1024;          // the least room a read is given
constexpr std::size_t kBodyReadMax = 64 * 1024;      // the most a body read asks for at once
constexpr std::size_t kIdleBufferMax = 16 * 1024;    // what a buffer may keep between requests
constexpr std::size_t kDirectBodyAbove = 16 * 1024;  // bodies written without a copy

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// is_tchar: RFC 9110 token characters (methods, header names).
bool is_tchar(char ch) noexcept {
  if (std::isalnum(static_cast<unsigned char>(ch))) return true;
  return ch != '\0' && std::strchr("!#$%&'*+-.^_`|~", ch) != nullptr;
}

// tidy_head: prepares the unparsed bytes at the front of `in` (a request's head, complete or
// not) for Beast (see the top): skips empty lines before the request line, adds the CR of each
// line of the head that ends in a bare LF, and refuses obsolete line folding. `started`: the
// parser has taken the request line already (Beast takes it before the rest of the head has
// come), so `in` starts at a field line. 0, or the status to answer with.
int tidy_head(beast::flat_buffer& in, bool started, const char*& why) {
  auto view = [&] {
    return std::string_view(static_cast<const char*>(in.data().data()), in.size());
  };
  std::string_view b = view();
  std::size_t skip = 0;
  if (started && !b.empty() && (b[0] == ' ' || b[0] == '\t')) {
    why = "obsolete line folding";
    return 400;
  }
  while (!started) {
    if (skip < b.size() && b[skip] == '\n')
      skip += 1;
    else if (b.size() - skip >= 2 && b[skip] == '\r' && b[skip + 1] == '\n')
      skip += 2;
    else
      break;
    if (skip > 64) {
      why = "too many empty lines";
      return 400;
    }
  }
  if (skip > 0) in.consume(skip);
  b = view();
  // The end of the head (just past its empty line), and the bare LFs before it.
  std::size_t end = b.size(), bare = 0;
  for (std::size_t nl = b.find('\n'); nl != std::string_view::npos; nl = b.find('\n', nl + 1)) {
    if (nl == 0 || b[nl - 1] != '\r') ++bare;
    std::size_t p = nl + 1;
    if (p < b.size() && (b[p] == ' ' || b[p] == '\t')) {
      why = "obsolete line folding";
      return 400;
    }
    if (p < b.size() && b[p] == '\r') ++p;
    if (p < b.size() && b[p] == '\n') {
      if (b[p - 1] != '\r') ++bare;
      end = p + 1;
      break;
    }
  }
  if (bare == 0) return 0;
  std::string fixed;
  fixed.reserve(b.size() + bare);
  for (std::size_t i = 0; i < end; ++i) {
    if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r')) fixed += '\r';
    fixed += b[i];
  }
  fixed.append(b.substr(end));
  in.consume(in.size());
  auto room = in.prepare(fixed.size());
  std::memcpy(room.data(), fixed.data(), fixed.size());
  in.commit(fixed.size());
  return 0;
}

// plausible_start: whether an incomplete head can still be a request: it starts with a token
// (the method), then a space.
bool plausible_start(const beast::flat_buffer& in) noexcept {
  std::string_view b(static_cast<const char*>(in.data().data()), in.size());
  b = b.substr(0, b.find_first_of(" \r\n"));
  return std::all_of(b.begin(), b.end(), is_tchar);
}

// parse_status: the answer to a request Beast's parser refused. A well-formed version other
// than 1.x is 505, as before; Beast calls every version it does not take bad_version.
int parse_status(const beast::error_code& ec, std::string_view head, const char*& why) {
  if (ec == beast_http::error::header_limit) {
    why = "request header too large";
    return 431;
  }
  if (ec == beast_http::error::body_limit) {
    why = "request body too large";
    return 413;
  }
  if (ec == beast_http::error::bad_transfer_encoding) {
    why = "Transfer-Encoding not supported";
    return 501;
  }
  if (ec == beast_http::error::bad_version) {
    std::string_view line = head.substr(0, head.find('\r'));
    std::string_view v = line.substr(line.rfind(' ') + 1);
    if (v.size() == 8 && v.substr(0, 5) == "HTTP/" &&
        std::isdigit(static_cast<unsigned char>(v[5])) && v[6] == '.' &&
        std::isdigit(static_cast<unsigned char>(v[7])) && v[5] != '1') {
      why = "HTTP version not supported";
      return 505;
    }
  }
  why = "malformed request";  // Beast's reason goes in the body below
  return 400;
}

}  // namespace

template <class Stream>
void ConnLoop<Stream>::count_buffers() {
  const std::size_t now = c_.in.capacity() + c_.out.capacity();
  if (now == c_.counted) return;
  srv_.n_buffered_.fetch_add(now - c_.counted, std::memory_order_relaxed);  // modulo 2^64
  c_.counted = now;
}

template <class Stream>
void ConnLoop<Stream>::flush() {
  if (c_.out.empty()) return;
  lowest(s_).set_write_deadline(Clock::now() + srv_.opts_.io_timeout);
  asio::write(s_, asio::buffer(c_.out));
  if (c_.out.capacity() > kIdleBufferMax) {
    std::string().swap(c_.out);
    count_buffers();
  } else {
    c_.out.clear();
  }
}

template <class Stream>
typename ConnLoop<Stream>::Verdict ConnLoop<Stream>::read_head(
    beast_http::request_parser<Body>& p) {
  const Options& o = srv_.opts_;
  Clock::time_point head_deadline{};
  bool started = false;  // Beast has taken the request line (it takes only whole lines)
  for (;;) {
    if (c_.in.size() > 0) {
      Verdict v;
      if ((v.status = tidy_head(c_.in, started, v.why)) != 0) return v;
      if (c_.in.size() > 0) {
        beast::error_code ec;
        const std::size_t n = p.put(c_.in.data(), ec);
        if (!ec && p.is_header_done()) {
          c_.in.consume(n);
          return {};
        }
        if (ec && ec != beast_http::error::need_more) {
          std::string_view head(static_cast<const char*>(c_.in.data().data()), c_.in.size());
          v.status = parse_status(ec, head, v.why);
          return v;
        }
        c_.in.consume(n);
        started = started || n > 0;
        if (!started && !plausible_start(c_.in)) return {400, "malformed request line"};
      }
    }
    flush();
    const bool waiting = c_.in.size() == 0;  // nothing of the next request yet
    if (waiting) {
      c_.idle.store(true);
      if (srv_.stopping_.load()) return {-1};
      lowest(s_).set_read_deadline(Clock::now() + o.idle_timeout);
    } else {
      if (head_deadline == Clock::time_point{}) head_deadline = Clock::now() + o.header_timeout;
      lowest(s_).set_read_deadline(head_deadline);
    }
    beast::error_code ec;
    const std::size_t room = std::max(kReadSize, c_.in.capacity() - c_.in.size());
    const std::size_t n = s_.read_some(c_.in.prepare(room), ec);
    c_.in.commit(n);
    c_.idle.store(false);
    count_buffers();
    if (ec) {
      if (waiting || ec != asio::error::timed_out) return {-1};  // gone, or idle too long
      srv_.n_timeouts_.fetch_add(1, std::memory_order_relaxed);
      return {408, "request header timeout"};
    }
    if (waiting) head_deadline = Clock::now() + o.header_timeout;
  }
}

template <class Stream>
typename ConnLoop<Stream>::Verdict ConnLoop<Stream>::check_head(beast_http::request_parser<Body>& p,
                                                                bool& expect_continue) {
  const Limits& l = srv_.opts_.limits;
  const BeastRequest& m = p.get();
  const auto hosts = m.count(beast_http::field::host);
  if (hosts == 0 && m.version() >= 11) return {400, "missing Host header"};
  if (hosts > 1) return {400, "several Host fields"};
  if (static_cast<std::size_t>(std::distance(m.begin(), m.end())) > l.max_headers)
    return {431, "too many header fields"};
  if (m.count(beast_http::field::transfer_encoding) > 0) {
    // chunked alone: Beast decodes it; any other coding is not supported.
    if (m.count(beast_http::field::transfer_encoding) > 1 ||
        !iequals(trim(sv(m[beast_http::field::transfer_encoding])), "chunked"))
      return {501, "Transfer-Encoding not supported"};
    if (m.count(beast_http::field::content_length) > 0)
      return {400, "Content-Length with Transfer-Encoding"};
  }
  if (auto len = p.content_length(); len && *len > l.max_body_bytes)
    return {413, "request body too large"};
  expect_continue = false;
  if (m.count(beast_http::field::expect) > 0) {
    if (!iequals(trim(sv(m[beast_http::field::expect])), "100-continue"))
      return {417, "unsupported Expect"};
    expect_continue = m.version() >= 11 && !p.is_done();
  }
  return {};
}

template <class Stream>
typename ConnLoop<Stream>::Verdict ConnLoop<Stream>::read_body(
    beast_http::request_parser<Body>& p) {
  lowest(s_).set_read_deadline(Clock::now() + srv_.opts_.io_timeout);
  while (!p.is_done()) {
    if (c_.in.size() > 0) {
      beast::error_code ec;
      const std::size_t n = p.put(c_.in.data(), ec);
      c_.in.consume(n);
      if (ec && ec != beast_http::error::need_more) {
        Verdict v;
        v.status = parse_status(ec, {}, v.why);
        return v;
      }
      if (p.is_done()) break;
      if (n > 0 && !ec) continue;
    }
    // The body's remaining length, when it is known, bounds the read.
    std::size_t room = kBodyReadMax;
    if (auto left = p.content_length_remaining(); left && *left > c_.in.size())
      room = std::clamp<std::size_t>(*left - c_.in.size(), kReadSize, kBodyReadMax);
    beast::error_code ec;
    const std::size_t n = s_.read_some(c_.in.prepare(room), ec);
    c_.in.commit(n);
    count_buffers();
    if (ec) return {-1};  // cut short
  }
  return {};
}

template <class Stream>
void ConnLoop<Stream>::respond(const BeastRequest& m, Response& res, bool keep) {
  const bool head_only = m.method() == beast_http::verb::head;
  // A large body goes out at once, with the responses queued before it, without a copy.
  const bool direct = !head_only && res.body.size() > kDirectBodyAbove;
  append_response(c_.out, res, head_only || direct, !keep, keep && m.version() == 10);
  if (direct) {
    lowest(s_).set_write_deadline(Clock::now() + srv_.opts_.io_timeout);
    asio::write(s_, std::array{asio::buffer(c_.out), asio::buffer(res.body)});
    c_.out.clear();
  }
}

// fail: answers an error status, then lingers and closes.
template <class Stream>
void ConnLoop<Stream>::fail(Verdict v) {
  if (v.status != 408) srv_.n_bad_.fetch_add(1, std::memory_order_relaxed);
  append_error(c_.out, v.status, v.why);
  flush();
  linger();
}

// linger: after an error response, the client may still be sending its request. Closing with
// unread bytes (or with more arriving) makes the kernel answer with a reset, and a client whose
// write fails then may never read the answer. So the server ends its side (the client reads the
// response, then end of stream) and reads and discards what still comes: until the client ends
// its side too, nothing has come for linger_quiet, or linger_timeout has passed, whichever is
// first (nginx's lingering_timeout and lingering_time; Go's server waits 500 ms after its
// CloseWrite). Over TLS the discarded bytes are read from the socket underneath. A lingering
// connection counts as idle: the server's shutdown ends it at once.
template <class Stream>
void ConnLoop<Stream>::linger() {
  colony::net::TcpStream& tcp = *c_.tcp;
  tcp.shutdown(colony::net::Shutdown::write);
  c_.in.clear();
  c_.in.shrink_to_fit();
  count_buffers();
  c_.idle.store(true);
  if (srv_.stopping_.load()) return;
  const Options& o = srv_.opts_;
  const auto until = Clock::now() + o.linger_timeout;
  auto room = c_.in.prepare(kIdleBufferMax);
  count_buffers();
  try {
    for (auto now = Clock::now(); now < until; now = Clock::now()) {
      tcp.set_read_deadline(std::min(until, now + o.linger_quiet));
      if (tcp.read(room.data(), room.size()) == 0) break;
    }
  } catch (const std::system_error&) {
    // quiet for too long, reset by the client, or cut by the shutdown
  }
}

// close_gracefully: the end of a connection after its last response: over TLS a close_notify
// first (not waiting long for the client's), then end of stream.
template <class Stream>
void ConnLoop<Stream>::close_gracefully() {
  if constexpr (!std::is_same_v<Stream, colony::net::AsioStream>) {
    lowest(s_).set_deadline(Clock::now() + srv_.opts_.linger_quiet);
    beast::error_code ec;
    s_.shutdown(ec);  // the client may close without its close_notify: not an error here
  }
  beast::error_code ec;
  lowest(s_).shutdown(colony::net::Shutdown::write, ec);
}

template <class Stream>
void ConnLoop<Stream>::run() {
  c_.tcp->set_nodelay(true);
  const Options& o = srv_.opts_;
  for (;;) {
    // 1. A request's header, checked.
    beast_http::request_parser<Body> p;
    p.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(
        o.limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    p.body_limit(o.limits.max_body_bytes);
    bool expect_continue = false;
    Verdict v = read_head(p);
    if (v.status == 0) v = check_head(p, expect_continue);
    if (v.status < 0) return;
    if (v.status > 0) return fail(v);
    // 2. A WebSocket session takes the connection over.
    if (!o.websocket_echo_path.empty() && beast::websocket::is_upgrade(p.get())) {
      const std::string_view target = sv(p.get().target());
      if (target.substr(0, target.find('?')) == o.websocket_echo_path) {
        flush();
        srv_.n_websockets_.fetch_add(1, std::memory_order_relaxed);
        websocket_echo(s_, p.get(), o, c_.idle, srv_.stopping_);
        return;
      }
    }
    // 3. Its body: the client that asked for it is told to send it (after the answers before).
    if (expect_continue) {
      flush();
      beast_http::response<beast_http::empty_body> cont{beast_http::status::continue_, 11};
      lowest(s_).set_write_deadline(Clock::now() + o.io_timeout);
      beast_http::write(s_, cont);
    }
    v = read_body(p);
    if (v.status < 0) return;
    if (v.status > 0) return fail(v);
    // 4. The handler, and the response (queued; written before the next read).
    const BeastRequest& m = p.get();
    Request req;
    req.method = sv(m.method_string());
    req.target = sv(m.target());
    req.version = m.version() == 10 ? "HTTP/1.0" : "HTTP/1.1";
    req.headers.reserve(8);
    for (const auto& f : m) req.headers.emplace_back(sv(f.name_string()), sv(f.value()));
    req.body = m.body();
    req.content_length = m.body().size();
    req.keep_alive = m.keep_alive();
    req.ctx = &srv_.ctx_;
    Response res;
    try {
      srv_.handler_(req, res);
    } catch (const std::exception& e) {
      res = Response{};
      res.status = 500;
      res.body = std::string("internal error: ") + e.what() + "\n";
    }
    srv_.n_requests_.fetch_add(1, std::memory_order_relaxed);
    const bool keep = req.keep_alive && !srv_.stopping_.load();
    respond(m, res, keep);
    if (c_.in.capacity() > kIdleBufferMax && c_.in.size() <= kIdleBufferMax) c_.in.shrink_to_fit();
    count_buffers();
    if (!keep) {
      flush();
      close_gracefully();
      return;
    }
  }
}

template class ConnLoop<colony::net::AsioStream>;
#if defined(COLONY_HTTP_HAVE_TLS)
template class ConnLoop<colony::net::TlsStream>;
#endif

}  // namespace http
