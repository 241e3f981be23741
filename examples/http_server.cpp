// http_server: the HTTP/1.1 server of examples/http on colony::net, one fiber per connection.
//
//   colony_http_server [--addr=127.0.0.1:8080] [--procs=N] [--drain-ms=5000]
//                      [--header-timeout-ms=10000] [--idle-timeout-ms=60000]
//
// Routes: GET / ("Hello, World!\n", as bench/go/servers/hello), POST /echo, GET /sleep?ms=N.
// SIGINT / SIGTERM: stop accepting, let in-flight requests finish (up to --drain-ms), exit.
// Prints "listening on ADDR" once it accepts, and the counters at exit.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

#include "http/http.hpp"

namespace {

int g_signal_pipe[2] = {-1, -1};

void on_signal(int) {
  const int saved = errno;
  char c = 1;
  ssize_t r = ::write(g_signal_pipe[1], &c, 1);  // async-signal-safe; EAGAIN: already pending
  (void)r;
  errno = saved;
}

// flag: the value of --name=VALUE in argv, or `def`.
std::string flag(int argc, char** argv, std::string_view name, std::string def) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a.substr(0, 2) == "--" && a.substr(2, name.size()) == name && a.size() > name.size() + 2 &&
        a[name.size() + 2] == '=')
      return std::string(a.substr(name.size() + 3));
  }
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::puts(
          "usage: colony_http_server [--addr=127.0.0.1:8080] [--procs=N] [--drain-ms=5000]\n"
          "                          [--header-timeout-ms=10000] [--idle-timeout-ms=60000]");
      return 0;
    }
  const auto addr = colony::net::Address::parse(flag(argc, argv, "addr", "127.0.0.1:8080"));
  const int procs = std::atoi(flag(argc, argv, "procs", "0").c_str());  // 0: every core
  const auto drain =
      std::chrono::milliseconds(std::atol(flag(argc, argv, "drain-ms", "5000").c_str()));
  http::Options opts;
  opts.header_timeout =
      std::chrono::milliseconds(std::atol(flag(argc, argv, "header-timeout-ms", "10000").c_str()));
  opts.idle_timeout =
      std::chrono::milliseconds(std::atol(flag(argc, argv, "idle-timeout-ms", "60000").c_str()));

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
        http::Server srv(http::demo_handler(), opts);
        // The shutdown fiber: parked on the signal pipe until SIGINT or SIGTERM.
        auto stopper = colony::spawn([&] {
          char c;
          while (::read(g_signal_pipe[0], &c, 1) != 1) colony::net::wait_readable(g_signal_pipe[0]);
          std::fprintf(stderr, "http_server: shutting down (drain up to %lld ms)\n",
                       static_cast<long long>(drain.count()));
          return srv.shutdown(drain);
        });
        std::printf("listening on %s (procs %d)\n", ln.local_address().to_string().c_str(),
                    procs > 0 ? procs : static_cast<int>(std::thread::hardware_concurrency()));
        std::fflush(stdout);
        srv.serve(ln);  // until the shutdown begins
        const bool clean = stopper.get();
        http::Stats st = srv.stats();
        std::fprintf(stderr,
                     "http_server: %s; %llu connections, %llu requests, %llu bad, %llu timeouts\n",
                     clean ? "drained" : "drain deadline passed, connections cut",
                     static_cast<unsigned long long>(st.connections),
                     static_cast<unsigned long long>(st.requests),
                     static_cast<unsigned long long>(st.bad_requests),
                     static_cast<unsigned long long>(st.timeouts));
        return 0;
      },
      {.max_procs = procs});
}
