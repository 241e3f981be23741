// The colony scheduler: Go's G-P-M design on Boost.Context fibers.
//
// G is a fiber, M an OS thread, P a processor: the right to run fibers. There are exactly
// max_procs Ps; an M must hold a P to run fibers. Each P has a bounded lock-free run queue and a
// `runnext` slot; a global run queue (under lock_) takes overflow and fibers readied from plain
// threads. Ms are started on demand and parked when idle, never destroyed before shutdown.
//
// Switching. A fiber that blocks or yields does not go through the M's scheduler context (g0)
// when its own P has other work: it picks the next fiber itself and jumps straight to it
// (switch_out). What the old fiber wanted done once it is off its stack (put it back in the run
// queue, release the lock of the queue it waits in, free its stack) travels with the jump as a
// Post record and is carried out by whoever lands (finish_switch). This is Go's
// gopark/park_m and Boost.Fiber's resume_with: park first, unlock second, so no waker on another
// thread can resume a fiber whose stack is still in use. Only when the local queue is empty does
// the fiber jump to g0, which runs the full search (find_runnable) and may park the M.
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
// therefore carries no fence on that hot path (as in Go). A spinning M that finds work stops spinning and, if it was the last
// spinner, wakes another (reset_spinning), so bursts of new work are picked up by more Ms.
//
// Timers live in per-P heaps. A busy P runs its own expired timers at every scheduling point;
// idle Ms run any P's expired timers before stealing. Exactly one idle M at a time (timer_m_)
// sleeps with a timeout, until the earliest timer of all Ps; adding an earlier timer wakes it,
// and adding a timer with no such sleeper calls wakep(). So a timer on a P whose fiber runs for
// a long time without yielding still fires on time when another P is idle.
//
// Lock order: lock_ -> P::timer_lock -> StackClass::lock; allg_lock_ is a leaf.
// No scheduler lock is ever held across a fiber switch.
#include "sched.hpp"

#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>

#include "status.hpp"
#include "switch.hpp"

namespace colony::sched {

namespace {

int resolve_procs(int requested) {
  if (requested < 0)
    throw std::invalid_argument("colony: Config::max_procs must be >= 0 (0 = automatic), got " +
                                std::to_string(requested));
  if (requested == 0) {
    if (const char* env = std::getenv("COLONY_MAXPROCS"); env && *env) {
      char* end = nullptr;
      long v = std::strtol(env, &end, 10);
      if (*end != '\0' || v <= 0 || v > 4096)
        throw std::invalid_argument(std::string("colony: COLONY_MAXPROCS must be an integer in "
                                                "[1, 4096], got '") + env + "'");
      return static_cast<int>(v);
    }
    unsigned hw = std::thread::hardware_concurrency();
    return hw ? static_cast<int>(hw) : 1;
  }
  if (requested > 4096)
    throw std::invalid_argument("colony: Config::max_procs must be <= 4096, got " +
                                std::to_string(requested));
  return requested;
}

void validate(const Config& cfg) {
  if (cfg.stack_size < 16 * 1024 || cfg.stack_size > (std::size_t{1} << 30))
    throw std::invalid_argument("colony: Config::stack_size must be between 16 KiB and 1 GiB, got " +
                                std::to_string(cfg.stack_size));
  if (cfg.stack_guard_size > (std::size_t{64} << 20))
    throw std::invalid_argument("colony: Config::stack_guard_size must be at most 64 MiB, got " +
                                std::to_string(cfg.stack_guard_size));
  if (cfg.guard_page_budget < -1)
    throw std::invalid_argument("colony: Config::guard_page_budget must be -1 (automatic) or >= 0");
  if (cfg.stack_trim_after.count() < 0)
    throw std::invalid_argument("colony: Config::stack_trim_after must not be negative");
}

}  // namespace

void fatal(const char* msg, const G* g) noexcept {
  std::fprintf(stderr, "colony: fatal: %s (fiber %" PRIu64 ")\n", msg, g ? g_id(g) : 0);
  std::abort();
}

std::string_view to_string(GStatus s) noexcept {
  switch (s) {
    case GStatus::idle: return "idle";
    case GStatus::runnable: return "runnable";
    case GStatus::running: return "running";
    case GStatus::waiting: return "waiting";
    case GStatus::dead: return "dead";
  }
  return "?";
}

std::string_view to_string(WaitReason r) noexcept {
  switch (r) {
    case WaitReason::none: return "";
    case WaitReason::sleep: return "sleep";
    case WaitReason::future: return "future wait";
    case WaitReason::chan_receive: return "chan receive";
    case WaitReason::chan_send: return "chan send";
    case WaitReason::chan_receive_nil: return "chan receive (nil chan)";
    case WaitReason::chan_send_nil: return "chan send (nil chan)";
    case WaitReason::select: return "select";
    case WaitReason::select_no_cases: return "select (no cases)";
    case WaitReason::mutex: return "mutex";
    case WaitReason::rwmutex_read: return "rwmutex read";
    case WaitReason::rwmutex_write: return "rwmutex write";
    case WaitReason::cond: return "cond wait";
    case WaitReason::waitgroup: return "waitgroup";
    case WaitReason::semaphore: return "semaphore";
    case WaitReason::once: return "once";
    case WaitReason::io: return "IO wait";
    case WaitReason::pool: return "pool worker wait";
    case WaitReason::event: return "event wait";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Construction and the M lifecycle.

Scheduler::Scheduler(const Config& cfg)
    : cfg_((validate(cfg), cfg)),
      nprocs_(resolve_procs(cfg.max_procs)),
      stacks_(cfg.stack_size, cfg.guard_page_budget, cfg.stack_guard_size) {
  StackPool::install_overflow_handler();
  allp_.reserve(static_cast<std::size_t>(nprocs_));
  for (int i = 0; i < nprocs_; ++i) {
    auto p = std::make_unique<P>();
    p->id = i;
    p->rng = 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(i + 1);
    allp_.push_back(std::move(p));
  }
  // All Ps start idle; the first ready fiber's wakep() starts an M.
  {
    std::lock_guard<std::mutex> lk(lock_);
    for (int i = nprocs_ - 1; i >= 0; --i) pidle_put(allp_[static_cast<std::size_t>(i)].get());
  }
  register_scheduler(this, true);
  sysmon_ = std::thread([this] { sysmon(); });
  sysmon_started_.sleep();
}

Scheduler::~Scheduler() {
  register_scheduler(this, false);
  set_deadlock_hook(nullptr);
  if (!shutdown(-1)) return;  // not reached: an unbounded shutdown always completes
  // A plain thread that readied or started a fiber may still be finishing that call (its
  // wakep()) although the fiber it readied has long run: let it leave first.
  while (outside_calls_.load(std::memory_order_acquire) != 0) ::sched_yield();
  destroy_poller();
#if defined(COLONY_TSAN)
  for_each_g([](G* g) {
    if (g->tsan_fiber) __tsan_destroy_fiber(g->tsan_fiber);
  });
#endif
}

void Scheduler::mstart(M* m) {
  set_current_m(m);
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
  if (sysmon_idle_.load(std::memory_order_seq_cst)) {  // a P gets busy: sysmon watches again
    sysmon_idle_.store(false, std::memory_order_relaxed);
    sysmon_note_.wakeup();
  }
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
    }
    if (p) {
      acquirep(m, p);
      return;
    }
    until = earliest_timer();
  }
}

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
      }
      if (p2) {
        acquirep(m, p2);
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
    }
    if (p2) {
      acquirep(m, p2);
      goto top;
    }
  }
  stopm(m, until);
  if (!m->p) return nullptr;  // stopping
  goto top;
}

std::int64_t Scheduler::live_fibers() const noexcept {
  std::int64_t n = outside_live_.load(std::memory_order_relaxed);
  for (const auto& p : allp_) n += p->live.load(std::memory_order_relaxed);
  return n;
}

std::vector<ProcStats> Scheduler::proc_stats() const {
  std::vector<ProcStats> out;
  for (const auto& p : allp_) {
    ProcStats s;
    s.switches = p->switches.get();
    s.parks = p->parks.get();
    s.yields = p->yields.get();
    s.steals = p->steals.get();
    s.stolen = p->stolen.get();
    s.spawns = p->spawns.get();
    s.global_gets = p->global_gets.get();
    s.timers_fired = p->timers_fired.get();
    out.push_back(s);
  }
  return out;
}

int Scheduler::num_threads() const noexcept {
  auto* self = const_cast<Scheduler*>(this);
  std::lock_guard<std::mutex> lk(self->lock_);
  return static_cast<int>(allm_.size());
}

void Scheduler::panic(G* g, std::exception_ptr e) noexcept {
  if (cfg_.on_panic) {
    try {
      cfg_.on_panic(e, g_id(g));
      return;
    } catch (...) {
      std::fprintf(stderr, "colony: fatal: Config::on_panic threw while handling a panic in fiber %" PRIu64 "\n", g_id(g));
      std::abort();
    }
  }
  std::string what;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {
    const std::type_info* ti = abi::__cxa_current_exception_type();
    what = "non-std exception";
    if (ti) {
      int status = 0;
      char* name = abi::__cxa_demangle(ti->name(), nullptr, nullptr, &status);
      what += " of type ";
      what += (status == 0 && name) ? name : ti->name();
      std::free(name);
    }
  }
  std::fprintf(stderr, "panic in fiber %" PRIu64 ": %s [spawned at %s:%u]\n", g_id(g), what.c_str(),
               g->site_file.load(std::memory_order_relaxed),
               g->site_line.load(std::memory_order_relaxed));
  std::fflush(stderr);
  std::abort();
}

// ---------------------------------------------------------------------------------------------
// The functions of fiber.hpp.

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
}

void enter_blocking() {
  M* m = current_m();
  if (!m || !m->curg || m->sched->is_unwinding()) return;
  m->sched->enter_blocking(m);
}

void exit_blocking() noexcept {
  M* m = current_m();
  if (!m || !m->curg || m->sched->is_unwinding()) return;
  m->sched->exit_blocking(m, m->curg);
}

}  // namespace colony::sched
