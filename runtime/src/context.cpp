#include "colony/context.hpp"

#include <algorithm>
#include <mutex>
#include <vector>

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

struct ContextState {
  std::shared_ptr<ContextState> parent;
  Chan<std::monostate> done;
  std::optional<std::chrono::steady_clock::time_point> deadline;
  sched::SpinLock lock;
  std::error_code err;                              // (lock)
  std::vector<std::weak_ptr<ContextState>> children;  // (lock)
  sched::Timer timer;                               // armed for a deadline
  bool timer_armed = false;

  ~ContextState() {
    if (timer_armed) sched::del_timer(&timer);
  }

  // cancel: idempotent. Closes done, cancels the children, leaves the parent's list.
  void cancel(std::error_code e, bool detach_from_parent) {
    std::vector<std::weak_ptr<ContextState>> kids;
    {
      std::lock_guard<sched::SpinLock> lk(lock);
      if (err) return;
      err = e;
      kids.swap(children);
    }
    done.close();
    for (auto& w : kids)
      if (auto k = w.lock()) k->cancel(e, false);
    if (detach_from_parent && parent) parent->forget(this);
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
  std::lock_guard<sched::SpinLock> lk(st_->lock);
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
  return {Context(c), canceller(c)};
}

std::pair<Context, std::function<void()>> with_deadline(const Context& parent,
                                                       std::chrono::steady_clock::time_point t) {
  auto c = make_child(parent.st_);
  if (!c->deadline || t < *c->deadline) c->deadline = t;
  if (t <= std::chrono::steady_clock::now()) {
    c->cancel(context_errc::deadline_exceeded, true);
  } else {
    c->timer.when = sched::to_nanotime(t);
    c->timer.arg = c.get();  // the state outlives its timer: ~ContextState deletes it first
    c->timer.fn = [](sched::Timer* tm) {
      static_cast<detail::ContextState*>(tm->arg)->cancel(context_errc::deadline_exceeded, true);
    };
    c->timer_armed = true;
    sched::add_timer(&c->timer);
  }
  return {Context(c), canceller(c)};
}

std::pair<Context, std::function<void()>> with_timeout(const Context& parent,
                                                      std::chrono::nanoseconds d) {
  return with_deadline(parent, std::chrono::steady_clock::now() +
                                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(d));
}

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
  sched::WaitList woken;
  {
    std::lock_guard<sched::SpinLock> lk(lock_);
    if (e && !first_) {
      first_ = e;
      first = true;
    }
    if (--running_ == 0)
      while (sched::Waiter* w = waiters_.pop_front()) woken.push_back(w);
  }
  if (first) cancel_();
  while (sched::Waiter* w = woken.head) {
    woken.head = w->next;
    w->linked = false;
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
