#include "colony/time.hpp"

#include <stdexcept>

#include "colony/sched/deadline.hpp"

namespace colony {
namespace detail {

struct TimerCore {
  sched::Timer t;
  Chan<TimePoint> ch{1};
  std::int64_t period = 0;  // 0: fires once

  static void fire(sched::Timer* tm) {
    auto* c = static_cast<TimerCore*>(tm->arg);
    (void)c->ch.try_send(std::chrono::steady_clock::now());  // full: the reader is behind; drop
    if (c->period > 0) {
      c->t.when = sched::deadline_after_ns(c->t.when, c->period);
      const std::int64_t now = sched::nanotime();
      if (c->t.when <= now) c->t.when = now + c->period;  // fell behind: skip missed ticks
      sched::add_timer(&c->t);
    }
  }

  void arm(std::int64_t when) {
    t.when = when;
    t.fn = &fire;
    t.arg = this;
    sched::add_timer(&t);
  }
};

namespace {
std::int64_t after_ns(std::chrono::nanoseconds d) { return sched::deadline_after(d); }
void check_period(std::chrono::nanoseconds p) {
  if (p.count() <= 0) throw std::invalid_argument("colony::Ticker: the period must be positive");
}
}  // namespace

}  // namespace detail

Timer::Timer(std::chrono::nanoseconds d) : core_(std::make_shared<detail::TimerCore>()) {
  core_->arm(detail::after_ns(d));
}
Timer::~Timer() {
  if (core_) sched::del_timer(&core_->t);
}
Timer::Timer(Timer&&) noexcept = default;
Timer& Timer::operator=(Timer&& o) noexcept {
  if (this != &o) {
    if (core_) sched::del_timer(&core_->t);
    core_ = std::move(o.core_);
  }
  return *this;
}
const Chan<TimePoint>& Timer::chan() const noexcept { return core_->ch; }
bool Timer::stop() { return sched::del_timer(&core_->t); }
bool Timer::reset(std::chrono::nanoseconds d) {
  bool was_active = sched::del_timer(&core_->t);
  core_->arm(detail::after_ns(d));
  return was_active;
}

Ticker::Ticker(std::chrono::nanoseconds period) {
  detail::check_period(period);
  core_ = std::make_shared<detail::TimerCore>();
  core_->period = period.count();
  core_->arm(detail::after_ns(period));
}
Ticker::~Ticker() {
  if (core_) sched::del_timer(&core_->t);
}
Ticker::Ticker(Ticker&&) noexcept = default;
Ticker& Ticker::operator=(Ticker&& o) noexcept {
  if (this != &o) {
    if (core_) sched::del_timer(&core_->t);
    core_ = std::move(o.core_);
  }
  return *this;
}
const Chan<TimePoint>& Ticker::chan() const noexcept { return core_->ch; }
void Ticker::stop() { sched::del_timer(&core_->t); }
void Ticker::reset(std::chrono::nanoseconds period) {
  detail::check_period(period);
  sched::del_timer(&core_->t);
  core_->period = period.count();
  core_->arm(detail::after_ns(period));
}

Chan<TimePoint> after(std::chrono::nanoseconds d) {
  // Owns itself: freed by the scheduler once it has fired (or when the runtime shuts down).
  auto* c = new detail::TimerCore;
  Chan<TimePoint> ch = c->ch;
  c->t.release = [](sched::Timer* tm) { delete static_cast<detail::TimerCore*>(tm->arg); };
  try {
    c->arm(detail::after_ns(d));
  } catch (...) {
    delete c;
    throw;
  }
  return ch;
}

}  // namespace colony
