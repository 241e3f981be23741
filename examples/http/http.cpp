// The HTTP/1.1 server of examples/http/http.hpp.
//
// One fiber per connection runs serve_conn: parse what is buffered; if a request is incomplete,
// first flush the responses queued so far (so the answers to pipelined requests that arrived
// together go out in one write), then read more. Each connection's deadlines:
//   waiting for a request's first byte   idle_timeout     (then: close quietly)
//   first byte .. end of header          header_timeout   (then: 408 and close)
//   reading the body, writing responses  io_timeout       (then: close)
//   after an error response              linger_quiet / linger_timeout (then: close)
// After an error response the connection "lingers" (Server::linger): it reads and discards what
// the client still sends before closing, so that the client is not reset before it has read the
// answer. Memory: a request is read whole into the connection's input buffer, which grows to
// the request's size and goes back to 4 KiB once it is done; a large response body is written
// from the Response, not copied (see kIdleBufferMax). An idle connection holds a few KiB.
// A connection is "idle" while it waits for the first byte of a request (or lingers); shutdown()
// wakes the idle ones with shutdown(read) (they see end of stream and leave), and the busy ones
// close after their current response. Conn::idle and stopping_ are set and read in opposite orders
// (seq_cst), so a connection that goes idle as the shutdown starts is always noticed by one
// side.
#include "http.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <list>
#include <memory>
#include <mutex>
#include <new>

namespace http {

using colony::net::TcpListener;
using colony::net::TcpStream;
using Clock = std::chrono::steady_clock;

// =============================================================================================
// Parsing

namespace {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

// is_tchar: RFC 9110 token characters (methods, header names).
bool is_tchar(char ch) noexcept {
  auto c = static_cast<unsigned char>(ch);
  if (std::isalnum(c)) return true;
  return std::strchr("!#$%&'*+-.^_`|~", ch) != nullptr && ch != '\0';
}

bool is_token(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

// A field value may hold visible characters, spaces, tabs and obs-text, not other controls.
bool is_field_value(std::string_view s) noexcept {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// has_token: whether a comma-separated header value holds `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token) noexcept {
  while (!value.empty()) {
    auto comma = value.find(',');
    if (iequals(trim_ows(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

ParseResult fail(ParseStatus s, const char* why) {
  return {s, 0, why};
}

}  // namespace

std::string_view Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return {};
}

std::string_view Request::path() const {
  return target.substr(0, target.find('?'));
}

std::string_view Request::query() const {
  auto q = target.find('?');
  return q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
}

ParseResult parse_request(std::string_view buf, Request& req, const Limits& limits) {
  // Lines end in CR LF, or in a bare LF: RFC 9112 (section 2.2) lets a recipient take a single
  // LF as a line terminator and ignore a preceding CR, as Go's net/http and nginx do. A CR
  // anywhere else makes the request malformed (the checks of each part below reject it).
  //
  // Leading empty lines (a client's stray CRLF after a body) are skipped, as RFC 9112 allows.
  std::size_t skip = 0;
  for (;;) {
    if (skip < buf.size() && buf[skip] == '\n')
      skip += 1;
    else if (buf.size() - skip >= 2 && buf[skip] == '\r' && buf[skip + 1] == '\n')
      skip += 2;
    else
      break;
    if (skip > 64) return fail(ParseStatus::bad_request, "too many empty lines");
  }
  std::string_view b = buf.substr(skip);
  // The end of the header: the first empty line after the request line. end: just past it.
  std::size_t end = std::string_view::npos;
  for (std::size_t nl = b.find('\n'); nl != std::string_view::npos; nl = b.find('\n', nl + 1)) {
    std::size_t p = nl + 1;
    if (p < b.size() && b[p] == '\r') ++p;
    if (p < b.size() && b[p] == '\n') {
      end = p + 1;
      break;
    }
  }
  if (end == std::string_view::npos) {
    if (b.size() >= limits.max_header_bytes)
      return fail(ParseStatus::header_too_large, "request header too large");
    // Reject garbage early, before the whole header has arrived: the request line must start
    // with a token (then a space).
    auto head = b.substr(0, b.find_first_of(" \r\n"));
    if (!head.empty() && !std::all_of(head.begin(), head.end(), is_tchar))
      return fail(ParseStatus::bad_request, "malformed request line");
    return {ParseStatus::incomplete, 0, ""};
  }
  if (end > limits.max_header_bytes)
    return fail(ParseStatus::header_too_large, "request header too large");
  std::string_view head = b.substr(0, end);  // each line with its LF, the empty one last
  auto next_line = [&head] {
    const std::size_t eol = head.find('\n');
    std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  };

  // Request line: method SP target SP version.
  std::string_view line = next_line();
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return fail(ParseStatus::bad_request, "malformed request line");
  req.method = line.substr(0, sp1);
  req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  req.version = line.substr(sp2 + 1);
  if (!is_token(req.method)) return fail(ParseStatus::bad_request, "malformed method");
  if (req.target.empty()) return fail(ParseStatus::bad_request, "empty target");
  for (char ch : req.target) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7f) return fail(ParseStatus::bad_request, "malformed target");
  }
  if (req.version.size() != 8 || req.version.substr(0, 5) != "HTTP/" ||
      !std::isdigit(static_cast<unsigned char>(req.version[5])) || req.version[6] != '.' ||
      !std::isdigit(static_cast<unsigned char>(req.version[7])))
    return fail(ParseStatus::bad_request, "malformed HTTP version");
  if (req.version[5] != '1')
    return fail(ParseStatus::version_not_supported, "HTTP version not supported");
  const bool http11 = req.version[7] != '0';

  // Header fields: name ":" OWS value OWS, up to the empty line that ends the header.
  req.headers.clear();
  while (!(line = next_line()).empty()) {
    if (line.front() == ' ' || line.front() == '\t')
      return fail(ParseStatus::bad_request, "obsolete line folding");
    auto colon = line.find(':');
    if (colon == std::string_view::npos)
      return fail(ParseStatus::bad_request, "header without ':'");
    std::string_view name = line.substr(0, colon);
    std::string_view value = trim_ows(line.substr(colon + 1));
    if (!is_token(name)) return fail(ParseStatus::bad_request, "malformed header name");
    if (!is_field_value(value)) return fail(ParseStatus::bad_request, "malformed header value");
    if (req.headers.size() >= limits.max_headers)
      return fail(ParseStatus::header_too_large, "too many header fields");
    req.headers.emplace_back(name, value);
  }

  // The fields the server itself interprets.
  bool have_length = false, have_host = false;
  req.content_length = 0;
  req.keep_alive = http11;
  for (const auto& [name, value] : req.headers) {
    if (iequals(name, "Content-Length")) {
      if (value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(),
                       [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
        return fail(ParseStatus::bad_request, "malformed Content-Length");
      std::size_t n = 0;
      for (char c : value) n = n * 10 + static_cast<std::size_t>(c - '0');
      if (have_length && n != req.content_length)
        return fail(ParseStatus::bad_request, "conflicting Content-Length");
      have_length = true;
      req.content_length = n;
    } else if (iequals(name, "Transfer-Encoding")) {
      return fail(ParseStatus::not_implemented, "Transfer-Encoding not supported");
    } else if (iequals(name, "Host")) {
      if (have_host) return fail(ParseStatus::bad_request, "several Host fields");
      have_host = true;
    } else if (iequals(name, "Connection")) {
      if (has_token(value, "close"))
        req.keep_alive = false;
      else if (has_token(value, "keep-alive"))
        req.keep_alive = true;
    }
  }
  if (http11 && !have_host) return fail(ParseStatus::bad_request, "missing Host header");
  if (req.content_length > limits.max_body_bytes)
    return fail(ParseStatus::payload_too_large, "request body too large");
  return {ParseStatus::complete, skip + end, ""};
}

const char* reason_phrase(int status) noexcept {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

// =============================================================================================
// Responses

namespace {

// DateCache: the Date field's value, formatted once a second.
class DateCache {
 public:
  void append_to(std::string& out) {
    const std::time_t now = std::time(nullptr);
    std::lock_guard<colony::sched::SpinLock> lk(lock_);
    if (now != sec_) {
      std::tm tm{};
      ::gmtime_r(&now, &tm);
      len_ = std::strftime(buf_, sizeof buf_, "%a, %d %b %Y %H:%M:%S GMT", &tm);
      sec_ = now;
    }
    out.append(buf_, len_);
  }

 private:
  colony::sched::SpinLock lock_;
  std::time_t sec_ = 0;
  char buf_[64] = {};
  std::size_t len_ = 0;
};
DateCache g_date;

void append_response(std::string& out, const Response& res, bool head_only, bool close,
                     bool http10_keep_alive) {
  out += "HTTP/1.1 ";
  out += std::to_string(res.status);
  out += ' ';
  out += reason_phrase(res.status);
  out += "\r\nDate: ";
  g_date.append_to(out);
  out += "\r\nContent-Length: ";
  out += std::to_string(res.body.size());
  if (!res.content_type.empty()) {
    out += "\r\nContent-Type: ";
    out += res.content_type;
  }
  for (const auto& [k, v] : res.headers) {
    out += "\r\n";
    out += k;
    out += ": ";
    out += v;
  }
  if (close)
    out += "\r\nConnection: close";
  else if (http10_keep_alive)
    out += "\r\nConnection: keep-alive";
  out += "\r\n\r\n";
  if (!head_only) out += res.body;
}

void append_error(std::string& out, int status, const char* why) {
  Response r;
  r.status = status;
  r.body = std::string(why) + "\n";
  append_response(out, r, false, true, false);
}

}  // namespace

Handler demo_handler() {
  return [](const Request& req, Response& res) {
    const std::string_view path = req.path();
    if (path == "/") {
      res.body = "Hello, World!\n";
    } else if (path == "/echo") {
      res.content_type = "application/octet-stream";
      res.body.assign(req.body);
    } else if (path == "/sleep") {
      long ms = 0;
      std::string_view q = req.query();
      if (q.substr(0, 3) == "ms=") ms = std::strtol(std::string(q.substr(3)).c_str(), nullptr, 10);
      ms = std::clamp(ms, 0L, 60000L);
      colony::Chan<int> never;
      colony::select(colony::on_recv(req.ctx->done()), colony::on_recv(never),
                     colony::on_timeout(std::chrono::milliseconds(ms)));
      res.body = "slept\n";
    } else {
      res.status = 404;
      res.body = "404 page not found\n";
    }
  };
}

// =============================================================================================
// The server

namespace {

// What a connection's buffers may keep. A request's head and body are read whole into the
// input buffer (the handler sees them as views); once the request is done, a buffer grown past
// kIdleBufferMax goes back to kInitialBuffer, and the output buffer is given up after a flush
// that found it grown past kIdleBufferMax. A response body larger than kDirectBodyAbove is not
// copied into the output buffer: it is written straight from the Response (writev with its
// head), so a large answer never grows it.
constexpr std::size_t kInitialBuffer = 4 * 1024;
constexpr std::size_t kIdleBufferMax = 16 * 1024;
constexpr std::size_t kDirectBodyAbove = 16 * 1024;
// An input buffer larger than this is a mapping of its own (mmap), so that giving it up returns
// its memory to the OS at once. From malloc it would not: once glibc has freed one large block,
// it raises its mmap threshold to that size and serves the next ones from its arenas, which
// keep what is freed (measured: hundreds of MB of RSS left after 300 connections posted 1 MiB,
// bench/server/idle_rss.py).
constexpr std::size_t kOwnMappingAbove = 64 * 1024;

// InBuf: a connection's input buffer (uninitialised bytes).
class InBuf {
 public:
  InBuf() = default;
  InBuf(const InBuf&) = delete;
  InBuf& operator=(const InBuf&) = delete;
  ~InBuf() { release(p_, cap_); }

  char* data() const noexcept { return p_; }
  std::size_t capacity() const noexcept { return cap_; }
  // reallocate: a buffer of at least ncap bytes that starts with the first `keep` bytes of this
  // one.
  void reallocate(std::size_t ncap, std::size_t keep) {
    char* np = allocate(ncap);
    if (keep > 0) std::memcpy(np, p_, keep);
    release(p_, cap_);
    p_ = np;
    cap_ = ncap;
  }

 private:
  static char* allocate(std::size_t& n) {
    if (n <= kOwnMappingAbove) {
      void* p = std::malloc(n);
      if (p == nullptr) throw std::bad_alloc();
      return static_cast<char*>(p);
    }
    static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    n = (n + page - 1) / page * page;
    void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return static_cast<char*>(p);
  }
  static void release(char* p, std::size_t n) noexcept {
    if (p == nullptr) return;
    if (n <= kOwnMappingAbove)
      std::free(p);
    else
      ::munmap(p, n);
  }

  char* p_ = nullptr;
  std::size_t cap_ = 0;
};

}  // namespace

struct Server::Conn {
  TcpStream s;
  std::atomic<bool> idle{false};
  std::list<Conn*>::iterator pos;
  // Input: bytes [start, len) of in are unparsed.
  InBuf in;
  std::size_t len = 0, start = 0;
  std::string out;          // responses not yet written
  std::size_t counted = 0;  // in's and out's capacity as last added to Server::n_buffered_

  std::string_view pending() const { return {in.data() + start, len - start}; }

  // compact: moves the unparsed bytes to the front of the buffer.
  void compact() {
    if (start == 0) return;
    if (len > start) std::memmove(in.data(), in.data() + start, len - start);
    len -= start;
    start = 0;
  }

  // read_more: reads at least one byte (0 at end of stream), growing the buffer if needed.
  // need: how many unparsed bytes the buffer must hold in the end (a request whose body length
  // is known), 0 if not known yet. The buffer grows to exactly that, or else doubles.
  std::size_t read_more(std::size_t need = 0) {
    compact();
    if (need > in.capacity())
      in.reallocate(need, len);
    else if (need == 0 && in.capacity() - len < 1024)
      in.reallocate(std::max(in.capacity() * 2, kInitialBuffer), len);
    std::size_t n = s.read(in.data() + len, in.capacity() - len);
    len += n;
    return n;
  }

  // request_done: the first `n` unparsed bytes are consumed; a buffer grown for a large request
  // goes back to a small one.
  void request_done(std::size_t n) {
    start += n;
    if (start == len) start = len = 0;
    if (in.capacity() > kIdleBufferMax && len - start <= kIdleBufferMax) {
      compact();
      in.reallocate(std::max(len, kInitialBuffer), len);
    }
  }
};

Server::Server(Handler handler, Options opts) : handler_(std::move(handler)), opts_(opts) {
  auto [c, cancel] = colony::with_cancel(colony::background());
  ctx_ = std::move(c);
  cancel_ = std::move(cancel);
}

Server::~Server() {
  cancel_();
}

void Server::track(Conn* c) {
  std::lock_guard<colony::sched::SpinLock> lk(lock_);
  c->pos = conns_.insert(conns_.end(), c);
}

void Server::untrack(Conn* c) {
  std::lock_guard<colony::sched::SpinLock> lk(lock_);
  conns_.erase(c->pos);
}

void Server::serve(TcpListener& ln) {
  serve_wg_.add(1);
  listener_.store(&ln);
  while (!stopping_.load()) {
    TcpStream s;
    try {
      s = ln.accept();
    } catch (const std::system_error& e) {
      if (stopping_.load() || colony::net::is_closed(e.code())) break;
      std::fprintf(stderr, "http: %s\n", e.what());
      colony::this_fiber::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (stopping_.load()) break;
    n_conns_.fetch_add(1, std::memory_order_relaxed);
    conns_wg_.add(1);
    colony::go([this](TcpStream st) { handle(std::move(st)); }, std::move(s));
  }
  listener_.store(nullptr);
  serve_wg_.done();
}

void Server::handle(TcpStream s) {
  Conn c;
  c.s = std::move(s);
  track(&c);
  struct Done {  // also when unwound at the runtime's shutdown
    Server* srv;
    Conn* c;
    ~Done() {
      srv->untrack(c);
      srv->n_buffered_.fetch_sub(c->counted, std::memory_order_relaxed);
      c->s.close();
      srv->conns_wg_.done();
    }
  } done{this, &c};
  try {
    serve_conn(c);
  } catch (const std::system_error&) {
    // The client went away, timed out, or the connection was cut at shutdown.
  }
}

void Server::count_buffers(Conn& c) {
  const std::size_t now = c.in.capacity() + c.out.capacity();
  if (now == c.counted) return;
  n_buffered_.fetch_add(now - c.counted, std::memory_order_relaxed);  // modulo 2^64: may shrink
  c.counted = now;
}

// linger: after an error response, the client may still be sending its request. Closing with
// unread bytes (or with more arriving) makes the kernel answer with a reset, and a client whose
// write fails then may never read the answer. So the server ends its side (the client reads the
// response, then end of stream) and reads and discards what still comes: until the client ends
// its side too, nothing has come for linger_quiet, or linger_timeout has passed, whichever is
// first (nginx's lingering_timeout and lingering_time; Go's server waits 500 ms after its
// CloseWrite). Then the connection is closed. A lingering connection counts as idle: the
// server's shutdown ends it at once.
void Server::linger(Conn& c) {
  c.s.shutdown(colony::net::Shutdown::write);
  c.start = c.len = 0;
  if (c.in.capacity() != kIdleBufferMax) c.in.reallocate(kIdleBufferMax, 0);
  count_buffers(c);
  c.idle.store(true);
  if (stopping_.load()) return;
  const auto until = Clock::now() + opts_.linger_timeout;
  try {
    for (auto now = Clock::now(); now < until; now = Clock::now()) {
      c.s.set_read_deadline(std::min(until, now + opts_.linger_quiet));
      if (c.s.read(c.in.data(), c.in.capacity()) == 0) break;
    }
  } catch (const std::system_error&) {
    // quiet for too long, reset by the client, or cut by the shutdown
  }
}

void Server::serve_conn(Conn& c) {
  c.s.set_nodelay(true);
  const Limits& limits = opts_.limits;
  auto flush = [&] {
    if (c.out.empty()) return;
    c.s.set_write_deadline(Clock::now() + opts_.io_timeout);
    c.s.write_all(c.out);
    if (c.out.capacity() > kIdleBufferMax) {
      std::string().swap(c.out);
      count_buffers(c);
    } else {
      c.out.clear();
    }
  };
  for (;;) {
    // 1. A complete request head, reading as needed.
    Request req;
    ParseResult pr = parse_request(c.pending(), req, limits);
    Clock::time_point head_deadline{};
    while (pr.status == ParseStatus::incomplete) {
      flush();
      const bool waiting = c.pending().empty();  // nothing of the next request yet
      if (waiting) {
        c.idle.store(true);
        if (stopping_.load()) return;
        c.s.set_read_deadline(Clock::now() + opts_.idle_timeout);
      } else {
        if (head_deadline == Clock::time_point{})
          head_deadline = Clock::now() + opts_.header_timeout;
        c.s.set_read_deadline(head_deadline);
      }
      std::size_t n = 0;
      bool slow = false;
      try {
        n = c.read_more();
      } catch (const std::system_error& e) {
        c.idle.store(false);
        if (waiting || !colony::net::is_timeout(e)) return;
        slow = true;
      }
      if (slow) {  // a client too slow to send its header: 408
        n_timeouts_.fetch_add(1, std::memory_order_relaxed);
        append_error(c.out, 408, "request header timeout");
        flush();
        linger(c);
        return;
      }
      c.idle.store(false);
      count_buffers(c);
      if (n == 0) return;  // end of stream (or cut by shutdown)
      if (waiting) head_deadline = Clock::now() + opts_.header_timeout;
      pr = parse_request(c.pending(), req, limits);
    }
    if (pr.status != ParseStatus::complete) {
      n_bad_.fetch_add(1, std::memory_order_relaxed);
      append_error(c.out, static_cast<int>(pr.status), pr.why);
      flush();
      linger(c);
      return;
    }
    // 2. Its body.
    const std::size_t need = pr.head_len + req.content_length;
    if (c.pending().size() < need) {
      c.s.set_read_deadline(Clock::now() + opts_.io_timeout);
      while (c.pending().size() < need) {
        const std::size_t n = c.read_more(need);
        count_buffers(c);
        if (n == 0) return;  // cut short
      }
      pr = parse_request(c.pending(), req, limits);  // the buffer moved: views again
    }
    req.body = c.pending().substr(pr.head_len, req.content_length);
    req.ctx = &ctx_;
    // 3. The handler, and the response (queued; written before the next read).
    Response res;
    try {
      handler_(req, res);
    } catch (const std::exception& e) {
      res = Response{};
      res.status = 500;
      res.body = std::string("internal error: ") + e.what() + "\n";
    }
    n_requests_.fetch_add(1, std::memory_order_relaxed);
    const bool keep = req.keep_alive && !stopping_.load();
    const bool head_only = req.method == "HEAD";
    // A large body goes out at once, with the responses queued before it, without a copy.
    const bool direct = !head_only && res.body.size() > kDirectBodyAbove;
    append_response(c.out, res, head_only || direct, !keep, keep && req.version == "HTTP/1.0");
    if (direct) {
      c.s.set_write_deadline(Clock::now() + opts_.io_timeout);
      c.s.write_all(c.out, res.body);
      c.out.clear();
    }
    c.request_done(need);
    count_buffers(c);
    if (!keep) {
      flush();
      c.s.shutdown(colony::net::Shutdown::write);
      return;
    }
  }
}

bool Server::shutdown(std::chrono::milliseconds drain) {
  const auto deadline = Clock::now() + drain;
  stopping_.store(true);
  if (TcpListener* ln = listener_.load()) ln->close();
  serve_wg_.wait();  // no connection is added from now on
  // Idle connections leave when woken with end of stream; busy ones after their response.
  auto wake_idle = [&](bool all) {
    std::lock_guard<colony::sched::SpinLock> lk(lock_);
    for (Conn* c : conns_) {
      if (!all && !c->idle.load()) continue;
      try {
        c->s.shutdown(all ? colony::net::Shutdown::both : colony::net::Shutdown::read);
      } catch (const std::system_error&) {
        // already gone
      }
    }
  };
  bool clean = false;
  for (;;) {
    wake_idle(false);
    if (conns_wg_.wait_for(std::chrono::milliseconds(10))) {
      clean = true;
      break;
    }
    if (Clock::now() >= deadline) break;
  }
  if (!clean) {
    cancel_();        // handlers watching req.ctx give up
    wake_idle(true);  // and every connection is cut
    conns_wg_.wait();
  }
  return clean;
}

Stats Server::stats() const {
  Stats s;
  s.connections = n_conns_.load();
  s.requests = n_requests_.load();
  s.bad_requests = n_bad_.load();
  s.timeouts = n_timeouts_.load();
  s.buffered = n_buffered_.load();
  std::lock_guard<colony::sched::SpinLock> lk(lock_);
  s.open = conns_.size();
  return s;
}

}  // namespace http
