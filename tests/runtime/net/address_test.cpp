// colony::net::Address: parsing and formatting.
#include <gtest/gtest.h>

#include <colony/net.hpp>
#include <stdexcept>
#include <string>

using colony::net::Address;

namespace {

TEST(NetAddress, ParseAndFormat) {
  auto a = Address::parse("127.0.0.1:8080");
  EXPECT_TRUE(a.is_v4());
  EXPECT_EQ(a.port(), 8080);
  EXPECT_EQ(a.host(), "127.0.0.1");
  EXPECT_EQ(a.to_string(), "127.0.0.1:8080");
  auto b = Address::parse("[::1]:443");
  EXPECT_TRUE(b.is_v6());
  EXPECT_EQ(b.port(), 443);
  EXPECT_EQ(b.to_string(), "[::1]:443");
  EXPECT_EQ(b, Address::loopback_v6(443));
  EXPECT_EQ(Address::parse(":80"), Address::any_v4(80));
  EXPECT_EQ(Address::parse("[::]:0"), Address::any_v6(0));
  EXPECT_EQ(Address::parse("[fe80::1%2]:80").to_string(), "[fe80::1%2]:80");
  EXPECT_EQ(Address::ip("10.1.2.3", 9).to_string(), "10.1.2.3:9");
  EXPECT_EQ(a.with_port(1), Address::parse("127.0.0.1:1"));
  EXPECT_NE(a, b);
  EXPECT_TRUE(Address().is_unspecified());
  EXPECT_EQ(Address().to_string(), "");
  for (const char* bad :
       {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:x", "::1:80", "[::1]",
        "[::1]80", "[127.0.0.1]:80", "localhost:80", "1.2.3:80", "[fe80::1%]:80"}) {
    EXPECT_FALSE(Address::try_parse(bad).has_value()) << bad;
    EXPECT_THROW(Address::parse(bad), std::invalid_argument) << bad;
  }
  try {
    Address::parse("127.0.0.1");
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("missing port"), std::string::npos) << e.what();
  }
}

}  // namespace
