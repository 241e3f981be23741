// What the HTTP server tests (colony_http_test: http_server_test.cpp, http_load_test.cpp) share:
// the Http suite, run with 1, 2, 4 and 8 processors (instantiated once, in http_server_test.cpp),
// a served http::Server on loopback, and a client-side reader of its responses.
#pragma once

#include <chrono>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "http/http.hpp"
#include "test_util.hpp"

namespace colony::testing {

class Http : public ProcsTest {};

// TestServer: an http::Server with demo_handler (or `handler`) on 127.0.0.1, served by a fiber.
class TestServer {
 public:
  explicit TestServer(http::Options opts = {}, http::Handler handler = http::demo_handler())
      : srv_(std::move(handler), opts),
        ln_(net::TcpListener::listen(net::Address::loopback_v4(0))),
        addr_(ln_.local_address()),
        serving_(colony::spawn([this] { srv_.serve(ln_); })) {}
  ~TestServer() { stop(std::chrono::seconds(1)); }
  bool stop(std::chrono::milliseconds drain) {
    if (stopped_) return true;
    stopped_ = true;
    bool clean = srv_.shutdown(drain);
    serving_.get();
    return clean;
  }
  const net::Address& addr() const { return addr_; }
  http::Server& server() { return srv_; }

 private:
  http::Server srv_;
  net::TcpListener ln_;
  net::Address addr_;
  colony::Future<void> serving_;
  bool stopped_ = false;
};

struct Reply {
  int status = 0;
  std::string head, body;
  bool closes = false;  // "Connection: close"
};

// read_reply: one response (Content-Length framed) from c, buffering extra bytes in `buf`;
// nullopt at end of stream.
inline std::optional<Reply> read_reply(net::TcpStream& c, std::string& buf) {
  char tmp[4096];
  c.set_read_deadline(std::chrono::steady_clock::now() + std::chrono::seconds(20));
  std::size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    std::size_t n = c.read(tmp, sizeof tmp);
    if (n == 0) return std::nullopt;
    buf.append(tmp, n);
  }
  Reply r;
  r.head = buf.substr(0, end + 4);
  r.status = std::stoi(r.head.substr(9, 3));
  r.closes = r.head.find("\r\nConnection: close\r\n") != std::string::npos;
  std::size_t len = 0;
  auto cl = r.head.find("Content-Length: ");
  if (cl != std::string::npos) len = std::stoul(r.head.substr(cl + 16));
  while (buf.size() < end + 4 + len) {
    std::size_t n = c.read(tmp, sizeof tmp);
    if (n == 0) return std::nullopt;
    buf.append(tmp, n);
  }
  r.body = buf.substr(end + 4, len);
  buf.erase(0, end + 4 + len);
  return r;
}

// at_eof: whether the server closed (after reading any leftovers).
inline bool at_eof(net::TcpStream& c) {
  char tmp[256];
  c.set_read_deadline(std::chrono::steady_clock::now() + std::chrono::seconds(20));
  try {
    return c.read(tmp, sizeof tmp) == 0;
  } catch (const std::system_error& e) {
    return e.code() == std::errc::connection_reset;
  }
}

}  // namespace colony::testing
