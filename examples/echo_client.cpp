// echo_client: a load client for echo servers (colony's examples/echo_server.cpp or Go's
// bench/go/servers/echo), one fiber per connection. Each connection sends a message, reads the
// echo in full, and repeats until the time is up (one message in flight per connection).
//
//   colony_echo_client [--addr=127.0.0.1:9000] [--conns=100] [--size=64] [--duration-ms=5000]
//                      [--procs=N]
//
// Bounded: loopback addresses only, at most 10000 connections, 64 KiB messages and 60 s.
// Prints one line: "RESULT msgs_per_sec=... conns=... size=... seconds=... errors=...".
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "common/cli.hpp"

namespace {

bool is_loopback(const colony::net::Address& a) {
  if (a.is_v6()) return a.host() == "::1";
  return a.is_v4() && a.host().rfind("127.", 0) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  const example::Flags flags(argc, argv, {"addr", "conns", "size", "duration-ms", "procs"});
  const auto addr = colony::net::Address::parse(flags.str("addr", "127.0.0.1:9000"));
  const long conns = flags.num("conns", 100);
  const long size = flags.num("size", 64);
  const long duration_ms = flags.num("duration-ms", 5000);
  const int procs = static_cast<int>(flags.num("procs", 0, 0, 1024));
  if (!is_loopback(addr)) {
    std::fprintf(stderr, "echo_client: %s is not a loopback address\n", addr.to_string().c_str());
    return 2;
  }
  if (conns < 1 || conns > 10000 || size < 1 || size > 65536 || duration_ms < 1 ||
      duration_ms > 60000) {
    std::fprintf(stderr,
                 "echo_client: need 1 <= conns <= 10000, 1 <= size <= 65536, "
                 "1 <= duration-ms <= 60000\n");
    return 2;
  }
  rlimit r{};  // two descriptors per connection if the server runs in this machine's limits
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
  return colony::run(
      [&]() -> int {
        std::atomic<std::uint64_t> total{0}, errors{0};
        colony::WaitGroup connected, done;
        std::vector<colony::net::TcpStream> streams(static_cast<std::size_t>(conns));
        // Connect everything first, so that the timed part only measures echoes.
        for (long i = 0; i < conns; ++i) {
          connected.add(1);
          colony::go([&, i] {
            try {
              auto& s = streams[static_cast<std::size_t>(i)];
              s = colony::net::TcpStream::connect(addr, std::chrono::seconds(10));
              s.set_nodelay(true);
            } catch (const std::system_error& e) {
              if (errors.fetch_add(1) == 0) std::fprintf(stderr, "echo_client: %s\n", e.what());
            }
            connected.done();
          });
        }
        connected.wait();
        const auto start = Clock::now();
        const auto end = start + std::chrono::milliseconds(duration_ms);
        for (long i = 0; i < conns; ++i) {
          if (!streams[static_cast<std::size_t>(i)].is_open()) continue;
          done.add(1);
          colony::go([&, i] {
            auto& s = streams[static_cast<std::size_t>(i)];
            std::vector<char> msg(static_cast<std::size_t>(size), 'm'), back(msg.size());
            std::uint64_t n = 0;
            try {
              s.set_deadline(end + std::chrono::seconds(5));  // a stuck server fails the run
              while (Clock::now() < end) {
                s.write_all(msg.data(), msg.size());
                if (s.read_exact(back.data(), back.size()) != back.size())
                  throw std::runtime_error("the server closed the connection");
                ++n;
              }
            } catch (const std::exception& e) {
              if (errors.fetch_add(1) == 0) std::fprintf(stderr, "echo_client: %s\n", e.what());
            }
            s.close();
            total.fetch_add(n, std::memory_order_relaxed);
            done.done();
          });
        }
        done.wait();
        const double secs = std::chrono::duration<double>(Clock::now() - start).count();
        std::printf("RESULT msgs_per_sec=%.0f conns=%ld size=%ld seconds=%.2f errors=%llu\n",
                    static_cast<double>(total.load()) / secs, conns, size, secs,
                    static_cast<unsigned long long>(errors.load()));
        return errors.load() == 0 ? 0 : 1;
      },
      {.max_procs = procs});
}
