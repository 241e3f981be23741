// kv::handler: the service's routes, and how a Redis outcome becomes an HTTP answer.
#include "service.hpp"

#include <string>
#include <string_view>

namespace kv {

namespace {

constexpr std::string_view kIndex =
    "colony redis_kv: a key-value service on Redis\n"
    "  GET    /kv/KEY     the value, 404 if missing\n"
    "  PUT    /kv/KEY     stores the body (POST too)\n"
    "  DELETE /kv/KEY     removes the key\n"
    "  POST   /count/KEY  adds one, answers the count\n";

// redis_failed: the answer when Redis could not be asked or did not answer properly; false
// (nothing written) when r holds a usable reply.
bool redis_failed(const Reply& r, http::Response& res) {
  if (r.status == RedisStatus::ok && r.reply->type != REDIS_REPLY_ERROR) return false;
  res.content_type = "text/plain; charset=utf-8";
  if (r.status == RedisStatus::unavailable) {
    res.status = 503;
    res.headers.emplace_back("Retry-After", "1");
    res.body = "redis: unavailable: " + r.error + "\n";
  } else if (r.status == RedisStatus::failed) {
    res.status = 502;
    res.body = "redis: command failed: " + r.error + "\n";
  } else {
    res.status = 502;
    res.body = "redis: error reply: " + std::string(r.reply->str, r.reply->len) + "\n";
  }
  return true;
}

void not_allowed(http::Response& res, const char* allow) {
  res.status = 405;
  res.headers.emplace_back("Allow", allow);
  res.body = "405 method not allowed\n";
}

void kv_route(RedisPool& redis, const http::Request& req, std::string_view key,
              http::Response& res) {
  if (req.method == "GET" || req.method == "HEAD") {
    Reply r = redis.command({"GET", key}, /*retry=*/true);
    if (redis_failed(r, res)) return;
    if (r.reply->type == REDIS_REPLY_NIL) {
      res.status = 404;
      res.body = "404 no such key\n";
      return;
    }
    res.content_type = "application/octet-stream";
    res.body.assign(r.reply->str, r.reply->len);
  } else if (req.method == "PUT" || req.method == "POST") {
    Reply r = redis.command({"SET", key, req.body}, /*retry=*/true);
    if (redis_failed(r, res)) return;
    res.body = "OK\n";
  } else if (req.method == "DELETE") {
    // Not retried: had a first DEL run before its connection broke, the second would find no key
    // and the answer would be a wrong 404.
    Reply r = redis.command({"DEL", key});
    if (redis_failed(r, res)) return;
    if (r.reply->integer == 0) {
      res.status = 404;
      res.body = "404 no such key\n";
      return;
    }
    res.body = "deleted\n";
  } else {
    not_allowed(res, "GET, HEAD, PUT, POST, DELETE");
  }
}

void count_route(RedisPool& redis, const http::Request& req, std::string_view key,
                 http::Response& res) {
  if (req.method != "POST") return not_allowed(res, "POST");
  Reply r = redis.command({"INCR", key});  // not retried: it may have run
  if (redis_failed(r, res)) return;
  res.body = std::to_string(r.reply->integer) + "\n";
}

}  // namespace

http::Handler handler(RedisPool& redis) {
  return [&redis](const http::Request& req, http::Response& res) {
    const std::string_view path = req.path();
    auto route = [&](std::string_view prefix, auto&& fn) {
      if (path.substr(0, prefix.size()) != prefix) return false;
      const std::string_view key = path.substr(prefix.size());
      if (key.empty()) {
        res.status = 400;
        res.body = "400 missing key: " + std::string(prefix) + "KEY\n";
      } else {
        fn(redis, req, key, res);
      }
      return true;
    };
    if (route("/kv/", kv_route) || route("/count/", count_route)) return;
    if (path == "/") {
      res.body = kIndex;
      return;
    }
    res.status = 404;
    res.body = "404 page not found\n";
  };
}

http::Vars redis_vars(const RedisPool& redis) {
  const RedisStats s = redis.stats();
  auto n = [](std::uint64_t v) { return static_cast<std::int64_t>(v); };
  return {{"commands", n(s.commands), true},
          {"connects", n(s.connects), true},
          {"connect_errors", n(s.connect_errors), true},
          {"broken", n(s.broken), true},
          {"open", n(s.open), false}};
}

}  // namespace kv
