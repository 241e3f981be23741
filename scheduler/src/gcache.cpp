// A fiber's life outside the run queues: new_g carves a G (control block and stack) or takes a
// dead one from the caches (gfget: P::gcache, then the stack pool's magazines), start_g and
// ready_g make it runnable, abandon_g and gfput give it back. docs/design.md, "The fiber (G) and
// its checked state machine" and "Stacks".
#include <algorithm>
#include <chrono>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

#include "sched.hpp"
#include "status.hpp"
#include "switch.hpp"

namespace colony::sched {

namespace {
constexpr int kGfreeMax = 64;             // per-P cache of dead G's (P::gcache)
constexpr std::uint64_t kIdBlock = 1024;  // fiber ids a P reserves at a time
}  // namespace

G* Scheduler::gfget(P* p, StackClass* c) noexcept {
  if (c != stacks_.default_class() || !p) return nullptr;
  if (p->ngcache == 0) p->ngcache = stacks_.take_magazine(c, p->gcache);
  return p->ngcache ? p->gcache[--p->ngcache] : nullptr;
}

void Scheduler::note_released(std::int64_t now) noexcept {
  std::int64_t t = now + std::chrono::nanoseconds(cfg_.stack_trim_after).count();
  if (t < next_trim_.load(std::memory_order_relaxed)) next_trim_.store(t);
}

void Scheduler::gfput(P* p, G* g) noexcept {
  set_status(g, GStatus::dead, GStatus::idle);
  if (p && g->stack_class == stacks_.default_class()) {
    p->gcache[p->ngcache++] = g;
    if (p->ngcache < kGfreeMax) return;
    // Full: the newer half goes to the global cache as one magazine.
    std::int64_t now = coarse_now();
    stacks_.give_magazine(g->stack_class, p->gcache + kGfreeMax / 2, kGfreeMax / 2, now);
    p->ngcache = kGfreeMax / 2;
    note_released(now);
    return;
  }
  std::int64_t now = coarse_now();
  stacks_.release(g, now);
  note_released(now);
}

void Scheduler::gf_flush(P* p) noexcept {
  if (p->ngcache == 0) return;
  std::int64_t now = coarse_now();
  for (int i = 0; i < p->ngcache; i += Magazine::kSize)
    stacks_.give_magazine(stacks_.default_class(), p->gcache + i,
                          std::min(Magazine::kSize, p->ngcache - i), now);
  p->ngcache = 0;
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
  P* p = (m && m->sched == this) ? m->p : nullptr;
  G* g = gfget(p, c);
  if (!g) {
    bool fresh = false;
    g = stacks_.alloc(c, &fresh);
    if (fresh) {
      g->sched = this;
      std::lock_guard<std::mutex> lk(allg_lock_);
      g->allg_next = allg_;
      allg_ = g;
    }
  }
  if (g->magic != kGMagic) StackPool::report_overflow(g, nullptr);
#if defined(COLONY_TSAN)
  if (!g->tsan_fiber) g->tsan_fiber = __tsan_create_fiber(0);
#endif
  g->id.store(new_id(p), std::memory_order_relaxed);
  g->started = false;
  g->trimmed = false;
  g->wait_reason.store(WaitReason::none, std::memory_order_relaxed);
  g->site_file.store(site.file_name(), std::memory_order_relaxed);
  g->site_function.store(site.function_name(), std::memory_order_relaxed);
  g->site_line.store(site.line(), std::memory_order_relaxed);
  g->eh_caught = nullptr;
  g->eh_uncaught = 0;
  g->asan_fake_stack = nullptr;
  // The callable sits just below the control block (or on the heap if it is large).
  char* top = reinterpret_cast<char*>(g);
  char* fn_area;
  if (fn_size <= 1024) {
    auto addr = reinterpret_cast<std::uintptr_t>(top) - fn_size;
    addr &= ~(std::uintptr_t{fn_align} - 1);
    g->fn = reinterpret_cast<void*>(addr);
    g->fn_on_heap = false;
    fn_area = static_cast<char*>(g->fn);
  } else {
    g->fn = ::operator new(fn_size, std::align_val_t{fn_align});
    g->fn_on_heap = true;
    fn_area = top;
  }
  auto sp = reinterpret_cast<std::uintptr_t>(fn_area) & ~std::uintptr_t{63};
  char* sp_top = reinterpret_cast<char*>(sp);
#if defined(COLONY_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(g->stack_lo, static_cast<std::size_t>(top - g->stack_lo));
  g->asan_stack_bottom = g->stack_lo;
  g->asan_stack_size = static_cast<std::size_t>(top - g->stack_lo);
#endif
  g->ctx = make_context(sp_top, static_cast<std::size_t>(sp_top - g->stack_lo), &fiber_main);
  *storage = g->fn;
  return g;
}

void Scheduler::abandon_g(G* g) noexcept {
  if (g->fn_on_heap) ::operator delete(g->fn);
  g->fn = nullptr;
  g->status.store(GStatus::dead, std::memory_order_relaxed);
  M* m = current_m();
  gfput((m && m->sched == this) ? m->p : nullptr, g);
}

void Scheduler::start_g(G* g, FiberEntry entry) noexcept {
  g->entry = entry;
  set_status(g, GStatus::idle, GStatus::runnable);
  M* m = current_m();
  P* p = (m && m->sched == this) ? m->p : nullptr;
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
      switch_out(m, m->curg, After::yield_global, nullptr, nullptr);
    }
    return;
  }
  if (p) {  // unwinding: counted on the adopting P
    p->live.store(p->live.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    runq_put(p, g, false);
    return;
  }
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
  if (m && m->sched == this && m->p) {
    if (handed) handed->store(true, std::memory_order_release);
    // No CAS here: while shutdown unwinds, fibers run only on the unwinding thread, so a fiber
    // readying another cannot race the unwinder (see unwind_all).
    set_status(g, GStatus::waiting, GStatus::runnable);
    runq_put(m->p, g, next);
    if (!is_unwinding()) wakep();
    return;
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
