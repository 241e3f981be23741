// The debug pages of debug.hpp.
#include "debug.hpp"

#include <unistd.h>

#include <colony/debug.hpp>
#include <colony/stats.hpp>
#include <cstdio>
#include <memory>
#include <sstream>

namespace http {

namespace {

// rss_bytes: the process's resident set (/proc/self/statm's second field, in pages); 0 when
// unknown.
std::int64_t rss_bytes() {
  std::unique_ptr<std::FILE, decltype(&std::fclose)> f(std::fopen("/proc/self/statm", "r"),
                                                       std::fclose);
  long size = 0, resident = 0;
  if (!f || std::fscanf(f.get(), "%ld %ld", &size, &resident) != 2) return 0;
  return static_cast<std::int64_t>(resident) * ::sysconf(_SC_PAGESIZE);
}

// runtime_vars: the runtime-wide numbers of colony::stats().
Vars runtime_vars(const colony::Stats& st) {
  return {
      {"max_procs", st.max_procs, false},
      {"threads", st.threads, false},
      {"fibers", st.fibers, false},
      {"stack_bytes_mapped", static_cast<std::int64_t>(st.stack_bytes_mapped), false},
      {"guarded_stacks", static_cast<std::int64_t>(st.guarded_stacks), false},
      {"long_runs", static_cast<std::int64_t>(st.long_runs), true},
      {"retakes", static_cast<std::int64_t>(st.retakes), true},
  };
}

// proc_vars: one processor's counters.
Vars proc_vars(const colony::ProcStats& p) {
  auto c = [](std::uint64_t v) { return static_cast<std::int64_t>(v); };
  return {
      {"switches", c(p.switches), true},       {"parks", c(p.parks), true},
      {"yields", c(p.yields), true},           {"steals", c(p.steals), true},
      {"stolen", c(p.stolen), true},           {"spawns", c(p.spawns), true},
      {"global_gets", c(p.global_gets), true}, {"timers_fired", c(p.timers_fired), true},
  };
}

void json_object(std::string& out, const Vars& vs) {
  out += '{';
  for (std::size_t i = 0; i < vs.size(); ++i) {
    if (i > 0) out += ", ";
    out += '"';
    out += vs[i].name;  // names are identifiers: nothing to escape
    out += "\": ";
    out += std::to_string(vs[i].value);
  }
  out += '}';
}

void metric(std::string& out, const std::string& name, const Var& v, const char* help,
            const std::string& labels = {}, bool type_line = true) {
  const std::string full = name + (v.counter ? "_total" : "");
  if (type_line) {
    out += "# HELP " + full + ' ' + help + '\n';
    out += "# TYPE " + full + (v.counter ? " counter\n" : " gauge\n");
  }
  out += full;
  if (!labels.empty()) out += '{' + labels + '}';
  out += ' ' + std::to_string(v.value) + '\n';
}

}  // namespace

Vars server_vars(const Server& srv) {
  const Stats s = srv.stats();
  auto c = [](std::uint64_t v) { return static_cast<std::int64_t>(v); };
  return {
      {"connections", c(s.connections), true},   {"requests", c(s.requests), true},
      {"bad_requests", c(s.bad_requests), true}, {"timeouts", c(s.timeouts), true},
      {"websockets", c(s.websockets), true},     {"open_connections", c(s.open), false},
      {"buffered_bytes", c(s.buffered), false},
  };
}

std::string fibers_page() {
  const auto fs = colony::fibers();
  std::string out = std::to_string(fs.size()) + " fibers\n\n";
  out += [&] {
    std::ostringstream os;
    colony::dump_fibers(os, fs);
    return os.str();
  }();
  return out;
}

std::string vars_page(const DebugOptions& opts) {
  const colony::Stats st = colony::stats();
  std::string out = "{\n\"colony\": ";
  Vars rt = runtime_vars(st);
  json_object(out, rt);
  out.pop_back();  // the runtime's object goes on with its processors
  out += ", \"procs\": [";
  for (std::size_t i = 0; i < st.procs.size(); ++i) {
    out += i > 0 ? ",\n  " : "\n  ";
    json_object(out, proc_vars(st.procs[i]));
  }
  out += "],\n  \"total\": ";
  json_object(out, proc_vars(st.total));
  out += "},\n\"process\": ";
  json_object(out, {{"rss_bytes", rss_bytes(), false}});
  for (const auto& [group, fn] : opts.groups) {
    out += ",\n\"" + group + "\": ";
    json_object(out, fn());
  }
  out += "\n}\n";
  return out;
}

std::string metrics_page(const DebugOptions& opts) {
  const colony::Stats st = colony::stats();
  std::string out;
  for (const Var& v : runtime_vars(st)) metric(out, "colony_" + v.name, v, "colony::stats()");
  // Per processor: one family per counter, one sample per P.
  const Vars names = proc_vars(colony::ProcStats{});
  for (std::size_t k = 0; k < names.size(); ++k)
    for (std::size_t i = 0; i < st.procs.size(); ++i)
      metric(out, "colony_proc_" + names[k].name, proc_vars(st.procs[i])[k],
             "colony::stats().procs[P]", "proc=\"" + std::to_string(i) + '"', i == 0);
  metric(out, "process_resident_memory_bytes", {"rss", rss_bytes(), false},
         "Resident memory size in bytes.");
  for (const auto& [group, fn] : opts.groups)
    for (const Var& v : fn()) metric(out, "colony_" + group + "_" + v.name, v, group.c_str());
  return out;
}

Handler with_debug(Handler next, DebugOptions opts) {
  return [next = std::move(next), opts = std::move(opts)](const Request& req, Response& res) {
    const std::string_view path = req.path();
    if (path == "/debug/fibers") {
      res.body = fibers_page();
    } else if (path == "/debug/vars") {
      res.content_type = "application/json";
      res.body = vars_page(opts);
    } else if (path == "/metrics") {
      res.content_type = "text/plain; version=0.0.4; charset=utf-8";
      res.body = metrics_page(opts);
    } else {
      next(req, res);
    }
  };
}

}  // namespace http
