// select: the type-independent select algorithm behind colony::select (colony/select.hpp).
//
// docs/design.md, "Channels and select": lock every distinct channel in address order, poll
// the cases in a random order, else enqueue one waiter per case, all sharing one claim.
#include "colony/select.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

#include "colony/chan.hpp"
#include "colony/sched/fiber.hpp"

namespace colony::detail {

namespace {

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
    // select {} (or every case on a nil channel): nothing can complete it, as a nil channel's
    // send or receive: block forever, or sleep until the deadline.
    (void)nil_wait(sched::WaitReason::select_no_cases, deadline_ns);
    return n + 1;
  }
  // Poll in random order (fairness); lock in address order (no deadlock between selects).
  // Up to kInlineCases cases, neither array allocates.
  CaseBuffer<std::size_t> order_buf(n);
  std::size_t* const order = order_buf.p;
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  for (std::size_t i = n - 1; i > 0; --i) std::swap(order[i], order[sched::fastrand() % (i + 1)]);
  CaseBuffer<sched::SpinLock*> lock_buf(n);
  for (std::size_t i = 0; i < n; ++i) lock_buf.p[i] = &cases[i].chan->lock;
  std::sort(lock_buf.p, lock_buf.p + n);
  Locks locks{lock_buf.p,
              static_cast<std::size_t>(std::unique(lock_buf.p, lock_buf.p + n) - lock_buf.p)};

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
  if (deadline_ns != sched::kNoDeadline && deadline_ns <= sched::nanotime()) {
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
    // deadlock detection counts a plain thread blocked without a deadline asleep
    if (!g && deadline_ns == sched::kNoDeadline) sched::outside_thread_sleep(w);
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
    Ctx ctx{&locks, deadline_ns != sched::kNoDeadline ? &t : nullptr, &ss, g};
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
    if (deadline_ns == sched::kNoDeadline) sched::outside_thread_slept();
    while (ss.word.load(std::memory_order_acquire) == 0) {
      if (deadline_ns == sched::kNoDeadline) {
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

}  // namespace colony::detail
