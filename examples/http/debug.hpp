// Debug endpoints for any colony HTTP server, as Go's net/http/pprof and expvar give Go servers:
//
//   GET /debug/fibers   the fiber dump (colony::fiber_dump()): every live fiber's id, state,
//                       wait reason and how long it has waited, and its spawn site; text
//   GET /debug/vars     JSON: the runtime's stats() (per processor and in total), the
//                       process's resident memory, and any extra groups (the server's own
//                       counters, a Pool's stats)
//   GET /metrics        the same numbers in Prometheus's text exposition format (version 0.0.4)
//
//   http::DebugOptions dbg;
//   dbg.groups.emplace_back("http", [&srv] { return http::server_vars(srv); });
//   http::Server srv(http::with_debug(http::demo_handler(), dbg));
//
// The pages are computed on the requesting connection's fiber, from the runtime that fiber runs
// on. Mount them only where their readers are trusted: the dump shows source file names.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "http.hpp"

namespace http {

// Var: one number of /debug/vars and /metrics. A counter only grows (Prometheus's "_total").
struct Var {
  std::string name;
  std::int64_t value = 0;
  bool counter = false;
};
using Vars = std::vector<Var>;

// DebugOptions: what the pages show besides the runtime's numbers.
struct DebugOptions {
  // groups: each a JSON object named `first` in /debug/vars and metrics named
  // colony_<first>_<var> in /metrics. Called on every request for the pages.
  std::vector<std::pair<std::string, std::function<Vars()>>> groups;
};

// with_debug: a handler that answers the three pages itself and passes every other request
// to next.
Handler with_debug(Handler next, DebugOptions opts = {});

// server_vars: a Server's Stats as Vars (a group for DebugOptions).
Vars server_vars(const Server& srv);

// The pages' bodies, for servers that route by themselves.
std::string fibers_page();
std::string vars_page(const DebugOptions& opts);
std::string metrics_page(const DebugOptions& opts);

}  // namespace http
