// redis_kv_server: a key-value service over HTTP whose data lives in Redis (examples/redis_kv):
// the HTTP server of examples/http, one fiber per connection, and hiredis's synchronous client
// on a bounded connection pool, made fiber-blocking by colony::hooks (linked into this program).
//
//   colony_redis_kv_server [--redis=127.0.0.1:6379] [--redis-conns=16] [--addr=127.0.0.1:8080]
//                          [--procs=N] [--drain-ms=5000] [--header-timeout-ms=10000]
//                          [--idle-timeout-ms=60000] [--pool=N] [--tls-cert FILE --tls-key FILE]
//
// --redis: the server's numeric address (host names would need getaddrinfo, which blocks the
// thread). --redis-conns: the most connections to Redis at once; a request that finds them all
// busy waits for one (up to 2 s, then 503). The other flags are colony_http_server's.
// Routes (redis_kv/service.hpp): GET/PUT/POST/DELETE /kv/KEY, POST /count/KEY, GET /, and the
// debug pages /debug/fibers, /debug/vars and /metrics (with the pool's counters as "redis").
// Nothing connects to Redis before the first request: the service starts while Redis is down
// and answers 503 until it is up.
// SIGINT / SIGTERM: stop accepting, let in-flight requests finish (up to --drain-ms), exit.
#include <atomic>
#include <colony/hooks.hpp>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

#include "common/cli.hpp"
#include "http/debug.hpp"
#include "http/http.hpp"
#include "redis_kv/service.hpp"
#if defined(COLONY_HTTP_HAVE_TLS)
#include "http/tls.hpp"
#endif
#if defined(COLONY_EXAMPLES_HAVE_POOL)
#include "http/pooled.hpp"
#endif

int main(int argc, char** argv) {
  example::Args args(argc, argv, {"--tls-cert", "--tls-key"});
  if (args.has("--help") || args.has("-h")) {
    std::puts(
        "usage: colony_redis_kv_server [--redis=127.0.0.1:6379] [--redis-conns=16]\n"
        "                              [--addr=127.0.0.1:8080] [--procs=N] [--drain-ms=5000]\n"
        "                              [--header-timeout-ms=10000] [--idle-timeout-ms=60000]\n"
        "                              [--pool=N] [--tls-cert FILE --tls-key FILE]");
    return 0;
  }
  const example::Flags flags(
      args.argc(), args.argv(),
      {"redis", "redis-conns", "addr", "procs", "drain-ms", "header-timeout-ms", "idle-timeout-ms",
       "pool", "tls-cert", "tls-key"});
  kv::RedisOptions ropts;
  const std::string redis_addr = flags.str("redis", "127.0.0.1:6379");
  if (auto ra = colony::net::Address::try_parse(redis_addr)) {
    ropts.host = ra->host();
    ropts.port = ra->port();
  } else {
    std::fprintf(stderr, "redis_kv_server: --redis=%s is not a numeric HOST:PORT\n",
                 redis_addr.c_str());
    return 2;
  }
  ropts.connections = static_cast<int>(flags.num("redis-conns", 16, 1, 100000));
  const auto addr = colony::net::Address::parse(flags.str("addr", "127.0.0.1:8080"));
  const int procs = static_cast<int>(flags.num("procs", 0, 0, 1024));  // 0: every core
  const auto drain = std::chrono::milliseconds(flags.num("drain-ms", 5000));
  http::Options opts;
  opts.header_timeout = std::chrono::milliseconds(flags.num("header-timeout-ms", 10000, 1));
  opts.idle_timeout = std::chrono::milliseconds(flags.num("idle-timeout-ms", 60000, 1));
  const int pool_cap = static_cast<int>(flags.num("pool", 0, 0, 1 << 20));
  const std::string cert = flags.str("tls-cert", ""), key = flags.str("tls-key", "");
  if (cert.empty() != key.empty()) {
    std::fprintf(stderr, "redis_kv_server: --tls-cert and --tls-key go together\n");
    return 2;
  }
#if defined(COLONY_HTTP_HAVE_TLS)
  std::optional<boost::asio::ssl::context> tls;
  if (!cert.empty()) {
    try {
      tls.emplace(http::tls_context_from_files(cert, key));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "redis_kv_server: %s\n", e.what());
      return 2;
    }
    opts.tls = &*tls;
  }
#else
  if (!cert.empty()) {
    std::fprintf(stderr, "redis_kv_server: --tls-cert needs the example built with OpenSSL\n");
    return 2;
  }
#endif
#if !defined(COLONY_EXAMPLES_HAVE_POOL)
  if (pool_cap > 0) {
    std::fprintf(stderr, "redis_kv_server: --pool needs colony::pool (COLONY_BUILD_POOL=ON)\n");
    return 2;
  }
#endif
  if (!colony::hooks::active()) {  // hiredis would block its thread, and the processor with it
    std::fprintf(stderr, "redis_kv_server: colony::hooks is not in effect\n");
    return 2;
  }
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
        kv::RedisPool redis(ropts);
        std::atomic<const http::Server*> self{nullptr};
        http::DebugOptions dbg;
        dbg.groups.emplace_back("http", [&self] {
          const http::Server* s = self.load();
          return s ? http::server_vars(*s) : http::Vars{};
        });
        dbg.groups.emplace_back("redis", [&redis] { return kv::redis_vars(redis); });
        http::Handler h = kv::handler(redis);
#if defined(COLONY_EXAMPLES_HAVE_POOL)
        std::optional<colony::Pool> pool;
        if (pool_cap > 0) {
          pool.emplace(pool_cap, colony::PoolOptions{.nonblocking = true});
          dbg.groups.emplace_back("pool", [&pool] { return http::pool_vars(*pool); });
          h = http::pooled(std::move(h), *pool);
        }
#endif
        http::Server srv(http::with_debug(std::move(h), dbg), opts);
        self.store(&srv);
        auto stopper = colony::spawn([&] {
          shutdown.wait();
          std::fprintf(stderr, "redis_kv_server: shutting down (drain up to %lld ms)\n",
                       static_cast<long long>(drain.count()));
          return srv.shutdown(drain);
        });
        std::printf("listening on %s%s (procs %d), redis %s:%d\n", opts.tls ? "https://" : "",
                    ln.local_address().to_string().c_str(),
                    procs > 0 ? procs : static_cast<int>(std::thread::hardware_concurrency()),
                    ropts.host.c_str(), ropts.port);
        std::fflush(stdout);
        srv.serve(ln);  // until the shutdown begins
        const bool clean = stopper.get();
        const http::Stats st = srv.stats();
        const kv::RedisStats rs = redis.stats();
        std::fprintf(stderr,
                     "redis_kv_server: %s; %llu connections, %llu requests; redis: %llu commands, "
                     "%llu connects, %llu connect errors, %llu broken\n",
                     clean ? "drained" : "drain deadline passed, connections cut",
                     static_cast<unsigned long long>(st.connections),
                     static_cast<unsigned long long>(st.requests),
                     static_cast<unsigned long long>(rs.commands),
                     static_cast<unsigned long long>(rs.connects),
                     static_cast<unsigned long long>(rs.connect_errors),
                     static_cast<unsigned long long>(rs.broken));
        return 0;
      },
      {.max_procs = procs});
}
