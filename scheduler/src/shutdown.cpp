// Shutdown: stop every M, join them, then unwind every fiber still alive on the calling thread
// (docs/design.md, "Shutdown"). Scheduler::shutdown is declared with its contract in sched.hpp.
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "sched.hpp"
#include "status.hpp"
#include "switch.hpp"

namespace colony::sched {

bool Scheduler::shutdown(std::int64_t grace_ns) {
  M* cm = current_m();
  if (cm && cm->sched == this)
    throw std::logic_error("colony: a runtime cannot be shut down from one of its own threads");
  std::lock_guard<std::mutex> sl(shutdown_mu_);
  if (shut_down_) return true;
  stop_sysmon();
  stopping_.store(true, std::memory_order_seq_cst);
  std::vector<M*> ms;
  {
    std::lock_guard<std::mutex> lk(lock_);
    for (auto& m : allm_) ms.push_back(m.get());
    for (M* m = midle_; m; m = m->link) wake_m(m);
  }
  if (grace_ns >= 0) {
    std::int64_t deadline = nanotime() + grace_ns;
    for (M* m : ms) {
      while (!m->exited.load(std::memory_order_acquire)) {
        if (nanotime() > deadline) {
          // A fiber is still running: leave everything as it is (the process is exiting).
          for (M* x : ms) x->thread.detach();
          return false;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        wake_m(m);
      }
    }
  }
  for (M* m : ms) {
    while (!m->exited.load(std::memory_order_acquire)) {
      wake_m(m);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (m->thread.joinable()) m->thread.join();
  }
  unwind_all();
  shut_down_ = true;
  return true;
}

// unwind_all: run on the shutdown thread, which adopts P0 as a temporary M. Every fiber that
// is still alive is resumed once more: parked and yielded fibers see FiberUnwind thrown from the
// call that blocked them, fibers that never started are destroyed without running.
void Scheduler::unwind_all() {
  M tm;
  tm.id = -1;
  tm.sched = this;
  tm.g0.is_g0 = true;
  tm.g0.sched = this;
#if defined(COLONY_TSAN)
  tm.g0.tsan_fiber = __tsan_get_current_fiber();
#endif
  M* saved = current_m();
  set_current_m(&tm);
  tm.eh = eh_globals();
  StackPool::setup_thread_altstack();  // a guard-page hit while unwinding is reported here too
  P* p0 = allp_[0].get();
  {
    std::lock_guard<std::mutex> lk(lock_);
    // Take P0 off the idle list.
    for (P** pp = &pidle_; *pp; pp = &(*pp)->link) {
      if (*pp == p0) {
        *pp = p0->link;
        p0->link = nullptr;
        p0->idle = false;
        npidle_.fetch_sub(1);
        break;
      }
    }
  }
  acquirep(&tm, p0);
  unwinding_.store(true);
  // Everything runnable is in some queue: drain them all.
  std::vector<G*> pending;
  for (auto& p : allp_) {
    if (G* g = p->runnext.exchange(nullptr)) pending.push_back(g);
    while (G* g = p->runq.get()) pending.push_back(g);
  }
  {
    std::lock_guard<std::mutex> lk(lock_);
    while (G* g = glob_pop()) pending.push_back(g);
  }
  // Fibers readied while others unwind land in P0's queue (readied by an unwinding fiber) or
  // in the global queue (by a plain thread): run them between every two. True if it ran any.
  auto drain = [&] {
    bool ran = false;
    for (;;) {
      G* g2 = runq_get(p0);
      if (!g2) {
        std::lock_guard<std::mutex> lk(lock_);
        g2 = glob_pop();
      }
      if (!g2) return ran;
      execute(&tm, g2);
      ran = true;
    }
  };
  for (G* g : pending) {
    if (g->status.load() == GStatus::runnable) execute(&tm, g);
    drain();
  }
  for (;;) {
    // Parked fibers are in no queue: find them in the registry. Each is made runnable only at
    // the moment it is resumed, so a fiber woken by another's unwinding is readied normally.
    // A plain thread may be readying one of them right now: whoever moves it from waiting to
    // runnable first resumes it (ready_status); the other leaves it alone.
    pending.clear();
    for_each_g([&](G* g) {
      if (g->status.load() == GStatus::waiting) pending.push_back(g);
    });
    if (pending.empty()) {
      // None parked. One a plain thread took over may still be on its way to the global queue:
      // outside_calls_ counts such readies from before they take it until it is queued.
      while (outside_calls_.load() != 0) std::this_thread::yield();
      if (!drain()) break;
      continue;
    }
    for (G* g : pending) {
      if (ready_status(g)) execute(&tm, g);
      drain();
    }
  }
  // Timers left in heaps belong to dead fibers' primitives that cleaned up, or to objects
  // outside any fiber; drop them.
  std::vector<Timer*> self_owned;
  for (auto& p : allp_) {
    std::lock_guard<SpinLock> lk(p->timer_lock);
    for (const P::TimerEntry& e : p->timers) {
      Timer* t = p->timer_of[e.slot];
      t->heap.store(nullptr);
      t->slot = -1;
      t->state.store(0);
      if (t->release) self_owned.push_back(t);
    }
    p->timers.clear();
    p->timer_pos.clear();
    p->timer_of.clear();
    p->timer_free = -1;
    p->timer0_when.store(INT64_MAX);
  }
  for (Timer* t : self_owned) t->release(t);
  releasep(&tm);
  {
    std::lock_guard<std::mutex> lk(lock_);
    pidle_put(p0);
  }
  set_current_m(saved);
}

}  // namespace colony::sched
