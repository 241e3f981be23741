// The HTTP example over HTTPS (Options::tls, set up from PEM files as http_server's --tls-cert
// and --tls-key do): Beast's HTTP client and a WebSocket client over colony's TlsStream, many
// connections at once, with 1, 2, 4 and 8 processors. The certificate is made at test time.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <colony/net/tls.hpp>
#include <cstdio>
#include <fstream>
#include <string>

#include "http/http.hpp"
#include "http/tls.hpp"
#include "http_test.hpp"
#include "test_cert.hpp"

using namespace std::chrono_literals;
using colony::net::AsioStream;
using colony::net::TcpStream;
using colony::net::TlsStream;
using colony::testing::Http;
using colony::testing::test_cert;
using colony::testing::TestServer;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bh = boost::beast::http;
namespace websocket = boost::beast::websocket;

namespace {

// server_context: the test certificate written to PEM files and read back as the example does.
ssl::context server_context() {
  char dir[] = "/tmp/colony-http-tls-XXXXXX";
  if (::mkdtemp(dir) == nullptr) throw std::runtime_error("mkdtemp");
  const std::string cert = std::string(dir) + "/cert.pem", key = std::string(dir) + "/key.pem";
  std::ofstream(cert) << test_cert().cert_pem;
  std::ofstream(key) << test_cert().key_pem;
  ssl::context ctx = http::tls_context_from_files(cert, key);
  std::remove(cert.c_str());
  std::remove(key.c_str());
  ::rmdir(dir);
  return ctx;
}

// client_context: verifies the server, trusting the test certificate.
ssl::context client_context() {
  ssl::context ctx = colony::net::tls_client_context();
  ctx.add_certificate_authority(asio::buffer(test_cert().cert_pem));
  return ctx;
}

TlsStream tls_connect(const colony::net::Address& addr, ssl::context& cctx) {
  TlsStream s(AsioStream(TcpStream::connect(addr, 5s)), cctx);
  s.next_layer().set_deadline(std::chrono::steady_clock::now() + 60s);
  colony::net::tls_client_setup(s, "localhost");
  s.handshake(ssl::stream_base::client);
  return s;
}

TEST_P(Http, HttpsManyClientsAtOnce) {
  run_fibers([&] {
    ssl::context sctx = server_context();
    ssl::context cctx = client_context();
    http::Options opts;
    opts.tls = &sctx;
    TestServer ts(opts);
    const int kClients = colony::testing::kSanitized ? 10 : 100;
    std::atomic<int> ok{0};
    colony::WaitGroup wg;
    for (int i = 0; i < kClients; ++i) {
      wg.add(1);
      colony::go([&, i] {
        try {
          TlsStream s = tls_connect(ts.addr(), cctx);
          beast::flat_buffer buf;
          for (int k = 0; k < 3; ++k) {
            bh::request<bh::string_body> req{k == 0 ? bh::verb::get : bh::verb::post,
                                             k == 0 ? "/" : "/echo", 11};
            req.set(bh::field::host, "localhost");
            req.body() = std::string(static_cast<std::size_t>(k) * 40000, 'a' + i % 26);
            if (k == 2)
              req.chunked(true);  // a chunked upload over TLS
            else
              req.prepare_payload();
            if (k == 2) req.keep_alive(false);
            bh::write(s, req);
            bh::response<bh::string_body> res;
            bh::read(s, buf, res);
            const std::string want = k == 0 ? "Hello, World!\n" : req.body();
            if (res.result_int() == 200 && res.body() == want) ++ok;
          }
          boost::system::error_code ec;
          s.shutdown(ec);  // the server sent its close_notify after the last response
        } catch (const std::exception& e) {
          ADD_FAILURE() << "client " << i << ": " << e.what();
        }
        wg.done();
      });
    }
    EXPECT_TRUE(wg.wait_for(120s));
    EXPECT_EQ(ok.load(), kClients * 3);
    // A plain-text client on the HTTPS port is refused by the handshake, and the server goes on.
    TcpStream plain = TcpStream::connect(ts.addr(), 5s);
    plain.write_all("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_TRUE(colony::testing::at_eof(plain));
    TlsStream again = tls_connect(ts.addr(), cctx);
    bh::request<bh::empty_body> req{bh::verb::get, "/", 11};
    req.set(bh::field::host, "localhost");
    bh::write(again, req);
    beast::flat_buffer buf;
    bh::response<bh::string_body> res;
    bh::read(again, buf, res);
    EXPECT_EQ(res.body(), "Hello, World!\n");
  });
}

TEST_P(Http, SecureWebSocketEcho) {
  run_fibers([&] {
    ssl::context sctx = server_context();
    ssl::context cctx = client_context();
    http::Options opts;
    opts.tls = &sctx;
    opts.websocket_echo_path = "/ws";
    TestServer ts(opts);
    websocket::stream<TlsStream> ws(tls_connect(ts.addr(), cctx));
    ws.read_message_max(4 << 20);
    ws.handshake("localhost", "/ws");
    const std::string big(1 << 20, 'w');
    beast::flat_buffer buf;
    for (const std::string& msg : {std::string("hello over TLS"), big}) {
      ws.write(asio::buffer(msg));
      ws.read(buf);
      EXPECT_TRUE(beast::buffers_to_string(buf.data()) == msg) << msg.size();
      buf.clear();
    }
    ws.close(websocket::close_code::normal);
  });
}

}  // namespace
