// Timers: one 4-ary min-heap per P, ordered by `when`, guarded by the P's timer_lock.
// A Timer's state: idle (0) -> pending (1, in a heap) -> running (2, fn executing, out of the
// heap) -> done (3). del_timer removes a pending timer, or waits for a running one to finish,
// so the owner may destroy the Timer as soon as del_timer returns. A timer's fn may add the same
// Timer again (periodic timers); it then goes back to pending. `firing` covers the whole of
// run_timers' use of a timer around fn, re-added or not: del_timer waits for it to clear (unless
// called from within that very fn), because run_timers still touches the timer after fn.
//
// Who runs them: a busy P runs its own expired timers at every scheduling point
// (timers_may_be_due); idle Ms run any P's expired timers before stealing. Exactly one idle M at
// a time (timer_m_) sleeps with a timeout, until the earliest timer of all Ps; adding an earlier
// timer wakes it, and adding a timer with no such sleeper calls wakep(). So a timer on a P whose
// fiber runs for a long time without yielding still fires on time when another P is idle.
#include <time.h>

#include <algorithm>
#include <stdexcept>

#include "entry.hpp"
#include "sched.hpp"

namespace colony::sched {
namespace {

constexpr std::uint8_t kIdle = 0, kPending = 1, kRunning = 2, kDone = 3;

// firing_here: whether the calling thread is running t's fn (M::firing: timers run only on
// Ms, so a plain thread never is). If so, the fn is deleting its own timer, and its owner may
// free it as soon as del_timer returns (a context's deadline timer, freed with the context
// that its cancel released last). So run_timers must not touch it after fn (M::firing_deleted),
// and what it would have done is done here: the state leaves running, `firing` clears.
bool firing_here(Timer* t) noexcept {
  M* m = current_m();
  if (!m || m->firing != t) return false;
  std::uint8_t running = kRunning;
  t->state.compare_exchange_strong(running, kDone, std::memory_order_acq_rel);
  t->firing.store(0, std::memory_order_release);
  m->firing_deleted = true;
  return true;
}

void wait_not_firing(Timer* t) noexcept {
  if (!t->firing.load(std::memory_order_acquire)) return;
  if (firing_here(t)) return;  // del_timer from the timer's own fn
  while (t->firing.load(std::memory_order_acquire)) spin_pause();
}

// coarse_slack: how far coarse_now() may trail nanotime() as far as timers_may_be_due trusts
// it. The coarse clock is the monotonic clock as of the kernel's last tick, so it trails by
// about one tick (its resolution: 4 ms at HZ=250); a late tick on a busy VM was seen at 6.5 ms.
// Five ticks, at least 10 ms. (A function-local static: fibers may run during static
// initialisation of other files.)
std::int64_t coarse_slack() noexcept {
  static const std::int64_t slack = [] {
    timespec res{};
    std::int64_t tick = 4'000'000;
    if (::clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0)
      tick = std::int64_t{res.tv_sec} * 1000000000 + res.tv_nsec;
    return std::clamp<std::int64_t>(5 * tick, 10'000'000, 50'000'000);
  }();
  return slack;
}

using Heap = std::vector<P::TimerEntry>;

// sift_up / sift_down read only the heap array; each move records the moved entry's new
// position in the slot table (pos), never in the Timer itself. sift_down also prefetches the
// timers it moves up (tof: the slot table's timers): they are the ones due next, each on the
// stack of a fiber asleep for a while and long out of cache, and loading them now overlaps
// those misses instead of stalling on each at the root. Why, and the alternatives measured:
// docs/design.md, "Timers".
void sift_up(Heap& h, std::int32_t* pos, std::size_t i) {
  const P::TimerEntry e = h[i];
  while (i > 0) {
    std::size_t parent = (i - 1) / 4;
    if (h[parent].when <= e.when) break;
    h[i] = h[parent];
    pos[h[i].slot] = static_cast<std::int32_t>(i);
    i = parent;
  }
  h[i] = e;
  pos[e.slot] = static_cast<std::int32_t>(i);
}

void sift_down(Heap& h, std::int32_t* pos, Timer* const* tof, std::size_t i) {
  const std::size_t n = h.size();
  const P::TimerEntry e = h[i];
  for (;;) {
    std::size_t c = 4 * i + 1;
    if (c >= n) break;
    std::size_t best = c;
    const std::size_t end = std::min(c + 4, n);
    for (std::size_t k = c + 1; k < end; ++k)
      if (h[k].when < h[best].when) best = k;
    if (h[best].when >= e.when) break;
    h[i] = h[best];
    pos[h[i].slot] = static_cast<std::int32_t>(i);
    __builtin_prefetch(tof[h[i].slot], 1, 3);
    i = best;
  }
  h[i] = e;
  pos[e.slot] = static_cast<std::int32_t>(i);
}

// heap_insert: t into p's heap, in a free slot. Precondition: p->timer_lock held.
void heap_insert(P* p, Timer* t) {
  std::uint32_t slot;
  if (p->timer_free >= 0) {
    slot = static_cast<std::uint32_t>(p->timer_free);
    p->timer_free = -2 - p->timer_pos[slot];
    p->timer_of[slot] = t;
  } else {
    slot = static_cast<std::uint32_t>(p->timer_of.size());
    p->timer_of.push_back(t);
    p->timer_pos.push_back(-1);
  }
  t->slot = static_cast<std::int32_t>(slot);
  p->timers.push_back({t->when, slot});
  sift_up(p->timers, p->timer_pos.data(), p->timers.size() - 1);
}

// Precondition: p->timer_lock held and t in p's heap.
void heap_remove(P* p, Timer* t) {
  auto& h = p->timers;
  std::int32_t* pos = p->timer_pos.data();
  const std::uint32_t slot = static_cast<std::uint32_t>(t->slot);
  const std::size_t i = static_cast<std::size_t>(pos[slot]);
  const P::TimerEntry last = h.back();
  h.pop_back();
  if (last.slot != slot) {
    h[i] = last;
    sift_down(h, pos, p->timer_of.data(), i);
    sift_up(h, pos, static_cast<std::size_t>(pos[last.slot]));
  }
  pos[slot] = -2 - p->timer_free;  // onto the free list (no allocation: del_timer is noexcept)
  p->timer_free = static_cast<std::int32_t>(slot);
  p->timer_of[slot] = nullptr;
  t->slot = -1;
  t->heap.store(nullptr, std::memory_order_relaxed);
  p->timer0_when.store(h.empty() ? INT64_MAX : h[0].when, std::memory_order_release);
}

}  // namespace

std::int64_t nanotime() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

void Scheduler::add_timer_locked(P* p, Timer* t) noexcept {
  t->state.store(kPending, std::memory_order_relaxed);
  t->heap.store(p, std::memory_order_release);
  heap_insert(p, t);
  p->timer0_when.store(p->timers[0].when, std::memory_order_seq_cst);  // see earliest_timer
}

void Scheduler::add_timer(Timer* t) {
  if (!t->fn) throw std::invalid_argument("colony: a timer needs a function");
  if (t->heap.load(std::memory_order_acquire))
    throw std::logic_error("colony: timer added twice");
  M* m = current_m();
  if (m && m->sched != this) m = nullptr;
  RtScope in_rt(m);  // m->p is read, and its timer heap locked (entry.hpp)
  P* p = (m && m->p) ? m->p
                     : allp_[timer_rr_.fetch_add(1, std::memory_order_relaxed) %
                             static_cast<std::uint32_t>(nprocs_)].get();
  // Once in the heap the timer may fire, and its owner free it, at any moment: read it first.
  const std::int64_t when = t->when;
  {
    std::lock_guard<SpinLock> lk(p->timer_lock);
    add_timer_locked(p, t);
  }
  timers_changed(when);
}

// timers_changed: a timer due at `when` was added. Make sure some M will be awake by then.
void Scheduler::timers_changed(std::int64_t when) noexcept {
  std::int64_t until = timer_m_until_.load();  // seq_cst: after the timer0_when store
  if (when >= until) return;  // the timer sleeper wakes up early enough
  if (until == INT64_MAX) {   // no M sleeps on timers: make sure one looks
    wakep();
    return;
  }
  std::lock_guard<std::mutex> lk(lock_);
  if (timer_m_ && when < timer_m_until_.load()) {
    M* tm = timer_m_;
    timer_m_ = nullptr;
    timer_m_until_.store(INT64_MAX);
    wake_m(tm);  // it leaves the idle list itself and re-evaluates
  }
}

// timers_may_be_due: whether a busy P should read the clock and run its expired timers at this
// scheduling point. The precise clock is dear to read at every switch and the coarse clock is
// cheap (docs/design.md, "Timers", has the figures), so the precise clock is read only when the
// earliest timer is within coarse_slack() of the coarse time, and at every 61st tick whatever
// the coarse clock says (a tick later than the slack then delays a timer by at most 61
// scheduling rounds, not until the next tick).
// When the earliest timer was already that close at this P's last precise read (timers_read_at),
// the coarse read is skipped: a P that fires timers all the time (a sleep-heavy load) pays
// nothing extra. Called by p's owner only.
bool Scheduler::timers_may_be_due(P* p) noexcept {
  const std::int64_t w = p->timer0_when.load(std::memory_order_relaxed);
  if (w == INT64_MAX) return false;
  const std::int64_t near = w - coarse_slack();
  return near <= p->timers_read_at || near <= coarse_now() || p->schedtick % 61 == 0;
}

std::int64_t Scheduler::run_own_timers(P* p) noexcept {
  const std::int64_t now = nanotime();
  p->timers_read_at = now;
  return run_timers(p, now);
}

std::int64_t Scheduler::run_timers(P* p, std::int64_t now) noexcept {
  if (p->timer0_when.load(std::memory_order_acquire) > now) return now;
  M* m = current_m();  // never null: timers run on Ms (a fiber's, or g0 looking for work)
  for (;;) {
    Timer* t;
    {
      std::lock_guard<SpinLock> lk(p->timer_lock);
      if (p->timers.empty() || p->timers[0].when > now) break;
      t = p->timer_of[p->timers[0].slot];
      t->state.store(kRunning, std::memory_order_relaxed);
      t->firing.store(1, std::memory_order_relaxed);
      heap_remove(p, t);
    }
    void (*release)(Timer*) = t->release;
    m->firing = t;
    m->firing_deleted = false;
    t->fn(t);
    m->firing = nullptr;
    if (m->firing_deleted) {  // fn deleted its own timer: it may be freed already
      if (release) release(t);  // unless it owns itself, and then only release frees it
      if (m->p) m->p->timers_fired.inc();
      continue;
    }
    std::uint8_t running = kRunning;
    t->state.compare_exchange_strong(running, kDone, std::memory_order_acq_rel);
    t->firing.store(0, std::memory_order_release);  // the last touch: del_timer may return now
    // t may be gone now, unless it owns itself.
    if (release) release(t);
    if (m && m->p) m->p->timers_fired.inc();
  }
  return now;
}

std::int64_t Scheduler::earliest_timer() const noexcept {
  std::int64_t w = INT64_MAX;
  // seq_cst, pairing with the seq_cst store in add_timer_locked: an M that has stopped spinning
  // and reads no timer here was still counted as spinning by the adder's wakep(), or sees it.
  for (const auto& p : allp_) w = std::min(w, p->timer0_when.load(std::memory_order_seq_cst));
  return w;
}

void add_timer(Timer* t) { current_or_default().add_timer(t); }

bool del_timer(Timer* t) noexcept {
  for (;;) {
    if (void* h = t->heap.load(std::memory_order_acquire)) {
      P* p = static_cast<P*>(h);
      {
        std::lock_guard<SpinLock> lk(p->timer_lock);
        if (t->heap.load(std::memory_order_relaxed) != p) continue;
        heap_remove(p, t);
        t->state.store(kIdle, std::memory_order_release);
      }
      wait_not_firing(t);  // its fn re-added it and run_timers is not done with it yet
      return true;
    }
    std::uint8_t st = t->state.load(std::memory_order_acquire);
    if (st == kRunning) {
      if (firing_here(t)) return false;  // from within its own fn, which did not re-add it
      spin_pause();
      continue;
    }
    if (st == kPending) continue;  // being re-added by its own fn
    wait_not_firing(t);
    return false;
  }
}

}  // namespace colony::sched
