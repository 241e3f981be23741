// The requests the hand-written parser's unit tests fed it (that parser is gone: Beast's
// request_parser reads requests now), sent to the server over loopback: each gets the status it
// got before, except chunked bodies, which are now served (chunked uploads: http_beast_test.cpp),
// and Transfer-Encoding other than chunked, which still gets 501. With 1, 2, 4 and 8 processors.
#include <gtest/gtest.h>

#include <chrono>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "http/http.hpp"
#include "http_test.hpp"

using namespace std::chrono_literals;
using colony::net::Address;
using colony::net::TcpStream;
using colony::testing::at_eof;
using colony::testing::Http;
using colony::testing::read_reply;
using colony::testing::Reply;
using colony::testing::TestServer;

namespace {

// ask: sends `bytes` on a new connection and reads the replies until the connection closes (or
// `n` replies came); the client then ends its side, and the server must close.
std::vector<Reply> ask(const Address& addr, const std::string& bytes, std::size_t n = 16) {
  TcpStream c = TcpStream::connect(addr, 5s);
  c.write_all(bytes);
  std::vector<Reply> got;
  std::string buf;
  while (got.size() < n) {
    std::optional<Reply> r = read_reply(c, buf);
    if (!r) break;
    got.push_back(*r);
    if (r->closes) break;
  }
  c.shutdown(colony::net::Shutdown::write);
  EXPECT_TRUE(at_eof(c)) << bytes.substr(0, 60);
  return got;
}

int status_of(const Address& addr, const std::string& bytes) {
  auto rs = ask(addr, bytes, 1);
  return rs.empty() ? 0 : rs[0].status;
}

TEST_P(Http, MalformedAndOverLimitRequestsGetTheirOldStatus) {
  run_fibers([&] {
    TestServer ts;
    const std::string big(9000, 'a');
    std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (int i = 0; i < 101; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
    many += "\r\n";
    const std::vector<std::pair<std::string, int>> cases = {
        {"GARBAGE\r\n\r\n", 400},
        {"GET /\r\n\r\n", 400},
        {"GET / HTTP/1.1 extra\r\nHost: h\r\n\r\n", 400},
        {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET / HTTQ/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET / HTTP/1.x\r\nHost: h\r\n\r\n", 400},
        {"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
        {"GET / HTTP/1.1\r\n\r\n", 400},  // no Host
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nBad Name: v\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n", 413},
        {"GET /" + big + " HTTP/1.1\r\nHost: h\r\n\r\n", 431},
        {"GET /" + big, 431},  // no end in sight
        {many, 431},
        {"\x16\x03\x01\x02", 400},  // TLS to a plain port: an early 400, not a 408
        {"GET / HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n", 417},
        // Both framings: refused, as any Transfer-Encoding was before (a smuggling vector).
        {"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: "
         "chunked\r\n\r\n",
         501},
    };
    for (const auto& [in, want] : cases)
      EXPECT_EQ(status_of(ts.addr(), in), want) << in.substr(0, 80);
    EXPECT_GE(ts.server().stats().bad_requests, cases.size());
  });
}

TEST_P(Http, KeepAliveRulesAndStrayEmptyLines) {
  run_fibers([&] {
    TestServer ts;
    auto rs = ask(ts.addr(), "GET / HTTP/1.0\r\n\r\n");
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_TRUE(rs[0].closes) << "HTTP/1.0 closes by default";
    rs = ask(ts.addr(), "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET / HTTP/1.0\r\n\r\n");
    ASSERT_EQ(rs.size(), 2u);
    EXPECT_FALSE(rs[0].closes);
    EXPECT_NE(rs[0].head.find("\r\nConnection: keep-alive\r\n"), std::string::npos);
    EXPECT_TRUE(rs[1].closes);
    rs = ask(ts.addr(), "GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n");
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_TRUE(rs[0].closes);
    // Empty lines before a request are skipped.
    rs = ask(ts.addr(), "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(rs[0].status, 200);
  });
}

// Lines may end in a bare LF (RFC 9112, section 2.2), as Go's net/http and nginx accept them;
// a bare CR anywhere is malformed.
TEST_P(Http, BareLineFeedsEndLinesButBareCarriageReturnsDoNot) {
  run_fibers([&] {
    TestServer ts;
    auto rs = ask(ts.addr(),
                  "POST /echo HTTP/1.1\nHost: h\r\nContent-Length: 3\nX-A: b \n\nabc"
                  "\n\r\nGET / HTTP/1.1\nHost: h\nConnection: close\n\r\n");
    ASSERT_EQ(rs.size(), 2u);
    EXPECT_EQ(rs[0].status, 200);
    EXPECT_EQ(rs[0].body, "abc");
    EXPECT_EQ(rs[1].body, "Hello, World!\n");
    for (const char* bad :
         {"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", "GET /\r HTTP/1.1\nHost: h\n\n",
          "GET / HTTP/1.1\r\r\nHost: h\r\n\r\n", "GET / HTTP/1.1\nHost: h\n\r\r\n\n"})
      EXPECT_EQ(status_of(ts.addr(), bad), 400) << bad;
    const std::string big = "GET /" + std::string(9000, 'a') + " HTTP/1.1\nHost: h\n\n";
    EXPECT_EQ(status_of(ts.addr(), big), 431);
  });
}

}  // namespace
