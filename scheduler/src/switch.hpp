// The one switch site: the only code that touches Boost.Context, and the one place with the
// sanitizer fiber annotations and the per-fiber C++ exception-state swap. Everything here is
// always_inline into its callers: jump into execute (g0 to a fiber), switch_out and
// exit_blocking; arrived into finish_switch; and Scheduler::switch_out (at the end of this file)
// into yield and park (park.cpp), start_g (gcache.cpp) and exit_g (switch.cpp).
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
#include "sched.hpp"
#include "status.hpp"

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

// switch_out: the calling fiber `self` switches away (yield, park, exit, a spawn's overflow
// yield): straight to the next fiber of its P's local queue if there is one, else to g0, which
// looks for work (find_runnable) and may park the M. What `self` wants done once it is off its
// stack travels as a Post and is carried out by whoever lands (finish_switch, switch.cpp).
// A fiber whose P was handed off (retake.cpp) parks or exits through g0, which then parks its
// M; it never yields here (yield takes the exit_blocking path instead).
// Returns when `self` is resumed, perhaps on another thread: the M it is on then.
[[gnu::always_inline]] inline M* Scheduler::switch_out(M* m, G* self, After after,
                                                       UnlockFn unlock, void* arg) {
  P* p = m->p;
  StackPool::check(self, __builtin_frame_address(0));
  const bool stop = stopping_.load(std::memory_order_relaxed) && !is_unwinding();
  // A parking fiber still holds whatever its unlock function releases (a wait list's lock, say)
  // until the next fiber has arrived: a timer run now could need that very lock (a wait's
  // time-out does). Its timers run in finish_switch instead, after the unlock.
  G* next = (stop || !p) ? nullptr : pick_local(p, after != After::park);
  if (!next && p && (after == After::yield || after == After::yield_global) && !stop) {
    // A yield with nothing local to run: give the global queue its turn now (a lone fiber
    // yielding in a loop must not starve fibers readied from other threads), else carry on.
    ++p->schedtick;
    if (runq_size_.load(std::memory_order_relaxed) == 0) return m;
    std::lock_guard<std::mutex> lk(lock_);
    next = glob_get(p, 0);
    if (!next) return m;
  }
  G* to;
  if (next) {
    set_status(next, GStatus::runnable, GStatus::running);
    if (!next->stack) bind_stack(p, next);  // its first run
    m->curg = next;
    p->cur.store(next, std::memory_order_release);
    p->switches.inc();
    to = next;
  } else {
    m->curg = nullptr;
    if (p) p->cur.store(nullptr, std::memory_order_relaxed);
    to = &m->g0;
  }
  Post post{self, after, unlock, arg};
  ctx::transfer_t t = jump(self, to, &post, after == After::exit, m->eh);
  // Resumed, perhaps on another thread: `m` and `p` are stale, read the M again.
  m = current_m();
  finish_switch(m, self, t);
  return m;
}

}  // namespace colony::sched
