// The scheduler's interface to the runtime layer (colony::runtime). Not a user API: users call
// colony::go / spawn / run / this_fiber, which are built on these functions.
//
// Contracts every blocking primitive follows (see docs/design.md, "Parking"):
//  * park(unlock, arg, reason) switches the calling fiber out FIRST and runs unlock(g, arg) on the
//    next stack afterwards; only then may a waker see the fiber. So no waker on another thread can
//    resume a fiber whose stack is still in use. unlock returning false cancels the park.
//  * ready(g) makes a parked fiber runnable. Exactly one party may ready a parked fiber: the one
//    that removed it from its wait queue (under the queue's lock) or won the claim on its Waiter.
//  * When the runtime shuts down, every parked fiber is resumed and park() throws FiberUnwind:
//    code after a park must be exception-safe (RAII), and must not swallow FiberUnwind.
#pragma once

#include <time.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "colony/sched/config.hpp"
#include "colony/sched/source_location.hpp"

namespace colony {
// FiberUnwind is thrown out of a blocking call when the runtime shuts down with the fiber still
// parked, so that its stack unwinds and destructors run. Do not catch it (catch (...) must
// rethrow it); it deliberately does not derive from std::exception.
struct FiberUnwind {};
}  // namespace colony

namespace colony::sched {

struct G;
class Scheduler;

// WaitReason: why a fiber is parked; shown in fiber dumps. Each value has a unique string.
enum class WaitReason : std::uint8_t {
  none,
  sleep,
  future,
  chan_receive,
  chan_send,
  chan_receive_nil,  // a receive on a nil channel: never woken (only unwound at shutdown)
  chan_send_nil,     // a send on a nil channel: likewise
  select,
  select_no_cases,
  mutex,
  rwmutex_read,
  rwmutex_write,
  cond,
  waitgroup,
  semaphore,
  once,
  io,
  pool,
  event,
};
std::string_view to_string(WaitReason r) noexcept;

// GStatus: the fiber state machine; see g.hpp for who owns the stack in each state.
enum class GStatus : std::uint8_t { idle, runnable, running, waiting, dead };
std::string_view to_string(GStatus s) noexcept;

// Monotonic clock in nanoseconds, the time base of every deadline in the scheduler.
std::int64_t nanotime() noexcept;
inline std::int64_t to_nanotime(std::chrono::steady_clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
// coarse_now: the same clock as of the kernel's last tick (CLOCK_MONOTONIC_COARSE): a few ns to
// read, a tick's resolution (~4 ms), and it may trail nanotime() by that much. For times that
// may be late: dumps, stack trimming, the pool's idle workers (ants' ticktock goroutine).
inline std::int64_t coarse_now() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// FiberEntry: a type-erased callable stored in the fiber's control block (or on the heap).
struct FiberEntry {
  void (*invoke)(void* fn);   // runs the callable; exceptions escape to the scheduler
  void (*destroy)(void* fn);  // destroys the callable (also when it never ran)
};

// The scheduler a new fiber goes to: the calling fiber's, else the process's default runtime.
Scheduler& current_or_default();
// default_scheduler: the process's default runtime (created on first use), from any thread or
// fiber. Throws std::runtime_error once it has shut down at exit.
Scheduler& default_scheduler();
// The calling fiber's scheduler, or nullptr on a plain thread.
Scheduler* current_scheduler() noexcept;

// new_fiber: allocates a fiber (a control block; its stack is bound when it first runs) and room
// for a callable of fn_size bytes; the caller constructs the callable at *fn_storage, then calls
// start_fiber. Throws std::invalid_argument (options), std::bad_alloc, std::runtime_error if the
// runtime has shut down.
G* new_fiber(Scheduler& s, const SpawnOptions& opts, std::size_t fn_size, std::size_t fn_align,
             void** fn_storage, const colony::SourceLocation& site);
// start_fiber: makes the fiber runnable (into the caller's P runnext, like Go's newproc).
void start_fiber(G* g, FiberEntry entry) noexcept;
// abandon_fiber: gives back a fiber from new_fiber whose callable could not be constructed.
void abandon_fiber(G* g) noexcept;

// launch: new_fiber + start_fiber for a callable of any type: moves (or copies) fn into a new
// fiber of s and makes it runnable. fn runs once, and is destroyed when it returns, or unrun if
// the runtime shuts down first. If anything throws (new_fiber, fn's constructor), the fiber is
// given back and fn is not taken. What colony::go and the pool's workers are built on.
template <class Fn>
void launch(Scheduler& s, const SpawnOptions& opts, Fn&& fn, const colony::SourceLocation& site) {
  using F = std::decay_t<Fn>;
  void* storage = nullptr;
  G* g = new_fiber(s, opts, sizeof(F), alignof(F), &storage, site);
  try {
    ::new (storage) F(std::forward<Fn>(fn));
  } catch (...) {
    abandon_fiber(g);
    throw;
  }
  start_fiber(g, FiberEntry{[](void* p) { (*static_cast<F*>(p))(); },
                            [](void* p) { static_cast<F*>(p)->~F(); }});
}

// The calling fiber, or nullptr on a plain thread.
G* current_g() noexcept;
std::uint64_t fiber_id(const G* g) noexcept;
Scheduler& scheduler_of(const G* g) noexcept;

// yield: put the calling fiber at the back of its P's run queue and run another.
void yield();
// local_backlog: how many fibers wait in the calling fiber's P's local run queue (runnext not
// counted); 0 on a plain thread. A hint for producers that decide whether to yield.
std::uint32_t local_backlog() noexcept;
// current_proc: the index of the P the calling fiber runs on (it may move at its next switch
// point), or -1 on a plain thread. A locality hint.
int current_proc() noexcept;
// current_nprocs: how many P the calling fiber's runtime has (0 on a plain thread).
int current_nprocs() noexcept;
// fastrand: a cheap pseudo-random number, from any thread; not for cryptography (for choices
// like select's among ready cases). On a fiber, a xorshift whose state is the M's (Go's
// cheaprand); on a plain thread, a splitmix64 of a process-wide counter.
std::uint64_t fastrand() noexcept;

// enter_blocking / exit_blocking: bracket a call that blocks the OS thread (colony::blocking),
// as Go's entersyscall / exitsyscall. On a fiber, enter_blocking gives up the P (handed to
// another M at once if it has work or timers) and exit_blocking takes an idle P back, or else
// queues the fiber on the global run queue and lets this M sleep until it is needed. No-ops on
// a plain thread (and while shutdown unwinds). enter_blocking throws std::system_error (EAGAIN)
// when Config::max_threads would be exceeded; it then has not given anything up.
void enter_blocking();
void exit_blocking() noexcept;
// park: see the contract above. unlock may be null. Must be called on a fiber.
using UnlockFn = bool (*)(G* g, void* arg);
void park(UnlockFn unlock, void* arg, WaitReason reason);
// ready: make a parked fiber runnable (next to run on the caller's P when called from a fiber).
void ready(G* g) noexcept;
// sleep_until: park the calling fiber until the monotonic time `deadline_ns` (a plain thread
// sleeps). sleep_for_ns: for `ns` nanoseconds from now (one clock read instead of two).
void sleep_until_ns(std::int64_t deadline_ns);
void sleep_for_ns(std::int64_t ns);

// Timers: a Timer lives where its owner puts it (often on a fiber's stack). fn runs on some M
// when the timer expires, never under a scheduler lock, and must not block. del_timer returns
// true if it removed the timer before it ran; false if it already ran (after waiting until a
// concurrently running fn has returned), so the Timer may be destroyed after del_timer.
struct Timer {
  std::int64_t when = 0;
  void (*fn)(Timer*) = nullptr;
  void* arg = nullptr;
  // release: for timers that own themselves (nobody calls del_timer on them). Called after fn
  // as the scheduler's last use of the timer, or when a shutdown drops it unfired; may free it.
  void (*release)(Timer*) = nullptr;
  // Owned by the scheduler (see timer.cpp):
  std::atomic<void*> heap{nullptr};     // the P whose heap holds it
  std::int32_t slot = -1;               // its slot in that P's timer table (heap's lock)
  std::atomic<std::uint8_t> state{0};   // idle, pending, running, done
  std::atomic<std::uint8_t> firing{0};  // fn is executing (also after fn re-added the timer)
};
void add_timer(Timer* t);
bool del_timer(Timer* t) noexcept;

// FiberInfo: one live fiber, for dumps. A snapshot: the fiber may have moved on since.
struct FiberInfo {
  std::uint64_t id = 0;
  GStatus status = GStatus::idle;
  WaitReason reason = WaitReason::none;  // when waiting
  std::int64_t waited_ns = 0;            // when waiting: for how long (coarse clock)
  bool handed_off = false;  // running in a blocking call, its P handed to another thread
  const char* file = "";                 // spawn site
  unsigned line = 0;
  const char* function = "";
};
// fibers: every fiber of `s` that has started and not finished (runnable, running, waiting).
std::vector<FiberInfo> fibers(Scheduler& s);
// for_each_scheduler: every live runtime of the process (for SIGQUIT dumps).
void for_each_scheduler(void (*fn)(Scheduler&, void*), void* arg);

// StackGuard: how a runtime's fiber stacks are protected against overflow (docs/design.md,
// "Stacks"). Chosen once per runtime from what the kernel supports.
enum class StackGuard : std::uint8_t {
  regions,   // every stack has a guard region (madvise MADV_GUARD_INSTALL, Linux 6.13+)
  budgeted,  // the first Config::guard_page_budget stacks have a PROT_NONE guard; the rest rely
             // on the checks made at every switch
  none,      // guard_page_budget = 0 on a kernel without guard regions: switch checks only
};
std::string_view to_string(StackGuard m) noexcept;

// Statistics of one processor (P). Counters only grow.
struct ProcStats {
  std::uint64_t switches = 0;   // fibers scheduled on this P
  std::uint64_t parks = 0;      // fibers that parked while running on this P
  std::uint64_t yields = 0;     // yields on this P
  std::uint64_t steals = 0;     // successful steal operations by this P
  std::uint64_t stolen = 0;     // fibers this P took by stealing
  std::uint64_t spawns = 0;     // fibers started from this P
  std::uint64_t global_gets = 0;  // fibers this P took from the global run queue
  std::uint64_t timers_fired = 0; // timers this P ran
};

}  // namespace colony::sched
