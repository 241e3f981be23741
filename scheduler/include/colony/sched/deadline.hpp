// Deadlines: the one conversion from any std::chrono duration or time point to the runtime's
// clock (sched::nanotime(), nanoseconds of steady_clock), used by every API that takes a
// timeout or a deadline. It saturates as Go does: a duration too large to represent, or a time
// point beyond the range of the clock, means "never" (kNoDeadline); zero, a negative duration or
// a time point in the past means "now" (already expired). It never overflows, whatever the
// clock, the representation (integral or floating point) or the period, including min() and
// max(). A NaN floating-point duration counts as zero.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ratio>
#include <type_traits>

#include "colony/sched/fiber.hpp"

namespace colony::sched {

__extension__ typedef __int128 deadline_i128;

// kNoDeadline: the deadline that never comes.
inline constexpr std::int64_t kNoDeadline = INT64_MAX;

// saturating_ns: d in nanoseconds, clamped to [INT64_MIN, INT64_MAX] instead of overflowing.
template <class Rep, class Period>
constexpr std::int64_t saturating_ns(std::chrono::duration<Rep, Period> d) noexcept {
  using R = std::ratio_divide<Period, std::nano>;  // nanoseconds per tick = num / den
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  if constexpr (std::is_floating_point_v<Rep>) {
    const long double v = static_cast<long double>(d.count()) * R::num / R::den;
    if (std::isnan(v)) return 0;
    if (v >= static_cast<long double>(kMax)) return kMax;
    if (v <= static_cast<long double>(kMin)) return kMin;
    return static_cast<std::int64_t>(v);
  } else {
    static_assert(sizeof(Rep) <= sizeof(std::int64_t), "duration representations up to 64 bits");
    // |count| < 2^64 and num < 2^63: the product fits in 128 bits.
    const deadline_i128 v = static_cast<deadline_i128>(d.count()) * R::num / R::den;
    if (v >= kMax) return kMax;
    if (v <= kMin) return kMin;
    return static_cast<std::int64_t>(v);
  }
}

// saturate: d as std::chrono::nanoseconds, clamped (for APIs whose parameter is nanoseconds).
template <class Rep, class Period>
constexpr std::chrono::nanoseconds saturate(std::chrono::duration<Rep, Period> d) noexcept {
  return std::chrono::nanoseconds(saturating_ns(d));
}

// deadline_after_ns: the runtime time ns nanoseconds after `now`; <= 0 is `now`, too far is never.
constexpr std::int64_t deadline_after_ns(std::int64_t now, std::int64_t ns) noexcept {
  if (ns <= 0) return now;
  if (ns >= kNoDeadline - now) return kNoDeadline;
  return now + ns;
}

// deadline_after: the runtime time d from now.
template <class Rep, class Period>
std::int64_t deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
  const std::int64_t ns = saturating_ns(d);
  if (ns == kNoDeadline) return kNoDeadline;  // no clock read for "forever"
  return deadline_after_ns(nanotime(), ns);
}

// deadline_at: the runtime time of t. Time points of steady_clock map directly; those of another
// clock by their distance from that clock's now (saturating, so min() and max() work).
template <class Clock, class Dur>
std::int64_t deadline_at(std::chrono::time_point<Clock, Dur> t) noexcept {
  if (t == std::chrono::time_point<Clock, Dur>::max()) return kNoDeadline;
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    const std::int64_t ns = saturating_ns(t.time_since_epoch());
    return ns < 0 ? 0 : ns;  // nanotime() is never negative: 0 is already past
  } else {
    const auto now = Clock::now();
    const auto a = t.time_since_epoch().count();
    const auto b = std::chrono::time_point_cast<Dur>(now).time_since_epoch().count();
    using Rep = typename Dur::rep;
    Rep diff;
    if constexpr (std::is_floating_point_v<Rep>) {
      diff = a - b;
    } else if (__builtin_sub_overflow(a, b, &diff)) {
      return a < b ? nanotime() : kNoDeadline;
    }
    return deadline_after(std::chrono::duration<Rep, typename Dur::period>(diff));
  }
}

}  // namespace colony::sched
