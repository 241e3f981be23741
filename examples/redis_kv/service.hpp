// kv::handler: an HTTP key-value service on Redis, for the examples' HTTP server (examples/http).
// Each request runs one Redis command on a pooled connection (redis_pool.hpp) from its
// connection's fiber, and answers with what Redis said:
//
//   GET    /kv/KEY     the value (application/octet-stream); 404 when the key does not exist
//   PUT    /kv/KEY     stores the request body as the value (POST too); 200 "OK\n"
//   DELETE /kv/KEY     removes the key; 200 "deleted\n", 404 when it did not exist
//   POST   /count/KEY  INCR: adds one and answers the new count ("3\n")
//   GET    /           what the routes are
//   anything else      404, or 405 (with Allow) for a known path and another method
//
// KEY is the rest of the path, as sent (no percent-decoding), at least one byte; an empty one is
// 400. Redis failures are answers, never exceptions: 503 Service Unavailable (with Retry-After:
// 1) when no connection to Redis can be had (refused, connect timeout, every connection busy),
// 502 Bad Gateway when a command's connection broke or timed out, or Redis answered with an
// error (an INCR of a value that is not a number). The body says what happened, starting with
// "redis: ".
#pragma once

#include "http/debug.hpp"
#include "http/http.hpp"
#include "redis_pool.hpp"

namespace kv {

// handler: the routes above on `redis`, which must outlive the server's requests.
http::Handler handler(RedisPool& redis);

// redis_vars: the pool's RedisStats as a group of the debug pages (http/debug.hpp).
http::Vars redis_vars(const RedisPool& redis);

}  // namespace kv
