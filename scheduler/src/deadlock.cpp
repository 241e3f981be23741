// Deadlock detection: Go's checkdead, for colony::run. See docs/design.md, "Deadlock detection".
//
// A runtime is dead when no fiber can ever run again: every P is idle (no fiber is running and
// no M is looking for work), every run queue is empty, no timer is pending on any P (a sleep or
// a time-out will ready a fiber), and nothing outside the runtime could still wake a fiber:
// every other runtime of the process is just as quiet, and so is every other thread.
// Go has no such threads; colony must account for them. It counts the threads of the process
// (/proc/self/stat) and subtracts the ones it can vouch for:
//   * the Ms of every live runtime, and the runtime's own helper threads (the SIGQUIT dumper);
//   * plain threads blocked, with no deadline, in a colony primitive. Such a thread counts
//     itself asleep after it has unlocked the primitive, and whoever wakes it counts it awake
//     *before* waking it, so the count never includes a thread that is on its way back.
// Any other thread (one sleeping, joining, reading a file, blocked in a timed colony wait, or
// belonging to another library) might wake a fiber, so the runtime is not reported. The check
// errs on the side of silence: it can miss a deadlock, it must not report a false one.
//
// The counts are read at different moments, so a global epoch makes the reading consistent: it
// moves whenever a P leaves an idle list (a fiber may run, a thread may be created), whenever
// a counted plain thread is woken, and whenever a runtime helper thread starts or ends (one
// ending between the two readings would make room for an unaccounted thread). Ms only end when
// their runtime shuts down, and a runtime that is shutting down is not quiet. The check reads the epoch, then the vouched-for threads, then
// /proc, then the epoch again: unchanged, the asleep threads were asleep throughout, no fiber ran,
// so /proc counting no more threads than that means no other thread existed, nor can appear.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "colony/sched/wait.hpp"
#include "sched.hpp"

namespace colony::sched {

void for_each_scheduler(void (*fn)(Scheduler&, void*), void* arg);

namespace {

std::atomic<long> g_asleep{0};     // plain threads blocked (no deadline) in colony primitives
std::atomic<long> g_internal{0};   // the runtime's own non-M threads
std::atomic<int> g_detecting{0};   // runtimes with a deadlock hook
std::atomic<std::uint64_t> g_epoch{0};

void check_all() noexcept {
  if (g_detecting.load(std::memory_order_seq_cst) == 0) return;
  // The hook runs outside the registry lock (it may do anything, even start a runtime). The
  // scheduler cannot go away meanwhile: its run() thread waits for the main fiber, which cannot
  // run again, until the hook itself fails the main fiber's future.
  std::function<void()> hook;
  for_each_scheduler(
      [](Scheduler& s, void* h) {
        auto& out = *static_cast<std::function<void()>*>(h);
        if (!out) out = s.check_dead();
      },
      &hook);
  if (hook) hook();
}

// Threads in this process, or -1 if /proc cannot tell. Field 20 of /proc/self/stat, counted
// after the ")" that ends the command name (which may itself hold spaces and parentheses).
long process_threads() noexcept {
  // Opened once and read with pread (half the cost of open+read+close); never closed.
  static const int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[1024];
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');
  if (!p) return -1;
  int field = 2;
  for (; *p; ++p) {
    if (*p == ' ' && ++field == 20) return std::strtol(p + 1, nullptr, 10);
  }
  return -1;
}

// Threads a sanitizer runtime adds: TSan starts one background thread with the first
// pthread_create (the runtime's Ms have been created by the time anything is checked).
#if defined(COLONY_TSAN)
constexpr long kSanitizerThreads = 1;
#else
constexpr long kSanitizerThreads = 0;
#endif

// Every runtime quiet (another runtime's fiber or timer could wake a thread that wakes ours),
// and the threads vouched for: the asleep plain threads, helpers, and every runtime's Ms.
bool all_quiet(long* accounted) noexcept {
  struct Acc {
    bool quiet = true;
    long threads;
  } acc{true, g_asleep.load(std::memory_order_seq_cst) + g_internal.load() + kSanitizerThreads};
  for_each_scheduler(
      [](Scheduler& s, void* a) {
        auto& r = *static_cast<Acc*>(a);
        r.quiet = r.quiet && s.quiet(&r.threads);
      },
      &acc);
  *accounted = acc.threads;
  return acc.quiet;
}

}  // namespace

void outside_thread_sleep(Waiter& w) noexcept {
  // The caller still holds the wait list's lock: a notifier sees the flag when it unlinks w.
  w.thread_asleep = true;
}

void outside_thread_slept() noexcept {
  g_asleep.fetch_add(1, std::memory_order_seq_cst);
  check_all();
}

void outside_thread_woken(Waiter& w) noexcept {
  // Before the wake: a notifier that ran before the sleeper counted itself asleep makes the
  // count dip below the truth (harmless: fewer threads vouched for), never rise above it.
  if (w.thread_asleep) {
    g_asleep.fetch_sub(1, std::memory_order_seq_cst);
    g_epoch.fetch_add(1, std::memory_order_seq_cst);
  }
}

void deadlock_epoch_bump() noexcept { g_epoch.fetch_add(1, std::memory_order_seq_cst); }

void internal_thread(int delta) noexcept {
  // A vouched-for thread that ends between a check's reading of the counts and of /proc would
  // make room for an unaccounted one: the epoch makes that check start over.
  g_internal.fetch_add(delta, std::memory_order_seq_cst);
  g_epoch.fetch_add(1, std::memory_order_seq_cst);
}

void Scheduler::set_deadlock_hook(std::function<void()> hook) {
  std::lock_guard<std::mutex> lk(lock_);
  if (!deadlock_hook_ && hook) g_detecting.fetch_add(1, std::memory_order_seq_cst);
  if (deadlock_hook_ && !hook) g_detecting.fetch_sub(1, std::memory_order_seq_cst);
  deadlock_hook_ = std::move(hook);
}

bool Scheduler::idle_locked() const noexcept {
  if (stopping_.load()) return false;  // shutting down: unwinding fibers run destructors
  if (npidle_.load() != nprocs_) return false;  // a P is held: a fiber runs, or an M searches
  if (any_runq_nonempty()) return false;
  if (io_waiters_.load() > 0) return false;  // a fiber or thread waits on I/O: not dead
  if (blocking_ > 0) return false;           // a fiber is in a blocking call: it runs
  return earliest_timer() == INT64_MAX;
}

bool Scheduler::quiet(long* threads) noexcept {
  std::lock_guard<std::mutex> lk(lock_);
  *threads += static_cast<long>(allm_.size());
  return idle_locked();
}

bool Scheduler::dead_locked() const noexcept {
  if (!deadlock_hook_ || deadlock_reported_ || stopping_.load()) return false;
  return idle_locked() && live_fibers() > 0;
}

std::function<void()> Scheduler::check_dead() noexcept {
  if (npidle_.load(std::memory_order_relaxed) != nprocs_) return {};  // the common case
  std::uint64_t epoch;
  {
    std::lock_guard<std::mutex> lk(lock_);
    if (!dead_locked()) return {};
    epoch = g_epoch.load(std::memory_order_seq_cst);
  }
  // Outside this runtime's lock: quiet() takes every runtime's. The order matters (see the top).
  long accounted = 0;
  if (!all_quiet(&accounted)) return {};
  const long threads = process_threads();
  if (threads < 0 || threads > accounted) return {};
  std::lock_guard<std::mutex> lk(lock_);
  if (g_epoch.load(std::memory_order_seq_cst) != epoch || !dead_locked()) return {};
  deadlock_reported_ = true;  // once
  return deadlock_hook_;
}

}  // namespace colony::sched
