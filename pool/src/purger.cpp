// The purger: one fiber per open pool that, every expiry_duration, retires the workers idle for
// longer (ants' purgeStaleWorkers), using the coarse clock the workers stamp themselves with.
#include <algorithm>
#include <exception>
#include <memory>

#include "pool_core.hpp"

namespace colony::detail {

namespace {

struct PurgerMain {
  std::shared_ptr<PoolCore> core;
  std::uint64_t gen;
  PurgerMain(std::shared_ptr<PoolCore> c, std::uint64_t g) noexcept : core(std::move(c)), gen(g) {}
  PurgerMain(PurgerMain&&) noexcept = default;
  ~PurgerMain() {
    if (core) core->purger_gone(gen);
  }
  void operator()() {
    std::shared_ptr<PoolCore> c = std::move(core);
    c->purger_loop(gen);
  }
};

}  // namespace

void PoolCore::start_purger_unlocking() {
  purger_running_ = true;
  ++purgers_alive_;
  const std::uint64_t gen = ++purger_gen_;
  lock_.unlock();
  bool ok = true;
  try {
    PurgerMain pm(shared_from_this(), gen);  // its destructor undoes the above if not started
    sched::Scheduler& s = pinned_ ? *pinned_->sched : sched::current_or_default();
    sched::launch(s, SpawnOptions{}, std::move(pm), site_);
  } catch (const std::exception&) {
    ok = false;  // purging is best effort; the pool works without it
  }
  lock_.lock();
  if (!ok) purger_failed_ = true;
}

void PoolCore::purger_loop(std::uint64_t gen) {
  struct Gone {  // however the loop ends (also unwound at shutdown)
    PoolCore* c;
    std::uint64_t gen;
    ~Gone() { c->purger_gone(gen); }
  } gone{this, gen};
  const std::int64_t expiry = opts_.expiry_duration.count();
  const std::int64_t period = std::max<std::int64_t>(expiry, 1'000'000);  // at least 1 ms
  lock_.lock();
  for (;;) {
    // In service while the pool is open and has workers; the next idle worker starts another.
    if (closed_.load(std::memory_order_relaxed) || gen != purger_gen_ ||
        running_.load(std::memory_order_relaxed) == 0) {
      if (gen == purger_gen_) purger_running_ = false;
      break;
    }
    sched::Waiter pw;
    purge_wl_.push_back(&pw);
    const bool woken =
        sched::wait_until(pw, lock_, sched::WaitReason::pool, sched::nanotime() + period);
    lock_.lock();
    if (woken) continue;  // release() woke us: re-check

    Worker* stale = tell_exit_locked(idle_.take_stale(sched::coarse_now() - expiry));
    std::uint64_t n = 0;
    for (Worker* w = stale; w; w = w->next_stale) ++n;
    stats_.workers_purged.fetch_add(n, std::memory_order_relaxed);
    // As ants: if the pool went dormant with submitters still waiting, let one start a worker.
    sched::Waiter* retry = nullptr;
    const int cap = capacity_.load(std::memory_order_relaxed);
    if (cap < 0 || running_.load(std::memory_order_relaxed) < cap) {
      if ((retry = waiters_.pop_front())) retry->result = kRetry;
    }
    lock_.unlock();
    notify_workers(stale);
    if (retry) sched::notify(*retry);
    lock_.lock();
  }
  lock_.unlock();
}

void PoolCore::purger_gone(std::uint64_t gen) noexcept {
  Wakeups wk;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    --purgers_alive_;
    if (gen == purger_gen_) purger_running_ = false;  // unwound, or never ran
    if (live_ == 0 && purgers_alive_ == 0) wk.done.take_all(done_wl_);
  }
  wk.notify();
}

}  // namespace colony::detail
