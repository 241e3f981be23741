// colony::net UDP: send_to and recv_from, with 1, 2, 4 and 8 processors.
// Loopback only. Time-based assertions only bound waiting from below (a deadline waited at least
// that long) or give generous upper bounds.
#include <gtest/gtest.h>

#include <chrono>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <string>
#include <system_error>

#include "net_test.hpp"

using namespace std::chrono_literals;
using colony::net::Address;
using colony::net::UdpSocket;
using colony::testing::Net;
using Clock = std::chrono::steady_clock;

namespace {

TEST_P(Net, UdpSendToRecvFrom) {
  run_fibers([&] {
    UdpSocket a = UdpSocket::bind(Address::loopback_v4(0));
    UdpSocket b = UdpSocket::bind(Address::loopback_v4(0));
    auto echo = colony::spawn([&] {
      char buf[2048];
      for (int i = 0; i < 10; ++i) {
        auto r = b.recv_from(buf, sizeof buf);
        b.send_to(buf, r.size, r.from);
      }
    });
    for (int i = 0; i < 10; ++i) {
      std::string msg = "datagram " + std::to_string(i);
      EXPECT_EQ(a.send_to(msg.data(), msg.size(), b.local_address()), msg.size());
      char buf[2048];
      a.set_read_deadline(Clock::now() + 10s);  // loopback does not drop, but never hang
      auto r = a.recv_from(buf, sizeof buf);
      EXPECT_EQ(std::string(buf, r.size), msg);
      EXPECT_EQ(r.from, b.local_address());
    }
    echo.get();
    a.set_read_deadline(Clock::now() + 20ms);
    char buf[8];
    try {
      a.recv_from(buf, sizeof buf);
      ADD_FAILURE() << "recv_from returned with nothing sent";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::timed_out) << e.what();
    }
    auto [ctx, cancel] = colony::with_timeout(colony::background(), 10ms);
    EXPECT_THROW(a.recv_from(buf, sizeof buf, ctx), std::system_error);
    cancel();
  });
}

}  // namespace
