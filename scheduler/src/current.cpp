// The only thread_local of the scheduler: the calling thread's M. Read through a non-inlined
// accessor with a compiler barrier, so no caller can keep a TLS address across a fiber switch
// (a fiber may resume on another thread). See HACKING.md, "The rules".
#include <cxxabi.h>

#include "sched.hpp"
#include "switch.hpp"

namespace colony::sched {
namespace {
thread_local M* tls_m = nullptr;
}

[[gnu::noinline]] M* current_m() noexcept {
  asm volatile("" ::: "memory");
  return tls_m;
}

[[gnu::noinline]] void set_current_m(M* m) noexcept {
  asm volatile("" ::: "memory");
  tls_m = m;
}

[[gnu::noinline]] EhGlobals* eh_globals() noexcept {
  asm volatile("" ::: "memory");
  return reinterpret_cast<EhGlobals*>(abi::__cxa_get_globals());
}

}  // namespace colony::sched
