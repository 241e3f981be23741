// The netpoller: Go's netpoll_epoll.go and netpoll.go, for one runtime. See docs/design.md,
// "Netpoller", and colony/sched/netpoll.hpp for the interface.
//
// One edge-triggered epoll set per runtime, created with the first poll_open, plus an eventfd
// (level-triggered, data.ptr == nullptr) that interrupts a blocked epoll_wait. Every fd is
// registered once for EPOLLIN | EPOLLOUT | EPOLLRDHUP; each PollDesc keeps, per direction, a
// wait list and a "ready" flag.
//
// Who polls (find_runnable and stopm in proc.cpp, pick_local in runq.cpp):
//   * find_runnable polls without blocking when fibers wait on I/O and no M is blocked in
//     epoll_wait, before it tries to steal;
//   * an M about to sleep with nothing to do becomes the poller M (netpoll_m_, at most one) and
//     blocks in epoll_wait, until the next timer if it is also the timer sleeper. Waking it (a
//     P handed over, an earlier timer, shutdown) writes the eventfd (wake_m);
//   * a busy P polls every 61st scheduling tick if nobody has polled for 1 ms, so I/O is not
//     starved while every P runs fibers (Go's sysmon does this every 10 ms).
// Readiness wakes the waiters through sched::notify: fibers are readied onto the polling M's P
// (or the global queue, from the poller M, which has none), plain threads are woken by futex.
//
// PollDescs are never freed while the runtime lives, only recycled: an epoll_wait that returned
// an event for a descriptor that was closed meanwhile may still touch it. A stale event on a
// recycled descriptor at worst sets its ready flag once, which costs a caller one retry of its
// syscall (poll_wait's result is only a hint).
#include "colony/sched/netpoll.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <mutex>
#include <system_error>
#include <vector>

#include "colony/sched/deadline.hpp"
#include "colony/sched/wait.hpp"
#include "sched.hpp"

#if defined(COLONY_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace colony::sched {

struct PollDesc {
  Scheduler* sched = nullptr;
  int fd = -1;
  SpinLock lock;
  WaitList waiters[2];   // per PollMode (lock)
  bool ready[2] = {};    // an event found nobody waiting (lock)
  bool closing = false;  // (lock)
  PollDesc* next_free = nullptr;  // (Poller::mu)
};

namespace {
constexpr std::uint8_t kReady = 0, kCancelled = 1;
constexpr int kBlock = 128;  // PollDescs allocated at a time
}  // namespace

struct Poller {
  int epfd = -1;
  int evfd = -1;
  std::mutex mu;  // the free list and the blocks
  std::vector<std::unique_ptr<PollDesc[]>> blocks;
  PollDesc* free = nullptr;

  Poller() {
    epfd = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) throw std::system_error(errno, std::generic_category(), "colony: epoll_create1");
    evfd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (evfd < 0) {
      int e = errno;
      ::close(epfd);
      throw std::system_error(e, std::generic_category(), "colony: eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;
    if (::epoll_ctl(epfd, EPOLL_CTL_ADD, evfd, &ev) != 0) {
      int e = errno;
      ::close(evfd);
      ::close(epfd);
      throw std::system_error(e, std::generic_category(), "colony: epoll_ctl(eventfd)");
    }
  }
  ~Poller() {
    ::close(evfd);
    ::close(epfd);
  }
  PollDesc* alloc() {
    std::lock_guard<std::mutex> lk(mu);
    if (!free) {
      blocks.emplace_back(new PollDesc[kBlock]);
      PollDesc* b = blocks.back().get();
      for (int i = 0; i < kBlock; ++i) {
        b[i].next_free = free;
        free = &b[i];
      }
    }
    PollDesc* pd = free;
    free = pd->next_free;
    pd->next_free = nullptr;
    return pd;
  }
  void release(PollDesc* pd) {
    std::lock_guard<std::mutex> lk(mu);
    pd->next_free = free;
    free = pd;
  }
};

namespace {

// take_all: unlinks every waiter of one direction into `out` (lock held), with `result`.
void take_all(WaitList& l, WaitList& out, std::uint8_t result) noexcept {
  while (Waiter* w = l.pop_front()) {
    w->result = result;
    out.push_back(w);
  }
}

// wake_all: notifies an unlinked chain. Each waiter may return (and vanish) right after its
// notify, so `next` is read first.
void wake_all(WaitList& l) noexcept {
  while (Waiter* w = l.head) {
    l.head = w->next;
    w->linked = false;
    notify(*w);
  }
}

}  // namespace

Poller* Scheduler::poller() {
  Poller* p = poller_.load(std::memory_order_acquire);
  if (p) return p;
  std::lock_guard<std::mutex> lk(poller_mu_);
  p = poller_.load(std::memory_order_relaxed);
  if (!p) {
    p = new Poller();
    poller_.store(p, std::memory_order_release);
  }
  return p;
}

void Scheduler::destroy_poller() noexcept { delete poller_.exchange(nullptr); }

void Scheduler::netpoll_break() noexcept {
  Poller* p = poller_.load(std::memory_order_acquire);
  if (!p) return;
  std::uint64_t one = 1;
  ssize_t r = ::write(p->evfd, &one, sizeof one);  // EAGAIN: already signalled
  (void)r;
}

int Scheduler::netpoll(std::int64_t until_ns) noexcept {
  Poller* p = poller_.load(std::memory_order_acquire);
  if (!p) return 0;
  epoll_event evs[128];
  int n;
  if (until_ns == 0) {
    n = ::epoll_wait(p->epfd, evs, 128, 0);
  } else {
    timespec ts{}, *tsp = nullptr;
    if (until_ns != INT64_MAX) {
      std::int64_t d = until_ns - nanotime();
      if (d < 0) d = 0;
      ts.tv_sec = d / 1000000000;
      ts.tv_nsec = d % 1000000000;
      tsp = &ts;
    }
    n = ::epoll_pwait2(p->epfd, evs, 128, tsp, nullptr);
    if (n < 0 && errno == ENOSYS) {  // kernels before 5.11: millisecond resolution
      int ms = -1;
      if (tsp && ts.tv_sec < 1000000)  // beyond ~11 days: wait without a timeout (no overflow)
        ms = static_cast<int>((ts.tv_sec * 1000) + (ts.tv_nsec + 999999) / 1000000);
      n = ::epoll_wait(p->epfd, evs, 128, ms);
    }
  }
  last_poll_.store(nanotime(), std::memory_order_relaxed);
  if (n <= 0) return 0;
  int woken = 0;
  for (int i = 0; i < n; ++i) {
    auto* pd = static_cast<PollDesc*>(evs[i].data.ptr);
    if (!pd) {
      std::uint64_t v;
      ssize_t r = ::read(p->evfd, &v, sizeof v);
      (void)r;
      continue;
    }
#if defined(COLONY_TSAN)
    __tsan_acquire(pd);  // pairs with the release in poll_open
#endif
    const std::uint32_t e = evs[i].events;
    const bool rd = e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
    const bool wr = e & (EPOLLOUT | EPOLLHUP | EPOLLERR);
    WaitList wake;
    {
      std::lock_guard<SpinLock> lk(pd->lock);
      if (pd->closing) continue;
      for (int m = 0; m < 2; ++m) {
        if (!(m == 0 ? rd : wr)) continue;
        if (pd->waiters[m].empty()) pd->ready[m] = true;
        else take_all(pd->waiters[m], wake, kReady);
      }
    }
    for (Waiter* w = wake.head; w; w = w->next) ++woken;
    wake_all(wake);
  }
  return woken;
}

// ---------------------------------------------------------------------------------------------
// The interface (netpoll.hpp).

PollDesc* poll_open(int fd) {
  Scheduler& s = current_or_default();
  Poller* p = s.poller();
  PollDesc* pd = p->alloc();
  {
    std::lock_guard<SpinLock> lk(pd->lock);
    pd->sched = &s;
    pd->fd = fd;
    pd->ready[0] = pd->ready[1] = false;
    pd->closing = false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = pd;
#if defined(COLONY_TSAN)
  // The kernel orders this epoll_ctl before the epoll_wait that returns pd; TSan cannot see it.
  __tsan_release(pd);
#endif
  if (::epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    int e = errno;
    p->release(pd);
    throw std::system_error(e, std::generic_category(), "colony: poll_open: epoll_ctl");
  }
  return pd;
}

void poll_close(PollDesc* pd) noexcept {
  WaitList wake;
  {
    std::lock_guard<SpinLock> lk(pd->lock);
    pd->closing = true;
    take_all(pd->waiters[0], wake, kCancelled);
    take_all(pd->waiters[1], wake, kCancelled);
  }
  wake_all(wake);
  Poller* p = pd->sched->poller();
  epoll_event ev{};
  ::epoll_ctl(p->epfd, EPOLL_CTL_DEL, pd->fd, &ev);  // fails harmlessly if fd is already closed
  p->release(pd);
}

void poll_interrupt(PollDesc* pd, PollMode mode) noexcept {
  const int m = static_cast<int>(mode);
  WaitList wake;
  {
    std::lock_guard<SpinLock> lk(pd->lock);
    // Nobody parked yet: a caller between its check and its poll_wait would miss the interrupt.
    // The ready flag makes that poll_wait return at once instead (a hint, like every wake-up),
    // and the caller sees whatever made it interrupt (a cancelled Context, a deadline).
    if (pd->waiters[m].empty()) pd->ready[m] = true;
    else take_all(pd->waiters[m], wake, kCancelled);
  }
  wake_all(wake);
}

int poll_fd(const PollDesc* pd) noexcept { return pd->fd; }

int poll_wait(PollDesc* pd, PollMode mode, std::int64_t deadline_ns) {
  const int m = static_cast<int>(mode);
  Scheduler* s = pd->sched;
  struct Count {  // fibers waiting on I/O keep some M polling; undone also when unwound
    Scheduler* s;
    explicit Count(Scheduler* sc) : s(sc) { s->io_wait_begin(); }
    ~Count() { s->io_wait_end(); }
  } count(s);
  if (!current_g()) s->ensure_poller();  // a plain thread: make sure some M polls for it
  pd->lock.lock();
  if (pd->closing) {
    pd->lock.unlock();
    return ECANCELED;
  }
  if (pd->ready[m]) {
    pd->ready[m] = false;
    pd->lock.unlock();
    return 0;
  }
  if (deadline_ns != kNoDeadline && deadline_ns <= nanotime()) {
    pd->lock.unlock();
    return ETIMEDOUT;
  }
  Waiter w;
  pd->waiters[m].push_back(&w);
  if (!wait_until(w, pd->lock, WaitReason::io, deadline_ns)) return ETIMEDOUT;
  return w.result == kCancelled ? ECANCELED : 0;
}

}  // namespace colony::sched
