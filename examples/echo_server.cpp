// echo_server: a TCP echo server on colony::net, one fiber per connection.
//
//   colony_echo_server [--addr=127.0.0.1:9000] [--procs=N] [--drain-ms=2000]
//
// SIGINT / SIGTERM: stop accepting, end every connection's reading side (its fiber writes back
// what it has read, then leaves), wait up to --drain-ms, then cut what is left.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <string>
#include <string_view>
#include <thread>

namespace {

int g_signal_pipe[2] = {-1, -1};

void on_signal(int) {
  const int saved = errno;
  char c = 1;
  ssize_t r = ::write(g_signal_pipe[1], &c, 1);
  (void)r;
  errno = saved;
}

std::string flag(int argc, char** argv, std::string_view name, std::string def) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a.substr(0, 2) == "--" && a.substr(2, name.size()) == name && a.size() > name.size() + 2 &&
        a[name.size() + 2] == '=')
      return std::string(a.substr(name.size() + 3));
  }
  return def;
}

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

void serve_conn(colony::net::TcpStream s, Conns& conns, std::atomic<std::uint64_t>& bytes) {
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
    char buf[4096];
    while (std::size_t n = s.read(buf, sizeof buf)) {
      s.write_all(buf, n);
      n_total += n;
    }
  } catch (const std::system_error&) {
    // reset by the peer, or cut at shutdown
  }
  bytes.fetch_add(n_total, std::memory_order_relaxed);
}

}  // namespace

int main(int argc, char** argv) {
  const auto addr = colony::net::Address::parse(flag(argc, argv, "addr", "127.0.0.1:9000"));
  const int procs = std::atoi(flag(argc, argv, "procs", "0").c_str());
  const auto drain =
      std::chrono::milliseconds(std::atol(flag(argc, argv, "drain-ms", "2000").c_str()));
  if (::pipe2(g_signal_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    std::perror("pipe2");
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

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
          char c;
          while (::read(g_signal_pipe[0], &c, 1) != 1) colony::net::wait_readable(g_signal_pipe[0]);
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
          colony::go(serve_conn, std::move(s), std::ref(conns), std::ref(bytes));
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
