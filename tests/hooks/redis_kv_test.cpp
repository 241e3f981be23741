// The key-value service of examples/redis_kv against a private redis-server on loopback: what is
// stored comes back (and is in Redis), missing keys are 404, concurrent clients on 1, 2 and 4
// processors share a few pooled connections, and a Redis that dies gives 502/503 answers with a
// message while the service keeps serving. Skipped, with a message, when redis-server is not
// installed.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/hooks.hpp>
#include <colony/net.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hooks/redis_server.hpp"
#include "redis_kv/service.hpp"
#include "runtime/http_test.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
using colony::hooks_test::RedisServer;
using colony::net::TcpStream;
using colony::testing::Reply;
using colony::testing::TestServer;

namespace {

class RedisKv : public colony::testing::ProcsTest {
 protected:
  static void SetUpTestSuite() { server_ = new RedisServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (!server_->ok()) GTEST_SKIP() << server_->why();
  }
  // prefix: keys of this processor count's run only (the suites share one Redis).
  std::string prefix() const { return "p" + std::to_string(GetParam()) + ":"; }
  static RedisServer* server_;
};
RedisServer* RedisKv::server_ = nullptr;

INSTANTIATE_TEST_SUITE_P(Procs, RedisKv, ::testing::Values(1, 2, 4), colony::testing::procs_name);

// Service: a RedisPool on `port` and the HTTP server with kv::handler on 127.0.0.1. Waits of
// 30 s, not 2: a loaded machine running a sanitizer build must not turn a slow answer into a
// 502/503 the test did not cause.
struct Service {
  Service(int port, int connections)
      : redis({.port = port,
               .connections = connections,
               .connect_timeout = 30s,
               .command_timeout = 30s,
               .acquire_timeout = 30s}),
        http({}, kv::handler(redis)) {}
  kv::RedisPool redis;
  TestServer http;
};

// Client: one keep-alive HTTP connection.
class Client {
 public:
  explicit Client(const colony::net::Address& a) : c_(TcpStream::connect(a, 5s)) {}
  Reply call(std::string_view method, std::string_view target, std::string_view body = {}) {
    std::string req = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n";
    if (!body.empty() || method == "PUT" || method == "POST")
      req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n";
    req += body;
    c_.write_all(req);
    std::optional<Reply> r = colony::testing::read_reply(c_, buf_);
    if (!r) throw std::runtime_error("the server closed the connection");
    return *r;
  }

 private:
  TcpStream c_;
  std::string buf_;
};

// redis_get: the key's value as Redis has it (nullopt: no such key), on a connection of its own.
std::optional<std::string> redis_get(int port, const std::string& key) {
  redisContext* c = redisConnect("127.0.0.1", port);
  if (c == nullptr || c->err) {
    if (c) redisFree(c);
    throw std::runtime_error("redis_get: cannot connect");
  }
  auto* r = static_cast<redisReply*>(redisCommand(c, "GET %b", key.data(), key.size()));
  std::optional<std::string> v;
  if (r != nullptr && r->type == REDIS_REPLY_STRING) v.emplace(r->str, r->len);
  if (r != nullptr) freeReplyObject(r);
  redisFree(c);
  return v;
}

bool has_header(const Reply& r, std::string_view field) {
  return r.head.find("\r\n" + std::string(field) + "\r\n") != std::string::npos;
}

TEST_P(RedisKv, StoresReturnsAndDeletes) {
  ASSERT_TRUE(colony::hooks::active());
  const int port = server_->port();
  const std::string p = prefix();
  run_fibers([&] {
    Service svc(port, 2);
    Client c(svc.http.addr());
    Reply r = c.call("GET", "/kv/" + p + "a");
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.body, "404 no such key\n");

    r = c.call("PUT", "/kv/" + p + "a", "hello");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "OK\n");
    EXPECT_EQ(redis_get(port, p + "a"), "hello") << "not stored in Redis";
    r = c.call("GET", "/kv/" + p + "a");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "hello");
    EXPECT_TRUE(has_header(r, "Content-Type: application/octet-stream"));

    // Binary-safe both ways, POST as PUT, a stored value replaced.
    const std::string bin("x\0y\r\n\r\nz", 8);
    r = c.call("POST", "/kv/" + p + "a", bin);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(redis_get(port, p + "a"), bin);
    r = c.call("GET", "/kv/" + p + "a");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, bin);
    // An empty value is a value.
    r = c.call("PUT", "/kv/" + p + "empty", "");
    EXPECT_EQ(r.status, 200);
    r = c.call("GET", "/kv/" + p + "empty");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "");

    r = c.call("DELETE", "/kv/" + p + "a");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "deleted\n");
    EXPECT_EQ(redis_get(port, p + "a"), std::nullopt);
    r = c.call("GET", "/kv/" + p + "a");
    EXPECT_EQ(r.status, 404);
    r = c.call("DELETE", "/kv/" + p + "a");
    EXPECT_EQ(r.status, 404);

    for (int i = 1; i <= 3; ++i) {
      r = c.call("POST", "/count/" + p + "n");
      EXPECT_EQ(r.status, 200);
      EXPECT_EQ(r.body, std::to_string(i) + "\n");
    }
    // An error reply from Redis (INCR of a value that is not a number) is a 502 with its text.
    c.call("PUT", "/kv/" + p + "s", "abc");
    r = c.call("POST", "/count/" + p + "s");
    EXPECT_EQ(r.status, 502);
    EXPECT_EQ(r.body.rfind("redis: error reply: ERR", 0), 0u) << r.body;

    EXPECT_EQ(c.call("GET", "/kv/").status, 400);
    r = c.call("PATCH", "/kv/" + p + "a", "x");
    EXPECT_EQ(r.status, 405);
    EXPECT_TRUE(has_header(r, "Allow: GET, HEAD, PUT, POST, DELETE"));
    EXPECT_EQ(c.call("GET", "/count/" + p + "n").status, 405);
    EXPECT_EQ(c.call("GET", "/nowhere").status, 404);
    EXPECT_EQ(c.call("GET", "/").status, 200);

    const kv::RedisStats st = svc.redis.stats();
    EXPECT_EQ(st.broken, 0u);
    EXPECT_EQ(st.connect_errors, 0u);
    EXPECT_LE(st.connects, 2u);
  });
}

TEST_P(RedisKv, ConcurrentClientsShareThePool) {
  const int port = server_->port();
  const std::string p = prefix() + "conc:";
  const int kClients = colony::testing::kSanitized ? 16 : 64;
  const int kRounds = 20;
  constexpr int kConnections = 4;
  std::atomic<int> good{0};
  std::atomic<int> errors{0};
  std::string first_error;
  std::atomic<bool> have_error{false};
  std::optional<std::string> count;
  kv::RedisStats st;
  run_fibers([&] {
    Service svc(port, kConnections);
    colony::testing::Latch gate(1);
    std::vector<colony::Future<void>> fs;
    for (int i = 0; i < kClients; ++i)
      fs.push_back(colony::spawn([&, i] {
        gate.wait();
        try {
          Client c(svc.http.addr());
          for (int j = 0; j < kRounds; ++j) {
            const std::string key = "/kv/" + p + std::to_string(i) + ":" + std::to_string(j % 5);
            const std::string value = "v" + std::to_string(i) + "-" + std::to_string(j);
            const Reply put = c.call("PUT", key, value);
            const Reply get = c.call("GET", key);
            const Reply inc = c.call("POST", "/count/" + p + "shared");
            if (put.status == 200 && get.status == 200 && get.body == value && inc.status == 200)
              good.fetch_add(1);
            else if (!have_error.exchange(true))
              first_error = std::to_string(put.status) + " " + std::to_string(get.status) + " " +
                            get.body + " " + std::to_string(inc.status) + " " + inc.body;
          }
        } catch (const std::exception& e) {
          errors.fetch_add(1);
          if (!have_error.exchange(true)) first_error = e.what();
        }
      }));
    gate.count_down();
    for (auto& f : fs) f.get();
    st = svc.redis.stats();
    count = redis_get(port, p + "shared");
  });
  EXPECT_EQ(errors.load(), 0) << first_error;
  EXPECT_EQ(good.load(), kClients * kRounds) << first_error;
  // Every INCR ran once: Redis counted them all.
  EXPECT_EQ(count, std::to_string(kClients * kRounds));
  // The clients shared at most kConnections connections, none of which broke. More than one was
  // opened: a request waiting for Redis parks its fiber (the hooks), so others take the other
  // connections meanwhile; were the waits blocking the thread, one processor would never need
  // a second connection.
  EXPECT_LE(st.connects, static_cast<std::uint64_t>(kConnections));
  EXPECT_GE(st.connects, 2u);
  EXPECT_EQ(st.broken, 0u);
  EXPECT_EQ(st.commands, static_cast<std::uint64_t>(3 * kClients * kRounds));
}

TEST_P(RedisKv, AnswersWhenRedisIsDown) {
  RedisServer own;  // this test kills it
  ASSERT_TRUE(own.ok()) << own.why();
  const std::string p = prefix();
  run_fibers([&] {
    // One connection: the order in which it is reused and dropped is known.
    Service svc(own.port(), 1);
    Client c(svc.http.addr());
    ASSERT_EQ(c.call("PUT", "/kv/" + p + "d", "before").status, 200);
    ASSERT_EQ(c.call("GET", "/kv/" + p + "d").body, "before");

    own.kill();
    // The pooled connection is dead. DELETE is not retried: 502, the connection dropped.
    Reply r = c.call("DELETE", "/kv/" + p + "d");
    EXPECT_EQ(r.status, 502);
    EXPECT_EQ(r.body.rfind("redis: command failed: ", 0), 0u) << r.body;
    // No connection can be made: 503 with Retry-After, for reads and writes.
    r = c.call("GET", "/kv/" + p + "d");
    EXPECT_EQ(r.status, 503);
    EXPECT_TRUE(has_header(r, "Retry-After: 1"));
    EXPECT_EQ(r.body.rfind("redis: unavailable: ", 0), 0u) << r.body;
    r = c.call("PUT", "/kv/" + p + "d", "after");
    EXPECT_EQ(r.status, 503) << r.body;
    r = c.call("POST", "/count/" + p + "n");
    EXPECT_EQ(r.status, 503) << r.body;
    // The service itself is fine: a new client is served, and what needs no Redis works.
    Client c2(svc.http.addr());
    EXPECT_EQ(c2.call("GET", "/").status, 200);
    EXPECT_EQ(c2.call("GET", "/kv/" + p + "d").status, 503);

    const kv::RedisStats st = svc.redis.stats();
    EXPECT_EQ(st.broken, 1u);
    EXPECT_EQ(st.connect_errors, 4u);
    EXPECT_EQ(st.open, 0u);
  });
}

TEST_P(RedisKv, ARetriedReadReconnectsAfterTheServerDroppedTheConnection) {
  const int port = server_->port();
  const std::string p = prefix();
  run_fibers([&] {
    Service svc(port, 1);
    Client c(svc.http.addr());
    ASSERT_EQ(c.call("PUT", "/kv/" + p + "r", "kept").status, 200);
    // Redis closes every normal client connection, the pool's idle one too.
    redisContext* admin = redisConnect("127.0.0.1", port);
    ASSERT_TRUE(admin != nullptr && admin->err == 0);
    auto* k = static_cast<redisReply*>(redisCommand(admin, "CLIENT KILL TYPE normal SKIPME yes"));
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(k->type, REDIS_REPLY_INTEGER);
    EXPECT_GE(k->integer, 1);
    freeReplyObject(k);
    redisFree(admin);
    // GET may run twice: it is sent again on a fresh connection and succeeds.
    Reply r = c.call("GET", "/kv/" + p + "r");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, "kept");
    const kv::RedisStats st = svc.redis.stats();
    EXPECT_EQ(st.broken, 1u);
    EXPECT_EQ(st.connects, 2u);
  });
}

}  // namespace
