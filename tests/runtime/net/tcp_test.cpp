// colony::net TCP: echo over IPv4 and IPv6, dual stack, address reuse, refused and timed-out
// connects, thousands of connections, peer reset, half-close, partial reads and writes, EMFILE
// on accept, plain threads, misuse; with 1, 2, 4 and 8 processors.
// Loopback only. Time-based assertions only bound waiting from below (a deadline waited at least
// that long) or give generous upper bounds.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "net_test.hpp"

using namespace std::chrono_literals;
using colony::context_errc;
using colony::net::Address;
using colony::net::Shutdown;
using colony::net::TcpListener;
using colony::net::TcpStream;
using colony::testing::EchoServer;
using colony::testing::Net;
using colony::testing::wait_parked_io;
using Clock = std::chrono::steady_clock;

namespace {

// The Net suite of colony_net_test, for every file of the executable (net_test.hpp).
INSTANTIATE_TEST_SUITE_P(Procs, Net, ::testing::ValuesIn(colony::testing::proc_counts()),
                         colony::testing::procs_name);

// raise_fd_limit: the soft RLIMIT_NOFILE up to the hard one (for thousands of connections).
rlim_t raise_fd_limit() {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
  return r.rlim_cur;
}

TEST_P(Net, EchoRoundTripIPv4AndIPv6) {
  run_fibers([&] {
    for (const Address& where : {Address::loopback_v4(0), Address::loopback_v6(0)}) {
      std::unique_ptr<EchoServer> srv;
      try {
        srv = std::make_unique<EchoServer>(where);
      } catch (const std::system_error& e) {
        if (where.is_v6()) {
          std::cerr << "no IPv6 loopback here: " << e.what() << "\n";
          continue;
        }
        throw;
      }
      EXPECT_NE(srv->addr().port(), 0);
      TcpStream c = TcpStream::connect(srv->addr(), 5s);
      c.set_nodelay(true);
      EXPECT_EQ(c.peer_address(), srv->addr());
      EXPECT_EQ(c.local_address().family(), where.family());
      std::string msg = "hello, " + where.to_string();
      c.write_all(msg);
      std::string back(msg.size(), '\0');
      EXPECT_EQ(c.read_exact(back.data(), back.size()), msg.size());
      EXPECT_EQ(back, msg);
      c.shutdown(Shutdown::write);
      char x;
      EXPECT_EQ(c.read(&x, 1), 0u) << "the server closes after our end of stream";
      c.close();
      EXPECT_FALSE(c.fd() >= 0);
      srv->stop();
    }
  });
}

TEST_P(Net, DualStackListenerAcceptsIPv4) {
  run_fibers([&] {
    TcpListener ln;
    try {
      ln = TcpListener::listen(Address::any_v6(0), {.v6_only = false});
    } catch (const std::system_error& e) {
      GTEST_SKIP() << "no IPv6: " << e.what();
    }
    auto port = ln.local_address().port();
    auto f = colony::spawn([&] { return ln.accept().peer_address(); });
    TcpStream c = TcpStream::connect(Address::loopback_v4(port), 5s);
    Address peer = f.get();
    EXPECT_TRUE(peer.is_v6()) << peer.to_string();  // ::ffff:127.0.0.1
    EXPECT_EQ(peer.host(), "::ffff:127.0.0.1");
  });
}

TEST_P(Net, ReuseAddrAndReusePort) {
  run_fibers([&] {
    auto a = TcpListener::listen(Address::loopback_v4(0), {.reuse_port = true});
    auto addr = a.local_address();
    auto b = TcpListener::listen(addr, {.reuse_port = true});  // shares the port
    EXPECT_EQ(b.local_address(), addr);
    try {
      TcpListener::listen(addr, {.reuse_port = false});
      ADD_FAILURE() << "second bind without SO_REUSEPORT succeeded";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::address_in_use);
      EXPECT_NE(std::string(e.what()).find(addr.to_string()), std::string::npos) << e.what();
    }
  });
}

TEST_P(Net, ConnectRefusedIsAnErrorWithTheAddress) {
  run_fibers([&] {
    Address dead;
    {
      auto ln = TcpListener::listen(Address::loopback_v4(0));
      dead = ln.local_address();
    }  // closed: nobody listens there now
    try {
      TcpStream::connect(dead, 5s);
      ADD_FAILURE() << "connect to a closed port succeeded";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::connection_refused);
      std::string what = e.what();
      EXPECT_NE(what.find("connect tcp " + dead.to_string()), std::string::npos) << what;
    }
  });
}

TEST_P(Net, ConnectTimesOutOnAFullBacklog) {
  run_fibers([&] {
    // Nobody accepts and the backlog holds one connection: later SYNs are dropped, so a
    // connect eventually hangs in the handshake and its timeout must fire.
    auto ln = TcpListener::listen(Address::loopback_v4(0), {.backlog = 1});
    std::vector<TcpStream> held;
    bool timed_out = false;
    for (int i = 0; i < 16 && !timed_out; ++i) {
      auto t0 = Clock::now();
      try {
        held.push_back(TcpStream::connect(ln.local_address(), 100ms));
      } catch (const std::system_error& e) {
        ASSERT_EQ(e.code(), std::errc::timed_out) << e.what();
        EXPECT_TRUE(colony::net::is_timeout(e));
        EXPECT_GE(Clock::now() - t0, 95ms);
        EXPECT_LT(Clock::now() - t0, 10s);
        timed_out = true;
      }
    }
    EXPECT_TRUE(timed_out) << "no connect hung on a full backlog";
    // Same through a Context's deadline.
    auto [ctx, cancel] = colony::with_timeout(colony::background(), 50ms);
    try {
      held.push_back(TcpStream::connect(ln.local_address(), ctx));
      ADD_FAILURE() << "connect succeeded on a full backlog";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), context_errc::deadline_exceeded) << e.what();
      EXPECT_TRUE(colony::net::is_timeout(e));
    }
    cancel();
  });
}

TEST_P(Net, ThousandsOfConcurrentConnections) {
  raise_fd_limit();
  run_fibers([&] {
    const int kConns = colony::testing::kSanitized ? 150 : 2000;
    EchoServer srv;
    colony::WaitGroup wg;
    std::atomic<int> ok{0};
    std::vector<TcpStream> streams(static_cast<std::size_t>(kConns));
    // All connections are open at once: connect every client, then talk on all of them.
    for (int i = 0; i < kConns; ++i) {
      wg.add(1);
      colony::go([&, i] {
        try {
          streams[static_cast<std::size_t>(i)] = TcpStream::connect(srv.addr(), 30s);
        } catch (const std::system_error& e) {
          ADD_FAILURE() << "connect " << i << ": " << e.what();
        }
        wg.done();
      });
    }
    wg.wait();
    for (int i = 0; i < kConns; ++i) {
      wg.add(1);
      colony::go([&, i] {
        try {
          TcpStream& c = streams[static_cast<std::size_t>(i)];
          if (c.is_open()) {
            char msg[64], back[64];
            std::memset(msg, 'a' + i % 26, sizeof msg);
            std::memcpy(msg, &i, sizeof i);
            for (int round = 0; round < 3; ++round) {
              c.write_all(msg, sizeof msg);
              if (c.read_exact(back, sizeof back) != sizeof back) throw std::runtime_error("EOF");
              if (std::memcmp(msg, back, sizeof msg) != 0) throw std::runtime_error("garbled");
            }
            c.close();
            ++ok;
          }
        } catch (const std::exception& e) {
          ADD_FAILURE() << "client " << i << ": " << e.what();
        }
        wg.done();
      });
    }
    EXPECT_TRUE(wg.wait_for(120s));
    EXPECT_EQ(ok.load(), kConns);
    EXPECT_EQ(srv.accepted(), kConns);
    srv.stop();
  });
}

// Peer reset, half-close, partial reads and writes.

TEST_P(Net, PeerResetIsAnError) {
  run_fibers([&] {
    auto ln = TcpListener::listen(Address::loopback_v4(0));
    TcpStream c = TcpStream::connect(ln.local_address(), 5s);
    auto reader = colony::spawn([&] {
      char b[8];
      try {
        while (c.read(b, sizeof b) > 0) {
        }
        return std::error_code();
      } catch (const std::system_error& e) {
        return e.code();
      }
    });
    {
      TcpStream s = ln.accept();
      linger lg{1, 0};  // close with RST
      ASSERT_EQ(::setsockopt(s.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
      ASSERT_TRUE(wait_parked_io(1));
    }
    EXPECT_EQ(reader.get(), std::errc::connection_reset);
    // Writing to a reset connection: EPIPE or ECONNRESET, never SIGPIPE.
    try {
      for (int i = 0; i < 3; ++i) {
        c.write_all("after reset");
        colony::this_fiber::sleep_for(1ms);
      }
      ADD_FAILURE() << "writes to a reset connection succeeded";
    } catch (const std::system_error& e) {
      EXPECT_TRUE(e.code() == std::errc::broken_pipe || e.code() == std::errc::connection_reset)
          << e.what();
    }
  });
}

TEST_P(Net, HalfCloseBothWays) {
  run_fibers([&] {
    auto ln = TcpListener::listen(Address::loopback_v4(0));
    auto server = colony::spawn([&] {
      TcpStream s = ln.accept();
      std::string got;
      char buf[7];
      while (std::size_t n = s.read(buf, sizeof buf)) got.append(buf, n);  // until EOF
      s.write_all("got " + std::to_string(got.size()) + " bytes");
      s.shutdown(Shutdown::write);
      return got;
    });
    TcpStream c = TcpStream::connect(ln.local_address(), 5s);
    std::string msg(10000, 'q');
    c.write_all(msg);
    c.shutdown(Shutdown::write);  // we still read
    std::string reply;
    char buf[5];
    while (std::size_t n = c.read(buf, sizeof buf)) reply.append(buf, n);
    EXPECT_EQ(reply, "got 10000 bytes");
    EXPECT_EQ(server.get(), msg);
    EXPECT_EQ(c.read(buf, sizeof buf), 0u) << "end of stream is sticky";
    // shutdown(read) wakes a parked reader, which sees end of stream.
    TcpStream c2 = TcpStream::connect(ln.local_address(), 5s);
    TcpStream s2 = ln.accept();
    auto r = colony::spawn([&] { return c2.read(buf, sizeof buf); });
    ASSERT_TRUE(wait_parked_io(1));
    c2.shutdown(Shutdown::read);
    EXPECT_EQ(r.get(), 0u);
  });
}

TEST_P(Net, PartialReadsAndWrites) {
  run_fibers([&] {
    auto ln = TcpListener::listen(Address::loopback_v4(0));
    TcpStream c = TcpStream::connect(ln.local_address(), 5s);
    TcpStream s = ln.accept();
    // A big write_all against a reader that takes small, slow bites: many partial writes.
    const std::size_t kBig = colony::testing::kSanitized ? (1u << 20) : (8u << 20);
    std::vector<unsigned char> out(kBig);
    for (std::size_t i = 0; i < kBig; ++i) out[i] = static_cast<unsigned char>(i * 131 + (i >> 9));
    auto writer = colony::spawn([&] { c.write_all(out.data(), out.size()); });
    std::vector<unsigned char> in;
    in.reserve(kBig);
    unsigned char buf[1500];
    std::size_t reads = 0;
    while (in.size() < kBig) {
      std::size_t want = 1 + (reads * 7919) % sizeof buf;
      std::size_t n = s.read(buf, std::min(want, kBig - in.size()));
      ASSERT_GT(n, 0u);
      in.insert(in.end(), buf, buf + n);
      if (++reads % 512 == 0) colony::this_fiber::yield();
    }
    writer.get();
    EXPECT_TRUE(in == out);
    // write() may be partial; it returns what it wrote.
    std::size_t n = c.write("abc", 3);
    EXPECT_GE(n, 1u);
    EXPECT_LE(n, 3u);
    if (n < 3) c.write_all(&"abc"[n], 3 - n);
    // read_exact over a trickle of single bytes, and read_exact cut short by end of stream.
    auto trickle = colony::spawn([&] {
      for (char ch : std::string("defghij")) {
        c.write_all(&ch, 1);
        colony::this_fiber::sleep_for(1ms);
      }
      c.shutdown(Shutdown::write);
    });
    char got[16] = {};
    EXPECT_EQ(s.read_exact(got, 6), 6u);
    EXPECT_EQ(std::string(got, 6), "abcdef");
    EXPECT_EQ(s.read_exact(got, 16), 4u) << "end of stream before 16 bytes";
    EXPECT_EQ(std::string(got, 4), "ghij");
    EXPECT_EQ(s.read_exact(got, 1), 0u);
    trickle.get();
    // Two-buffer write.
    s.write_all("head:", "body");
    s.shutdown(Shutdown::write);
    std::string all;
    while (std::size_t k = c.read(got, sizeof got)) all.append(got, k);
    EXPECT_EQ(all, "head:body");
  });
}

// EMFILE.

TEST_P(Net, EmfileOnAcceptBacksOffInsteadOfSpinning) {
#if defined(COLONY_ASAN)
  // UBSan's vptr check probes memory through a pipe: with every descriptor taken it reports a
  // false "invalid vptr". The test runs in the release and TSan builds.
  GTEST_SKIP() << "needs free descriptors for the UBSan runtime";
#endif
  run_fibers([&] {
    auto ln = TcpListener::listen(Address::loopback_v4(0));
    TcpStream c = TcpStream::connect(ln.local_address(), 5s);  // queued, not accepted yet
    rlimit saved{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
    // Use up every descriptor below a lowered soft limit.
    int top = ::dup(0);
    ASSERT_GE(top, 0);
    ::close(top);
    rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(top + 16);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    std::vector<int> filler;
    for (;;) {
      int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) break;
      filler.push_back(fd);
    }
    auto release = [&] {
      for (int fd : filler) ::close(fd);
      filler.clear();
      ::setrlimit(RLIMIT_NOFILE, &saved);
    };
    auto acc = colony::spawn([&] {
      TcpStream s = ln.accept();  // EMFILE until the descriptors come back
      return s.peer_address();
    });
    rusage r0{}, r1{};
    ::getrusage(RUSAGE_SELF, &r0);
    auto t0 = Clock::now();
    colony::this_fiber::sleep_for(300ms);
    ::getrusage(RUSAGE_SELF, &r1);
    auto wall = Clock::now() - t0;
    auto cpu = [](const rusage& r) {
      return std::chrono::seconds(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
             std::chrono::microseconds(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
    };
    auto used = cpu(r1) - cpu(r0);
    std::uint64_t backoffs = ln.backoffs();
    release();
    EXPECT_GT(backoffs, 0u) << "accept never hit EMFILE";
    EXPECT_LT(backoffs, 20u) << "accept retried too often";
    EXPECT_LT(used, wall / 3) << "the process burnt CPU while accept failed with EMFILE";
    // The descriptors are back: the queued connection is accepted after the back-off.
    EXPECT_EQ(acc.get(), c.local_address());
  });
}

// Plain threads, misuse.

TEST_P(Net, PlainThreadsUseSocketsToo) {
  run_fibers([&] {
    EchoServer srv;
    std::string got;
    std::thread t([&] {  // no fiber: every call blocks this thread only
      TcpStream c = TcpStream::connect(srv.addr(), 5s);
      c.write_all("from a thread");
      char buf[13];
      c.set_read_deadline(Clock::now() + 10s);
      if (c.read_exact(buf, sizeof buf) == sizeof buf) got.assign(buf, sizeof buf);
    });
    // The thread needs the echo server's fibers to answer it, and with max_procs = 1 this
    // fiber's processor is the only one: join without holding it. (A bare t.join() held it and
    // passed only if the thread finished first; under TSan it did not, and its read timed out.)
    colony::testing::join_thread(t);
    EXPECT_EQ(got, "from a thread");
  });
}

TEST_P(Net, ErrorsAndMisuse) {
  run_fibers([&] {
    TcpStream none;
    char b;
    EXPECT_FALSE(none.is_open());
    EXPECT_THROW(none.read(&b, 1), std::system_error);
    EXPECT_THROW(TcpStream::connect(Address(), 1s), std::invalid_argument);
    EXPECT_THROW(TcpListener::listen(Address()), std::invalid_argument);
    // Moves keep one owner.
    auto ln = TcpListener::listen(Address::loopback_v4(0));
    TcpListener moved = std::move(ln);
    EXPECT_FALSE(ln.is_open());
    EXPECT_TRUE(moved.is_open());
    TcpStream c = TcpStream::connect(moved.local_address(), 5s);
    TcpStream s = moved.accept();
    TcpStream c2 = std::move(c);
    c2.write_all("m");
    EXPECT_EQ(s.read(&b, 1), 1u);
    EXPECT_EQ(c2.read(&b, 0), 0u);
  });
}

}  // namespace
