// A fiber's life outside the run queues: new_g takes a G from the caches (gfget: P::gcache,
// then the G arena) and stores the callable in it; start_g and ready_g make it runnable;
// bind_stack gives it a stack when it first runs (P::scache, then the stack pool's magazines,
// then a fresh slot); gfput unbinds the stack of a dead fiber and caches both; abandon_g gives
// back a G whose callable could not be made. docs/design.md, "The fiber (G) and its checked
// state machine", "Stacks" and "Cold start".
#include <algorithm>
#include <chrono>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

#include "entry.hpp"
#include "sched.hpp"
#include "status.hpp"
#include "switch.hpp"

namespace colony::sched {

namespace {
constexpr int kGfreeMax = 64;             // per-P cache of dead G's (P::gcache)
constexpr std::uint64_t kIdBlock = 1024;  // fiber ids a P reserves at a time
}  // namespace

G* Scheduler::gfget(P* p) noexcept {
  if (!p) return nullptr;
  if (p->ngcache == 0) p->ngcache = garena_.take(p->gcache, kGfreeMax / 2);
  return p->ngcache ? p->gcache[--p->ngcache] : nullptr;
}

void Scheduler::note_released(std::int64_t now) noexcept {
  std::int64_t t = now + std::chrono::nanoseconds(cfg_.stack_trim_after).count();
  if (t < next_trim_.load(std::memory_order_relaxed)) next_trim_.store(t);
}

void Scheduler::bind_stack(P* p, G* g) noexcept {
  StackClass* c = g->stack_class;
  Stack* s = nullptr;
  if (p && c == stacks_.default_class()) {
    if (p->nscache == 0) p->nscache = stacks_.take_magazine(c, p->scache);
    if (p->nscache) s = p->scache[--p->nscache];
  }
  if (!s) {
    try {
      s = stacks_.alloc(c);
    } catch (const std::exception& e) {
      // The spawn that made g returned long ago: there is nobody to throw to.
      fatal(e.what(), g);
    }
  }
  // A cached slot whose header was overwritten: the fiber in the slot above overflowed.
  if (!StackPool::intact(s)) StackPool::report_smashed(s);
  s->owner = g;
  s->trimmed = false;
  g->stack = s;
  g->stack_lo = s->lo;
  char* top = reinterpret_cast<char*>(s);
#if defined(COLONY_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(s->lo, static_cast<std::size_t>(top - s->lo));
  g->asan_stack_bottom = s->lo;
  g->asan_stack_size = static_cast<std::size_t>(top - s->lo);
#endif
  g->ctx = make_context(top, static_cast<std::size_t>(top - s->lo), &fiber_main);
}

void Scheduler::unbind_stack(P* p, G* g) noexcept {
  Stack* s = g->stack;
  if (!s) return;  // never ran
  g->stack = nullptr;
  g->stack_lo = nullptr;
  g->ctx = nullptr;
  s->owner = nullptr;
  if (p && s->cls == stacks_.default_class()) {
    p->scache[p->nscache++] = s;
    if (p->nscache < kGfreeMax) return;
    // Full: the newer half goes to the global cache as one magazine.
    std::int64_t now = coarse_now();
    stacks_.give_magazine(s->cls, p->scache + kGfreeMax / 2, kGfreeMax / 2, now);
    p->nscache = kGfreeMax / 2;
    note_released(now);
    return;
  }
  std::int64_t now = coarse_now();
  stacks_.release(s, now);
  note_released(now);
}

void Scheduler::gfput(P* p, G* g) noexcept {
  set_status(g, GStatus::dead, GStatus::idle);
  unbind_stack(p, g);
  if (!p) {
    garena_.give(&g, 1);
    return;
  }
  p->gcache[p->ngcache++] = g;
  if (p->ngcache < kGfreeMax) return;
  garena_.give(p->gcache + kGfreeMax / 2, kGfreeMax / 2);
  p->ngcache = kGfreeMax / 2;
}

void Scheduler::gf_flush(P* p) noexcept {
  garena_.give(p->gcache, p->ngcache);
  p->ngcache = 0;
  if (p->nscache == 0) return;
  std::int64_t now = coarse_now();
  for (int i = 0; i < p->nscache; i += Magazine::kSize)
    stacks_.give_magazine(stacks_.default_class(), p->scache + i,
                          std::min(Magazine::kSize, p->nscache - i), now);
  p->nscache = 0;
  note_released(now);
}

// new_id: a fresh fiber id, from a block of kIdBlock reserved by p (or one at a time without a P).
std::uint64_t Scheduler::new_id(P* p) noexcept {
  if (!p) return next_id_.fetch_add(1, std::memory_order_relaxed);
  if (p->id_next == p->id_end) {
    p->id_next = next_id_.fetch_add(kIdBlock, std::memory_order_relaxed);
    p->id_end = p->id_next + kIdBlock;
  }
  return p->id_next++;
}

G* Scheduler::new_g(const SpawnOptions& opts, std::size_t fn_size, std::size_t fn_align,
                    void** storage, const colony::SourceLocation& site) {
  if (stopping_.load(std::memory_order_acquire) && !is_unwinding())
    throw std::runtime_error("colony: cannot start a fiber: the runtime has shut down");
  if (opts.stack_size != 0 && (opts.stack_size < 16 * 1024 || opts.stack_size > (std::size_t{1} << 30)))
    throw std::invalid_argument("colony: SpawnOptions::stack_size must be 0 (default) or between "
                                "16 KiB and 1 GiB, got " + std::to_string(opts.stack_size));
  if (fn_align > 4096)
    throw std::invalid_argument("colony: fiber function objects aligned beyond 4096 bytes are not supported");
  StackClass* c = opts.stack_size ? stacks_.class_for(opts.stack_size) : stacks_.default_class();
  M* m = current_m();
  if (m && m->sched != this) m = nullptr;
  RtScope in_rt(m);  // the P is used until the end (entry.hpp)
  P* p = m ? m->p : nullptr;
  G* g = gfget(p);
  if (!g) {
    bool fresh = false;
    g = garena_.alloc(&fresh);
    if (fresh) {
      g->sched = this;
      std::lock_guard<std::mutex> lk(allg_lock_);
      g->allg_next = allg_;
      allg_ = g;
    }
  }
#if defined(COLONY_TSAN)
  if (!g->tsan_fiber) g->tsan_fiber = __tsan_create_fiber(0);
#endif
  g->id.store(new_id(p), std::memory_order_relaxed);
  g->started = false;
  g->stack_class = c;
  g->wait_reason.store(WaitReason::none, std::memory_order_relaxed);
  g->handed_off.store(false, std::memory_order_relaxed);  // its last life may have ended P-less
  g->site_file.store(site.file_name(), std::memory_order_relaxed);
  g->site_function.store(site.function_name(), std::memory_order_relaxed);
  g->site_line.store(site.line(), std::memory_order_relaxed);
  g->eh_caught = nullptr;
  g->eh_uncaught = 0;
  g->asan_fake_stack = nullptr;
  // The callable lives in the G, or on the heap if it is large. The stack comes when the fiber
  // first runs (bind_stack).
  if (fn_size <= G::kFnInline && fn_align <= 64) {
    g->fn = g->fn_buf;
    g->fn_on_heap = false;
  } else {
    try {
      g->fn = ::operator new(fn_size, std::align_val_t{fn_align});
    } catch (...) {
      g->status.store(GStatus::dead, std::memory_order_relaxed);
      gfput(p, g);
      throw;
    }
    g->fn_on_heap = true;
    g->fn_heap_align = static_cast<std::uint16_t>(fn_align);
  }
  *storage = g->fn;
  return g;
}

void Scheduler::abandon_g(G* g) noexcept {
  free_fn(g);
  g->status.store(GStatus::dead, std::memory_order_relaxed);
  M* m = current_m();
  if (!m || m->sched != this) {
    gfput(nullptr, g);
    return;
  }
  RtScope in_rt(m);
  gfput(m->p, g);
}

void Scheduler::start_g(G* g, FiberEntry entry) noexcept {
  g->entry = entry;
  set_status(g, GStatus::idle, GStatus::runnable);
  M* m = current_m();
  if (m && m->sched != this) m = nullptr;
  const bool outer = m && rt_enter(m);
  P* p = m ? m->p : nullptr;
  if (p && !is_unwinding()) {
    p->spawns.inc();
    p->live.store(p->live.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    const bool overflowed = runq_put(p, g, true);
    wakep();
    // A fiber that has spawned more than its P's ring holds yields once, so that this P works
    // through what it queued instead of letting an unbounded number of fibers (and stacks)
    // pile up behind a producer that never blocks. Go gets the same effect from preempting a
    // long-running goroutine; colony cannot preempt, so spawning is the preemption point.
    // It queues behind the fibers it overflowed to the global queue (as Go's Gosched does), so
    // they run before it spawns more, also with a single P.
    if (overflowed && m->curg && !stopping_.load(std::memory_order_relaxed)) {
      p->yields.inc();
      m = switch_out(m, m->curg, After::yield_global, nullptr, nullptr);
    }
    rt_leave(m, outer);
    return;
  }
  if (p) {  // unwinding: counted on the adopting P
    p->live.store(p->live.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    runq_put(p, g, false);
    rt_leave(m, outer);
    return;
  }
  if (m) rt_leave(m, outer);  // handed off (retake.cpp): as from a plain thread
  outside_calls_.fetch_add(1, std::memory_order_acq_rel);  // see ready_g
  outside_live_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(lock_);
    glob_put(&g, 1);
  }
  wakep();
  outside_calls_.fetch_sub(1, std::memory_order_release);
}

// lost_ready: ready_g found g not waiting. While shutdown unwinds, the unwinder may have
// resumed g first (it takes parked fibers from the registry, not from their wait lists, so a
// plain thread can still be notifying one of them): g is being unwound, nothing to do. At any
// other time it is a double ready, a bug.
void Scheduler::lost_ready(G* g) noexcept {
  if (is_unwinding()) return;
  set_status(g, GStatus::waiting, GStatus::runnable);  // reports the status found, and aborts
}

void Scheduler::ready_g(G* g, bool next, std::atomic<bool>* handed) noexcept {
  M* m = current_m();
  if (m && m->sched == this) {
    RtScope in_rt(m);
    if (P* p = m->p) {
      if (handed) handed->store(true, std::memory_order_release);
      // No CAS here: while shutdown unwinds, fibers run only on the unwinding thread, so a
      // fiber readying another cannot race the unwinder (see unwind_all).
      set_status(g, GStatus::waiting, GStatus::runnable);
      runq_put(p, g, next);
      if (!is_unwinding()) wakep();
      return;
    }
    // No P (a fiber whose P was handed off, retake.cpp): as from a plain thread.
  }
  // From outside (a plain thread, or another runtime's fiber): once g is queued it may run,
  // finish the program and have this runtime destroyed while we are still in wakep(). The
  // destructor waits for outside_calls_ to drop to zero, and so does unwind_all before it
  // decides that nothing is left to run.
  outside_calls_.fetch_add(1, std::memory_order_acq_rel);
  // Counted now: this runtime outlives the call, so the unwinding fiber may go on (~Waiter).
  if (handed) handed->store(true, std::memory_order_release);
  if (!ready_status(g)) {
    lost_ready(g);  // still counted: it reads this scheduler, which must not be gone yet
    outside_calls_.fetch_sub(1, std::memory_order_release);
    return;
  }
  {
    std::lock_guard<std::mutex> lk(lock_);
    glob_put(&g, 1);
  }
  wakep();
  outside_calls_.fetch_sub(1, std::memory_order_release);
}

G* new_fiber(Scheduler& s, const SpawnOptions& opts, std::size_t fn_size, std::size_t fn_align,
             void** fn_storage, const colony::SourceLocation& site) {
  return s.new_g(opts, fn_size, fn_align, fn_storage, site);
}
void start_fiber(G* g, FiberEntry entry) noexcept { g->sched->start_g(g, entry); }
void abandon_fiber(G* g) noexcept { g->sched->abandon_g(g); }

}  // namespace colony::sched
