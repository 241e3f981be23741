// Switching, the scheduler's side; switch_out, the fiber's side, is in switch.hpp with the jump.
//
// A fiber that blocks or yields does not go through the M's scheduler context (g0) when its own
// P has other work: it picks the next fiber itself and jumps straight to it (switch_out). What
// the old fiber wanted done once it is off its stack (put it back in the run queue, release the
// lock of the queue it waits in, unbind its stack) travels with the jump as a Post record and is
// carried out by whoever lands (finish_switch). This is Go's gopark/park_m and Boost.Fiber's
// resume_with: park first, unlock second, so no waker on another thread can resume a fiber whose
// stack is still in use. Only when the local queue is empty does the fiber jump to g0, which
// runs the full search (find_runnable, proc.cpp) and may park the M.
//
// Here: execute (g0 to a fiber), finish_switch, fiber_main (the first frame of every fiber) and
// exit_g (its last). docs/design.md, "Switching".
#include <exception>
#include <mutex>
#include <new>

#include "entry.hpp"
#include "sched.hpp"
#include "status.hpp"
#include "switch.hpp"

namespace colony::sched {

void Scheduler::execute(M* m, G* g) noexcept {
  set_status(g, GStatus::runnable, GStatus::running);
  if (!g->stack) bind_stack(m->p, g);  // its first run
  m->curg = g;
  m->p->cur.store(g, std::memory_order_release);
  m->p->switches.inc();
  Post post{&m->g0, After::none, nullptr, nullptr};
  ctx::transfer_t t = jump(&m->g0, g, &post, false, m->eh);
  finish_switch(m, &m->g0, t);  // g0 never changes threads: m is still current
}

void Scheduler::finish_switch(M* m, G* self, ctx::transfer_t t) noexcept {
  Post* post = static_cast<Post*>(t.data);
  G* prev = post->prev;
  arrived(self, prev, m->eh);
  prev->ctx = t.fctx;
  // `post` lives on prev's stack: copy it out before prev can be resumed elsewhere.
  const After after = post->after;
  const UnlockFn unlock = post->unlock;
  void* const arg = post->arg;
  switch (after) {
    case After::none:
      break;
    case After::yield:
      if (!m->p) {  // a fiber without a P (retake.cpp): as a return from a blocking call
        requeue(prev, GStatus::running, true, true);
        break;
      }
      set_status(prev, GStatus::running, GStatus::runnable);
      runq_put(m->p, prev, false);
      break;
    case After::yield_global:
    case After::blocked_return:
      // Back from a blocking call with no P to take, or a P-less yield: a P freed meanwhile
      // must run it (wakep). A yield_global with a P has its own M to run it.
      requeue(prev, GStatus::running, after == After::blocked_return || !m->p, !m->p);
      break;
    case After::park:
      if (!m->p) {  // a fiber without a P parks (retake.cpp): it stops counting as blocked
        const bool parked = !unlock || unlock(prev, arg);
        requeue(parked ? nullptr : prev, GStatus::waiting, true, true);
        break;
      }
      if (unlock && !unlock(prev, arg)) {
        set_status(prev, GStatus::waiting, GStatus::runnable);
        runq_put(m->p, prev, true);
      }
      // The timers switch_out skipped (see there); on g0 the search for work runs them.
      if (!self->is_g0 && timers_may_be_due(m->p)) run_own_timers(m->p);
      break;
    case After::exit:
#if defined(COLONY_TSAN)
      // A dead fiber's TSan context still holds the frames it never returned from: give the
      // next fiber on this stack a fresh one.
      __tsan_destroy_fiber(prev->tsan_fiber);
      prev->tsan_fiber = nullptr;
#endif
      gfput(m->p, prev);
      if (!m->p) requeue(nullptr, GStatus::dead, true, false);  // it died without a P (retake.cpp)
      break;
  }
}

// requeue: `g` (in status `from`; or null) goes to the back of the global queue; `blocked`: the
// fiber that switched out counted in blocking_ (it had no P) and stops counting now. Both
// under lock_, so that deadlock detection never sees it in neither place. `wake`: wakep after.
void Scheduler::requeue(G* g, GStatus from, bool blocked, bool wake) noexcept {
  if (g) set_status(g, from, GStatus::runnable);
  {
    std::lock_guard<std::mutex> lk(lock_);
    if (g) glob_put(&g, 1);
    if (blocked) --blocking_;
  }
  if (g && wake) wakep();
}

void Scheduler::fiber_main(ctx::transfer_t t) {
  M* m = current_m();
  G* self = m->curg;
  Scheduler* s = self->sched;
  s->finish_switch(m, self, t);
  self->started = true;
  rt_leave(m, true);  // into the fiber's own code (entry.hpp)
  if (!s->is_unwinding()) {
    try {
      self->entry.invoke(self->fn);
    } catch (const FiberUnwind&) {
      // shutdown unwound this fiber: nothing to report
    } catch (...) {
      s->panic(self, std::current_exception());
    }
  }
  self->entry.destroy(self->fn);
  free_fn(self);
  s->exit_g(self);
}

void Scheduler::exit_g(G* self) noexcept {
  M* m = current_m();
  rt_enter(m);  // never left: the next fiber (or g0) runs inside the scheduler
  if (P* p = m->p)
    p->live.store(p->live.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  else  // its P was handed off (retake.cpp): counted with the fibers of plain threads
    outside_live_.fetch_sub(1, std::memory_order_relaxed);
  set_status(self, GStatus::running, GStatus::dead);
  self->wait_reason.store(WaitReason::none, std::memory_order_relaxed);
  switch_out(m, self, After::exit, nullptr, nullptr);
  fatal("a dead fiber was resumed", self);
}

}  // namespace colony::sched
