// The one switch site: the only code that touches Boost.Context, and the one place with the
// sanitizer fiber annotations and the per-fiber C++ exception-state swap. Everything here is
// always_inline into its callers in sched.cpp (Scheduler::execute on g0, Scheduler::switch_out on
// a fiber, and the fiber entry trampoline fiber_main).
//
// Annotation order (see ../../docs/design.md, "Switching"):
//   start_switch_fiber (ASan) + switch_to_fiber (TSan)   before the jump, on the old stack
//   jump_fcontext
//   finish_switch_fiber (ASan)                           right after, on the new stack
// A dying fiber passes a null fake-stack slot so ASan forgets its stack.
#pragma once

#include <boost/context/detail/fcontext.hpp>
#include <cxxabi.h>

#include "g.hpp"

#if defined(COLONY_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(COLONY_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace colony::sched {

namespace ctx = boost::context::detail;

// The layout libstdc++ and libc++abi share for the per-thread exception globals.
struct EhGlobals {
  void* caught;
  unsigned int uncaught;
};
// Not inlinable and not const (glibc/libstdc++ declare __cxa_get_globals const, which would let
// the compiler reuse one thread's address after the fiber moved to another thread).
EhGlobals* eh_globals() noexcept;

// `e` is the running thread's EhGlobals, looked up once per M (M::eh) and re-read from the M
// after every switch.
[[gnu::always_inline]] inline void eh_save(G* g, EhGlobals* e) noexcept {
  g->eh_caught = e->caught;
  g->eh_uncaught = e->uncaught;
}
[[gnu::always_inline]] inline void eh_restore(G* g, EhGlobals* e) noexcept {
  e->caught = g->eh_caught;
  e->uncaught = g->eh_uncaught;
}

// jump: from the running context `from` to `to`. Returns when some context jumps back to
// `from`, with the transfer that context sent. `dying`: `from` will never run again.
[[gnu::always_inline]] inline ctx::transfer_t jump(G* from, G* to, void* data, bool dying,
                                                  EhGlobals* eh) noexcept {
  eh_save(from, eh);
#if defined(COLONY_ASAN)
  __sanitizer_start_switch_fiber(dying ? nullptr : &from->asan_fake_stack, to->asan_stack_bottom,
                                 to->asan_stack_size);
#else
  (void)dying;
#endif
#if defined(COLONY_TSAN)
  __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
  ctx::transfer_t t = ctx::jump_fcontext(to->ctx, data);
  return t;
}

// arrived: first thing on `self`'s stack after a jump into it (after jump() returns, or at the
// entry of a new fiber). `prev` is the context that jumped here; `eh` the thread's EhGlobals.
[[gnu::always_inline]] inline void arrived(G* self, G* prev, EhGlobals* eh) noexcept {
#if defined(COLONY_ASAN)
  const void* bottom = nullptr;
  std::size_t size = 0;
  __sanitizer_finish_switch_fiber(self->asan_fake_stack, &bottom, &size);
  if (prev->is_g0) {
    prev->asan_stack_bottom = bottom;
    prev->asan_stack_size = size;
  }
#else
  (void)prev;
#endif
  eh_restore(self, eh);
}

inline void* make_context(void* sp_top, std::size_t size, void (*fn)(ctx::transfer_t)) {
  return ctx::make_fcontext(sp_top, size, fn);
}

}  // namespace colony::sched
