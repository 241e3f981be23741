// http_server: the HTTP/1.1 server of examples/http (Boost.Beast on colony::net), one fiber per
// connection.
//
//   colony_http_server [--addr=127.0.0.1:8080] [--procs=N] [--drain-ms=5000]
//                      [--header-timeout-ms=10000] [--idle-timeout-ms=60000] [--pool=N]
//                      [--tls-cert FILE --tls-key FILE]
//
// --tls-cert / --tls-key (PEM; "--tls-cert=FILE" works too): HTTPS instead of plain HTTP.
// --pool=N (when colony::pool is built): handlers run on a nonblocking Pool of N workers, and a
// request that finds them all busy gets 503 at once instead of queueing (http/pooled.hpp).
// Routes: GET / ("Hello, World!\n", as bench/go/servers/hello), POST /echo, POST /count,
// GET /sleep?ms=N, a WebSocket echo at /ws, and the debug pages /debug/fibers, /debug/vars and
// /metrics (http/debug.hpp; they are not shed by --pool).
// SIGINT / SIGTERM: stop accepting, let in-flight requests finish (up to --drain-ms), exit.
// Prints "listening on ADDR" once it accepts, and the counters at exit.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/cli.hpp"
#include "http/debug.hpp"
#include "http/http.hpp"
#if defined(COLONY_HTTP_HAVE_TLS)
#include "http/tls.hpp"
#endif
#if defined(COLONY_EXAMPLES_HAVE_POOL)
#include "http/pooled.hpp"
#endif

int main(int argc, char** argv) {
  // "--tls-cert FILE" and "--tls-key FILE" as "--tls-cert=FILE" (the form Flags reads).
  example::Args args(argc, argv, {"--tls-cert", "--tls-key"});
  argc = args.argc();
  argv = args.argv();
  if (args.has("--help") || args.has("-h")) {
    std::puts(
        "usage: colony_http_server [--addr=127.0.0.1:8080] [--procs=N] [--drain-ms=5000]\n"
        "                          [--header-timeout-ms=10000] [--idle-timeout-ms=60000]\n"
        "                          [--pool=N] [--tls-cert FILE --tls-key FILE]");
    return 0;
  }
  const example::Flags flags(argc, argv,
                             {"addr", "procs", "drain-ms", "header-timeout-ms", "idle-timeout-ms",
                              "pool", "tls-cert", "tls-key"});
  const auto addr = colony::net::Address::parse(flags.str("addr", "127.0.0.1:8080"));
  const int procs = static_cast<int>(flags.num("procs", 0, 0, 1024));  // 0: every core
  const auto drain = std::chrono::milliseconds(flags.num("drain-ms", 5000));
  http::Options opts;
  opts.header_timeout = std::chrono::milliseconds(flags.num("header-timeout-ms", 10000, 1));
  opts.idle_timeout = std::chrono::milliseconds(flags.num("idle-timeout-ms", 60000, 1));
  // --pool=N: handlers run on a nonblocking colony::Pool of N workers; a request that finds all
  // of them busy gets 503 at once (0, the default: every handler runs on its connection's fiber).
  const int pool_cap = static_cast<int>(flags.num("pool", 0, 0, 1 << 20));
  opts.websocket_echo_path = "/ws";
  const std::string cert = flags.str("tls-cert", ""), key = flags.str("tls-key", "");
  if (cert.empty() != key.empty()) {
    std::fprintf(stderr, "http_server: --tls-cert and --tls-key go together\n");
    return 2;
  }
#if defined(COLONY_HTTP_HAVE_TLS)
  std::optional<boost::asio::ssl::context> tls;
  if (!cert.empty()) {
    try {
      tls.emplace(http::tls_context_from_files(cert, key));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "http_server: %s\n", e.what());
      return 2;
    }
    opts.tls = &*tls;
  }
#else
  if (!cert.empty()) {
    std::fprintf(stderr, "http_server: --tls-cert needs the example built with OpenSSL\n");
    return 2;
  }
#endif
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
        // The debug pages, with the server's counters (and the pool's): set once srv exists.
        std::atomic<const http::Server*> self{nullptr};
        http::DebugOptions dbg;
        dbg.groups.emplace_back("http", [&self] {
          const http::Server* s = self.load();
          return s ? http::server_vars(*s) : http::Vars{};
        });
#if defined(COLONY_EXAMPLES_HAVE_POOL)
        std::optional<colony::Pool> pool;
        if (pool_cap > 0) {
          pool.emplace(pool_cap, colony::PoolOptions{.nonblocking = true});
          dbg.groups.emplace_back("pool", [&pool] { return http::pool_vars(*pool); });
        }
        http::Server srv(
            http::with_debug(
                pool ? http::pooled(http::demo_handler(), *pool) : http::demo_handler(), dbg),
            opts);
#else
        if (pool_cap > 0) {
          std::fprintf(stderr, "http_server: --pool needs colony::pool (COLONY_BUILD_POOL=ON)\n");
          return 2;
        }
        http::Server srv(http::with_debug(http::demo_handler(), dbg), opts);
#endif
        self.store(&srv);
        // The shutdown fiber: parked on the signal pipe until SIGINT or SIGTERM.
        auto stopper = colony::spawn([&] {
          shutdown.wait();
          std::fprintf(stderr, "http_server: shutting down (drain up to %lld ms)\n",
                       static_cast<long long>(drain.count()));
          return srv.shutdown(drain);
        });
        std::printf("listening on %s%s (procs %d)\n", opts.tls ? "https://" : "",
                    ln.local_address().to_string().c_str(),
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
