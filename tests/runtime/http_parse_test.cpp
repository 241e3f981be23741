// The HTTP/1.1 request parser of examples/http, on its own.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "http/http.hpp"

namespace {

http::ParseResult parse(std::string_view s, http::Request& r, http::Limits l = {}) {
  return http::parse_request(s, r, l);
}

TEST(HttpParse, CompleteRequest) {
  http::Request r;
  std::string s = "GET /a/b?x=1 HTTP/1.1\r\nHost: example\r\nX-Thing:  spaced value \r\n\r\nrest";
  auto pr = parse(s, r);
  ASSERT_EQ(pr.status, http::ParseStatus::complete) << pr.why;
  EXPECT_EQ(pr.head_len, s.size() - 4);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/a/b?x=1");
  EXPECT_EQ(r.path(), "/a/b");
  EXPECT_EQ(r.query(), "x=1");
  EXPECT_EQ(r.version, "HTTP/1.1");
  EXPECT_EQ(r.header("host"), "example");
  EXPECT_EQ(r.header("X-THING"), "spaced value");
  EXPECT_EQ(r.header("missing"), "");
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(r.content_length, 0u);
}

TEST(HttpParse, IncompleteThenComplete) {
  http::Request r;
  std::string s = "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
  for (std::size_t n = 0; n < s.size() - 3; ++n)
    EXPECT_EQ(parse(s.substr(0, n), r).status, http::ParseStatus::incomplete) << n;
  auto pr = parse(s, r);
  ASSERT_EQ(pr.status, http::ParseStatus::complete);
  EXPECT_EQ(r.content_length, 3u);
  EXPECT_EQ(s.substr(pr.head_len), "abc");
}

TEST(HttpParse, KeepAliveRules) {
  http::Request r;
  ASSERT_EQ(parse("GET / HTTP/1.0\r\n\r\n", r).status, http::ParseStatus::complete);
  EXPECT_FALSE(r.keep_alive) << "HTTP/1.0 closes by default";
  ASSERT_EQ(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", r).status,
            http::ParseStatus::complete);
  EXPECT_TRUE(r.keep_alive);
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n", r).status,
            http::ParseStatus::complete);
  EXPECT_FALSE(r.keep_alive);
  // Stray empty lines before a request are skipped.
  auto pr = parse("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", r);
  ASSERT_EQ(pr.status, http::ParseStatus::complete);
  EXPECT_EQ(pr.head_len, 4u + 27u);
}

TEST(HttpParse, MalformedAndOverLimit) {
  struct Case {
    std::string in;
    http::ParseStatus want;
  };
  const std::string big(9000, 'a');
  std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 101; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  many += "\r\n";
  const std::vector<Case> cases = {
      {"GARBAGE\r\n\r\n", http::ParseStatus::bad_request},
      {"GET /\r\n\r\n", http::ParseStatus::bad_request},
      {"GET / HTTP/1.1 extra\r\nHost: h\r\n\r\n", http::ParseStatus::bad_request},
      {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", http::ParseStatus::bad_request},
      {"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", http::ParseStatus::bad_request},
      {"GET / HTTQ/1.1\r\nHost: h\r\n\r\n", http::ParseStatus::bad_request},
      {"GET / HTTP/1.x\r\nHost: h\r\n\r\n", http::ParseStatus::bad_request},
      {"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", http::ParseStatus::bad_request},
      {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", http::ParseStatus::version_not_supported},
      {"GET / HTTP/1.1\r\n\r\n", http::ParseStatus::bad_request},  // no Host
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", http::ParseStatus::bad_request},
      {"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", http::ParseStatus::bad_request},
      {"GET / HTTP/1.1\r\nHost: h\r\nBad Name: v\r\n\r\n", http::ParseStatus::bad_request},
      {"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", http::ParseStatus::bad_request},
      {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n", http::ParseStatus::bad_request},
      {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", http::ParseStatus::bad_request},
      {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n", http::ParseStatus::bad_request},
      {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
       http::ParseStatus::bad_request},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
       http::ParseStatus::not_implemented},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n",
       http::ParseStatus::payload_too_large},
      {"GET /" + big + " HTTP/1.1\r\nHost: h\r\n\r\n", http::ParseStatus::header_too_large},
      {"GET /" + big, http::ParseStatus::header_too_large},  // no end in sight
      {many, http::ParseStatus::header_too_large},
      {"\x16\x03\x01\x02", http::ParseStatus::bad_request},  // TLS to a plain port: early 400
  };
  for (const auto& c : cases) {
    http::Request r;
    EXPECT_EQ(parse(c.in, r).status, c.want) << c.in.substr(0, 80);
  }
}

// Lines may end in a bare LF (RFC 9112, section 2.2: a recipient may take one as a line
// terminator and ignore a preceding CR), as Go's net/http and nginx accept them. Before, such a
// request was never complete: the server waited for the header timeout and answered 408.
TEST(HttpParse, BareLineFeedsEndLines) {
  http::Request r;
  std::string s = "POST /echo HTTP/1.1\nHost: h\r\nContent-Length: 3\nX-A: b \n\nabc";
  for (std::size_t n = 0; n < s.size() - 3; ++n)
    EXPECT_EQ(parse(s.substr(0, n), r).status, http::ParseStatus::incomplete) << n;
  auto pr = parse(s, r);
  ASSERT_EQ(pr.status, http::ParseStatus::complete) << pr.why;
  EXPECT_EQ(s.substr(pr.head_len), "abc");
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/echo");
  EXPECT_EQ(r.version, "HTTP/1.1");
  EXPECT_EQ(r.header("Host"), "h");
  EXPECT_EQ(r.header("X-A"), "b");
  EXPECT_EQ(r.content_length, 3u);
  // A blank line of CR LF after bare-LF lines ends the header too; leading empty lines of
  // either kind are skipped.
  s = "\n\r\nGET / HTTP/1.1\nHost: h\n\r\nnext";
  pr = parse(s, r);
  ASSERT_EQ(pr.status, http::ParseStatus::complete) << pr.why;
  EXPECT_EQ(s.substr(pr.head_len), "next");
  EXPECT_EQ(r.target, "/");
  EXPECT_EQ(r.header("host"), "h");
  // A CR anywhere but before the LF is still malformed (RFC 9112: a bare CR is invalid).
  for (const char* bad :
       {"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", "GET /\r HTTP/1.1\nHost: h\n\n",
        "GET / HTTP/1.1\r\r\nHost: h\r\n\r\n", "GET / HTTP/1.1\nHost: h\n\r\r\n\n"})
    EXPECT_EQ(parse(bad, r).status, http::ParseStatus::bad_request) << bad;
  // The header-size limit counts the same bytes.
  const std::string big = "GET /" + std::string(9000, 'a') + " HTTP/1.1\nHost: h\n\n";
  EXPECT_EQ(parse(big, r).status, http::ParseStatus::header_too_large);
}

}  // namespace
