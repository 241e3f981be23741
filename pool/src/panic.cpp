// Panics and logs: what happens to an exception that escapes a task (PoolOptions::panic_handler,
// else a log line through PoolOptions::logger, else stderr).
#include <cxxabi.h>

#include <cstdio>
#include <exception>
#include <string>
#include <typeinfo>

#include "colony/sched/demangle.hpp"
#include "pool_core.hpp"

namespace colony::detail {

namespace {

std::string site_text(const SourceLocation& s) {
  std::string out = s.file_name();
  out += ':';
  out += std::to_string(s.line());
  if (*s.function_name()) {
    out += " in ";
    out += s.function_name();
  }
  return out;
}

}  // namespace

// describe_current: the exception being handled, for logs. Call inside a catch block.
std::string describe_current() {
  try {
    throw;
  } catch (const std::exception& e) {
    return sched::demangle(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    return "non-std exception of type " + (t ? sched::demangle(t->name()) : std::string("unknown"));
  }
}

void PoolCore::on_panic(std::exception_ptr e, const std::string& what, const SourceLocation& site) {
  stats_.panics.fetch_add(1, std::memory_order_relaxed);
  if (opts_.panic_handler) {
    try {
      opts_.panic_handler(std::move(e));
    } catch (const FiberUnwind&) {
      throw;
    } catch (...) {
      log("colony::Pool: the panic handler threw " + describe_current() + " while handling " +
          what + " [task submitted at " + site_text(site) + "]");
    }
    return;
  }
  log("colony::Pool: task panicked: " + what + " [submitted at " + site_text(site) +
      "]; the worker carries on");
}

void PoolCore::log(const std::string& line) noexcept {
  if (opts_.logger) {
    try {
      opts_.logger(line);
      return;
    } catch (...) {  // NOLINT: a logger that throws falls back to stderr (even FiberUnwind:
    }                // this function is noexcept, and the caller reaches a park soon)
  }
  std::string out = line;
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stderr);
}

}  // namespace colony::detail
