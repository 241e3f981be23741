// colony::Pool: the core's bookkeeping under the lock, the controls (tune, release, await_exit,
// reboot, wait), stats, and the API glue. Submitting is submit.cpp, the workers worker.cpp, the
// purger purger.cpp, panics panic.cpp. The design and the reasons behind it are in
// docs/pool.md; the lock and the invariants are at the top of pool_core.hpp.
#include <algorithm>
#include <memory>
#include <stdexcept>
#include <vector>

#include "pool_core.hpp"

namespace colony {
namespace detail {

PoolCore::PoolCore(int capacity, PoolOptions opts, const SourceLocation& site,
                   PinnedRuntime* pinned)
    : capacity_(capacity), opts_(std::move(opts)), site_(site), pinned_(pinned) {
  idle_.init(opts_.pre_alloc, opts_.pre_alloc ? static_cast<std::size_t>(capacity) : 0);
}

std::error_code PoolCore::reject(std::error_code ec) noexcept {
  stats_.rejected.fetch_add(1, std::memory_order_relaxed);
  return ec;
}

void PoolCore::accept_locked() noexcept {
  add_locked<std::int64_t>(pending_, 1);
  add_locked<std::uint64_t>(submitted_, 1);
}

void PoolCore::add_running_locked() noexcept {
  const int n = add_locked(running_, 1);
  ++live_;
  peak_running_ = std::max(peak_running_, n);
}

void PoolCore::left_service_locked(Worker* w) noexcept {
  if (w) w->exit = true;
  add_locked(running_, -1);
}

Worker* PoolCore::tell_exit_locked(Worker* chain) noexcept {
  for (Worker* w = chain; w; w = w->next_stale) {
    w->idle = false;
    left_service_locked(w);
  }
  return chain;
}

PoolTask PoolCore::pop_queue_locked() noexcept {
  PoolTask t = std::move(queue_.front());
  queue_.pop_front();
  queued_.store(queue_.size(), std::memory_order_relaxed);
  return t;
}

// ---------------------------------------------------------------------------------- control

void PoolCore::tune(int size) {
  std::vector<PoolTask> start;  // queued tasks that get new workers
  sched::Chain retry;  // waiting submitters that may now start a worker
  Worker* retire = nullptr;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    const int old = capacity_.load(std::memory_order_relaxed);
    if (old < 0 || size <= 0 || size == old || opts_.pre_alloc) return;
    capacity_.store(size, std::memory_order_relaxed);
    const int running = running_.load(std::memory_order_relaxed);
    if (size > old) {
      int slots = size - running;
      if (!closed_.load(std::memory_order_relaxed)) {
        while (slots > 0 && !queue_.empty()) {
          start.push_back(pop_queue_locked());
          add_running_locked();
          --slots;
        }
        for (; slots > 0; --slots) {
          sched::Waiter* s = waiters_.pop_front();
          if (!s) break;
          s->result = kRetry;
          retry.add(s);
        }
      }
    } else if (running > size) {
      retire = tell_exit_locked(idle_.take(static_cast<std::size_t>(running - size)));
      for (Worker* w = retire; w; w = w->next_stale)
        stats_.workers_retired.fetch_add(1, std::memory_order_relaxed);
    }
  }
  notify_workers(retire);
  sched::notify_chain(retry.first);
  for (PoolTask& t : start) spawn_worker(std::move(t));
}

void PoolCore::release() {
  bool open = false;
  if (!closed_.compare_exchange_strong(open, true, std::memory_order_acq_rel)) return;
  Worker* idle;
  sched::Chain woken;  // waiting submitters (kClosed), then the purger
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    idle = tell_exit_locked(idle_.take(idle_.size()));
    while (sched::Waiter* s = waiters_.pop_front()) {
      s->result = kClosed;
      woken.add(s);
    }
    woken.take_all(purge_wl_);
  }
  notify_workers(idle);
  sched::notify_chain(woken.first);
}

std::error_code PoolCore::await_exit(std::int64_t deadline_ns) {
  lock_.lock();
  for (;;) {
    if (live_ == 0 && purgers_alive_ == 0 && queue_.empty()) {
      lock_.unlock();
      return {};
    }
    sched::Waiter w;
    done_wl_.push_back(&w);
    if (!sched::wait_until(w, lock_, sched::WaitReason::pool, deadline_ns))
      return pool_errc::timeout;
    lock_.lock();
  }
}

void PoolCore::reboot() noexcept {
  bool closed = true;
  if (!closed_.compare_exchange_strong(closed, false, std::memory_order_acq_rel)) return;
  std::lock_guard<sched::SpinLock> lk(lock_);
  purger_failed_ = false;  // the next idle worker starts a purger
}

bool PoolCore::wait_drained(std::int64_t deadline_ns) {
  if (pending_.load(std::memory_order_acquire) == 0) return true;
  lock_.lock();
  if (pending_.load(std::memory_order_relaxed) == 0) {
    lock_.unlock();
    return true;
  }
  sched::Waiter w;
  drain_wl_.push_back(&w);
  return sched::wait_until(w, lock_, sched::WaitReason::pool, deadline_ns);
}

PoolStats PoolCore::stats() const {
  PoolStats s;
  s.submitted = submitted_.load(std::memory_order_relaxed);
  s.completed = completed_.load(std::memory_order_relaxed);
  s.panics = stats_.panics.load(std::memory_order_relaxed);
  s.rejected = stats_.rejected.load(std::memory_order_relaxed);
  s.workers_started = stats_.workers_started.load(std::memory_order_relaxed);
  s.workers_purged = stats_.workers_purged.load(std::memory_order_relaxed);
  s.workers_retired = stats_.workers_retired.load(std::memory_order_relaxed);
  std::lock_guard<sched::SpinLock> lk(lock_);
  s.peak_running = peak_running_;
  s.running = running_.load(std::memory_order_relaxed);
  s.idle = static_cast<int>(idle_.size());
  s.waiting = waiting_.load(std::memory_order_relaxed);
  s.queued = queue_.size();
  return s;
}

// ---------------------------------------------------------------------------------- API glue

std::shared_ptr<PoolCore> make_pool_core(int capacity, PoolOptions opts, const SourceLocation& site,
                                         PinnedRuntime* pinned) {
  if (!opts.disable_purge) {
    if (opts.expiry_duration.count() < 0)
      detail::throw_pool_error(pool_errc::invalid_pool_expiry,
                               "colony::Pool: expiry_duration must not be negative (0 means the "
                               "default, kDefaultCleanInterval)");
    if (opts.expiry_duration.count() == 0) opts.expiry_duration = kDefaultCleanInterval;
  }
  if (capacity <= 0) capacity = -1;
  if (opts.pre_alloc && capacity < 0)
    detail::throw_pool_error(pool_errc::invalid_pre_alloc_size,
                             "colony::Pool: pre_alloc needs a capacity > 0 (or drop pre_alloc)");
  if (opts.max_blocking_tasks < 0)
    throw std::invalid_argument(
        "colony::Pool: max_blocking_tasks must not be negative (0 means no limit)");
  return std::make_shared<PoolCore>(capacity, std::move(opts), site, pinned);
}

std::error_code pool_submit(PoolCore& c, PoolTask& t, std::int64_t deadline_ns,
                            const Context* ctx) {
  return c.submit(t, deadline_ns, ctx);
}

void pool_attach(PoolCore& c, std::shared_ptr<const void> p) {
  c.attach(std::move(p));
}

std::error_code pool_await_exit(PoolCore& c, std::int64_t deadline_ns) {
  return c.await_exit(deadline_ns);
}

}  // namespace detail

Pool::Pool(int capacity, PoolOptions opts, const SourceLocation& loc)
    : core_(detail::make_pool_core(capacity, std::move(opts), loc, nullptr)) {}

Pool::Pool(int capacity, PoolOptions opts, const SourceLocation& loc, detail::PinnedRuntime* pinned)
    : core_(detail::make_pool_core(capacity, std::move(opts), loc, pinned)) {}

Pool::~Pool() {
  if (!core_) return;
  core_->release();
  try {
    core_->await_exit(sched::kNoDeadline);
  } catch (...) {  // NOLINT: FiberUnwind while this fiber is already being unwound at shutdown
  }
}

int Pool::running() const noexcept {
  return core_->running_.load(std::memory_order_relaxed);
}
int Pool::free() const noexcept {
  const int c = cap();
  return c < 0 ? -1 : c - running();
}
int Pool::waiting() const noexcept {
  return core_->waiting_.load(std::memory_order_relaxed);
}
int Pool::cap() const noexcept {
  return core_->capacity_.load(std::memory_order_relaxed);
}
std::size_t Pool::queued() const noexcept {
  return core_->queued_.load(std::memory_order_relaxed);
}
std::int64_t Pool::pending() const noexcept {
  return core_->pending_.load(std::memory_order_relaxed);
}
bool Pool::is_closed() const noexcept {
  return core_->closed_.load(std::memory_order_acquire);
}
void Pool::tune(int size) {
  core_->tune(size);
}
void Pool::release() {
  core_->release();
}
std::error_code Pool::release_timeout(std::chrono::nanoseconds d) {
  if (is_closed()) return pool_errc::pool_closed;
  const std::int64_t deadline = sched::deadline_after(d);
  core_->release();
  return core_->await_exit(deadline);
}
void Pool::reboot() {
  core_->reboot();
}
void Pool::wait() {
  core_->wait_drained(sched::kNoDeadline);
}
bool Pool::wait_until_ns(std::int64_t deadline_ns) {
  return core_->wait_drained(deadline_ns);
}
PoolStats Pool::stats() const {
  return core_->stats();
}

}  // namespace colony
