// The interposed sleep, usleep and nanosleep: on a fiber they park it on a timer
// (sched::sleep_for_ns, what colony::this_fiber::sleep_for does), so the thread runs other
// fibers; elsewhere the real call. A parked sleep is not cut short by signals: it returns 0
// (nanosleep leaves *rem alone) where the kernel's would return early with EINTR.
// std::this_thread::sleep_for goes through nanosleep, so it parks too.
#include <time.h>
#include <unistd.h>

#include <cstdint>

#include "hook.hpp"
#include "real.hpp"

using namespace colony::hooks::detail;
namespace real = colony::hooks::real;

namespace {

void park_for(std::int64_t ns) {
  count_sleep();
  colony::sched::sleep_for_ns(ns);
}

}  // namespace

extern "C" {

unsigned sleep(unsigned s) {
  if (!on_fiber()) return real::sleep(s);
  park_for(std::int64_t{s} * 1'000'000'000);
  return 0;
}

int usleep(useconds_t us) {
  if (!on_fiber()) return real::usleep(us);
  park_for(std::int64_t{us} * 1'000);
  return 0;
}

int nanosleep(const timespec* req, timespec* rem) {
  if (!on_fiber() || !req) return real::nanosleep(req, rem);  // EFAULT from the real one
  if (req->tv_sec < 0 || req->tv_nsec < 0 || req->tv_nsec >= 1'000'000'000) {
    set_errno(EINVAL);
    return -1;
  }
  constexpr std::int64_t kMaxSec = INT64_MAX / 1'000'000'000 - 1;  // ~292 years: saturate
  const std::int64_t sec = req->tv_sec > kMaxSec ? kMaxSec : std::int64_t{req->tv_sec};
  park_for(sec * 1'000'000'000 + req->tv_nsec);
  return 0;
}

}  // extern "C"
