// kv::RedisPool: taking a connection slot, connecting, running a command, putting it back.
#include "redis_pool.hpp"

#include <signal.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

namespace kv {

namespace {

timeval to_timeval(std::chrono::milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

// context_error: hiredis's message, with errno's when hiredis has none of its own (a timeout is
// an I/O error with errno EAGAIN).
std::string context_error(const redisContext* c) {
  if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) return "timed out";
  if (c->errstr[0] != '\0') return c->errstr;
  return std::strerror(errno);
}

}  // namespace

const char* to_string(RedisStatus s) noexcept {
  switch (s) {
    case RedisStatus::ok:
      return "ok";
    case RedisStatus::unavailable:
      return "unavailable";
    case RedisStatus::failed:
      return "failed";
  }
  return "?";
}

RedisPool::RedisPool(RedisOptions opts)
    : opts_(std::move(opts)),
      slots_(opts_.connections > 0 ? static_cast<std::size_t>(opts_.connections) : 1) {
  if (opts_.connections < 1)
    throw std::invalid_argument("kv::RedisPool: connections must be at least 1");
  for (int i = 0; i < opts_.connections; ++i) slots_.try_send(nullptr);
  // hiredis writes with write(2): a command sent to a Redis that has died would raise SIGPIPE and
  // end the process. Ignored, the write fails with EPIPE and the command answers `failed`.
  ::signal(SIGPIPE, SIG_IGN);
}

RedisPool::~RedisPool() {
  redisContext* c = nullptr;
  while (slots_.try_recv(c) == colony::ChanStatus::success)
    if (c != nullptr) drop(c);
}

redisContext* RedisPool::connect(std::string& error) {
  redisContext* c =
      redisConnectWithTimeout(opts_.host.c_str(), opts_.port, to_timeval(opts_.connect_timeout));
  if (c == nullptr || c->err != 0) {
    error = c != nullptr ? context_error(c) : "out of memory";
    if (c != nullptr) redisFree(c);
    n_connect_errors_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  // SO_RCVTIMEO / SO_SNDTIMEO: the hooks make them the deadline of a parked wait.
  redisSetTimeout(c, to_timeval(opts_.command_timeout));
  n_connects_.fetch_add(1, std::memory_order_relaxed);
  n_open_.fetch_add(1, std::memory_order_relaxed);
  return c;
}

void RedisPool::drop(redisContext* c) {
  redisFree(c);
  n_open_.fetch_sub(1, std::memory_order_relaxed);
}

Reply RedisPool::command(std::initializer_list<std::string_view> args, bool retry) {
  Reply out;
  // A slot taken is always given back, with its connection if that is still usable: also when
  // the fiber unwinds from a parked call at the runtime's shutdown (then the connection's state
  // is unknown, and it is dropped).
  struct Slot {
    RedisPool* pool;
    redisContext* c = nullptr;
    bool usable = false;
    ~Slot() {
      if (c != nullptr && !usable) {
        pool->drop(c);
        c = nullptr;
      }
      pool->slots_.try_send(c);  // never full: only what was taken comes back
    }
  };
  redisContext* taken = nullptr;
  if (slots_.recv_for(taken, opts_.acquire_timeout) != colony::ChanStatus::success) {
    out.status = RedisStatus::unavailable;
    out.error = "all " + std::to_string(opts_.connections) + " connections busy";
    return out;
  }
  Slot slot{this, taken};

  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  for (int attempt = 0;; ++attempt) {
    const bool reused = slot.c != nullptr;
    if (!reused) {
      slot.c = connect(out.error);
      if (slot.c == nullptr) {
        out.status = RedisStatus::unavailable;
        return out;
      }
    }
    n_commands_.fetch_add(1, std::memory_order_relaxed);
    slot.usable = false;  // until the reply is in
    void* r = redisCommandArgv(slot.c, static_cast<int>(argv.size()), argv.data(), lens.data());
    if (r != nullptr) {
      slot.usable = true;
      out.status = RedisStatus::ok;
      out.reply.reset(static_cast<redisReply*>(r));
      out.error.clear();
      return out;
    }
    out.status = RedisStatus::failed;
    out.error = context_error(slot.c);
    n_broken_.fetch_add(1, std::memory_order_relaxed);
    drop(slot.c);
    slot.c = nullptr;
    // A fresh connection that fails is not retried: Redis is in trouble, not the pool.
    if (!(retry && reused && attempt == 0)) return out;
  }
}

RedisStats RedisPool::stats() const {
  RedisStats s;
  s.commands = n_commands_.load(std::memory_order_relaxed);
  s.connects = n_connects_.load(std::memory_order_relaxed);
  s.connect_errors = n_connect_errors_.load(std::memory_order_relaxed);
  s.broken = n_broken_.load(std::memory_order_relaxed);
  const std::int64_t open = n_open_.load(std::memory_order_relaxed);
  s.open = open > 0 ? static_cast<std::uint64_t>(open) : 0;
  return s;
}

}  // namespace kv
