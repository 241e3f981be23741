// What the HTTP example gained on Beast: chunked request bodies, Expect: 100-continue, and the
// WebSocket echo endpoint (fragmented and 1 MiB messages, many sessions at once), with Beast's
// own client where one fits; with 1, 2, 4 and 8 processors.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <colony/net/asio.hpp>
#include <string>
#include <system_error>

#include "http/http.hpp"
#include "http_test.hpp"

using namespace std::chrono_literals;
using colony::net::AsioStream;
using colony::net::TcpStream;
using colony::testing::at_eof;
using colony::testing::Http;
using colony::testing::read_reply;
using colony::testing::TestServer;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;

namespace {

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  return s;
}

// chunked: `body` as chunks of sizes 1, 2, 4, ... (hex sizes, some with an extension), then
// the last chunk and a trailer field.
std::string chunked(const std::string& body) {
  std::string out;
  std::size_t off = 0, step = 1;
  while (off < body.size()) {
    const std::size_t n = std::min(step, body.size() - off);
    char hex[32];
    std::snprintf(hex, sizeof hex, "%zx", n);
    out += hex;
    out += step % 3 == 0 ? ";ext=1\r\n" : "\r\n";
    out.append(body, off, n);
    out += "\r\n";
    off += n;
    step = step * 2 + 1;
  }
  return out + "0\r\nX-Trailer: t\r\n\r\n";
}

TEST_P(Http, ChunkedUploadsAreEchoedAndCounted) {
  run_fibers([&] {
    TestServer ts;
    TcpStream c = TcpStream::connect(ts.addr(), 5s);
    std::string buf;
    for (std::size_t size : {0u, 1u, 1000u, 300000u}) {
      const std::string body = pattern(size, static_cast<unsigned>(size));
      const std::string head = "Host: t\r\nTransfer-Encoding: chunked\r\n\r\n";
      const std::string enc = chunked(body);
      // Echoed, sent in uneven pieces with pauses (the chunk boundaries fall anywhere).
      const std::string req = "POST /echo HTTP/1.1\r\n" + head + enc;
      auto writer = colony::spawn([&] {
        for (std::size_t off = 0, step = 1; off < req.size(); step = step * 3 + 1) {
          const std::size_t n = std::min(step, req.size() - off);
          c.write_all(req.data() + off, n);
          off += n;
          colony::this_fiber::sleep_for(100us);
        }
      });
      auto r = read_reply(c, buf);
      writer.get();
      ASSERT_TRUE(r) << size;
      EXPECT_EQ(r->status, 200);
      EXPECT_TRUE(r->body == body) << size;
      // Counted, pipelined with a plain request behind it.
      c.write_all("POST /count HTTP/1.1\r\n" + head + enc + "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
      r = read_reply(c, buf);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->body, std::to_string(size) + "\n");
      r = read_reply(c, buf);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->body, "Hello, World!\n");
    }
    // A chunked body over the limit: 413; a malformed chunk size: 400.
    for (auto [enc, want] : {std::pair{chunked(std::string((1 << 20) + 1, 'x')), 413},
                             std::pair{std::string("zz\r\nabc\r\n0\r\n\r\n"), 400}}) {
      TcpStream d = TcpStream::connect(ts.addr(), 5s);
      d.write_all("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + enc);
      std::string b2;
      auto r = read_reply(d, b2);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, want);
      EXPECT_TRUE(r->closes);
      d.shutdown(colony::net::Shutdown::write);
      EXPECT_TRUE(at_eof(d));
    }
  });
}

TEST_P(Http, ExpectContinueGets100BeforeTheBody) {
  run_fibers([&] {
    TestServer ts;
    TcpStream c = TcpStream::connect(ts.addr(), 5s);
    std::string buf;
    for (int round = 0; round < 2; ++round) {
      // The client waits for the interim answer before it sends its body.
      c.write_all(
          "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
      auto cont = read_reply(c, buf);
      ASSERT_TRUE(cont);
      EXPECT_EQ(cont->status, 100);
      EXPECT_EQ(cont->body, "");
      c.write_all("hello");
      auto r = read_reply(c, buf);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 200);
      EXPECT_EQ(r->body, "hello");
    }
    // Chunked, behind a pipelined request: its answer comes first, then the 100.
    c.write_all(
        "GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        "POST /count HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
        "Transfer-Encoding: chunked\r\n\r\n");
    auto first = read_reply(c, buf);
    auto cont = read_reply(c, buf);
    ASSERT_TRUE(first && cont);
    EXPECT_EQ(first->status, 200);
    EXPECT_EQ(cont->status, 100);
    c.write_all(chunked(pattern(777, 1)));
    auto r = read_reply(c, buf);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "777\n");
    // Too large: 413 at once, no 100 (the body is never asked for).
    TcpStream d = TcpStream::connect(ts.addr(), 5s);
    d.write_all(
        "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: "
        "9999999\r\n\r\n");
    std::string b2;
    r = read_reply(d, b2);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
  });
}

// ws_connect: a Beast WebSocket client on this fiber, handshaken with the server's /ws.
websocket::stream<AsioStream> ws_connect(const colony::net::Address& addr) {
  websocket::stream<AsioStream> ws(AsioStream(TcpStream::connect(addr, 5s)));
  ws.next_layer().set_deadline(std::chrono::steady_clock::now() + 60s);
  ws.read_message_max(4 << 20);
  ws.handshake("t", "/ws");
  return ws;
}

http::Options ws_options() {
  http::Options o;
  o.websocket_echo_path = "/ws";
  return o;
}

TEST_P(Http, WebSocketEchoesFragmentedAndLargeMessages) {
  run_fibers([&] {
    TestServer ts(ws_options());
    auto ws = ws_connect(ts.addr());
    beast::flat_buffer buf;
    // A text message in three frames comes back whole, as text.
    ws.text(true);
    ws.write_some(false, asio::buffer(std::string("frag")));
    ws.write_some(false, asio::buffer(std::string("mented ")));
    ws.write_some(true, asio::buffer(std::string("message")));
    ws.read(buf);
    EXPECT_TRUE(ws.got_text());
    EXPECT_EQ(beast::buffers_to_string(buf.data()), "fragmented message");
    buf.clear();
    // 1 MiB of binary, written as one message and as 64 KiB fragments.
    const std::string big = pattern(1 << 20, 5);
    ws.binary(true);
    for (bool fragment : {false, true}) {
      ws.auto_fragment(fragment);
      ws.write_buffer_bytes(64 * 1024);
      ws.write(asio::buffer(big));
      ws.read(buf);
      EXPECT_FALSE(ws.got_text());
      EXPECT_TRUE(beast::buffers_to_string(buf.data()) == big) << fragment;
      buf.clear();
    }
    ws.close(websocket::close_code::normal);
    EXPECT_GE(ts.server().stats().websockets, 1u);
    // A plain request for /ws is the handler's (404), and other paths do not upgrade.
    TcpStream c = TcpStream::connect(ts.addr(), 5s);
    c.write_all("GET /ws HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string b2;
    auto r = read_reply(c, b2);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
  });
}

TEST_P(Http, ManyWebSocketSessionsAtOnceAndShutdownEndsThem) {
  run_fibers([&] {
    TestServer ts(ws_options());
    const int kClients = colony::testing::kSanitized ? 20 : 200;
    std::atomic<int> ok{0};
    colony::WaitGroup wg;
    for (int i = 0; i < kClients; ++i) {
      wg.add(1);
      colony::go([&, i] {
        try {
          auto ws = ws_connect(ts.addr());
          beast::flat_buffer buf;
          for (int k = 0; k < 5; ++k) {
            const std::string msg = std::to_string(i) + "/" + std::to_string(k);
            ws.write(asio::buffer(msg));
            ws.read(buf);
            if (beast::buffers_to_string(buf.data()) == msg) ++ok;
            buf.clear();
          }
          ws.close(websocket::close_code::normal);
        } catch (const std::exception& e) {
          ADD_FAILURE() << "client " << i << ": " << e.what();
        }
        wg.done();
      });
    }
    EXPECT_TRUE(wg.wait_for(120s));
    EXPECT_EQ(ok.load(), kClients * 5);
    // A session waiting for its next message is ended by the shutdown, within the drain.
    auto idle = ws_connect(ts.addr());
    EXPECT_TRUE(ts.stop(10s)) << "the idle WebSocket session held the drain up";
    beast::flat_buffer buf;
    boost::system::error_code ec;
    idle.read(buf, ec);
    EXPECT_TRUE(ec) << "the session ended";
  });
}

}  // namespace
