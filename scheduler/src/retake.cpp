// Retaking the P of a thread blocked in the kernel (Go's retake and handoffp, for calls colony
// does not see). A fiber that blocks its thread outside colony::blocking (a read on a pipe, a
// std::mutex, a synchronous database client) would hold its P until the call returns: with
// max_procs = 1 the whole runtime would stop. Go wraps every system call (entersyscall) and its
// sysmon retakes the P of a thread that stays in one; colony cannot wrap calls it does not
// see, so sysmon looks at the thread instead:
//
//   1. sysmon (sysmon.cpp) notices a P whose fiber has not reached a switch point for a while;
//   2. it reads the M's thread state (/proc/self/task/TID/stat): R is computing (a long run,
//      reported, never taken: there is no preemption), S or D is blocked in the kernel, if it
//      is so at two looks in a row (a computing thread may wait a moment for a lock or a page);
//   3. it asks, and waits for the M to be outside the scheduler (the handshake in entry.hpp);
//   4. it takes the P and hands it to another M, as enter_blocking does, and the fiber counts
//      as one in a blocking call (blocking_, for deadlock detection; "P handed off" in dumps).
//
// The fiber keeps its thread. At its next call into the scheduler (rt_enter) it learns that its
// P is gone and takes an idle one if there is one; if not, it goes on as a plain thread would
// (spawns and readies go to the global queue) until it yields, parks or exits: then it queues
// itself (yield) or parks, and its M parks until it is handed a P (switch.cpp, "P-less").
//
// Conditions, after Go's: the P has work (queued fibers, runnext, or, unlike Go, pending timers),
// or no other P is idle or spinning, or the thread has been blocked for 10 ms; and
// Config::max_threads leaves room. A P with no work goes idle (Go would start a spinning M).
#include <fcntl.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <thread>

#include "colony/sched/spinlock.hpp"
#include "entry.hpp"
#include "sched.hpp"

namespace colony::sched {

namespace {

int membarrier(int cmd) noexcept { return static_cast<int>(::syscall(SYS_membarrier, cmd, 0, 0)); }

// thread_blocked: whether thread `tid` of this process is asleep in the kernel (state S or D in
// /proc/self/task/TID/stat; R, runnable, is a thread that computes or waits for a CPU).
bool thread_blocked(int tid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  // "tid (comm) S ...": comm may hold spaces and parentheses, so the state follows the last ')'.
  const char* close_paren = nullptr;
  for (const char* c = buf; *c; ++c)
    if (*c == ')') close_paren = c;
  if (!close_paren || close_paren[1] != ' ') return false;
  const char state = close_paren[2];
  return state == 'S' || state == 'D';
}

}  // namespace

bool retake_supported() noexcept {
  static const bool ok = membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
  return ok;
}

Scheduler::Retake Scheduler::try_retake(P* p, G* g, std::uint64_t tick, std::int64_t stuck_ns,
                                         bool seen_blocked) noexcept {
  constexpr std::int64_t kRetakeAnywayNs = 10'000'000;
  M* m;
  {
    std::lock_guard<std::mutex> lk(lock_);
    if (stopping_.load(std::memory_order_relaxed) || !(m = p->m)) return Retake::not_now;
    if (cfg_.max_threads > 0 && blocking_ + nprocs_ >= cfg_.max_threads) return Retake::not_now;
    const bool work = !p->runq.empty() || p->runnext.load() != nullptr ||
                      runq_size_.load() > 0 || p->timer0_when.load() != INT64_MAX;
    if (!work && npidle_.load() + nmspinning_.load() > 0 && stuck_ns < kRetakeAnywayNs)
      return Retake::not_now;
  }
  // The M is never freed while the scheduler lives, and tid is written before it took a P.
  if (!thread_blocked(m->tid)) return Retake::computing;
  // Asleep at two looks in a row (2 ms apart), with no switch between: a thread that computes
  // and waits a moment for a lock or a page (a malloc arena, mmap's lock) is not taken.
  if (!seen_blocked) return Retake::blocked_once;
  bool handoff;
  {
    std::lock_guard<std::mutex> lk(lock_);
    // Still the same run of the same fiber on the same M?
    const auto same_run = [&] {
      return p->m == m && p->cur.load(std::memory_order_relaxed) == g &&
             p->switches.get() + p->yields.get() == tick;
    };
    if (stopping_.load(std::memory_order_relaxed) || !same_run() ||
        (cfg_.max_threads > 0 && blocking_ + nprocs_ >= cfg_.max_threads))
      return Retake::not_now;
    // The handshake (entry.hpp). The M cannot be waiting for lock_ in between: it would be
    // inside the scheduler, and in_rt would say so.
    m->retake.store(kRetakeAsked, std::memory_order_seq_cst);
    if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) {  // no barrier: no proof either
      m->retake.store(kRetakeNone, std::memory_order_release);
      return Retake::not_now;
    }
    // in_rt false: the M is in a fiber's own code. Still g's, the same run? Between the check
    // above and the request, the M may have entered (reading no request), switched to another
    // fiber and left again: that fiber was not seen blocked. Both are stable now (the M cannot
    // switch without entering, and an entry waits for our decision).
    if (m->in_rt.load(std::memory_order_acquire) || !same_run()) {
      m->retake.store(kRetakeNone, std::memory_order_release);
      return Retake::not_now;
    }
    // The M is in the fiber's own code and will not touch the P again before it has seen
    // kRetakeTaken. Take the P as enter_blocking would have.
    ++blocking_;
    retakes_.fetch_add(1, std::memory_order_relaxed);
    p->m = nullptr;
    p->cur.store(nullptr, std::memory_order_relaxed);
    g->handed_off.store(true, std::memory_order_relaxed);
    handoff = !p->runq.empty() || p->runnext.load() != nullptr || runq_size_.load() > 0 ||
              p->timer0_when.load() != INT64_MAX;
    if (!handoff) pidle_put(p);
    m->retake.store(kRetakeTaken, std::memory_order_release);
  }
  if (handoff) startm(p, false);
  return Retake::taken;
}

void Scheduler::retaken(M* m) noexcept {
  std::uint8_t r;
  for (int spins = 0; (r = m->retake.load(std::memory_order_acquire)) == kRetakeAsked; ++spins) {
    if (spins < 64) spin_pause();
    else std::this_thread::yield();  // sysmon decides under lock_, in microseconds
  }
  if (r == kRetakeNone) return;  // sysmon backed off: the P is still ours
  m->retake.store(kRetakeNone, std::memory_order_relaxed);
  G* self = m->curg;
  std::lock_guard<std::mutex> lk(lock_);
  m->p = nullptr;  // sysmon has handed it on (P::m no longer names this M)
  if (P* p = pidle_get()) {  // as exit_blocking: an idle P, if there is one
    --blocking_;
    acquirep(m, p);
    p->cur.store(self, std::memory_order_release);
    p->switches.inc();
    self->handed_off.store(false, std::memory_order_relaxed);
  }
}

}  // namespace colony::sched
