// The server: the accept loop (one fiber per connection), the TLS handshake, the set of open
// connections, and the graceful shutdown. A connection's requests are ConnLoop's (conn.cpp).
//
// A connection is "idle" while it waits for the first byte of a request (or lingers, or a
// WebSocket waits for a message); shutdown() wakes the idle ones with shutdown(read) (they see
// end of stream and leave), and the busy ones close after their current response. Conn::idle
// and stopping_ are set and read in opposite orders (seq_cst), so a connection that goes idle as
// the shutdown starts is always noticed by one side.
#include <boost/system/system_error.hpp>
#include <cstdio>
#include <mutex>
#include <optional>
#include <stdexcept>

#include "conn.hpp"

namespace http {

using colony::net::AsioStream;
using colony::net::TcpListener;
using colony::net::TcpStream;
using Clock = std::chrono::steady_clock;

Server::Server(Handler handler, Options opts)
    : handler_(std::move(handler)), opts_(std::move(opts)) {
#if !defined(COLONY_HTTP_HAVE_TLS)
  if (opts_.tls != nullptr)
    throw std::invalid_argument("http::Server: Options::tls needs the library built with OpenSSL");
#endif
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
  AsioStream as(std::move(s));
  c.tcp = &as.tcp();
#if defined(COLONY_HTTP_HAVE_TLS)
  std::optional<colony::net::TlsStream> ts;  // outlives `done` below, which closes c.tcp
  if (opts_.tls != nullptr) {
    ts.emplace(std::move(as), *opts_.tls);
    c.tcp = &ts->next_layer().tcp();
  }
#endif
  track(&c);
  struct Done {  // also when unwound at the runtime's shutdown
    Server* srv;
    Conn* c;
    ~Done() {
      srv->untrack(c);
      srv->n_buffered_.fetch_sub(c->counted, std::memory_order_relaxed);
      c->tcp->close();
      srv->conns_wg_.done();
    }
  } done{this, &c};
  try {
#if defined(COLONY_HTTP_HAVE_TLS)
    if (ts) {
      ts->next_layer().set_deadline(Clock::now() + opts_.header_timeout);
      boost::system::error_code ec;
      ts->handshake(boost::asio::ssl::stream_base::server, ec);
      if (ec) return;  // not TLS, or too slow
      ts->next_layer().set_deadline(colony::net::kNoDeadline);
      ConnLoop<colony::net::TlsStream>(*this, *ts, c).run();
      return;
    }
#endif
    ConnLoop<AsioStream>(*this, as, c).run();
  } catch (const std::system_error&) {
    // The client went away, timed out, or the connection was cut at shutdown.
  } catch (const boost::system::system_error&) {
    // The same, from Asio's and Beast's throwing calls.
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
        c->tcp->shutdown(all ? colony::net::Shutdown::both : colony::net::Shutdown::read);
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
  s.websockets = n_websockets_.load();
  s.buffered = n_buffered_.load();
  std::lock_guard<colony::sched::SpinLock> lk(lock_);
  s.open = conns_.size();
  return s;
}

}  // namespace http
