// colony::hooks (docs/hooks.md): the interposed socket and sleep calls park a fiber instead of
// blocking its thread, and return what the real calls return.
//
// The parking tests run on max_procs = 1 with a ticker fiber (TickFiber, every 10 ms) beside a
// call that must wait ~300 ms for a plain thread: had the call blocked the thread, the ticker
// would not have run at all meanwhile. Times are bounded generously from above (a shared CI
// machine); the bound that matters is the ticker's count.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <colony/blocking.hpp>
#include <colony/colony.hpp>
#include <colony/hooks.hpp>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "hooks/hooks_util.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
using namespace colony::hooks_test;
using colony::testing::join_thread;

namespace {

colony::Config one_proc() {
  colony::Config c;
  c.max_procs = 1;
  return c;
}

// in_runtime: fn on the main fiber of a one-processor runtime.
template <class F>
void in_runtime(F&& fn) {
  colony::run([&] { fn(); }, one_proc());
}

// later: a plain thread that runs fn after `delay`; join it with join_thread.
template <class F>
std::thread later(std::chrono::milliseconds delay, F fn) {
  return std::thread([delay, fn] {
    std::this_thread::sleep_for(delay);
    fn();
  });
}

TEST(Hooks, AreActiveWhenLinked) {
  EXPECT_TRUE(colony::hooks::active());
  EXPECT_EQ(colony_hooks_active(), 1);
}

// ---- each receiving call parks until the peer writes

class Receive : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Calls, Receive,
                         ::testing::Values("read", "recv", "recvfrom", "recvmsg", "readv", "poll",
                                           "poll_pollerr", "select", "recv_waitall"),
                         [](const auto& param_info) { return param_info.param; });

ssize_t receive(const std::string& how, int fd, char* buf, std::size_t n) {
  if (how == "read") return ::read(fd, buf, n);
  if (how == "recv") return ::recv(fd, buf, n, 0);
  if (how == "recv_waitall") return ::recv(fd, buf, n, MSG_WAITALL);
  if (how == "recvfrom") return ::recvfrom(fd, buf, n, 0, nullptr, nullptr);
  if (how == "recvmsg" || how == "readv") {
    iovec iov[2] = {{buf, 2}, {buf + 2, n - 2}};
    if (how == "readv") return ::readv(fd, iov, 2);
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    return ::recvmsg(fd, &m, 0);
  }
  if (how == "poll" || how == "poll_pollerr") {
    // poll_pollerr: POLLERR asked for too, as libpq does (it is reported anyway).
    pollfd p{fd, static_cast<short>(how == "poll" ? POLLIN : POLLIN | POLLERR), 0};
    const int r = ::poll(&p, 1, -1);
    if (r != 1 || !(p.revents & POLLIN)) return -100 - r;
    return ::read(fd, buf, n);
  }
  if (how == "select") {
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(fd, &rd);
    const int r = ::select(fd + 1, &rd, nullptr, nullptr, nullptr);
    if (r != 1 || !FD_ISSET(fd, &rd)) return -100 - r;
    return ::read(fd, buf, n);
  }
  return -1000;
}

TEST_P(Receive, ParksTheFiberUntilThePeerWrites) {
  const std::string how = GetParam();
  in_runtime([&] {
    Pair p;
    ASSERT_GE(p.a, 0);
    const auto waits = colony::hooks::stats().waits;
    const auto fallbacks = colony::hooks::stats().fallbacks;
    TickFiber ticker;
    // recv_waitall: the 10 bytes come in two writes 150 ms apart; the call returns all 10.
    std::thread peer = later(300ms, [&] {
      if (how == "recv_waitall") {
        ::write(p.b, "hello", 5);
        std::this_thread::sleep_for(150ms);
        ::write(p.b, "world", 5);
      } else {
        ::write(p.b, "hello", 5);
      }
    });
    const auto t0 = Clock::now();
    char buf[16] = {};
    const std::size_t want = how == "recv_waitall" ? 10 : sizeof buf;
    const ssize_t n = receive(how, p.a, buf, want);
    const auto took = ms_since(t0);
    const int ticks = ticker.ticks();
    ticker.stop();
    join_thread(peer);
    if (how == "recv_waitall") {
      EXPECT_EQ(n, 10);
      EXPECT_EQ(std::string(buf, 10), "helloworld");
      EXPECT_GE(took, 400);
    } else {
      EXPECT_EQ(n, 5);
      EXPECT_EQ(std::string(buf, 5), "hello");
      EXPECT_GE(took, 250);
    }
    EXPECT_GE(ticks, 10) << "the ticker did not run while " << how << " waited " << took << " ms";
    EXPECT_GT(colony::hooks::stats().waits, waits);
    EXPECT_EQ(colony::hooks::stats().fallbacks, fallbacks) << how << " ran the blocking call";
    EXPECT_FALSE(nonblocking(p.a)) << "the caller's blocking mode changed";
  });
}

// ---- sending calls park until the peer makes room, and send everything

class Send : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Calls, Send,
                         ::testing::Values("write", "send", "sendto", "writev", "sendmsg"),
                         [](const auto& param_info) { return param_info.param; });

TEST_P(Send, ParksUntilThePeerDrainsAndSendsEverything) {
  const std::string how = GetParam();
  in_runtime([&] {
    Pair p;
    ASSERT_GE(p.a, 0);
    const std::size_t total = 4 << 20;  // far beyond the socket buffers
    std::vector<char> out(total);
    for (std::size_t i = 0; i < total; ++i) out[i] = static_cast<char>(i * 7);
    std::vector<char> in;
    TickFiber ticker;
    std::thread peer = later(300ms, [&] {
      char buf[65536];
      while (in.size() < total) {
        const ssize_t n = ::read(p.b, buf, sizeof buf);
        if (n <= 0) break;
        in.insert(in.end(), buf, buf + n);
      }
    });
    const auto t0 = Clock::now();
    ssize_t n;
    iovec iov[3] = {{out.data(), 1},
                    {out.data() + 1, total / 2},
                    {out.data() + 1 + total / 2, total - 1 - total / 2}};
    if (how == "write") {
      n = ::write(p.a, out.data(), total);
    } else if (how == "send") {
      n = ::send(p.a, out.data(), total, 0);
    } else if (how == "sendto") {
      n = ::sendto(p.a, out.data(), total, 0, nullptr, 0);
    } else if (how == "writev") {
      n = ::writev(p.a, iov, 3);
    } else {
      msghdr m{};
      m.msg_iov = iov;
      m.msg_iovlen = 3;
      n = ::sendmsg(p.a, &m, 0);
    }
    const auto took = ms_since(t0);
    const int ticks = ticker.ticks();
    ticker.stop();
    join_thread(peer);
    EXPECT_EQ(n, static_cast<ssize_t>(total)) << "a blocking send returns when all is sent";
    EXPECT_TRUE(in == out) << "the bytes arrived changed or out of order";
    EXPECT_GE(took, 250);
    EXPECT_GE(ticks, 10) << "the ticker did not run while " << how << " waited " << took << " ms";
    EXPECT_FALSE(nonblocking(p.a));
  });
}

// ---- accept and connect

TEST(Hooks, AcceptParksAndLeavesTheListenerBlocking) {
  in_runtime([] {
    Listener l;
    ASSERT_GE(l.fd, 0);
    TickFiber ticker;
    std::thread client = later(300ms, [&] {
      int c = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a = loopback(l.port);
      ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
      ::write(c, "x", 1);
      std::this_thread::sleep_for(50ms);
      ::close(c);
    });
    const auto t0 = Clock::now();
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    const int c = ::accept(l.fd, reinterpret_cast<sockaddr*>(&peer), &len);
    const auto took = ms_since(t0);
    const int ticks = ticker.ticks();
    ASSERT_GE(c, 0) << std::strerror(errno);
    EXPECT_EQ(len, sizeof peer);
    EXPECT_EQ(peer.sin_family, AF_INET);
    EXPECT_FALSE(nonblocking(l.fd)) << "the listener's blocking mode changed";
    EXPECT_FALSE(nonblocking(c)) << "accept's socket is blocking, as the kernel makes it";
    char b = 0;
    EXPECT_EQ(::read(c, &b, 1), 1);
    EXPECT_EQ(::read(c, &b, 1), 0) << "end of stream";
    ::close(c);
    ticker.stop();
    join_thread(client);
    EXPECT_GE(took, 250);
    EXPECT_GE(ticks, 10);
  });
}

TEST(Hooks, Accept4PassesItsFlags) {
  in_runtime([] {
    Listener l;
    std::thread client = later(50ms, [&] {
      int c = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a = loopback(l.port);
      ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
      ::close(c);
    });
    const int c = ::accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    ASSERT_GE(c, 0);
    EXPECT_TRUE(nonblocking(c));
    EXPECT_TRUE(::fcntl(c, F_GETFD) & FD_CLOEXEC);
    ::close(c);
    join_thread(client);
  });
}

TEST(Hooks, ManyFibersAcceptOnOneListener) {
  colony::run(
      [] {
        Listener l;
        constexpr int kN = 8;
        std::atomic<int> accepted{0};
        std::vector<colony::Future<void>> fs;
        for (int i = 0; i < kN; ++i)
          fs.push_back(colony::spawn([&] {
            const int c = ::accept(l.fd, nullptr, nullptr);
            if (c >= 0) {
              accepted.fetch_add(1);
              ::close(c);
            }
          }));
        std::thread clients = later(100ms, [&] {
          for (int i = 0; i < kN; ++i) {
            int c = ::socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in a = loopback(l.port);
            ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
            ::close(c);
            std::this_thread::sleep_for(5ms);
          }
        });
        for (auto& f : fs) f.get();
        join_thread(clients);
        EXPECT_EQ(accepted.load(), kN);
        EXPECT_FALSE(nonblocking(l.fd));
      },
      [] {
        colony::Config c;
        c.max_procs = 2;
        return c;
      }());
}

TEST(Hooks, ConnectSucceedsAndLeavesTheSocketBlocking) {
  in_runtime([] {
    Listener l;
    int c = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(l.port);
    ASSERT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
    EXPECT_FALSE(nonblocking(c));
    const int s = ::accept(l.fd, nullptr, nullptr);
    ASSERT_GE(s, 0);
    EXPECT_EQ(::write(c, "ping", 4), 4);
    char buf[4];
    EXPECT_EQ(::recv(s, buf, 4, MSG_WAITALL), 4);
    ::close(s);
    ::close(c);
  });
}

TEST(Hooks, ConnectRefusedIsEconnrefused) {
  in_runtime([] {
    int port;
    {
      Listener l;  // a port that was free a moment ago, now closed
      port = l.port;
    }
    int c = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(port);
    errno = 0;
    EXPECT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a), -1);
    EXPECT_EQ(errno, ECONNREFUSED) << std::strerror(errno);
    EXPECT_FALSE(nonblocking(c));
    ::close(c);
  });
}

// ---- results and errno as the real calls give them

TEST(Hooks, EndOfStreamReadsZero) {
  in_runtime([] {
    Pair p;
    std::thread peer = later(100ms, [&] { ::shutdown(p.b, SHUT_WR); });
    char buf[8];
    EXPECT_EQ(::read(p.a, buf, sizeof buf), 0);
    EXPECT_EQ(::recv(p.a, buf, sizeof buf, 0), 0);
    join_thread(peer);
  });
}

TEST(Hooks, ErrorsPassThrough) {
  in_runtime([] {
    char buf[8];
    errno = 0;
    EXPECT_EQ(::read(-1, buf, sizeof buf), -1);
    EXPECT_EQ(errno, EBADF);
    Pair p;
    ::close(p.b);
    p.b = -1;
    errno = 0;
    EXPECT_EQ(::send(p.a, "x", 1, MSG_NOSIGNAL), -1);
    EXPECT_EQ(errno, EPIPE);
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    errno = 0;
    EXPECT_EQ(::recv(s, buf, sizeof buf, 0), -1);  // not connected
    EXPECT_EQ(errno, ENOTCONN);
    ::close(s);
  });
}

TEST(Hooks, UserNonblockingSocketsGetEagainAtOnce) {
  in_runtime([] {
    Pair p;
    ::fcntl(p.a, F_SETFL, ::fcntl(p.a, F_GETFL) | O_NONBLOCK);
    const auto waits = colony::hooks::stats().waits;
    const auto t0 = Clock::now();
    char buf[8];
    errno = 0;
    EXPECT_EQ(::read(p.a, buf, sizeof buf), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_EQ(::recv(p.a, buf, sizeof buf, 0), -1);
    EXPECT_EQ(errno, EAGAIN);
    pollfd pf{p.a, POLLIN, 0};
    EXPECT_EQ(::poll(&pf, 1, 0), 0);
    Listener l;
    ::fcntl(l.fd, F_SETFL, ::fcntl(l.fd, F_GETFL) | O_NONBLOCK);
    EXPECT_EQ(::accept(l.fd, nullptr, nullptr), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_LT(ms_since(t0), 100);
    EXPECT_EQ(colony::hooks::stats().waits, waits) << "a non-blocking socket never parks";
    EXPECT_TRUE(nonblocking(p.a));
    EXPECT_TRUE(nonblocking(l.fd));
  });
}

TEST(Hooks, SoRcvtimeoExpiresWithEagain) {
  in_runtime([] {
    Pair p;
    timeval tv{0, 150'000};
    ASSERT_EQ(::setsockopt(p.a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    TickFiber ticker;
    const auto t0 = Clock::now();
    char buf[8];
    errno = 0;
    EXPECT_EQ(::read(p.a, buf, sizeof buf), -1);
    EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << std::strerror(errno);
    const auto took = ms_since(t0);
    EXPECT_GE(took, 140);
    EXPECT_LT(took, 2000);
    Listener l;  // accept honours SO_RCVTIMEO too
    ASSERT_EQ(::setsockopt(l.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    errno = 0;
    EXPECT_EQ(::accept(l.fd, nullptr, nullptr), -1);
    EXPECT_EQ(errno, EAGAIN);
    const int ticks = ticker.ticks();
    ticker.stop();
    EXPECT_GE(ticks, 5) << "the fiber blocked its thread during the timeout";
  });
}

TEST(Hooks, SoSndtimeoExpiresWithEagainOrAShortCount) {
  in_runtime([] {
    Pair p;
    char chunk[4096] = {};
    while (::send(p.a, chunk, sizeof chunk, MSG_DONTWAIT) > 0) {
    }  // the buffers are full
    timeval tv{0, 150'000};
    ASSERT_EQ(::setsockopt(p.a, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
    const auto t0 = Clock::now();
    errno = 0;
    EXPECT_EQ(::write(p.a, chunk, sizeof chunk), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_GE(ms_since(t0), 140);
    // With room for part of it, a timed-out blocking send returns the short count.
    std::vector<char> big(1 << 20);
    char sink[65536];
    ::recv(p.b, sink, sizeof sink, MSG_DONTWAIT);
    const ssize_t n = ::send(p.a, big.data(), big.size(), 0);
    EXPECT_GT(n, 0);
    EXPECT_LT(n, static_cast<ssize_t>(big.size()));
  });
}

TEST(Hooks, CloseWakesAFiberParkedOnTheSocket) {
  in_runtime([] {
    Pair p;
    auto closer = colony::spawn([&] {
      colony::this_fiber::sleep_for(100ms);
      ::close(p.a);
    });
    char buf[8];
    errno = 0;
    const auto t0 = Clock::now();
    EXPECT_EQ(::read(p.a, buf, sizeof buf), -1);
    EXPECT_EQ(errno, EBADF);
    EXPECT_LT(ms_since(t0), 2000);
    closer.get();
    p.a = -1;
  });
}

TEST(Hooks, Dup2OntoAParkedSocketWakesItAndTheNewFileWorks) {
  in_runtime([] {
    Pair p, q;
    auto replacer = colony::spawn([&] {
      colony::this_fiber::sleep_for(100ms);
      ::dup2(q.a, p.a);  // p.a now names q.a's socket
    });
    char buf[8];
    errno = 0;
    EXPECT_EQ(::read(p.a, buf, sizeof buf), -1);
    EXPECT_EQ(errno, EBADF);
    replacer.get();
    std::thread peer = later(100ms, [&] { ::write(q.b, "dup", 3); });
    EXPECT_EQ(::read(p.a, buf, sizeof buf), 3);
    join_thread(peer);
  });
}

// ---- what is not hooked

TEST(Hooks, PlainThreadsAreUntouched) {
  Pair p;
  const auto waits = colony::hooks::stats().waits;
  std::thread reader([&] {
    char buf[8];
    EXPECT_EQ(::read(p.a, buf, sizeof buf), 5);
  });
  std::this_thread::sleep_for(100ms);
  ::write(p.b, "hello", 5);
  reader.join();
  EXPECT_EQ(colony::hooks::stats().waits, waits);
}

TEST(Hooks, PipesAndFilesRunTheRealCall) {
  in_runtime([] {
    const auto before = colony::hooks::stats();
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    ASSERT_EQ(::write(fds[1], "pipe", 4), 4);
    char buf[8];
    EXPECT_EQ(::read(fds[0], buf, sizeof buf), 4);
    ::close(fds[0]);
    ::close(fds[1]);
    FILE* f = std::tmpfile();
    ASSERT_NE(f, nullptr);
    const int fd = ::fileno(f);
    EXPECT_EQ(::write(fd, "file", 4), 4);
    EXPECT_EQ(::lseek(fd, 0, SEEK_SET), 0);
    EXPECT_EQ(::read(fd, buf, sizeof buf), 4);
    std::fclose(f);
    EXPECT_EQ(colony::hooks::stats().waits, before.waits);
    EXPECT_EQ(colony::hooks::stats().fallbacks, before.fallbacks);
  });
}

TEST(Hooks, ANumberClosedBehindTheHooksBackAndReusedForAPipeStillReads) {
  in_runtime([] {
    Pair p;
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const int stale = p.a;
    ::fcntl(stale, F_SETFL, O_NONBLOCK);
    char buf[8];
    EXPECT_EQ(::read(stale, buf, sizeof buf), -1);  // marks the number as a socket
    ASSERT_EQ(::syscall(SYS_close, stale), 0);      // not through the hooked close
    p.a = -1;
    // F_DUPFD (not interposed) gives the lowest free number from `stale` on: `stale` itself.
    const int rd = ::fcntl(fds[0], F_DUPFD, stale);
    ASSERT_EQ(rd, stale);
    ASSERT_EQ(::write(fds[1], "pipe", 4), 4);
    EXPECT_EQ(::read(rd, buf, sizeof buf), 4);
    EXPECT_EQ(std::string(buf, 4), "pipe");
    ::close(rd);
    ::close(fds[0]);
    ::close(fds[1]);
  });
}

// ---- poll and select beyond one socket: the real call with the processor handed off

TEST(Hooks, PollOnSeveralFdsKeepsTheRuntimeRunning) {
  in_runtime([] {
    Pair p, q;
    const auto fallbacks = colony::hooks::stats().fallbacks;
    TickFiber ticker;
    std::thread peer = later(300ms, [&] { ::write(q.b, "x", 1); });
    pollfd fds[2] = {{p.a, POLLIN, 0}, {q.a, POLLIN, 0}};
    EXPECT_EQ(::poll(fds, 2, 5000), 1);
    EXPECT_EQ(fds[0].revents, 0);
    EXPECT_TRUE(fds[1].revents & POLLIN);
    const int ticks = ticker.ticks();
    ticker.stop();
    join_thread(peer);
    EXPECT_GE(ticks, 10);
    EXPECT_GT(colony::hooks::stats().fallbacks, fallbacks);
  });
}

TEST(Hooks, PollAndSelectTimeOut) {
  in_runtime([] {
    Pair p;
    pollfd pf{p.a, POLLIN, 0};
    auto t0 = Clock::now();
    EXPECT_EQ(::poll(&pf, 1, 100), 0);
    EXPECT_GE(ms_since(t0), 95);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(p.a, &rd);
    timeval tv{0, 100'000};
    t0 = Clock::now();
    EXPECT_EQ(::select(p.a + 1, &rd, nullptr, nullptr, &tv), 0);
    EXPECT_GE(ms_since(t0), 95);
    EXPECT_FALSE(FD_ISSET(p.a, &rd));
  });
}

// ---- sleeps

TEST(Hooks, SleepsParkTheFiber) {
  in_runtime([] {
    const auto sleeps = colony::hooks::stats().sleeps;
    TickFiber ticker;
    constexpr int kN = 10;
    const auto t0 = Clock::now();
    std::vector<colony::Future<void>> fs;
    for (int i = 0; i < kN; ++i)
      fs.push_back(colony::spawn([i] {
        switch (i % 4) {
          case 0: {
            timespec ts{0, 200'000'000};
            EXPECT_EQ(::nanosleep(&ts, nullptr), 0);
            break;
          }
          case 1:
            EXPECT_EQ(::usleep(200'000), 0);
            break;
          case 2:
            std::this_thread::sleep_for(200ms);  // libstdc++ calls nanosleep
            break;
          default:
            EXPECT_EQ(::poll(nullptr, 0, 200), 0);
        }
      }));
    for (auto& f : fs) f.get();
    const auto took = ms_since(t0);
    const int ticks = ticker.ticks();
    ticker.stop();
    EXPECT_GE(took, 195);
    EXPECT_LT(took, 1000) << "ten 200 ms sleeps on one thread ran one after the other";
    EXPECT_GE(ticks, 8);
    EXPECT_GE(colony::hooks::stats().sleeps - sleeps, static_cast<std::uint64_t>(kN));
    timespec bad{0, 1'000'000'000};
    errno = 0;
    EXPECT_EQ(::nanosleep(&bad, nullptr), -1);
    EXPECT_EQ(errno, EINVAL);
  });
}

TEST(Hooks, SleepOnAFiberTakesSeconds) {
  in_runtime([] {
    const auto t0 = Clock::now();
    auto a = colony::spawn([] { EXPECT_EQ(::sleep(1), 0u); });
    auto b = colony::spawn([] { EXPECT_EQ(::sleep(1), 0u); });
    a.get();
    b.get();
    const auto took = ms_since(t0);
    EXPECT_GE(took, 990);
    EXPECT_LT(took, 1900) << "two sleep(1) on one thread did not overlap";
  });
}

}  // namespace
