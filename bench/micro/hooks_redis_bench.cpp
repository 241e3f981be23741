// hooks_redis_bench: the Redis scenario (docs/hooks.md) measured three ways, in one run,
// against one redis-server on loopback that the program starts (tests/hooks/redis_server.hpp):
//
//   hooks    N fibers on max_procs = 2, each with its own connection and hiredis's synchronous
//            API, made fiber-blocking by colony::hooks (linked into this program)
//   async    the same work with hiredis's asynchronous API on colony's netpoller: a fiber per
//            connection drives its redisAsyncContext through colony::net::PollFd
//   threads  N plain threads, a connection each, hiredis's synchronous API (thread-per-connection,
//            what the synchronous API is written for); the hooks leave plain threads alone
//
// Each connection runs C rounds of SET then GET (2 C commands). Usage:
//   colony_hooks_redis_bench [connections=1000] [rounds=100] [repeats=3]
// Prints commands/s per mode (the best of the repeats) and the peak thread count.
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/hooks.hpp>
#include <colony/net.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "hooks/hooks_util.hpp"
#include "hooks/redis_server.hpp"

using namespace colony::hooks_test;

namespace {

std::atomic<long> g_errors{0};
std::atomic<int> g_max_threads{0};

void note_threads() {
  const int t = threads();
  int m = g_max_threads.load();
  while (t > m && !g_max_threads.compare_exchange_weak(m, t)) {
  }
}

void sync_session(int port, int id, int rounds) {
  redisContext* c = redisConnect("127.0.0.1", port);
  if (!c || c->err) {
    g_errors.fetch_add(1);
    if (c) redisFree(c);
    return;
  }
  for (int j = 0; j < rounds; ++j) {
    const std::string key = "k:" + std::to_string(id) + ":" + std::to_string(j % 10);
    auto* r = static_cast<redisReply*>(redisCommand(c, "SET %s %d", key.c_str(), j));
    if (!r) break;
    freeReplyObject(r);
    r = static_cast<redisReply*>(redisCommand(c, "GET %s", key.c_str()));
    if (!r) break;
    if (r->type != REDIS_REPLY_STRING || std::atoi(r->str) != j) g_errors.fetch_add(1);
    freeReplyObject(r);
  }
  if (id % 64 == 0) note_threads();
  redisFree(c);
}

// The async adapter: hiredis asks for read/write interest through these; the connection's
// fiber waits for what is asked on the netpoller and calls hiredis's handlers.
struct Interest {
  bool read = false, write = false;
};
void add_read(void* p) { static_cast<Interest*>(p)->read = true; }
void del_read(void* p) { static_cast<Interest*>(p)->read = false; }
void add_write(void* p) { static_cast<Interest*>(p)->write = true; }
void del_write(void* p) { static_cast<Interest*>(p)->write = false; }
void cleanup(void* p) { *static_cast<Interest*>(p) = {}; }

void async_session(int port, int id, int rounds) {
  redisAsyncContext* ac = redisAsyncConnect("127.0.0.1", port);
  if (!ac || ac->err) {
    g_errors.fetch_add(1);
    if (ac) redisAsyncFree(ac);
    return;
  }
  Interest in;
  ac->ev.data = &in;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  colony::net::PollFd pfd(ac->c.fd);
  // run: one command to its reply.
  auto run = [&](auto&&... args) -> long long {
    struct Done {
      bool done = false;
      long long value = -1;
    } d;
    redisAsyncCommand(
        ac,
        [](redisAsyncContext*, void* r, void* priv) {
          auto* dd = static_cast<Done*>(priv);
          auto* reply = static_cast<redisReply*>(r);
          dd->done = true;
          if (reply && reply->type == REDIS_REPLY_STRING) dd->value = std::atoll(reply->str);
        },
        &d, args...);
    while (!d.done && !(ac->c.flags & REDIS_DISCONNECTING) && ac->err == 0) {
      if (in.write) {
        pfd.wait_writable();
        redisAsyncHandleWrite(ac);
      } else if (in.read) {
        pfd.wait_readable();
        redisAsyncHandleRead(ac);
      } else {
        break;
      }
    }
    return d.done ? d.value : -2;
  };
  for (int j = 0; j < rounds; ++j) {
    const std::string key = "k:" + std::to_string(id) + ":" + std::to_string(j % 10);
    if (run("SET %s %d", key.c_str(), j) == -2) break;
    if (run("GET %s", key.c_str()) != j) g_errors.fetch_add(1);
  }
  if (id % 64 == 0) note_threads();
  pfd.reset();
  redisAsyncFree(ac);
}

template <class F>
double timed(F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
#if defined(COLONY_ASAN) || defined(COLONY_TSAN)
  std::fprintf(stderr, "warning: built with a sanitizer; the figures mean nothing\n");
#endif
  const int n = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 100;
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
  RedisServer server;
  if (!server.ok()) {
    std::fprintf(stderr, "skipped: %s\n", server.why().c_str());
    return 0;
  }
  const int port = server.port();
  const double commands = 2.0 * n * rounds;
  colony::Config cfg;
  cfg.max_procs = 2;
  std::printf("%d connections x %d rounds of SET+GET (%.0f commands), best of %d\n", n, rounds,
              commands, repeats);
  std::printf("%-8s %14s %10s %12s\n", "mode", "commands/s", "seconds", "max threads");
  for (const char* mode : {"hooks", "async", "threads"}) {
    double best = 1e100;
    g_max_threads = 0;
    for (int r = 0; r < repeats; ++r) {
      const std::string m = mode;
      double s;
      if (m == "threads") {
        s = timed([&] {
          std::vector<std::thread> ts;
          ts.reserve(n);
          for (int i = 0; i < n; ++i) ts.emplace_back(sync_session, port, i, rounds);
          for (auto& t : ts) t.join();
        });
      } else {
        s = timed([&] {
          colony::run(
              [&] {
                std::vector<colony::Future<void>> fs;
                fs.reserve(n);
                for (int i = 0; i < n; ++i)
                  fs.push_back(colony::spawn([&, i] {
                    if (m == "hooks")
                      sync_session(port, i, rounds);
                    else
                      async_session(port, i, rounds);
                  }));
                for (auto& f : fs) f.get();
              },
              cfg);
        });
      }
      best = std::min(best, s);
    }
    std::printf("%-8s %14.0f %10.3f %12d\n", mode, commands / best, best, g_max_threads.load());
  }
  if (g_errors.load()) std::printf("errors: %ld\n", g_errors.load());
  const auto st = colony::hooks::stats();
  std::printf("hooks: %llu netpoller waits, %llu fallbacks\n",
              static_cast<unsigned long long>(st.waits), static_cast<unsigned long long>(st.fallbacks));
  return g_errors.load() ? 1 : 0;
}
