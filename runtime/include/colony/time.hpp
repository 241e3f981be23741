// Channel timers, as Go's time package: after(d), Timer (stop, reset) and Ticker.
//
//   colony::select(colony::on_recv(results, ...), colony::on_recv(colony::after(1s), ...));
//   colony::Ticker tick(100ms);  for (;;) { tick.chan().recv(); ... }
//
// Each delivers the time it fired (std::chrono::steady_clock) on a channel with one slot; a
// Ticker whose reader falls behind drops ticks (the slot is full), as Go's does. The timers run
// on the scheduler's timer heaps: waiting on their channels parks fibers, and plain threads can
// wait on them too. Timer and Ticker stop when destroyed.
#pragma once

#include <chrono>
#include <memory>

#include "colony/chan.hpp"
#include "colony/sched/deadline.hpp"

namespace colony {

using TimePoint = std::chrono::steady_clock::time_point;

namespace detail {
struct TimerCore;  // heap-allocated: the scheduler's timer can outlive a moved-from handle
}

// Timer: sends the firing time on chan() once, after its duration.
class Timer {
 public:
  explicit Timer(std::chrono::nanoseconds d);
  // Any duration, saturating: a duration beyond nanoseconds::max() never fires, <= 0 at once.
  template <class Rep, class Period>
  explicit Timer(std::chrono::duration<Rep, Period> d) : Timer(sched::saturate(d)) {}
  ~Timer();
  Timer(Timer&&) noexcept;
  Timer& operator=(Timer&&) noexcept;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // chan: where the firing time arrives.
  const Chan<TimePoint>& chan() const noexcept;
  // stop: prevents the timer from firing. True if it stopped it; false if it had already fired
  // or been stopped. Does not drain chan() (as Go's Timer.Stop).
  bool stop();
  // reset: stops it, then arms it to fire after d. True if it had been active.
  bool reset(std::chrono::nanoseconds d);
  template <class Rep, class Period>
  bool reset(std::chrono::duration<Rep, Period> d) { return reset(sched::saturate(d)); }

 private:
  std::shared_ptr<detail::TimerCore> core_;
};

// Ticker: sends the time on chan() every period, until stopped. period must be positive.
class Ticker {
 public:
  explicit Ticker(std::chrono::nanoseconds period);
  template <class Rep, class Period>
  explicit Ticker(std::chrono::duration<Rep, Period> period) : Ticker(sched::saturate(period)) {}
  ~Ticker();
  Ticker(Ticker&&) noexcept;
  Ticker& operator=(Ticker&&) noexcept;
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;

  const Chan<TimePoint>& chan() const noexcept;
  void stop();
  // reset: stops it and restarts it with a new period (positive).
  void reset(std::chrono::nanoseconds period);
  template <class Rep, class Period>
  void reset(std::chrono::duration<Rep, Period> period) { reset(sched::saturate(period)); }

 private:
  std::shared_ptr<detail::TimerCore> core_;
};

// after: a channel that receives the time once, after d (Go's time.After). The timer is not
// stopped when nobody reads the channel; it is freed when it has fired.
Chan<TimePoint> after(std::chrono::nanoseconds d);
template <class Rep, class Period>
Chan<TimePoint> after(std::chrono::duration<Rep, Period> d) {
  return after(sched::saturate(d));
}

}  // namespace colony
