// The interposed poll and select (and __poll_chk, poll's _FORTIFY_SOURCE entry point).
//
// On a fiber: a first real call with a zero timeout; if it finds nothing and the caller is
// willing to wait,
//   * one socket waited for in one direction (the common case: a client library waiting for
//     its connection) parks the fiber on the netpoller, then asks the real call again;
//   * no fd at all with a timeout is a sleep: the fiber parks on a timer;
//   * anything else (several fds, a pipe, a tty, POLLPRI, both directions) runs the real call
//     inside sched::enter_blocking / exit_blocking: the processor is handed to another thread
//     meanwhile, so the other fibers keep running; only this fiber's thread waits.
// A parked poll or select is not interrupted by signals (the kernel's returns EINTR).
#include <poll.h>
#include <sys/select.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "hook.hpp"
#include "real.hpp"

using namespace colony::hooks::detail;
namespace real = colony::hooks::real;

namespace {

std::int64_t ms_deadline(int timeout_ms) noexcept {
  return timeout_ms < 0 ? INT64_MAX
                        : colony::sched::nanotime() + std::int64_t{timeout_ms} * 1'000'000;
}

std::int64_t remaining_ns(std::int64_t deadline_ns) noexcept {
  if (deadline_ns == INT64_MAX) return INT64_MAX;
  const std::int64_t d = deadline_ns - colony::sched::nanotime();
  return d < 0 ? 0 : d;
}

int remaining_ms(std::int64_t deadline_ns) noexcept {
  const std::int64_t d = remaining_ns(deadline_ns);
  if (d == INT64_MAX) return -1;
  return d / 1'000'000 >= INT32_MAX ? INT32_MAX : static_cast<int>((d + 999'999) / 1'000'000);
}

// single_mode: the one direction a pollfd waits for, if the netpoller can watch it (epoll is
// registered for EPOLLIN | EPOLLOUT | EPOLLRDHUP; errors and hang-ups wake both directions).
// POLLERR, POLLHUP and POLLNVAL are always reported and ignored in `events` (poll(2)), but
// callers do ask for them (libpq waits with POLLIN | POLLERR): they do not make a second mode.
bool single_mode(short events, PollMode& mode) noexcept {
  constexpr short kRead = POLLIN | POLLRDNORM | POLLRDHUP;
  constexpr short kWrite = POLLOUT | POLLWRNORM;
  constexpr short kAlways = POLLERR | POLLHUP | POLLNVAL;
  events = static_cast<short>(events & ~kAlways);
  if (events & ~(kRead | kWrite)) return false;  // POLLPRI, POLLRDBAND, POLLWRBAND
  const bool rd = events & kRead, wr = events & kWrite;
  if (rd == wr) return false;
  mode = rd ? PollMode::read : PollMode::write;
  return true;
}

timeval to_timeval(std::int64_t ns) noexcept {
  return {static_cast<time_t>(ns / 1'000'000'000),
          static_cast<suseconds_t>((ns % 1'000'000'000) / 1'000)};
}

}  // namespace

extern "C" {

int poll(pollfd* fds, nfds_t nfds, int timeout) {
  if (!on_fiber()) return real::poll(fds, nfds, timeout);
  if (nfds == 0 && timeout > 0) {  // a sleep
    count_sleep();
    colony::sched::sleep_for_ns(std::int64_t{timeout} * 1'000'000);
    return 0;
  }
  int r = real::poll(fds, nfds, 0);
  if (r != 0 || timeout == 0) return r;
  const std::int64_t deadline = ms_deadline(timeout);
  PollMode mode;
  Fd* e = nullptr;
  if (nfds == 1 && fds[0].fd >= 0 && single_mode(fds[0].events, mode) && (e = hooked(fds[0].fd))) {
    for (;;) {
      const WaitResult w = wait_fd(fds[0].fd, e, mode, deadline);
      if (w == WaitResult::nopoll) break;
      r = real::poll(fds, 1, 0);
      if (r != 0) return r;  // ready, or POLLNVAL after a close (WaitResult::closed)
      if (w == WaitResult::timedout) return 0;
    }
  }
  return in_blocking([&] { return real::poll(fds, nfds, remaining_ms(deadline)); });
}

int __poll_chk(pollfd* fds, nfds_t nfds, int timeout, size_t fdslen) {
  if (fdslen / sizeof *fds < nfds) __chk_fail();
  return poll(fds, nfds, timeout);
}

int select(int nfds, fd_set* __restrict rd, fd_set* __restrict wr, fd_set* __restrict ex,
           timeval* __restrict tv) {
  if (!on_fiber() || nfds < 0 || nfds > FD_SETSIZE ||
      (tv && (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1'000'000)))
    return real::select(nfds, rd, wr, ex, tv);
  // probe: the real select with a zero timeout, on copies of the sets; on success the copies
  // become the caller's result.
  fd_set r0, w0, x0;
  auto probe = [&]() -> int {
    if (rd) r0 = *rd;
    if (wr) w0 = *wr;
    if (ex) x0 = *ex;
    timeval zero{0, 0};
    const int n =
        real::select(nfds, rd ? &r0 : nullptr, wr ? &w0 : nullptr, ex ? &x0 : nullptr, &zero);
    if (n >= 0 && (n > 0 || (tv && tv->tv_sec == 0 && tv->tv_usec == 0))) {
      if (rd) *rd = r0;
      if (wr) *wr = w0;
      if (ex) *ex = x0;
    }
    return n;
  };
  int n = probe();
  if (n != 0 || (tv && tv->tv_sec == 0 && tv->tv_usec == 0)) return n;
  const std::int64_t deadline = tv ? colony::sched::nanotime() +
                                         std::int64_t{tv->tv_sec} * 1'000'000'000 +
                                         std::int64_t{tv->tv_usec} * 1'000
                                   : INT64_MAX;
  int count = 0, only = -1;
  PollMode mode = PollMode::read;
  for (int fd = 0; fd < nfds && count < 2; ++fd) {
    if (rd && FD_ISSET(fd, rd)) ++count, only = fd, mode = PollMode::read;
    if (wr && FD_ISSET(fd, wr)) ++count, only = fd, mode = PollMode::write;
    if (ex && FD_ISSET(fd, ex)) count += 2;
  }
  if (count == 0 && tv) {  // select(0, NULL, NULL, NULL, &tv): a sleep
    count_sleep();
    colony::sched::sleep_for_ns(remaining_ns(deadline));
    if (rd) FD_ZERO(rd);
    if (wr) FD_ZERO(wr);
    *tv = {0, 0};
    return 0;
  }
  Fd* e = count == 1 ? hooked(only) : nullptr;
  if (e) {
    for (;;) {
      const WaitResult w = wait_fd(only, e, mode, deadline);
      if (w == WaitResult::nopoll) break;
      n = probe();
      if (n != 0) {
        if (tv) *tv = to_timeval(remaining_ns(deadline));
        return n;
      }
      if (w == WaitResult::timedout) {
        if (rd) FD_ZERO(rd);
        if (wr) FD_ZERO(wr);
        if (ex) FD_ZERO(ex);
        if (tv) *tv = {0, 0};
        return 0;
      }
    }
  }
  timeval rest{};
  if (tv) rest = to_timeval(remaining_ns(deadline));
  n = in_blocking([&] { return real::select(nfds, rd, wr, ex, tv ? &rest : nullptr); });
  if (tv) *tv = rest;
  return n;
}

}  // extern "C"
