// Run queues: each P's local ring (RunQueue, runq.hpp) with its runnext slot, the global queue
// (under lock_), picking the next fiber of a P (pick_local) and stealing from other Ps
// (steal_work). docs/design.md, "Run queues" and "Finding work and stealing".
#include <algorithm>
#include <mutex>
#include <vector>

#include "sched.hpp"

namespace colony::sched {

namespace {
constexpr std::uint32_t kMaxRunnextStreak = 32;  // then the local queue gets a turn
constexpr std::int64_t kBusyPollNs = 1'000'000;  // a busy P polls if nobody has for this long
}  // namespace

bool Scheduler::runq_put(P* p, G* g, bool next) noexcept {
  if (next) {
    G* old = p->runnext.exchange(g, std::memory_order_acq_rel);
    if (!old) return false;
    g = old;  // kick the old runnext to the tail
  }
  if (p->runq.put(g)) return false;
  runq_put_slow(p, g);
  return true;
}

void Scheduler::runq_put_slow(P* p, G* g) noexcept {
  G* batch[RunQueue<G>::kCapacity / 2 + 1];
  for (;;) {
    std::uint32_t n = p->runq.take_half_for_overflow(batch);
    if (n == 0) {
      if (p->runq.put(g)) return;
      continue;
    }
    batch[n] = g;
    std::lock_guard<std::mutex> lk(lock_);
    glob_put(batch, static_cast<int>(n + 1));
    return;
  }
}

G* Scheduler::runq_get(P* p) noexcept {
  G* next = p->runnext.load(std::memory_order_relaxed);
  if (next && p->runnext_streak < kMaxRunnextStreak) {
    if (p->runnext.compare_exchange_strong(next, nullptr, std::memory_order_acquire)) {
      ++p->runnext_streak;
      return next;
    }
  }
  p->runnext_streak = 0;
  if (G* g = p->runq.get()) return g;
  next = p->runnext.exchange(nullptr, std::memory_order_acquire);
  if (next) p->runnext_streak = 1;
  return next;
}

void Scheduler::glob_put(G* const* gs, int n) noexcept {
  std::size_t size = static_cast<std::size_t>(runq_size_.load(std::memory_order_relaxed));
  if (size + static_cast<std::size_t>(n) > gq_.size()) {
    std::vector<G*> bigger(std::max(gq_.size() * 2, size + static_cast<std::size_t>(n)));
    for (std::size_t i = 0; i < size; ++i) bigger[i] = gq_[(gq_head_ + i) % gq_.size()];
    gq_.swap(bigger);
    gq_head_ = 0;
  }
  const std::size_t cap = gq_.size();
  for (int i = 0; i < n; ++i) gq_[(gq_head_ + size + static_cast<std::size_t>(i)) % cap] = gs[i];
  runq_size_.fetch_add(n);
}

G* Scheduler::glob_pop() noexcept {
  if (runq_size_.load(std::memory_order_relaxed) == 0) return nullptr;
  G* g = gq_[gq_head_];
  gq_head_ = (gq_head_ + 1) % gq_.size();
  runq_size_.fetch_sub(1);
  return g;
}

// glob_get: take a fair share of the global queue: one to run, the rest into p's local queue.
G* Scheduler::glob_get(P* p, int max) noexcept {
  int size = runq_size_.load();
  if (size == 0) return nullptr;
  int n = std::min(size, size / nprocs_ + 1);
  if (max > 0) n = std::min(n, max);
  n = std::min(n, static_cast<int>(RunQueue<G>::kCapacity / 2));
  G* g = glob_pop();
  for (int i = 1; i < n; ++i) {
    G* g2 = gq_[gq_head_];
    if (!p->runq.put(g2)) break;  // cannot happen: the caller's queue had room
    gq_head_ = (gq_head_ + 1) % gq_.size();
    runq_size_.fetch_sub(1);
  }
  p->global_gets.inc(static_cast<std::uint64_t>(n));
  return g;
}

bool Scheduler::any_runq_nonempty() const noexcept {
  if (runq_size_.load() > 0) return true;
  for (const auto& p : allp_)
    if (!p->runq.empty() || p->runnext.load() != nullptr) return true;
  return false;
}

G* Scheduler::pick_local(P* p, bool timers) noexcept {
  if (timers && timers_may_be_due(p)) run_own_timers(p);
  if (p->schedtick % 61 == 0 && timers && io_waiters_.load(std::memory_order_relaxed) > 0 &&
      netpoll_m_.load(std::memory_order_relaxed) == nullptr &&
      nanotime() - last_poll_.load(std::memory_order_relaxed) > kBusyPollNs)
    netpoll(0);  // every P is busy: nobody else would poll (Go's sysmon does this)
  if (p->schedtick % 61 == 0 && runq_size_.load(std::memory_order_relaxed) > 0) {
    std::lock_guard<std::mutex> lk(lock_);
    if (G* g = glob_get(p, 1)) {
      ++p->schedtick;
      return g;
    }
  }
  G* g = runq_get(p);
  if (g) ++p->schedtick;
  return g;
}

G* Scheduler::steal_work(M* m, std::int64_t now, bool* ran_timers) noexcept {
  P* pp = m->p;
  const std::uint32_t n = static_cast<std::uint32_t>(nprocs_);
  if (n < 2) return nullptr;
  // Run other Ps' expired timers first: their fibers become ours.
  for (std::uint32_t i = 0; i < n; ++i) {
    P* p2 = allp_[i].get();
    if (p2 != pp && p2->timer0_when.load() <= now) {
      run_timers(p2, now);
      *ran_timers = true;
    }
  }
  if (*ran_timers)
    if (G* g = runq_get(pp)) return g;
  constexpr int kRounds = 4;
  for (int round = 0; round < kRounds; ++round) {
    const bool last = round == kRounds - 1;
    std::uint32_t start = static_cast<std::uint32_t>(xorshift(m->rng) % n);
    std::uint32_t step = 1;
    // A random step coprime with n visits every P once.
    for (std::uint32_t tries = 0; tries < 8; ++tries) {
      std::uint32_t s = static_cast<std::uint32_t>(xorshift(m->rng) % n) + 1;
      std::uint32_t a = s, b = n;
      while (b) { std::uint32_t t = a % b; a = b; b = t; }
      if (a == 1) { step = s; break; }
    }
    for (std::uint32_t k = 0, i = start; k < n; ++k, i = (i + step) % n) {
      P* p2 = allp_[i].get();
      if (p2 == pp) continue;
      std::uint32_t count = 0;
      G* g = pp->runq.steal_from(p2->runq, &count);
      if (!g && last) {
        // Steal runnext only as a last resort, after giving its P a moment to run it
        // (it is about to: stealing it would break the pair's locality).
        if (p2->runnext.load(std::memory_order_relaxed)) {
          for (int spin = 0; spin < 64; ++spin) spin_pause();
          G* next = p2->runnext.load(std::memory_order_relaxed);
          if (next && p2->runnext.compare_exchange_strong(next, nullptr, std::memory_order_acquire)) {
            g = next;
            count = 1;
          }
        }
      }
      if (g) {
        pp->steals.inc();
        pp->stolen.inc(count);
        return g;
      }
    }
  }
  return nullptr;
}

}  // namespace colony::sched
