// The HTTP/1.1 server of examples/http over loopback, one connection at a time: keep-alive,
// pipelining, bodies, malformed requests, slow clients, bare line feeds, error responses to a
// client still sending; with 1, 2, 4 and 8 processors.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "http/http.hpp"
#include "http_test.hpp"

using namespace std::chrono_literals;
using colony::net::TcpStream;
using colony::testing::at_eof;
using colony::testing::Http;
using colony::testing::read_reply;
using colony::testing::Reply;
using colony::testing::TestServer;
using Clock = std::chrono::steady_clock;

namespace {

// The Http suite of colony_http_test, for both server files (http_test.hpp).
INSTANTIATE_TEST_SUITE_P(Procs, Http, ::testing::ValuesIn(colony::testing::proc_counts()),
                         colony::testing::procs_name);

TEST_P(Http, KeepAliveAndPipelining) {
  run_fibers([&] {
    TestServer ts;
    TcpStream c = TcpStream::connect(ts.addr(), 5s);
    std::string buf;
    // One at a time on a kept-alive connection.
    for (int i = 0; i < 3; ++i) {
      c.write_all("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
      auto r = read_reply(c, buf);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 200);
      EXPECT_EQ(r->body, "Hello, World!\n");
      EXPECT_FALSE(r->closes);
      EXPECT_NE(r->head.find("\r\nDate: "), std::string::npos);
    }
    // Pipelined in one write, answered in order, the last one asks to close.
    c.write_all(
        "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n"
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nfirst"
        "\r\n"  // a stray CRLF between requests is tolerated
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nsecond"
        "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    auto a = read_reply(c, buf);
    auto b = read_reply(c, buf);
    auto d = read_reply(c, buf);
    ASSERT_TRUE(a && b && d);
    EXPECT_EQ(a->status, 404);
    EXPECT_EQ(b->body, "first");
    EXPECT_EQ(d->body, "second");
    // HEAD: the length of the body that GET would send, and no body.
    auto h_end = buf.find("\r\n\r\n");
    ASSERT_NE(h_end, std::string::npos);
    EXPECT_NE(buf.substr(0, h_end).find("Content-Length: 14"), std::string::npos);
    buf.erase(0, h_end + 4);
    auto e = read_reply(c, buf);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->body, "Hello, World!\n");
    EXPECT_TRUE(e->closes);
    EXPECT_TRUE(at_eof(c));
    // HTTP/1.0 closes unless asked otherwise.
    TcpStream c10 = TcpStream::connect(ts.addr(), 5s);
    c10.write_all("GET / HTTP/1.0\r\n\r\n");
    buf.clear();
    auto r10 = read_reply(c10, buf);
    ASSERT_TRUE(r10);
    EXPECT_TRUE(r10->closes);
    EXPECT_TRUE(at_eof(c10));
  });
}

TEST_P(Http, BodiesInPiecesAndTooLarge) {
  run_fibers([&] {
    TestServer ts;
    TcpStream c = TcpStream::connect(ts.addr(), 5s);
    std::string body(300000, 'b');
    for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
    std::string req =
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    // Send it in uneven pieces with pauses: the server reads the body across many reads.
    auto writer = colony::spawn([&] {
      std::size_t off = 0, step = 1;
      while (off < req.size()) {
        std::size_t n = std::min(step, req.size() - off);
        c.write_all(req.data() + off, n);
        off += n;
        step = step * 3 + 1;
        colony::this_fiber::sleep_for(100us);
      }
    });
    std::string buf;
    auto r = read_reply(c, buf);
    writer.get();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(r->body == body);
    // Over the limit: 413, and the connection closes.
    c.write_all("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n");
    r = read_reply(c, buf);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_TRUE(r->closes);
    EXPECT_TRUE(at_eof(c));
  });
}

TEST_P(Http, MalformedRequestsGetAnErrorAndTheServerKeepsServing) {
  run_fibers([&] {
    TestServer ts;
    const std::vector<std::pair<std::string, int>> bad = {
        {"GARBAGE\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: zz\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n", 501},
        {"GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505},
        {"GET /" + std::string(10000, 'x') + " HTTP/1.1\r\nHost: t\r\n\r\n", 431},
        {std::string("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 11), 400},
        {"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /\x7f HTTP/1.1\r\nHost: t\r\n\r\n", 200},
    };
    for (int round = 0; round < 3; ++round) {
      for (const auto& [in, want] : bad) {
        TcpStream c = TcpStream::connect(ts.addr(), 5s);
        c.write_all(in);
        std::string buf;
        auto r = read_reply(c, buf);
        ASSERT_TRUE(r) << in.substr(0, 40);
        EXPECT_EQ(r->status, want) << in.substr(0, 40);
        if (want == 200) {  // a good request, then a bad one on the same connection
          r = read_reply(c, buf);
          ASSERT_TRUE(r);
          EXPECT_EQ(r->status, 400);
        }
        EXPECT_TRUE(r->closes);
        // The server lingers (reads what the client still sends) until the client is done.
        c.shutdown(colony::net::Shutdown::write);
        EXPECT_TRUE(at_eof(c)) << "the connection of a malformed request is closed";
      }
      // Still serving.
      TcpStream ok = TcpStream::connect(ts.addr(), 5s);
      ok.write_all("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
      std::string buf;
      auto r = read_reply(ok, buf);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 200);
    }
    EXPECT_GE(ts.server().stats().bad_requests, 3u * (bad.size()));
  });
}

TEST_P(Http, SlowClientGets408) {
  run_fibers([&] {
    http::Options opts;
    opts.header_timeout = 100ms;
    opts.idle_timeout = 300ms;
    TestServer ts(opts);
    TcpStream c = TcpStream::connect(ts.addr(), 5s);
    auto t0 = Clock::now();
    c.write_all("GET / HTTP/1.1\r\nHost: t\r\n");  // and never the blank line
    std::string buf;
    auto r = read_reply(c, buf);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 408);
    EXPECT_GE(Clock::now() - t0, 99ms);
    EXPECT_LT(Clock::now() - t0, 10s);
    EXPECT_TRUE(at_eof(c));
    // Trickling one byte at a time does not extend the header deadline.
    TcpStream t = TcpStream::connect(ts.addr(), 5s);
    const std::string req = "GET / HTTP/1.1\r\nHost: trickle\r\n\r\n";
    std::optional<Reply> got;
    t0 = Clock::now();
    auto reader = colony::spawn([&] {
      std::string b2;
      return read_reply(t, b2);
    });
    try {
      for (char ch : req) {
        t.write_all(&ch, 1);
        colony::this_fiber::sleep_for(10ms);
      }
    } catch (const std::system_error&) {
      // the server may have closed before we finished
    }
    got = reader.get();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->status, 408);
    // An idle keep-alive connection is closed quietly after idle_timeout.
    TcpStream idle = TcpStream::connect(ts.addr(), 5s);
    idle.write_all("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    buf.clear();
    ASSERT_TRUE(read_reply(idle, buf));
    EXPECT_TRUE(at_eof(idle));
    EXPECT_GE(ts.server().stats().timeouts, 2u);
  });
}

// A request whose lines end in bare LFs is answered at once (it used to wait for the header
// timeout and get 408).
TEST_P(Http, BareLineFeedRequestIsAnswered) {
  run_fibers([&] {
    http::Options opts;
    opts.header_timeout = 60s;  // an answer that waited for it would fail the test's read
    TestServer ts(opts);
    TcpStream c = TcpStream::connect(ts.addr(), 5s);
    c.write_all("POST /echo HTTP/1.1\nHost: t\nContent-Length: 2\n\nhiGET / HTTP/1.1\nHost: t\n\n");
    std::string buf;
    c.set_read_deadline(Clock::now() + 5s);
    auto a = read_reply(c, buf);
    auto b = read_reply(c, buf);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->status, 200);
    EXPECT_EQ(a->body, "hi");
    EXPECT_EQ(b->status, 200);
    EXPECT_EQ(b->body, "Hello, World!\n");
  });
}

// An error response reaches a client that is still sending its request: after writing it, the
// server reads and discards what the client sends for a bounded time (a "lingering close", as
// Go and nginx do) instead of closing with unread data, which resets the connection (the
// client's write fails and it never reads the answer). Each client here writes its whole
// request before reading, as simple clients do.
TEST_P(Http, ErrorResponsesReachAClientStillSending) {
  run_fibers([&] {
    TestServer ts;
    // More than the sockets' buffers hold, so the client is still writing when the answer comes.
    const std::string more(8 << 20, 'x');
    const std::vector<std::pair<std::string, int>> cases = {
        {"GET /" + more + " HTTP/1.1\r\nHost: t\r\n\r\n", 431},
        {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 8388608\r\n\r\n" + more, 413},
        {"BAD(REQUEST / HTTP/1.1\r\nHost: t\r\n\r\n" + more, 400},
        {"GET / HTTP/1.1\r\nHost: t\r\nNoColon\r\n\r\n" + more, 400},
    };
    for (const auto& [in, want] : cases) {
      TcpStream c = TcpStream::connect(ts.addr(), 5s);
      c.set_write_deadline(Clock::now() + 20s);
      std::string err;
      try {
        c.write_all(in);
      } catch (const std::system_error& e) {
        err = e.what();
      }
      EXPECT_EQ(err, "") << "the request was cut while being sent (" << want << ")";
      std::string buf;
      std::optional<Reply> r;
      try {
        r = read_reply(c, buf);
      } catch (const std::system_error& e) {
        ADD_FAILURE() << "reading the " << want << ": " << e.what();
      }
      ASSERT_TRUE(r) << want;
      EXPECT_EQ(r->status, want);
      EXPECT_TRUE(r->closes);
      try {
        c.shutdown(colony::net::Shutdown::write);  // done sending: the server closes at once
        EXPECT_TRUE(at_eof(c));
      } catch (const std::system_error& e) {
        ADD_FAILURE() << "the connection was reset: " << e.what();
      }
    }
    EXPECT_EQ(ts.server().stats().bad_requests, cases.size());
  });
}

}  // namespace
