// http::pooled: runs a handler on a bounded colony::Pool, so that the work a server accepts is
// capped at the pool's capacity. With a nonblocking pool a request that finds every worker busy
// is answered at once with 503 Service Unavailable (and Retry-After: 1) instead of piling up
// behind the others: the server sheds load and the requests it does take keep their latency.
// With a blocking pool the connection's fiber waits for a worker instead.
//
//   colony::Pool pool(256, {.nonblocking = true});
//   http::Server srv(http::pooled(http::demo_handler(), pool));
//
// The pool must outlive the server's requests (shut the server down first). An exception from
// the handler reaches the server as if the handler had run on the connection's fiber (a 500).
#pragma once

#include <colony/pool.hpp>
#include <cstdint>
#include <exception>
#include <utility>

#include "debug.hpp"
#include "http.hpp"

namespace http {

inline Handler pooled(Handler inner, colony::Pool& pool) {
  return [inner = std::move(inner), &pool](const Request& req, Response& res) {
    colony::WaitGroup done;
    std::exception_ptr err;
    done.add(1);
    // The request's views stay valid: this fiber waits below until the task has finished.
    const std::error_code ec = pool.submit([&] {
      try {
        inner(req, res);
      } catch (...) {
        err = std::current_exception();
      }
      done.done();
    });
    if (ec) {  // overload (every worker busy), or the pool is closed: the task did not run
      res = Response{};
      res.status = 503;
      res.headers.emplace_back("Retry-After", "1");
      res.body = "server busy: " + ec.message() + "\n";
      return;
    }
    done.wait();
    if (err) std::rethrow_exception(err);
  };
}

// pool_vars: a Pool's stats as Vars, a group for the debug pages (debug.hpp).
inline Vars pool_vars(const colony::Pool& pool) {
  const colony::PoolStats s = pool.stats();
  auto c = [](auto v) { return static_cast<std::int64_t>(v); };
  return {
      {"submitted", c(s.submitted), true},
      {"completed", c(s.completed), true},
      {"panics", c(s.panics), true},
      {"rejected", c(s.rejected), true},
      {"workers_started", c(s.workers_started), true},
      {"running", c(s.running), false},
      {"idle", c(s.idle), false},
      {"waiting", c(s.waiting), false},
      {"queued", c(s.queued), false},
      {"peak_running", c(s.peak_running), false},
  };
}

}  // namespace http
