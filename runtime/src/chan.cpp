// Channels: the type-independent parts (closing, parking, nil channels); select is select.cpp.
#include "colony/chan.hpp"

#include <atomic>
#include <cstdint>
#include <mutex>
#include <stdexcept>

#include "colony/sched/wait.hpp"

namespace colony {

const char* to_string(ChanStatus s) noexcept {
  switch (s) {
    case ChanStatus::success: return "success";
    case ChanStatus::empty: return "empty";
    case ChanStatus::full: return "full";
    case ChanStatus::closed: return "closed";
    case ChanStatus::timeout: return "timeout";
  }
  return "?";
}

namespace detail {

void close_core(ChanCore* core) {
  if (!core) throw std::logic_error("colony::Chan: close of nil channel");
  ChanCore& c = *core;
  sched::Chain woken;
  {
    std::lock_guard<sched::SpinLock> lk(c.lock);
    if (c.closed) throw ChannelClosed("colony::Chan: close of closed channel");
    c.closed = true;
    while (sched::Waiter* w = c.recvq.pop_claimed()) {
      w->result = kChanClosed;
      woken.add(w);
    }
    while (sched::Waiter* w = c.sendq.pop_claimed()) {
      w->result = kChanClosed;
      woken.add(w);
    }
  }
  sched::notify_chain(woken.first);
}

namespace {

// block_forever: Go's block(), for `select {}` and a nil channel. A fiber parks with nothing to
// wake it (deadlock detection sees a parked fiber; shutdown unwinds it with FiberUnwind). A plain
// thread blocks on a futex word nobody wakes, counted asleep as any deadline-free colony wait is.
[[noreturn]] void block_forever(sched::WaitReason r) {
  if (sched::current_g()) {
    for (;;) sched::park(nullptr, nullptr, r);
  }
  std::atomic<std::uint32_t> never{0};
  sched::outside_thread_slept();
  for (;;) sched::futex_wait(&never, 0);
}

}  // namespace

ChanStatus nil_wait(sched::WaitReason r, std::int64_t deadline_ns) {
  if (deadline_ns == sched::kNoDeadline) block_forever(r);
  sched::sleep_until_ns(deadline_ns);
  return ChanStatus::timeout;
}

}  // namespace detail
}  // namespace colony
