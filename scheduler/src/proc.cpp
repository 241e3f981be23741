// Processors and threads: the M lifecycle, the search for work, the parking and unparking of
// idle Ms, and the hand-off of a P around a blocking call. This is the scheduler's overview;
// docs/design.md tells it at length, and sched.hpp says which file holds what.
//
// G is a fiber, M an OS thread, P a processor: the right to run fibers. There are exactly
// max_procs Ps; an M must hold a P to run fibers. Each P has a bounded lock-free run queue and a
// `runnext` slot; a global run queue (under lock_) takes overflow and fibers readied from plain
// threads. Ms are started on demand and parked when idle, never destroyed before shutdown.
// A fiber that blocks or yields jumps straight to the next fiber of its P (switch.cpp); only
// when the local queue is empty does it jump to its M's g0, which runs the full search below.
//
// Finding work (find_runnable, on g0): own timers; runnext and the local queue (the global queue
// first every 61st tick, for fairness); the global queue; expired timers of other Ps; stealing
// half of a random victim's queue (4 rounds; runnext only in the last); then give up the P and
// park the M. An M that steals is "spinning"; at most half the busy Ps' worth of Ms spin.
//
// Worker parking and unparking (the delicate dance, as in proc.go). We must not lose a wake-up
// when an M parks while another thread readies a fiber, and we must not keep more Ms awake than
// can be useful. The rule: ready() and start_fiber() put the fiber in a queue and then call
// wakep(), which unparks an M only if there is an idle P and no M is spinning. A spinning M that
// finds nothing releases its P, decrements nmspinning_ and THEN re-checks every P's queue (and
// the global queue); if it finds work it takes an idle P and spins again. For the global queue
// (fibers readied from plain threads) the readier's push (seq_cst RMW on runq_size_) and load of
// nmspinning_, and the spinner's decrement and re-check, are seq_cst, so at least one sees the
// other: either the readier sees no spinner and wakes an M, or the spinner sees the fiber. A
// fiber readied onto the readier's own P needs no such guarantee: that P's M (awake, running
// the readier) runs it anyway, so a missed wake-up costs parallelism, never the fiber; wakep()
// therefore carries no fence on that hot path (as in Go). A spinning M that finds work stops
// spinning and, if it was the last spinner, wakes another (reset_spinning), so bursts of new
// work are picked up by more Ms.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include <unistd.h>

#include "entry.hpp"
#include "sched.hpp"
#include "status.hpp"
#include "switch.hpp"

namespace colony::sched {

// ---------------------------------------------------------------------------------------------
// The M lifecycle: mstart, the g0 loop, and Ps handed to and from Ms (under lock_).

void Scheduler::mstart(M* m) {
  set_current_m(m);
  m->tid = static_cast<int>(::gettid());
  m->eh = eh_globals();
  StackPool::setup_thread_altstack();
#if defined(COLONY_TSAN)
  m->g0.tsan_fiber = __tsan_get_current_fiber();
#endif
  {
    std::lock_guard<std::mutex> lk(lock_);
    acquirep(m, m->nextp);
    m->nextp = nullptr;
  }
  schedule(m);
  {
    std::lock_guard<std::mutex> lk(lock_);
    if (m->p) pidle_put(releasep(m));
  }
  set_current_m(nullptr);
  m->exited.store(true, std::memory_order_release);
}

void Scheduler::schedule(M* m) {
  for (;;) {
    if (!m->p) {  // the fiber came back from a blocking call and found no P: it is queued
      stopm(m, earliest_timer());
      if (!m->p) return;  // stopping
    }
    G* g = find_runnable(m);
    if (!g) return;
    if (m->spinning) reset_spinning(m);
    execute(m, g);
  }
}

// acquirep / releasep: under lock_ (sysmon reads P::m under it to find the M to retake from).
void Scheduler::acquirep(M* m, P* p) noexcept {
  m->p = p;
  p->m = m;
}

P* Scheduler::releasep(M* m) noexcept {
  P* p = m->p;
  p->m = nullptr;
  m->p = nullptr;
  return p;
}

P* Scheduler::pidle_get() noexcept {
  P* p = pidle_;
  if (p) {
    pidle_ = p->link;
    p->link = nullptr;
    p->idle = false;
    npidle_.fetch_sub(1);
    deadlock_epoch_bump();  // a fiber may run: a deadlock check in progress must start over
    // A P gets busy: sysmon watches again. After the seq_cst decrement: sysmon stores
    // sysmon_idle_ and then reads npidle_, so one of the two sees the other. (startm used to
    // check before taking the P, and Ms that take a P on their own not at all: sysmon could
    // sleep 50 ms with a P busy, delaying long-run reports and retakes.)
    if (sysmon_idle_.load(std::memory_order_seq_cst)) {
      sysmon_idle_.store(false, std::memory_order_relaxed);
      sysmon_note_.wakeup();
    }
  }
  return p;
}

void Scheduler::pidle_put(P* p) noexcept {
  gf_flush(p);
  p->idle = true;
  p->link = pidle_;
  pidle_ = p;
  npidle_.fetch_add(1);
}

M* Scheduler::midle_get() noexcept {
  M* m = midle_;
  if (m) {
    midle_ = m->link;
    m->link = nullptr;
    m->idle = false;
    if (m == timer_m_) {
      timer_m_ = nullptr;
      timer_m_until_.store(INT64_MAX);
    }
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Waking and parking Ms.

// wake_m: wake an idle M (m->park), and interrupt its epoll_wait if it is the poller M.
void Scheduler::wake_m(M* m) noexcept {
  m->park.wakeup();
  if (netpoll_m_.load(std::memory_order_seq_cst) == m) netpoll_break();
}

void Scheduler::ensure_poller() noexcept {
  if (netpoll_m_.load() == nullptr) wakep();  // an M with nothing to do becomes the poller
}

// startm: run an M on P `p` (or on an idle P if null). Called with nmspinning_ already
// incremented when `spinning`.
void Scheduler::startm(P* p, bool spinning) noexcept {
  std::unique_lock<std::mutex> lk(lock_);
  if (!p) p = pidle_get();
  if (!p || stopping_.load(std::memory_order_relaxed)) {
    if (p) pidle_put(p);
    lk.unlock();
    if (spinning) nmspinning_.fetch_sub(1);
    return;
  }

  if (M* m = midle_get()) {
    m->spinning = spinning;
    m->nextp = p;
    lk.unlock();
    wake_m(m);
    return;
  }
  auto nm = std::make_unique<M>();
  M* m = nm.get();
  m->id = static_cast<int>(allm_.size());
  m->sched = this;
  m->g0.is_g0 = true;
  m->g0.sched = this;
  m->rng = 0xD1B54A32D192ED03ull * static_cast<std::uint64_t>(m->id + 1);
  m->spinning = spinning;
  m->nextp = p;
  allm_.push_back(std::move(nm));
  try {
    m->thread = std::thread([this, m] { mstart(m); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "colony: fatal: cannot start a scheduler thread: %s\n", e.what());
    std::abort();
  }
}

void Scheduler::wakep() noexcept {
  if (npidle_.load() == 0 || nmspinning_.load() != 0) return;
  int expected = 0;
  if (!nmspinning_.compare_exchange_strong(expected, 1)) return;
  startm(nullptr, true);
}

void Scheduler::reset_spinning(M* m) noexcept {
  m->spinning = false;
  int n = nmspinning_.fetch_sub(1) - 1;
  if (n < 0) fatal("negative spinning M count", nullptr);
  // The last spinner found work: there may be more, so let another M look.
  if (n == 0 && npidle_.load() > 0) wakep();
}

// stopm: park the M until startm hands it a P, or (if it is the timer sleeper) until `until`.
// Returns with a P held, or without one if the scheduler is stopping.
void Scheduler::stopm(M* m, std::int64_t until) noexcept {
  for (;;) {
    bool timed, poll;
    {
      std::lock_guard<std::mutex> lk(lock_);
      if (stopping_.load()) return;
      m->park.clear();
      timed = until != INT64_MAX && pidle_ != nullptr &&
              (timer_m_ == nullptr || until < timer_m_until_.load());
      if (timed) {
        timer_m_ = m;
        timer_m_until_.store(until);
      }
      // Fibers or threads wait on I/O and nobody polls: this M blocks in epoll_wait instead.
      poll = io_waiters_.load() > 0 && poller_.load() != nullptr && netpoll_m_.load() == nullptr;
      if (poll) netpoll_m_.store(m);
      m->idle = true;
      m->link = midle_;
      midle_ = m;
    }
    // The last M to go idle may find the runtime dead (deadlock.cpp). A wake-up meanwhile is
    // not lost: park.clear() came first.
    if (npidle_.load(std::memory_order_relaxed) == nprocs_)
      if (std::function<void()> hook = check_dead()) hook();
    if (poll) {
      // woken() after netpoll_m_ was set: a wake_m that missed netpoll_m_ has set the note.
      if (!m->park.woken()) netpoll(timed ? until : INT64_MAX);
    } else if (timed) {
      m->park.sleep_until(until);
    } else {
      m->park.sleep();
    }
    P* p = nullptr;
    {
      std::lock_guard<std::mutex> lk(lock_);
      if (netpoll_m_.load() == m) netpoll_m_.store(nullptr);
      if (m->nextp) {  // startm handed us a P (and took us off the idle list)
        acquirep(m, m->nextp);
        m->nextp = nullptr;
        return;
      }
      if (m->idle) {  // timeout, timer change or shutdown: leave the idle list ourselves
        for (M** pp = &midle_; *pp; pp = &(*pp)->link) {
          if (*pp == m) {
            *pp = m->link;
            break;
          }
        }
        m->idle = false;
        m->link = nullptr;
      }
      if (timer_m_ == m) {
        timer_m_ = nullptr;
        timer_m_until_.store(INT64_MAX);
      }
      if (netpoll_m_.load() == m) netpoll_m_.store(nullptr);
      if (stopping_.load()) return;
      p = pidle_get();
      if (p) acquirep(m, p);  // under lock_: sysmon reads P::m (retake.cpp)
    }
    if (p) return;
    until = earliest_timer();
  }
}

// ---------------------------------------------------------------------------------------------
// Finding work (see the top of the file).

G* Scheduler::find_runnable(M* m) {
top:
  if (stopping_.load(std::memory_order_acquire)) return nullptr;
  P* p = m->p;
  if (G* g = pick_local(p)) return g;
  if (runq_size_.load(std::memory_order_relaxed) > 0) {
    std::lock_guard<std::mutex> lk(lock_);
    if (G* g = glob_get(p, 0)) {
      ++p->schedtick;
      return g;
    }
  }
  // Fibers wait on I/O and no M blocks in epoll_wait: poll, without blocking.
  if (io_waiters_.load(std::memory_order_relaxed) > 0 &&
      netpoll_m_.load(std::memory_order_relaxed) == nullptr && netpoll(0) > 0)
    goto top;
  // Steal, if not too many Ms are at it already.
  if (m->spinning || 2 * nmspinning_.load() < nprocs_ - npidle_.load()) {
    if (!m->spinning) {
      m->spinning = true;
      nmspinning_.fetch_add(1);
    }
    bool ran_timers = false;
    if (G* g = steal_work(m, nanotime(), &ran_timers)) {
      ++p->schedtick;
      return g;
    }
    if (ran_timers) goto top;
  }
  // Nothing to do: give up the P.
  {
    std::lock_guard<std::mutex> lk(lock_);
    if (stopping_.load()) return nullptr;
    if (runq_size_.load() > 0) {
      if (G* g = glob_get(p, 0)) {
        ++p->schedtick;
        return g;
      }
    }
    pidle_put(releasep(m));
  }
  if (m->spinning) {
    m->spinning = false;
    nmspinning_.fetch_sub(1);
    // The delicate dance: re-check after dropping the spinning count (see the top of the file).
    if (any_runq_nonempty()) {
      P* p2;
      {
        std::lock_guard<std::mutex> lk(lock_);
        p2 = pidle_get();
        if (p2) acquirep(m, p2);
      }
      if (p2) {
        m->spinning = true;
        nmspinning_.fetch_add(1);
        goto top;
      }
    }
  }
  // Sleep until the next timer (or stack trim), or until handed a P.
  std::int64_t until = std::min(earliest_timer(), next_trim_.load());
  std::int64_t now = nanotime();
  if (next_trim_.load() <= now) {
    std::int64_t cutoff = now - std::chrono::nanoseconds(cfg_.stack_trim_after).count();
    std::int64_t earliest = stacks_.trim(cutoff);
    next_trim_.store(earliest == INT64_MAX
                         ? INT64_MAX
                         : earliest + std::chrono::nanoseconds(cfg_.stack_trim_after).count());
    until = std::min(earliest_timer(), next_trim_.load());
  }
  if (until <= now) {
    P* p2;
    {
      std::lock_guard<std::mutex> lk(lock_);
      p2 = pidle_get();
      if (p2) acquirep(m, p2);
    }
    if (p2) goto top;
  }
  stopm(m, until);
  if (!m->p) return nullptr;  // stopping
  goto top;
}

// ---------------------------------------------------------------------------------------------
// Blocking calls: the hand-off of the P (Go's entersyscall / exitsyscall and handoffp).

void Scheduler::enter_blocking(M* m) {
  P* p;
  bool handoff;
  {
    std::lock_guard<std::mutex> lk(lock_);
    if (cfg_.max_threads > 0 && blocking_ + nprocs_ >= cfg_.max_threads)
      throw std::system_error(
          std::make_error_code(std::errc::resource_unavailable_try_again),
          "colony::blocking: " + std::to_string(blocking_) +
              " fibers are already in blocking calls (Config::max_threads = " +
              std::to_string(cfg_.max_threads) + ")");
    ++blocking_;
    p = releasep(m);
    p->cur.store(nullptr, std::memory_order_relaxed);
    m->curg->handed_off.store(true, std::memory_order_relaxed);
    // Go's handoffp: a P with fibers queued or timers pending gets an M now; else it idles.
    handoff = !p->runq.empty() || p->runnext.load() != nullptr || runq_size_.load() > 0 ||
              p->timer0_when.load() != INT64_MAX;
    if (!handoff) pidle_put(p);
  }
  if (handoff) startm(p, false);
}

void Scheduler::exit_blocking(M* m, G* self) noexcept {
  {
    std::lock_guard<std::mutex> lk(lock_);
    if (P* p = pidle_get()) {
      --blocking_;
      acquirep(m, p);
      p->cur.store(self, std::memory_order_release);
      p->switches.inc();  // a new run, as far as sysmon is concerned
      self->handed_off.store(false, std::memory_order_relaxed);
      return;
    }
  }
  // Every P is busy: wait for one in the global queue, and let this M go idle. The fiber still
  // counts in blocking_ until it is in the queue (finish_switch does both under lock_):
  // otherwise, should every P go idle meanwhile, deadlock detection would see a runtime with
  // nothing running, nothing queued and nothing blocked, and report a fiber that is about to run.
  m->curg = nullptr;
  Post post{self, After::blocked_return, nullptr, nullptr};
  ctx::transfer_t t = jump(self, &m->g0, &post, false, m->eh);
  finish_switch(current_m(), self, t);
  self->handed_off.store(false, std::memory_order_relaxed);
}

void enter_blocking() {
  M* m = current_m();
  if (!m || !m->curg || m->sched->is_unwinding()) return;
  RtScope in_rt(m);
  // No P: it counts in blocking_ already (sysmon handed the P off, retake.cpp, or this is a
  // blocking call nested in another).
  if (m->p) m->sched->enter_blocking(m);
}

void exit_blocking() noexcept {
  M* m = current_m();
  if (!m || !m->curg || m->sched->is_unwinding()) return;
  const bool outer = rt_enter(m);
  // A fiber holds a P again already if the call parked (and was resumed on a P) or held a
  // nested blocking call, whose exit took one: it no longer counts in blocking_. A fiber
  // without a P counts exactly once (enter_blocking or a retake) until something gives it one.
  if (!m->p) m->sched->exit_blocking(m, m->curg);
  rt_leave(current_m(), outer);
}

// ---------------------------------------------------------------------------------------------
// fastrand (fiber.hpp): the M's xorshift. Only the M's own thread reads and writes M::rng (its
// g0 to steal, its fibers here), and a fiber does not switch in the middle of one call.

namespace {
// Plain threads: a Weyl sequence shared by all of them (one relaxed fetch_add, no thread_local),
// mixed by splitmix64's finaliser, a bijection: no two calls get the same value until it wraps.
std::atomic<std::uint64_t> g_fastrand_seq{0};
}  // namespace

std::uint64_t fastrand() noexcept {
  if (M* m = current_m()) return xorshift(m->rng);
  constexpr std::uint64_t kGamma = 0x9E3779B97F4A7C15ull;
  std::uint64_t z = g_fastrand_seq.fetch_add(kGamma, std::memory_order_relaxed) + kGamma;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace colony::sched
