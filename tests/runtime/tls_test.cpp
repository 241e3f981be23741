// <colony/net/tls.hpp>: asio::ssl::stream over colony sockets, used synchronously on fibers.
// HTTP over TLS with Beast (many connections, 1, 2 and 4 processors), a plain-thread client,
// certificate and host-name verification on by default, handshake failures as error codes,
// deadlines through the TLS layer. The certificate is made at test time in memory (OpenSSL's
// API): nothing is written to disk.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <colony/net/tls.hpp>
#include <memory>
#include <string>
#include <thread>

#include "test_cert.hpp"
#include "test_util.hpp"

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using namespace std::chrono_literals;
using boost::system::error_code;
using colony::net::Address;
using colony::net::AsioStream;
using colony::net::TcpListener;
using colony::net::TcpStream;
using colony::net::TlsStream;
using colony::testing::Cert;
using colony::testing::make_cert;
using colony::testing::ProcsTest;
using colony::testing::test_cert;
using Clock = std::chrono::steady_clock;

namespace {

// trusting_client_context: tls_client_context() that also trusts the test certificate.
ssl::context trusting_client_context() {
  ssl::context ctx = colony::net::tls_client_context();
  ctx.add_certificate_authority(asio::buffer(test_cert().cert_pem));
  return ctx;
}

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>('a' + x % 26);
  }
  return s;
}

// TlsHttpServer: HTTPS on fibers, one per connection, answering each request with its target,
// a colon and its body; handshake failures are counted (with the last error), not fatal.
class TlsHttpServer {
 public:
  TlsHttpServer()
      : ctx_(colony::net::tls_server_context(test_cert().cert_pem, test_cert().key_pem)),
        ln_(TcpListener::listen(Address::loopback_v4(0))),
        addr_(ln_.local_address()) {
    wg_.add(1);
    colony::go([this] {
      for (;;) {
        TcpStream c;
        try {
          c = ln_.accept();
        } catch (const std::system_error&) {
          break;
        }
        wg_.add(1);
        colony::go([this](TcpStream t) { serve(std::move(t)); }, std::move(c));
      }
      wg_.done();
    });
  }
  ~TlsHttpServer() { stop(); }
  void stop() {
    if (stopped_.exchange(true)) return;
    ln_.close();
    wg_.wait();
  }
  const Address& address() const { return addr_; }
  int handshake_failures() const { return failures_.load(); }
  int requests() const { return requests_.load(); }

 private:
  void serve(TcpStream t) {
    TlsStream s(AsioStream(std::move(t)), ctx_);
    s.next_layer().set_deadline(Clock::now() + 20s);  // a stuck test fails, not hangs
    error_code ec;
    s.handshake(ssl::stream_base::server, ec);
    if (ec) {
      failures_.fetch_add(1);
    } else {
      beast::flat_buffer buf;
      for (;;) {
        http::request<http::string_body> req;
        http::read(s, buf, req, ec);
        if (ec) break;  // end_of_stream, stream_truncated or the client's close_notify
        requests_.fetch_add(1);
        http::response<http::string_body> res{http::status::ok, req.version()};
        res.body() = std::string(req.target()) + ":" + req.body();
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        http::write(s, res, ec);
        if (ec) break;
      }
      s.shutdown(ec);
    }
    wg_.done();
  }

  ssl::context ctx_;
  TcpListener ln_;
  Address addr_;
  colony::WaitGroup wg_;
  std::atomic<bool> stopped_{false};
  std::atomic<int> failures_{0}, requests_{0};
};

std::string exchange(TlsStream& s, beast::flat_buffer& buf, const std::string& target,
                     const std::string& body) {
  http::request<http::string_body> req{http::verb::post, target, 11};
  req.set(http::field::host, "localhost");
  req.body() = body;
  req.prepare_payload();
  http::write(s, req);
  http::response<http::string_body> res;
  http::read(s, buf, res);
  EXPECT_EQ(res.result(), http::status::ok);
  return res.body();
}

class Tls : public ProcsTest {};
INSTANTIATE_TEST_SUITE_P(Procs, Tls, ::testing::Values(1, 2, 4), colony::testing::procs_name);

// Many HTTPS clients at once, each verifying the server (trust anchor + host name) and sending
// small and large bodies over keep-alive; a clean TLS shutdown at the end.
TEST_P(Tls, HttpOverTlsManyConnections) {
  run_fibers([] {
    TlsHttpServer srv;
    ssl::context cctx = trusting_client_context();
    constexpr int kConns = 24, kRequests = 3;
    colony::WaitGroup wg;
    std::atomic<int> ok{0};
    for (int i = 0; i < kConns; ++i) {
      wg.add(1);
      colony::go([&, i] {
        try {
          TlsStream s(AsioStream(TcpStream::connect(srv.address())), cctx);
          colony::net::tls_client_setup(s, i % 2 ? "localhost" : "127.0.0.1");
          s.handshake(ssl::stream_base::client);
          beast::flat_buffer buf;
          for (int r = 0; r < kRequests; ++r) {
            std::string target = "/t" + std::to_string(i) + "/" + std::to_string(r);
            std::string body = pattern(r == 1 ? 200 * 1024 : 100 + static_cast<std::size_t>(i),
                                       static_cast<unsigned>(i * 10 + r));
            if (exchange(s, buf, target, body) == target + ":" + body) ok.fetch_add(1);
          }
          error_code ec;
          s.shutdown(ec);  // close_notify both ways (the server answers with its own)
          EXPECT_TRUE(!ec || ec == asio::error::eof || ec == ssl::error::stream_truncated)
              << ec.message();
        } catch (const std::exception& e) {
          ADD_FAILURE() << "client " << i << ": " << e.what();
        }
        wg.done();
      });
    }
    wg.wait();
    srv.stop();
    EXPECT_EQ(ok.load(), kConns * kRequests);
    EXPECT_EQ(srv.requests(), kConns * kRequests);
    EXPECT_EQ(srv.handshake_failures(), 0);
  });
}

// A plain OS thread as the TLS client of the fiber server.
TEST_P(Tls, PlainThreadClient) {
  run_fibers([] {
    TlsHttpServer srv;
    std::string got;
    std::thread t([&] {
      try {
        ssl::context cctx = trusting_client_context();
        TlsStream s(AsioStream(TcpStream::connect(srv.address())), cctx);
        colony::net::tls_client_setup(s, "localhost");
        s.handshake(ssl::stream_base::client);
        beast::flat_buffer buf;
        got = exchange(s, buf, "/thread", "hello");
        error_code ec;
        s.shutdown(ec);
      } catch (const std::exception& e) {
        got = e.what();
      }
    });
    colony::testing::join_thread(t);
    srv.stop();
    EXPECT_EQ(got, "/thread:hello");
  });
}

// tls_client_context() verifies by default: a self-signed certificate it was not told to trust
// fails the handshake with "certificate verify failed", as an error code, on both sides.
TEST_P(Tls, ClientRejectsUnverifiedCertificateByDefault) {
  run_fibers([] {
    TlsHttpServer srv;
    ssl::context cctx = colony::net::tls_client_context();
    TlsStream s(AsioStream(TcpStream::connect(srv.address())), cctx);
    colony::net::tls_client_setup(s, "localhost");
    error_code ec;
    s.handshake(ssl::stream_base::client, ec);
    ASSERT_TRUE(ec);
    EXPECT_EQ(ec.category(), asio::error::get_ssl_category()) << ec.message();
    EXPECT_EQ(ERR_GET_REASON(static_cast<unsigned long>(ec.value())),
              SSL_R_CERTIFICATE_VERIFY_FAILED)
        << ec.message();
    EXPECT_EQ(SSL_get_verify_result(s.native_handle()), X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
    s.next_layer().close();
    srv.stop();
    EXPECT_EQ(srv.handshake_failures(), 1);
    EXPECT_EQ(srv.requests(), 0);
  });
}

// A trusted certificate for another name is refused too (tls_client_setup's host check).
TEST_P(Tls, ClientRejectsWrongHostName) {
  run_fibers([] {
    TlsHttpServer srv;
    ssl::context cctx = trusting_client_context();
    TlsStream s(AsioStream(TcpStream::connect(srv.address())), cctx);
    colony::net::tls_client_setup(s, "example.com");
    error_code ec;
    s.handshake(ssl::stream_base::client, ec);
    EXPECT_EQ(ERR_GET_REASON(static_cast<unsigned long>(ec.value())),
              SSL_R_CERTIFICATE_VERIFY_FAILED)
        << ec.message();
    // The throwing overload throws boost::system::system_error, with the same kind of code.
    TlsStream s2(AsioStream(TcpStream::connect(srv.address())), cctx);
    colony::net::tls_client_setup(s2, "10.1.2.3");
    EXPECT_THROW(s2.handshake(ssl::stream_base::client), boost::system::system_error);
    s.next_layer().close();
    s2.next_layer().close();
    srv.stop();
    EXPECT_EQ(srv.handshake_failures(), 2);
  });
}

// Handshakes with peers that do not speak TLS, or hang up halfway, end in error codes.
TEST_P(Tls, HandshakeFailuresAreErrorCodes) {
  run_fibers([] {
    auto ln = TcpListener::listen(Address::loopback_v4(0));
    ssl::context cctx = trusting_client_context();
    // 1. The "server" answers in plain HTTP.
    auto plain = colony::spawn([&] {
      TcpStream c = ln.accept();
      char b[512];
      (void)c.read(b, sizeof b);  // the ClientHello
      c.write_all("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
      c.shutdown(colony::net::Shutdown::write);
      (void)c.read(b, sizeof b);
    });
    {
      TlsStream s(AsioStream(TcpStream::connect(ln.local_address())), cctx);
      error_code ec;
      s.handshake(ssl::stream_base::client, ec);
      EXPECT_TRUE(ec);
      EXPECT_EQ(ec.category(), asio::error::get_ssl_category()) << ec.message();
    }
    plain.get();
    // 2. The "server" accepts and hangs up at once: eof or stream_truncated.
    auto hangup = colony::spawn([&] { ln.accept().close(); });
    {
      TlsStream s(AsioStream(TcpStream::connect(ln.local_address())), cctx);
      error_code ec;
      s.handshake(ssl::stream_base::client, ec);
      EXPECT_TRUE(ec);
    }
    hangup.get();
    // 3. A TLS server whose client sends plain HTTP.
    ssl::context sctx = colony::net::tls_server_context(test_cert().cert_pem, test_cert().key_pem);
    auto server = colony::spawn([&] {
      TlsStream s(AsioStream(ln.accept()), sctx);
      error_code ec;
      s.handshake(ssl::stream_base::server, ec);
      return ec;
    });
    TcpStream c = TcpStream::connect(ln.local_address());
    c.write_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    error_code sec = server.get();
    EXPECT_TRUE(sec);
    EXPECT_EQ(sec.category(), asio::error::get_ssl_category()) << sec.message();
    // 4. A mismatched key and certificate are refused when the context is made.
    Cert other = make_cert("other");
    EXPECT_THROW(colony::net::tls_server_context(test_cert().cert_pem, other.key_pem),
                 boost::system::system_error);
  });
}

// A read deadline on the TLS stream's next layer surfaces as timed_out through ssl::stream; the
// connection is still usable afterwards.
TEST_P(Tls, DeadlineThroughTls) {
  run_fibers([] {
    auto ln = TcpListener::listen(Address::loopback_v4(0));
    ssl::context sctx = colony::net::tls_server_context(test_cert().cert_pem, test_cert().key_pem);
    colony::Chan<int> go_on(0);
    auto server = colony::spawn([&] {
      TlsStream s(AsioStream(ln.accept()), sctx);
      s.handshake(ssl::stream_base::server);
      go_on.recv();  // the client has timed out
      asio::write(s, asio::buffer("late", 4));
      error_code ec;
      s.shutdown(ec);
    });
    ssl::context cctx = trusting_client_context();
    TlsStream c(AsioStream(TcpStream::connect(ln.local_address())), cctx);
    colony::net::tls_client_setup(c, "127.0.0.1");
    c.handshake(ssl::stream_base::client);
    c.next_layer().set_read_deadline(Clock::now() + 50ms);
    char b[8];
    error_code ec;
    auto t0 = Clock::now();
    c.read_some(asio::buffer(b), ec);
    EXPECT_GE(Clock::now() - t0, 45ms);
    EXPECT_EQ(ec, asio::error::timed_out) << ec.message();
    c.next_layer().set_read_deadline(colony::net::kNoDeadline);
    go_on.send(1);
    std::size_t n = asio::read(c, asio::buffer(b, 4), ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(std::string(b, n), "late");
    c.shutdown(ec);
    server.get();
  });
}

}  // namespace
