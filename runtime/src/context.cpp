#include "colony/context.hpp"

#include <algorithm>
#include <atomic>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include "context_wait.hpp"

namespace colony {

namespace {
class ContextCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "context"; }
  std::string message(int c) const override {
    switch (static_cast<context_errc>(c)) {
      case context_errc::canceled: return "context canceled";
      case context_errc::deadline_exceeded: return "context deadline exceeded";
    }
    return "unknown context error";
  }
};
}  // namespace

const std::error_category& context_category() noexcept {
  static const ContextCategory c;
  return c;
}

namespace detail {

// AfterFunc: one after_func registration. state: pending -> running -> finished (cancel), or
// pending -> stopped (stop); each transition has one writer, the party that won the CAS.
struct AfterFunc {
  enum : int { pending, running, finished, stopped };
  std::function<void()> fn;
  std::atomic<int> state{pending};
  bool linked = false;                                   // in ContextState::after (its lock)
  std::list<std::shared_ptr<AfterFunc>>::iterator pos;   // valid while linked

  void run() noexcept {
    int expected = pending;
    if (!state.compare_exchange_strong(expected, running, std::memory_order_acq_rel)) return;
    fn();  // must not throw (after_func's contract); an exception terminates
    fn = nullptr;
    state.store(finished, std::memory_order_release);
  }
};

struct ContextState {
  std::shared_ptr<ContextState> parent;
  Chan<std::monostate> done;
  std::optional<std::chrono::steady_clock::time_point> deadline;
  sched::SpinLock lock;
  std::error_code err;                              // (lock) set once, then never changed
  std::atomic<bool> ended{false};                   // err is set (stored after it, under lock)
  std::vector<std::weak_ptr<ContextState>> children;  // (lock)
  std::list<std::shared_ptr<AfterFunc>> after;        // after_func registrations (lock)
  sched::Timer timer;                               // armed for a deadline
  bool timer_armed = false;

  ~ContextState() {
    if (timer_armed) sched::del_timer(&timer);
  }

  // cancel: idempotent. Cancels this context and its descendants, and leaves the parent's list.
  // Every error in the subtree is set before any done channel closes, so whoever sees a done
  // (this one's or a descendant's) closed finds err() set on every context below it too. Then
  // the done channels close, parents first, and the after_func registrations run.
  void cancel(std::error_code e, bool detach_from_parent) {
    std::vector<Marked> subtree;
    if (!mark(e, nullptr, subtree)) return;
    for (Marked& m : subtree) m.c->done.close();
    for (Marked& m : subtree)
      for (auto& f : m.funcs) f->run();
    if (detach_from_parent && parent) parent->forget(this);
  }

  // Marked: a context whose err cancel() has set, with what remains to be done for it.
  struct Marked {
    ContextState* c;
    std::shared_ptr<ContextState> keep;  // a descendant: alive until cancel() is done with it
    std::list<std::shared_ptr<AfterFunc>> funcs;
  };

  // mark: sets err (false if it was set already: someone else cancels this subtree), takes
  // the children and the after_func registrations, and marks the children likewise.
  bool mark(std::error_code e, std::shared_ptr<ContextState> keep, std::vector<Marked>& out) {
    std::vector<std::weak_ptr<ContextState>> kids;
    Marked m{this, std::move(keep), {}};
    {
      std::lock_guard<sched::SpinLock> lk(lock);
      if (err) return false;
      err = e;
      ended.store(true, std::memory_order_release);
      kids.swap(children);
      m.funcs.swap(after);
      for (auto& f : m.funcs) f->linked = false;
    }
    out.push_back(std::move(m));
    for (auto& w : kids)
      if (auto k = w.lock()) {
        ContextState* kp = k.get();
        kp->mark(e, std::move(k), out);
      }
    return true;
  }

  void forget(ContextState* child) {
    std::lock_guard<sched::SpinLock> lk(lock);
    children.erase(std::remove_if(children.begin(), children.end(),
                                  [&](const std::weak_ptr<ContextState>& w) {
                                    auto p = w.lock();
                                    return !p || p.get() == child;
                                  }),
                   children.end());
  }
};

}  // namespace detail

Context::Context() : Context(background()) {}

const Chan<std::monostate>& Context::done() const noexcept { return st_->done; }
std::error_code Context::err() const {
  // No lock: err is written once, before `ended`; a live context costs one load (the
  // context-aware waits of the sync primitives call this on every acquire).
  if (!st_->ended.load(std::memory_order_acquire)) return {};
  return st_->err;
}
std::optional<std::chrono::steady_clock::time_point> Context::deadline() const noexcept {
  return st_->deadline;
}

Context background() {
  static const std::shared_ptr<detail::ContextState> root = std::make_shared<detail::ContextState>();
  return Context(root);
}

namespace {
std::shared_ptr<detail::ContextState> make_child(const std::shared_ptr<detail::ContextState>& parent) {
  auto c = std::make_shared<detail::ContextState>();
  c->parent = parent;
  c->deadline = parent->deadline;
  std::error_code parent_err;
  {
    std::lock_guard<sched::SpinLock> lk(parent->lock);
    parent_err = parent->err;
    if (!parent_err) parent->children.push_back(c);
  }
  if (parent_err) c->cancel(parent_err, false);
  return c;
}

std::function<void()> canceller(const std::shared_ptr<detail::ContextState>& c) {
  return [c] { c->cancel(context_errc::canceled, true); };
}
}  // namespace

std::pair<Context, std::function<void()>> with_cancel(const Context& parent) {
  auto c = make_child(parent.st_);
  return {Context(c, parent.vals_), canceller(c)};
}

std::pair<Context, std::function<void()>> with_deadline(const Context& parent,
                                                       std::chrono::steady_clock::time_point t) {
  auto c = make_child(parent.st_);
  if (!c->deadline || t < *c->deadline) c->deadline = t;
  const std::int64_t when = sched::deadline_at(t);
  if (when == sched::kNoDeadline) {
    // Never: no timer (a parent's deadline, if any, still cancels the child through it).
  } else if (when <= sched::nanotime()) {
    c->cancel(context_errc::deadline_exceeded, true);
  } else {
    c->timer.when = when;
    c->timer.arg = c.get();  // the state outlives its timer: ~ContextState deletes it first
    c->timer.fn = [](sched::Timer* tm) {
      static_cast<detail::ContextState*>(tm->arg)->cancel(context_errc::deadline_exceeded, true);
    };
    c->timer_armed = true;
    sched::add_timer(&c->timer);
  }
  return {Context(c, parent.vals_), canceller(c)};
}

std::pair<Context, std::function<void()>> with_timeout(const Context& parent,
                                                      std::chrono::nanoseconds d) {
  // Saturating: a timeout past the clock's range is no deadline, <= 0 is already expired.
  const std::int64_t when = sched::deadline_after(d);
  using Steady = std::chrono::steady_clock;
  return with_deadline(parent, when == sched::kNoDeadline
                                   ? Steady::time_point::max()
                                   : Steady::time_point(std::chrono::nanoseconds(when)));
}

std::function<bool()> after_func(const Context& ctx, std::function<void()> f) {
  static const std::shared_ptr<detail::ContextState> root = background().st_;
  if (ctx.st_ == root) return [] { return true; };  // never done: nothing to register
  auto a = std::make_shared<detail::AfterFunc>();
  a->fn = std::move(f);
  bool done_already = false;
  {
    std::lock_guard<sched::SpinLock> lk(ctx.st_->lock);
    if (ctx.st_->err) {
      done_already = true;
    } else {
      a->pos = ctx.st_->after.insert(ctx.st_->after.end(), a);
      a->linked = true;
    }
  }
  if (done_already) {
    a->run();
    return [] { return false; };
  }
  std::weak_ptr<detail::ContextState> wst = ctx.st_;
  return [a, wst]() -> bool {
    int expected = detail::AfterFunc::pending;
    if (a->state.compare_exchange_strong(expected, detail::AfterFunc::stopped,
                                         std::memory_order_acq_rel)) {
      if (auto st = wst.lock()) {
        std::lock_guard<sched::SpinLock> lk(st->lock);
        if (a->linked) {
          st->after.erase(a->pos);
          a->linked = false;
        }
      }
      a->fn = nullptr;
      return true;
    }
    // Cancelled: f has run, or is running on another thread (it cannot be running on this
    // one: it never parks). It is short and never blocks, so waiting for it does not park.
    while (a->state.load(std::memory_order_acquire) == detail::AfterFunc::running)
      std::this_thread::yield();
    return false;
  };
}

// ---------------------------------------------------------------------------------------------
// ContextWake (context_wait.hpp)

namespace detail {

ContextWake::ContextWake(const Context& ctx, sched::SpinLock& lock, sched::Waiter& w)
    : lock_(lock), w_(w) {
  stop_ = after_func(ctx, [this] { fire(); });
}

void ContextWake::disarm() noexcept {
  if (!stop_) return;
  (void)stop_();  // f has not started (and never will), or has returned
  stop_ = nullptr;
}

void ContextWake::fire() noexcept {
  sched::Waiter* wake = nullptr;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    fired_ = true;
    if (w_.linked) {  // parked (or about to): unlink it as its deadline would
      w_.list->remove(&w_);
      w_.timed_out = true;
      wake = &w_;
    }
  }
  if (wake) sched::notify(*wake);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Group

Group::Group(const Context& parent) {
  auto [c, cancel] = with_cancel(parent);
  ctx_ = std::move(c);
  cancel_ = std::move(cancel);
}

Group::~Group() {
  try {
    wait();
  } catch (...) {
  }
}

void Group::add() {
  std::lock_guard<sched::SpinLock> lk(lock_);
  ++running_;
}

void Group::finish(std::exception_ptr e) noexcept {
  bool first = false;
  // The woken are chained through `next`, unlinked: one re-linked into a local WaitList could
  // be "removed" from it by its ~Waiter (a fiber unwound at shutdown) while we walk it.
  sched::Waiter* woken = nullptr;
  sched::Waiter** tail = &woken;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    if (e && !first_) {
      first_ = e;
      first = true;
    }
    if (--running_ == 0)
      while (sched::Waiter* w = waiters_.pop_front()) {
        w->next = nullptr;
        *tail = w;
        tail = &w->next;
      }
  }
  if (first) cancel_();
  while (sched::Waiter* w = woken) {  // each may vanish right after its notify: read next first
    woken = w->next;
    sched::notify(*w);
  }
}

void Group::wait() {
  lock_.lock();
  if (running_ > 0) {
    sched::Waiter w;
    waiters_.push_back(&w);
    sched::wait(w, lock_, sched::WaitReason::waitgroup);
  } else {
    lock_.unlock();
  }
  cancel_();
  std::exception_ptr e;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    e = first_;
  }
  if (e) std::rethrow_exception(e);
}

}  // namespace colony
