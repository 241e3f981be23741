// kv::RedisPool: a bounded set of hiredis connections to one Redis server, for fibers.
//
// hiredis's synchronous API (redisCommandArgv) is used unchanged. The program links
// colony::hooks, so a command's write and its wait for the reply park the calling fiber on
// colony's netpoller instead of blocking the thread (docs/hooks.md); the code reads like a
// thread-per-request client. Why the synchronous API and not hiredis's asynchronous one:
// a request takes a connection, sends one command and reads its reply, with no callbacks and
// no driver fiber per connection. bench/RESULTS.md, section 5, measured the asynchronous API on
// colony::net::PollFd at 1.45x the commands/s of the hooked synchronous one on a quiet machine
// (the hooks make four more syscalls per wait) and within 12% of it when the machine was
// loaded; in this service the HTTP side costs more than the Redis side, so the simpler code won.
//
// The pool is a colony::Chan of `connections` slots. A slot holds an idle connection, or null
// for one not opened yet (or dropped after an error). A request takes a slot (parking while all
// are in use, up to `acquire_timeout`), opens a connection if the slot is empty, runs its
// command and puts the slot back. A connection that failed is closed and its slot returned
// empty, so the next request reconnects: a restarted Redis is picked up without a restart of
// the service.
//
//   kv::RedisPool redis({.host = "127.0.0.1", .port = 6379, .connections = 16});
//   kv::Reply r = redis.command({"GET", key});
//   if (r.status != kv::RedisStatus::ok) ...;   // r.error says why
//   if (r.reply->type == REDIS_REPLY_NIL) ...;
#pragma once

#include <hiredis/hiredis.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

namespace kv {

// RedisOptions: where the server is and how long to wait for it.
struct RedisOptions {
  std::string host = "127.0.0.1";  // a numeric address (hiredis resolves names with getaddrinfo,
                                   // which the hooks cannot make fiber-friendly)
  int port = 6379;
  int connections = 16;  // the most connections open at once
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{2000};  // a command's write and its reply's read
  std::chrono::milliseconds acquire_timeout{2000};  // waiting for a free connection
};

// RedisStatus: how a command went.
enum class RedisStatus {
  ok,           // a reply arrived (it may be an error reply: REDIS_REPLY_ERROR)
  unavailable,  // no connection: Redis refused or did not answer the connect, or every
                // connection stayed busy for acquire_timeout
  failed,       // the connection broke or timed out during the command (it was dropped)
};
const char* to_string(RedisStatus s) noexcept;

struct ReplyFree {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};

// Reply: a command's outcome. reply is set when status is ok; error otherwise.
struct Reply {
  RedisStatus status = RedisStatus::ok;
  std::unique_ptr<redisReply, ReplyFree> reply;
  std::string error;
};

// RedisStats: counters since the pool was made.
struct RedisStats {
  std::uint64_t commands = 0;        // commands sent
  std::uint64_t connects = 0;        // connections opened
  std::uint64_t connect_errors = 0;  // connects that failed
  std::uint64_t broken = 0;          // connections dropped after an I/O error or timeout
  std::uint64_t open = 0;            // connections open now
};

class RedisPool {
 public:
  // RedisPool: opens no connection yet (the first commands do). Sets SIGPIPE to be ignored in
  // the process (a write to a Redis that died must fail, not end the program). Throws
  // std::invalid_argument for connections < 1.
  explicit RedisPool(RedisOptions opts);
  // ~RedisPool: closes the idle connections. Every command must have returned.
  ~RedisPool();
  RedisPool(const RedisPool&) = delete;
  RedisPool& operator=(const RedisPool&) = delete;

  // command: runs one command (its arguments binary-safe) on a pooled connection. A connection
  // that was idle in the pool may have been closed by the server meanwhile: when `retry` is set
  // and such a connection fails, the command is sent once more on a fresh one. Set it only for
  // commands that may run twice (GET, SET, DEL; not INCR): a connection that broke after the
  // server had read the command leaves it unknown whether it ran.
  Reply command(std::initializer_list<std::string_view> args, bool retry = false);

  RedisStats stats() const;
  const RedisOptions& options() const noexcept { return opts_; }

 private:
  redisContext* connect(std::string& error);
  void drop(redisContext* c);

  RedisOptions opts_;
  colony::Chan<redisContext*> slots_;  // `connections` slots: idle connections or null
  std::atomic<std::uint64_t> n_commands_{0}, n_connects_{0}, n_connect_errors_{0}, n_broken_{0};
  std::atomic<std::int64_t> n_open_{0};
};

}  // namespace kv
