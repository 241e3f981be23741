// echo_server: a TCP echo server on colony::net, one fiber per connection.
//
//   colony_echo_server [--addr=127.0.0.1:9000] [--procs=N] [--drain-ms=2000]
//                      [--idle-timeout-ms=60000]
//
// --idle-timeout-ms: a connection that sends nothing (or does not read its echo) for this long
// is closed, as the HTTP server's idle keep-alive connections are.
// SIGINT / SIGTERM: stop accepting, end every connection's reading side (its fiber writes back
// what it has read, then leaves), wait up to --drain-ms, then cut what is left.
#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <string>
#include <string_view>
#include <thread>

#include "common/cli.hpp"
#include "common/echo.hpp"

namespace {

// Conns: the open connections, so that the shutdown can reach them.
struct Conns {
  colony::sched::SpinLock lock;
  std::list<colony::net::TcpStream*> list;  // (lock)
  colony::WaitGroup wg;

  // cut: shutdown(how) on every open connection (never blocks).
  void cut(colony::net::Shutdown how) {
    std::lock_guard<colony::sched::SpinLock> lk(lock);
    for (auto* s : list) {
      try {
        s->shutdown(how);
      } catch (const std::system_error&) {
      }
    }
  }
};

void serve_conn(colony::net::TcpStream s, Conns& conns, std::atomic<std::uint64_t>& bytes,
                std::chrono::milliseconds idle_timeout) {
  std::list<colony::net::TcpStream*>::iterator pos;
  {
    std::lock_guard<colony::sched::SpinLock> lk(conns.lock);
    pos = conns.list.insert(conns.list.end(), &s);
  }
  struct Leave {
    Conns& c;
    std::list<colony::net::TcpStream*>::iterator pos;
    ~Leave() {
      {
        std::lock_guard<colony::sched::SpinLock> lk(c.lock);
        c.list.erase(pos);
      }
      c.wg.done();
    }
  } leave{conns, pos};
  std::uint64_t n_total = 0;
  try {
    s.set_nodelay(true);
    n_total = example::echo(s, idle_timeout);
  } catch (const std::system_error&) {
    // reset by the peer, or cut at shutdown
  }
  bytes.fetch_add(n_total, std::memory_order_relaxed);
}

}  // namespace

int main(int argc, char** argv) {
  const example::Flags flags(argc, argv, {"addr", "procs", "drain-ms", "idle-timeout-ms"});
  const auto addr = colony::net::Address::parse(flags.str("addr", "127.0.0.1:9000"));
  const int procs = static_cast<int>(flags.num("procs", 0, 0, 1024));
  const auto drain = std::chrono::milliseconds(flags.num("drain-ms", 2000));
  const auto idle_timeout = std::chrono::milliseconds(flags.num("idle-timeout-ms", 60000, 1));
  example::ShutdownSignal shutdown;

  return colony::run(
      [&]() -> int {
        colony::net::TcpListener ln;
        try {
          ln = colony::net::TcpListener::listen(addr);
        } catch (const std::system_error& e) {
          std::fprintf(stderr, "%s\n", e.what());
          return 1;
        }
        Conns conns;
        std::atomic<std::uint64_t> bytes{0}, accepted{0};
        std::atomic<bool> stopping{false};
        auto stopper = colony::spawn([&] {
          shutdown.wait();
          stopping = true;
          ln.close();  // the accept loop ends
        });
        std::printf("listening on %s (procs %d)\n", ln.local_address().to_string().c_str(),
                    procs > 0 ? procs : static_cast<int>(std::thread::hardware_concurrency()));
        std::fflush(stdout);
        for (;;) {
          colony::net::TcpStream s;
          try {
            s = ln.accept();
          } catch (const std::system_error& e) {
            if (stopping || colony::net::is_closed(e.code())) break;
            std::fprintf(stderr, "echo_server: %s\n", e.what());
            continue;
          }
          ++accepted;
          conns.wg.add(1);
          colony::go(serve_conn, std::move(s), std::ref(conns), std::ref(bytes), idle_timeout);
        }
        stopper.get();
        conns.cut(colony::net::Shutdown::read);  // connections finish what they have read
        const bool clean = conns.wg.wait_for(drain);
        if (!clean) {
          conns.cut(colony::net::Shutdown::both);
          conns.wg.wait();
        }
        std::fprintf(stderr, "echo_server: %s; %llu connections, %llu bytes echoed\n",
                     clean ? "drained" : "drain deadline passed, connections cut",
                     static_cast<unsigned long long>(accepted.load()),
                     static_cast<unsigned long long>(bytes.load()));
        return 0;
      },
      {.max_procs = procs});
}
