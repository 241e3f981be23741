// The scenario (docs/hooks.md): hiredis's synchronous API, unchanged, on fibers, against
// a real redis-server on loopback. With colony::hooks linked, each redisCommand parks its fiber
// on the netpoller while the server answers, so 1,000 fibers with a connection each share two
// processors and a handful of OS threads, and a 10 ms ticker fiber keeps time throughout.
// Without the hooks every command would block its thread and the processor with it.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <atomic>
#include <colony/colony.hpp>
#include <colony/hooks.hpp>
#include <string>
#include <vector>

#include "hooks/hooks_util.hpp"
#include "hooks/redis_server.hpp"
#include "test_util.hpp"

using namespace colony::hooks_test;

namespace {

class Redis : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new RedisServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (!server_->ok()) GTEST_SKIP() << server_->why();
  }
  static RedisServer* server_;
};
RedisServer* Redis::server_ = nullptr;

// Connections open at the same time, and the most there were.
std::atomic<int> g_open{0}, g_max_open{0};

// session: one connection, `commands` SET/GET pairs on keys of its own; the number that
// returned the value set.
int session(int port, int id, int commands, std::string& error) {
  redisContext* c = redisConnect("127.0.0.1", port);
  if (!c || c->err) {
    error = c ? c->errstr : "redisConnect: out of memory";
    if (c) redisFree(c);
    return 0;
  }
  const int open = g_open.fetch_add(1) + 1;
  int m = g_max_open.load();
  while (open > m && !g_max_open.compare_exchange_weak(m, open)) {
  }
  int ok = 0;
  for (int j = 0; j < commands; ++j) {
    const std::string key = "k:" + std::to_string(id) + ":" + std::to_string(j % 10);
    const std::string value = "v" + std::to_string(id * 1000 + j);
    auto* set = static_cast<redisReply*>(redisCommand(c, "SET %s %s", key.c_str(), value.c_str()));
    if (!set) {
      error = c->errstr;
      break;
    }
    const bool set_ok = set->type == REDIS_REPLY_STATUS && std::string(set->str) == "OK";
    freeReplyObject(set);
    auto* get = static_cast<redisReply*>(redisCommand(c, "GET %s", key.c_str()));
    if (!get) {
      error = c->errstr;
      break;
    }
    if (set_ok && get->type == REDIS_REPLY_STRING && std::string(get->str, get->len) == value) ++ok;
    freeReplyObject(get);
  }
  g_open.fetch_sub(1);
  redisFree(c);
  return ok;
}

TEST_F(Redis, OneConnectionOnAFiberParksInsteadOfBlocking) {
  colony::Config cfg;
  cfg.max_procs = 1;
  colony::run(
      [&] {
        const auto waits = colony::hooks::stats().waits;
        std::string error;
        EXPECT_EQ(session(server_->port(), 0, 50, error), 50) << error;
        // A reply that is already there when the client reads needs no wait, and under a
        // sanitizer every one of these may be: the wait is checked on the BLPOP below.
        // BLPOP on an empty list: the server answers after 0.3 s; the ticker runs meanwhile.
        redisContext* c = redisConnect("127.0.0.1", server_->port());
        ASSERT_TRUE(c && !c->err);
        TickFiber ticker;
        const auto t0 = Clock::now();
        auto* r = static_cast<redisReply*>(redisCommand(c, "BLPOP empty:list 0.3"));
        const auto took = ms_since(t0);
        const int ticks = ticker.ticks();
        ticker.stop();
        ASSERT_NE(r, nullptr) << c->errstr;
        EXPECT_EQ(r->type, REDIS_REPLY_NIL);
        freeReplyObject(r);
        redisFree(c);
        EXPECT_GE(took, 250);
        // Its reply comes 0.3 s after the request: the read must have parked.
        EXPECT_GT(colony::hooks::stats().waits, waits) << "no command parked for its reply";
        EXPECT_GE(ticks, 10) << "BLPOP blocked the only thread for " << took << " ms";
      },
      cfg);
}

TEST_F(Redis, ThousandFibersOfSyncClientsOnTwoProcessors) {
  // Sanitizers: a tenth of the fibers, a fifth of the commands.
  const int kFibers = colony::testing::kSanitized ? 100 : 1000;
  const int kCommands = colony::testing::kSanitized ? 20 : 100;
  colony::Config cfg;
  cfg.max_procs = 2;
  std::atomic<int> good{0}, max_threads{0};
  std::string first_error;
  std::atomic<bool> have_error{false};
  std::int64_t took = 0, max_gap = 0;
  int ticks = 0, threads_at_start = 0;
  g_max_open = 0;
  colony::run(
      [&] {
        threads_at_start = threads();
        TickFiber ticker;
        const auto t0 = Clock::now();
        colony::testing::Latch gate(1);
        std::vector<colony::Future<void>> fs;
        fs.reserve(kFibers);
        for (int i = 0; i < kFibers; ++i)
          fs.push_back(colony::spawn([&, i] {
            gate.wait();  // all start together, so that parked sessions overlap
            std::string error;
            good.fetch_add(session(server_->port(), i, kCommands, error));
            if (!error.empty() && !have_error.exchange(true)) first_error = error;
            const int t = threads();
            int m = max_threads.load();
            while (t > m && !max_threads.compare_exchange_weak(m, t)) {
            }
          }));
        gate.count_down();
        for (auto& f : fs) f.get();
        took = ms_since(t0);
        ticks = ticker.ticks();
        max_gap = ticker.max_gap_ms();
        ticker.stop();
      },
      cfg);
  const double per_s = 2.0 * kFibers * kCommands / (static_cast<double>(took) / 1000.0);
  std::printf(
      "%d fibers x %d SET+GET on max_procs = 2: %lld ms, %.0f commands/s, %d connections open "
      "at once, threads %d at start, %d at most; ticker %d ticks, longest gap %lld ms\n",
      kFibers, kCommands, static_cast<long long>(took), per_s, g_max_open.load(), threads_at_start,
      max_threads.load(), ticks, static_cast<long long>(max_gap));
  EXPECT_EQ(good.load(), kFibers * kCommands) << first_error;
  EXPECT_LE(max_threads.load(), 16) << "the fibers' blocking calls took OS threads";
  // Each blocking call parks its fiber, so the sessions overlap: most connections are open at
  // once. Were the calls blocking their threads, at most max_procs sessions would be.
  EXPECT_GE(g_max_open.load(), kFibers / 2);
  // Keeping time: at least half the ticks a 10 ms ticker would make, never a gap of 250 ms.
  EXPECT_GE(ticks, took / 10 / 2);
  EXPECT_LT(max_gap, 250);
}

}  // namespace
