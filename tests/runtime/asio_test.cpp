// <colony/net/asio.hpp>: colony sockets as Asio streams, driven by Boost.Asio's and Boost.Beast's
// synchronous algorithms on fibers (HTTP client and server, WebSocket echo), from plain threads,
// with deadlines and Context cancellation surfacing as Asio error codes. Loopback only; run with
// 1, 2 and 4 processors.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/multi_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <colony/net/asio.hpp>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
using namespace std::chrono_literals;
using boost::system::error_code;
using colony::net::Address;
using colony::net::AsioStream;
using colony::net::TcpListener;
using colony::net::TcpStream;
using colony::testing::ProcsTest;
using Clock = std::chrono::steady_clock;

namespace {

static_assert(beast::is_sync_read_stream<AsioStream>::value);
static_assert(beast::is_sync_write_stream<AsioStream>::value);
static_assert(std::is_same_v<beast::lowest_layer_type<websocket::stream<AsioStream>>, AsioStream>);

class Asio : public ProcsTest {};
INSTANTIATE_TEST_SUITE_P(Procs, Asio, ::testing::Values(1, 2, 4), colony::testing::procs_name);

// pattern: n bytes that differ with the seed and the offset (so a reordered or lost chunk shows).
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

// HttpServer: a Beast HTTP/1.1 server on fibers, one per connection: it answers each request
// with its target, a colon and its body, keep-alive until the client closes. stop() closes the
// listener and waits for every connection fiber.
class HttpServer {
 public:
  HttpServer() : ln_(TcpListener::listen(Address::loopback_v4(0))), addr_(ln_.local_address()) {
    wg_.add(1);
    colony::go([this] {
      for (;;) {
        TcpStream c;
        try {
          c = ln_.accept();
        } catch (const std::system_error&) {
          break;  // closed by stop()
        }
        wg_.add(1);
        colony::go([this](TcpStream t) { serve(AsioStream(std::move(t))); }, std::move(c));
      }
      wg_.done();
    });
  }
  ~HttpServer() { stop(); }
  void stop() {
    if (stopped_.exchange(true)) return;
    ln_.close();
    wg_.wait();
  }
  const Address& address() const { return addr_; }
  int requests() const { return requests_.load(); }

 private:
  void serve(AsioStream s) {
    beast::flat_buffer buf;
    for (;;) {
      http::request<http::string_body> req;
      error_code ec;
      http::read(s, buf, req, ec);
      if (ec) {
        if (ec != http::error::end_of_stream) ADD_FAILURE() << "server read: " << ec.message();
        break;
      }
      requests_.fetch_add(1);
      http::response<http::string_body> res{http::status::ok, req.version()};
      res.set(http::field::server, "colony");
      res.body() = std::string(req.target()) + ":" + req.body();
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      http::write(s, res, ec);
      if (ec) {
        ADD_FAILURE() << "server write: " << ec.message();
        break;
      }
      if (!req.keep_alive()) break;
    }
    error_code ignored;
    s.shutdown(colony::net::Shutdown::write, ignored);
    wg_.done();
  }

  TcpListener ln_;
  Address addr_;
  colony::WaitGroup wg_;
  std::atomic<bool> stopped_{false};
  std::atomic<int> requests_{0};
};

// http_get: one keep-alive exchange on s; returns the response body.
std::string exchange(AsioStream& s, beast::flat_buffer& buf, const std::string& target,
                     const std::string& body) {
  http::request<http::string_body> req{body.empty() ? http::verb::get : http::verb::post, target,
                                       11};
  req.set(http::field::host, "127.0.0.1");
  req.body() = body;
  req.prepare_payload();
  http::write(s, req);
  http::response<http::string_body> res;
  http::read(s, buf, res);
  EXPECT_EQ(res.result(), http::status::ok);
  return res.body();
}

// Many Beast clients, each on its fiber with a keep-alive connection, against the Beast server:
// small and large (partial writes, several reads) bodies, answers checked byte for byte.
TEST_P(Asio, BeastHttpManyConnections) {
  run_fibers([] {
    HttpServer srv;
    constexpr int kConns = 64, kRequests = 4;
    colony::WaitGroup wg;
    std::atomic<int> ok{0};
    for (int i = 0; i < kConns; ++i) {
      wg.add(1);
      colony::go([&, i] {
        try {
          AsioStream s(TcpStream::connect(srv.address()));
          beast::flat_buffer buf;
          for (int r = 0; r < kRequests; ++r) {
            std::string target = "/c" + std::to_string(i) + "/r" + std::to_string(r);
            // Every eighth request carries 300 KiB: more than a socket buffer holds.
            std::string body =
                pattern((i + r) % 8 == 0 ? 300 * 1024 : static_cast<std::size_t>(i * 10 + r),
                        static_cast<unsigned>(i * 100 + r));
            if (exchange(s, buf, target, body) == target + ":" + body) ok.fetch_add(1);
          }
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
  });
}

// A plain OS thread runs a Beast client against the fiber server: the same stream blocks the
// thread instead of parking a fiber.
TEST_P(Asio, PlainThreadClientAgainstFiberServer) {
  run_fibers([] {
    HttpServer srv;
    std::string got;
    std::thread t([&] {
      try {
        AsioStream s(TcpStream::connect(srv.address()));
        beast::flat_buffer buf;
        got = exchange(s, buf, "/thread", "from a thread");
        got += "|" + exchange(s, buf, "/again", "");
      } catch (const std::exception& e) {
        got = e.what();
      }
    });
    colony::testing::join_thread(t);
    srv.stop();
    EXPECT_EQ(got, "/thread:from a thread|/again:");
  });
}

// boost::asio::read / write over buffer sequences longer than the 64 iovecs one call takes.
TEST_P(Asio, AsioReadWriteBufferSequences) {
  run_fibers([] {
    auto ln = TcpListener::listen(Address::loopback_v4(0));
    const std::string data = pattern(1 << 20, 7);
    auto writer = colony::spawn([&] {
      AsioStream s(TcpStream::connect(ln.local_address()));
      std::vector<asio::const_buffer> bufs;
      const std::size_t piece = data.size() / 200;  // 200 buffers, then the tail
      std::size_t off = 0;
      for (; off + piece <= data.size() && bufs.size() < 200; off += piece)
        bufs.push_back(asio::buffer(data.data() + off, piece));
      bufs.push_back(asio::buffer(data.data() + off, data.size() - off));
      bufs.insert(bufs.begin() + 3, asio::const_buffer());  // an empty one in between
      return asio::write(s, bufs);
    });
    AsioStream c(ln.accept());
    std::string got(data.size(), '\0');
    std::vector<asio::mutable_buffer> in;
    for (std::size_t off = 0; off < got.size(); off += 4096)
      in.push_back(asio::buffer(got.data() + off, std::min<std::size_t>(4096, got.size() - off)));
    std::size_t n = asio::read(c, in);
    EXPECT_EQ(writer.get(), data.size());
    EXPECT_EQ(n, data.size());
    EXPECT_TRUE(got == data);
    // Then end of stream: eof as an error code, and from the throwing overload.
    char one;
    error_code ec;
    EXPECT_EQ(c.read_some(asio::buffer(&one, 1), ec), 0u);
    EXPECT_EQ(ec, asio::error::eof);
    EXPECT_THROW(c.read_some(asio::buffer(&one, 1)), boost::system::system_error);
    // Empty buffers: nothing, no error (not eof).
    EXPECT_EQ(c.read_some(asio::mutable_buffer(), ec), 0u);
    EXPECT_FALSE(ec);
  });
}

// Deadlines surface as timed_out, on http::read with an error_code and from the throwing
// overloads; the stream is still usable afterwards.
TEST_P(Asio, DeadlineIsTimedOut) {
  run_fibers([] {
    auto ln = TcpListener::listen(Address::loopback_v4(0));
    AsioStream c(TcpStream::connect(ln.local_address()));
    TcpStream peer = ln.accept();  // never answers until the end

    c.set_read_deadline(Clock::now() + 50ms);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    error_code ec;
    auto t0 = Clock::now();
    http::read(c, buf, res, ec);
    EXPECT_GE(Clock::now() - t0, 45ms);
    EXPECT_EQ(ec, asio::error::timed_out) << ec.message();
    EXPECT_EQ(ec, boost::system::errc::timed_out);

    c.set_read_deadline(Clock::now() + 20ms);
    char b[16];
    try {
      c.read_some(asio::buffer(b));
      ADD_FAILURE() << "read_some did not time out";
    } catch (const boost::system::system_error& e) {
      EXPECT_EQ(e.code(), asio::error::timed_out);
    }

    // Reached through beast::get_lowest_layer, as with beast::tcp_stream.
    websocket::stream<AsioStream> ws(std::move(c));
    beast::get_lowest_layer(ws).set_read_deadline(colony::net::kNoDeadline);
    peer.write_all("ok");
    std::size_t n = asio::read(ws.next_layer(), asio::buffer(b, 2), ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(std::string(b, n), "ok");
  });
}

// A Context set on the stream: its deadline is timed_out, its cancellation operation_aborted
// (from another fiber, while the read is parked).
TEST_P(Asio, ContextCancellation) {
  run_fibers([] {
    auto ln = TcpListener::listen(Address::loopback_v4(0));
    AsioStream c(TcpStream::connect(ln.local_address()));
    TcpStream peer = ln.accept();
    char b[16];
    error_code ec;

    auto [tctx, tcancel] = colony::with_timeout(colony::background(), 30ms);
    c.set_context(tctx);
    EXPECT_EQ(c.read_some(asio::buffer(b), ec), 0u);
    EXPECT_EQ(ec, asio::error::timed_out) << ec.message();
    tcancel();

    auto [cctx, cancel] = colony::with_cancel(colony::background());
    c.set_context(cctx);
    colony::go([cancel = cancel] {
      colony::this_fiber::sleep_for(20ms);
      cancel();
    });
    auto t0 = Clock::now();
    EXPECT_EQ(c.read_some(asio::buffer(b), ec), 0u);
    EXPECT_EQ(ec, asio::error::operation_aborted) << ec.message();
    EXPECT_GE(Clock::now() - t0, 15ms);

    c.clear_context();
    peer.write_all("x");
    EXPECT_EQ(c.read_some(asio::buffer(b), ec), 1u);
    EXPECT_FALSE(ec);
  });
}

// A reset by the peer is connection_reset; a write to it broken_pipe or connection_reset; a
// stream closed under a parked read bad_descriptor.
TEST_P(Asio, ResetAndClose) {
  run_fibers([] {
    auto ln = TcpListener::listen(Address::loopback_v4(0));
    AsioStream c(TcpStream::connect(ln.local_address()));
    {
      TcpStream peer = ln.accept();
      linger lg{1, 0};  // close sends RST
      ASSERT_EQ(::setsockopt(peer.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    }
    char b[16];
    error_code ec;
    c.read_some(asio::buffer(b), ec);
    EXPECT_EQ(ec, asio::error::connection_reset) << ec.message();
    c.write_some(asio::buffer("data", 4), ec);
    EXPECT_TRUE(ec == asio::error::broken_pipe || ec == asio::error::connection_reset)
        << ec.message();

    AsioStream d(TcpStream::connect(ln.local_address()));
    TcpStream peer = ln.accept();
    colony::go([&d] {
      colony::this_fiber::sleep_for(20ms);
      d.close();
    });
    d.read_some(asio::buffer(b), ec);
    EXPECT_EQ(ec, asio::error::bad_descriptor) << ec.message();
  });
}

// WebSocket echo (synchronous websocket::stream<AsioStream>): small, fragmented and 1 MiB
// messages, text and binary; the server fragments its own writes too; both sides close cleanly.
TEST_P(Asio, WebSocketEcho) {
  run_fibers([] {
    auto ln = TcpListener::listen(Address::loopback_v4(0));
    auto server = colony::spawn([&] {
      websocket::stream<AsioStream> ws(ln.accept());
      ws.read_message_max(4 << 20);
      ws.auto_fragment(true);
      ws.write_buffer_bytes(8192);  // answers go out as 8 KiB frames
      ws.accept();
      int echoed = 0;
      for (;;) {
        beast::flat_buffer buf;
        error_code ec;
        ws.read(buf, ec);
        if (ec == websocket::error::closed) break;
        if (ec) throw boost::system::system_error(ec, "server read");
        ws.text(ws.got_text());
        ws.write(buf.data());
        ++echoed;
      }
      return echoed;
    });

    websocket::stream<AsioStream> ws(TcpStream::connect(ln.local_address()));
    ws.read_message_max(4 << 20);
    ws.handshake("127.0.0.1", "/echo");

    auto roundtrip = [&](const std::string& msg, bool text, std::size_t frag) {
      ws.text(text);
      if (frag == 0) {
        ws.write(asio::buffer(msg));
      } else {  // one message in many frames
        for (std::size_t off = 0; off < msg.size(); off += frag) {
          std::size_t n = std::min(frag, msg.size() - off);
          ws.write_some(off + n == msg.size(), asio::buffer(msg.data() + off, n));
        }
      }
      beast::flat_buffer buf;
      ws.read(buf);
      EXPECT_EQ(ws.got_text(), text);
      return beast::buffers_to_string(buf.data()) == msg;
    };
    EXPECT_TRUE(roundtrip("hello", true, 0));
    EXPECT_TRUE(roundtrip(pattern(10000, 1), true, 1000));            // 10 fragments
    EXPECT_TRUE(roundtrip(pattern(1 << 20, 2), false, 0));            // 1 MiB in one frame
    EXPECT_TRUE(roundtrip(pattern((1 << 20) + 3, 3), false, 65536));  // 1 MiB + 3, 17 frames
    EXPECT_TRUE(roundtrip(std::string(), true, 0));
    ws.close(websocket::close_code::normal);
    // The close handshake finished: the server saw the close and tore down.
    EXPECT_EQ(server.get(), 5);
    EXPECT_FALSE(ws.is_open());
  });
}

// Many WebSocket connections at once, each echoing a few messages.
TEST_P(Asio, WebSocketManyConnections) {
  run_fibers([] {
    auto ln = TcpListener::listen(Address::loopback_v4(0));
    constexpr int kConns = 32;
    colony::WaitGroup wg;
    wg.add(1);
    colony::go([&] {
      colony::WaitGroup conns;
      for (int i = 0; i < kConns; ++i) {
        conns.add(1);
        colony::go(
            [&conns](TcpStream t) {
              try {
                websocket::stream<AsioStream> ws(std::move(t));
                ws.accept();
                for (;;) {
                  beast::flat_buffer buf;
                  error_code ec;
                  ws.read(buf, ec);
                  if (ec) break;
                  ws.binary(true);
                  ws.write(buf.data());
                }
              } catch (const std::exception& e) {
                ADD_FAILURE() << "ws server: " << e.what();
              }
              conns.done();
            },
            ln.accept());
      }
      conns.wait();
      wg.done();
    });
    std::atomic<int> ok{0};
    for (int i = 0; i < kConns; ++i) {
      wg.add(1);
      colony::go([&, i] {
        try {
          websocket::stream<AsioStream> ws(TcpStream::connect(ln.local_address()));
          ws.handshake("127.0.0.1", "/");
          ws.binary(true);
          for (int r = 0; r < 3; ++r) {
            std::string msg = pattern(1000 + static_cast<std::size_t>(i) * 997, i * 3 + r);
            ws.write(asio::buffer(msg));
            beast::multi_buffer buf;
            ws.read(buf);
            if (beast::buffers_to_string(buf.data()) == msg) ok.fetch_add(1);
          }
          ws.close(websocket::close_code::normal);
        } catch (const std::exception& e) {
          ADD_FAILURE() << "ws client " << i << ": " << e.what();
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(ok.load(), kConns * 3);
  });
}

}  // namespace
