// Channels and select: the type-independent parts (closing, parking, the select algorithm).
#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "colony/chan.hpp"
#include "colony/select.hpp"

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
  sched::WaitList woken;
  {
    std::lock_guard<sched::SpinLock> lk(c.lock);
    if (c.closed) throw ChannelClosed("colony::Chan: close of closed channel");
    c.closed = true;
    while (sched::Waiter* w = c.recvq.pop_claimed()) {
      w->result = kChanClosed;
      woken.push_back(w);
    }
    while (sched::Waiter* w = c.sendq.pop_claimed()) {
      w->result = kChanClosed;
      woken.push_back(w);
    }
  }
  // Unlinked first: each waiter may vanish as soon as it is notified.
  while (sched::Waiter* w = woken.head) {
    woken.head = w->next;
    w->linked = false;
    sched::notify(*w);
  }
}

bool park_on(ChanCore& c, sched::Waiter& w, sched::WaitReason r, std::int64_t deadline_ns) {
  if (deadline_ns < 0) {
    sched::wait(w, c.lock, r);
    return true;
  }
  return sched::wait_until(w, c.lock, r, deadline_ns);
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
  if (deadline_ns < 0) block_forever(r);
  sched::sleep_until_ns(deadline_ns);
  return ChanStatus::timeout;
}

namespace {

std::uint64_t select_rand() noexcept {
  // Per-thread state, read and written without a switch in between.
  static thread_local std::uint64_t s = 0;
  std::uint64_t x = s;
  if (x == 0) x = static_cast<std::uint64_t>(sched::nanotime()) | 1;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  s = x;
  return x;
}

struct Locks {
  sched::SpinLock** v;  // unique, in address order (the global lock order)
  std::size_t n;
  void lock() {
    for (std::size_t i = 0; i < n; ++i) v[i]->lock();
  }
  void unlock() {
    for (std::size_t i = n; i-- > 0;) v[i]->unlock();
  }
};

}  // namespace

std::size_t select_impl(SelectCase* cases, std::size_t n, bool has_default,
                        std::int64_t deadline_ns, ChanStatus* status) {
  if (n == 0) {
    if (has_default) return n;
    // select {} (or every case on a nil channel): block forever.
    if (deadline_ns < 0) block_forever(sched::WaitReason::select_no_cases);
    sched::sleep_until_ns(deadline_ns);
    return n + 1;
  }
  // Poll in random order (fairness); lock in address order (no deadlock between selects).
  // Up to kInlineCases cases, neither array allocates.
  CaseBuffer<std::size_t> order_buf(n);
  std::size_t* const order = order_buf.p;
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  for (std::size_t i = n - 1; i > 0; --i)
    std::swap(order[i], order[select_rand() % (i + 1)]);
  CaseBuffer<sched::SpinLock*> lock_buf(n);
  for (std::size_t i = 0; i < n; ++i) lock_buf.p[i] = &cases[i].chan->lock;
  std::sort(lock_buf.p, lock_buf.p + n);
  Locks locks{lock_buf.p, static_cast<std::size_t>(std::unique(lock_buf.p, lock_buf.p + n) - lock_buf.p)};

  locks.lock();
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = order[k];
    sched::Waiter* wake = nullptr;
    ChanStatus s = cases[i].try_op(cases[i].chan, cases[i].is_send, cases[i].elem, &wake);
    if (s == ChanStatus::success || s == ChanStatus::closed) {
      locks.unlock();
      if (wake) sched::notify(*wake);
      *status = s;
      return i;
    }
  }
  if (has_default) {
    locks.unlock();
    return n;
  }
  if (deadline_ns >= 0 && deadline_ns <= sched::nanotime()) {
    locks.unlock();
    return n + 1;
  }
  // Enqueue one waiter per case, all sharing one claim, in the random poll order (as Go's
  // selectgo does): when two cases wait in the same queue of one channel, the partner that pops
  // the queue takes whichever was enqueued first, so argument order would always win.
  sched::SelectState ss;
  std::unique_ptr<sched::Waiter[]> ws(new sched::Waiter[n]);
  sched::G* g = sched::current_g();
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = order[k];
    sched::Waiter& w = ws[i];
    w.select = &ss;
    w.tag = i;
    w.data = cases[i].elem;
    w.g = g;
    w.wake_word = g ? nullptr : &ss.word;
    if (!g && deadline_ns < 0) sched::outside_thread_sleep(w);  // deadlock detection
    w.lock = &cases[i].chan->lock;
    (cases[i].is_send ? cases[i].chan->sendq : cases[i].chan->recvq).push_back(&w);
  }
  auto cleanup = [&] {
    locks.lock();
    for (std::size_t i = 0; i < n; ++i)
      if (ws[i].linked) ws[i].list->remove(&ws[i]);
    locks.unlock();
  };
  if (g) {
    struct Ctx {
      Locks* locks;
      sched::Timer* timer;
      sched::SelectState* ss;
      sched::G* g;
    };
    sched::Timer t;
    Ctx ctx{&locks, deadline_ns >= 0 ? &t : nullptr, &ss, g};
    t.when = deadline_ns;
    t.arg = &ctx;
    t.fn = [](sched::Timer* tm) {
      auto* c = static_cast<Ctx*>(tm->arg);
      std::uint32_t expected = 0;
      if (c->ss->done.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
        c->ss->timed_out = true;
        sched::ready(c->g);
      }
    };
    struct Guard {
      sched::Timer* t;
      ~Guard() {
        if (t) sched::del_timer(t);
      }
    } guard{ctx.timer};
    struct Unwind {  // a fiber unwound at shutdown leaves no waiter behind
      decltype(cleanup)& fn;
      bool armed = true;
      ~Unwind() {
        if (armed) fn();
      }
    } unwind{cleanup};
    sched::park(
        [](sched::G*, void* a) {
          // Runs on the next stack. Once the first lock is released the select may be woken
          // and its frame (ctx, locks) may vanish: copy what is needed first.
          auto* c = static_cast<Ctx*>(a);
          const std::size_t nlocks = c->locks->n;
          sched::SpinLock* small[16];
          std::unique_ptr<sched::SpinLock*[]> big;
          sched::SpinLock** ls = small;
          if (nlocks > 16) {
            big.reset(new sched::SpinLock*[nlocks]);
            ls = big.get();
          }
          for (std::size_t i = 0; i < nlocks; ++i) ls[i] = c->locks->v[i];
          if (c->timer) sched::add_timer(c->timer);
          for (std::size_t i = nlocks; i-- > 0;) ls[i]->unlock();
          return true;
        },
        &ctx, sched::WaitReason::select);
    unwind.armed = false;
  } else {
    locks.unlock();
    if (deadline_ns < 0) sched::outside_thread_slept();
    while (ss.word.load(std::memory_order_acquire) == 0) {
      if (deadline_ns < 0) {
        sched::futex_wait(&ss.word, 0);
      } else if (!sched::futex_wait_until(&ss.word, 0, deadline_ns)) {
        std::uint32_t expected = 0;
        if (ss.done.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
          ss.timed_out = true;
          break;
        }
        // A channel claimed this select first: its notify is on the way.
      }
    }
  }
  cleanup();
  if (ss.timed_out) return n + 1;
  sched::Waiter* w = ss.winner;
  *status = w->result == kChanDone ? ChanStatus::success : ChanStatus::closed;
  return w->tag;
}

}  // namespace detail
}  // namespace colony
