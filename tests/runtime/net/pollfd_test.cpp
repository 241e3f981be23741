// colony::net::wait_readable and PollFd on fds colony::net does not own (pipes, eventfd), with
// 1, 2, 4 and 8 processors.
// Loopback only. Time-based assertions only bound waiting from below (a deadline waited at least
// that long) or give generous upper bounds.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <system_error>
#include <thread>

#include "net_test.hpp"

using namespace std::chrono_literals;
using colony::context_errc;
using colony::testing::Net;
using Clock = std::chrono::steady_clock;

namespace {

TEST_P(Net, WaitReadableOnPipesAndEventfd) {
  run_fibers([&] {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    auto t0 = Clock::now();
    EXPECT_FALSE(colony::net::wait_readable(p[0], Clock::now() + 20ms));
    EXPECT_GE(Clock::now() - t0, 19ms);
    EXPECT_TRUE(colony::net::wait_writable(p[1], Clock::now() + 10s));
    auto w = colony::spawn([&] {
      colony::this_fiber::sleep_for(5ms);
      EXPECT_EQ(::write(p[1], "x", 1), 1);
    });
    EXPECT_TRUE(colony::net::wait_readable(p[0]));
    char b;
    EXPECT_EQ(::read(p[0], &b, 1), 1);
    w.get();
    // A lasting registration, woken many times; and from a plain thread.
    int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ASSERT_GE(efd, 0);
    {
      colony::net::PollFd pf(efd);
      std::thread poster([&] {
        for (int i = 0; i < 100; ++i) {
          std::uint64_t one = 1;
          EXPECT_EQ(::write(efd, &one, sizeof one), 8);
          std::this_thread::sleep_for(100us);
        }
      });
      std::uint64_t total = 0;
      while (total < 100) {
        std::uint64_t v;
        if (::read(efd, &v, sizeof v) == 8)
          total += v;
        else
          ASSERT_TRUE(pf.wait_readable(Clock::now() + 10s));
      }
      poster.join();
      EXPECT_EQ(total, 100u);
      // Readiness is a hint (an edge seen while nobody waited): wait until the context ends.
      auto [ctx, cancel] = colony::with_timeout(colony::background(), 5ms);
      try {
        for (int i = 0; i < 1000; ++i) {
          std::uint64_t v;
          EXPECT_NE(::read(efd, &v, sizeof v), 8);
          pf.wait_readable(ctx);
        }
        ADD_FAILURE() << "wait_readable(ctx) kept returning";
      } catch (const std::system_error& e) {
        EXPECT_EQ(e.code(), context_errc::deadline_exceeded) << e.what();
      }
      cancel();
    }
    std::thread plain([&] {
      EXPECT_FALSE(colony::net::wait_readable(p[0], Clock::now() + 5ms));  // blocks this thread
    });
    plain.join();
    // Regular files (and /dev/null) cannot be polled: EPERM from the poller.
    int f = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    try {
      colony::net::PollFd pf(f);
      ADD_FAILURE() << "registered /dev/null";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::operation_not_permitted) << e.what();
    }
    ::close(f);
    ::close(efd);
    ::close(p[0]);
    ::close(p[1]);
  });
}

}  // namespace
