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
#include <exception>
#include <utility>

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

}  // namespace http
