// Parking: the calling fiber gives up its processor. yield puts it back in the run queue; park
// makes it wait until ready() (the contract is in colony/sched/fiber.hpp: park first, unlock
// second); sleep parks it on a timer. Each ends in switch_out (switch.hpp).
#include <chrono>
#include <stdexcept>
#include <thread>

#include "colony/sched/deadline.hpp"
#include "entry.hpp"
#include "sched.hpp"
#include "status.hpp"
#include "switch.hpp"

namespace colony::sched {

void yield() {
  M* m = current_m();
  G* self = m ? m->curg : nullptr;
  if (!self) {
    std::this_thread::yield();
    return;
  }
  Scheduler* s = self->sched;
  const bool outer = rt_enter(m);
  if (P* p = m->p) {
    p->yields.inc();
    m = s->switch_out(m, self, Scheduler::After::yield, nullptr, nullptr);
  } else {
    // Its P was handed off (retake.cpp): take an idle one, or queue and wait for one, as a
    // fiber back from colony::blocking does.
    s->exit_blocking(m, self);
    m = current_m();
  }
  rt_leave(m, outer);
  if (s->is_unwinding()) throw FiberUnwind{};
}

void park(UnlockFn unlock, void* arg, WaitReason reason) {
  M* m = current_m();
  G* self = m ? m->curg : nullptr;
  if (!self) throw std::logic_error("colony: park() must be called on a fiber");
  Scheduler* s = self->sched;
  if (s->is_unwinding()) {
    // Shutdown is unwinding this fiber and a destructor blocked: do not park again.
    if (unlock) unlock(self, arg);
    throw FiberUnwind{};
  }
  const bool outer = rt_enter(m);
  self->wait_reason.store(reason, std::memory_order_relaxed);
  self->wait_since.store(coarse_now(), std::memory_order_relaxed);
  set_status(self, GStatus::running, GStatus::waiting);
  if (P* p = m->p) p->parks.inc();  // none: handed off (retake.cpp); g0 parks the M after
  self->handed_off.store(false, std::memory_order_relaxed);
  m = s->switch_out(m, self, Scheduler::After::park, unlock, arg);
  rt_leave(m, outer);
  self->wait_reason.store(WaitReason::none, std::memory_order_relaxed);
  if (s->is_unwinding()) throw FiberUnwind{};
}

void ready(G* g) noexcept { g->sched->ready_g(g, true); }

namespace {

// park_until: parks the calling fiber, self, until deadline_ns (in the future).
void park_until(G* self, std::int64_t deadline_ns) {
  Timer t;
  t.when = deadline_ns;
  t.arg = self;
  t.fn = [](Timer* tm) { ready(static_cast<G*>(tm->arg)); };
  struct Guard {
    Timer* t;
    ~Guard() { del_timer(t); }
  } guard{&t};
  park([](G*, void* a) { add_timer(static_cast<Timer*>(a)); return true; }, &t, WaitReason::sleep);
}

}  // namespace

void sleep_until_ns(std::int64_t deadline_ns) {
  G* self = current_g();
  if (!self) {
    std::int64_t d = deadline_ns - nanotime();
    if (d > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(d));
    return;
  }
  if (deadline_ns <= nanotime()) {
    yield();
    return;
  }
  park_until(self, deadline_ns);
}

void sleep_for_ns(std::int64_t ns) {
  G* self = current_g();
  if (!self) {
    if (ns > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
    return;
  }
  if (ns <= 0) {
    yield();
    return;
  }
  park_until(self, deadline_after_ns(nanotime(), ns));  // saturates: "forever"
}

}  // namespace colony::sched
