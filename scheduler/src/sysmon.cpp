// sysmon: each runtime's monitor thread, after Go's sysmon (proc.go). It holds no P and runs no
// fibers. Every few milliseconds (rarely when the runtime is idle) it:
//   * notices a fiber that has run for Config::long_run_threshold without a switch point:
//     colony cannot preempt it, so it counts it (stats().long_runs) and calls
//     Config::on_long_run once per such run;
//   * polls the netpoller when fibers wait on I/O and nobody has polled for 10 ms (every P
//     stuck in a long run, say), injecting what is ready into the global queue;
//   * re-checks for a deadlock when every P is idle (the check otherwise runs only when the
//     last M goes idle or a plain thread blocks, and misses a state that only becomes dead
//     when some other thread exits).
//   * takes the P of a thread that a fiber has blocked in the kernel without colony::blocking
//     and hands it to another M (retake.cpp), as Go's sysmon retakes the P of a thread stuck
//     in a system call. colony::blocking hands its P over at once (enter_blocking).
#include <chrono>

#include "colony/sched/wait.hpp"
#include "sched.hpp"

namespace colony::sched {

namespace {
constexpr std::int64_t kBusyTickNs = 2'000'000;    // between checks while Ps are busy
constexpr std::int64_t kIdleTickNs = 50'000'000;   // while every P is idle
constexpr std::int64_t kPollAfterNs = 10'000'000;  // netpoll if nobody has for this long
constexpr std::int64_t kDeadCheckNs = 100'000'000; // re-check for a deadlock this often
// A fiber that has not switched for this long, on a thread that computes, is looked at again
// only after kRecheckNs (reading a thread's state costs a few microseconds).
constexpr std::int64_t kRetakeAfterNs = 1'000'000;
constexpr std::int64_t kRecheckNs = 10'000'000;
}  // namespace

void Scheduler::sysmon() noexcept {
  internal_thread(+1);  // vouched for: deadlock detection must not wait for it
  sysmon_started_.wakeup();
  struct Seen {
    G* g = nullptr;
    std::uint64_t tick = ~0ull;
    std::int64_t since = 0;
    std::int64_t next_look = 0;  // when to look at the thread's state again (retake)
    bool reported = false;
    bool blocked = false;        // the last look found the thread asleep (retake)
  };
  retake_ok_ = cfg_.retake_blocked && retake_supported();
  std::vector<Seen> seen(allp_.size());
  const std::int64_t threshold = std::chrono::nanoseconds(cfg_.long_run_threshold).count();
  std::int64_t last_dead_check = nanotime();
  while (!sysmon_stop_.load(std::memory_order_acquire)) {
    const std::int64_t now = nanotime();
    bool busy = false;
    for (std::size_t i = 0; i < allp_.size(); ++i) {
      P* p = allp_[i].get();
      // acquire: pairs with the release store of the M that started g, so g's construction
      // (on whichever thread spawned it) happens before the reads below.
      G* g = p->cur.load(std::memory_order_acquire);
      const std::uint64_t tick = p->switches.get() + p->yields.get();
      Seen& s = seen[i];
      if (!g) {
        s = Seen{};
        continue;
      }
      busy = true;
      if (g != s.g || tick != s.tick) {
        s = Seen{g, tick, now, 0, false, false};
        continue;
      }
      if (retake_ok_ && now - s.since >= kRetakeAfterNs && now >= s.next_look) {
        const Retake r = try_retake(p, g, tick, now - s.since, s.blocked);
        if (r == Retake::taken) {
          s = Seen{};
          continue;
        }
        s.blocked = r == Retake::blocked_once;
        if (r == Retake::computing) s.next_look = now + kRecheckNs;
      }
      if (!s.reported && threshold > 0 && now - s.since >= threshold) {
        s.reported = true;
        long_runs_.fetch_add(1, std::memory_order_relaxed);
        if (cfg_.on_long_run) {
          const SourceLocation site = SourceLocation::current(
              g->site_file.load(std::memory_order_relaxed),
              g->site_line.load(std::memory_order_relaxed),
              g->site_function.load(std::memory_order_relaxed));
          try {
            cfg_.on_long_run(g->id.load(std::memory_order_relaxed),
                             std::chrono::nanoseconds(now - s.since), site);
          } catch (...) {
            // a warning hook must not take the monitor down
          }
        }
      }
    }
    if (io_waiters_.load(std::memory_order_relaxed) > 0 &&
        netpoll_m_.load(std::memory_order_relaxed) == nullptr &&
        now - last_poll_.load(std::memory_order_relaxed) > kPollAfterNs)
      netpoll(0);
    if (!busy && now - last_dead_check > kDeadCheckNs) {
      last_dead_check = now;
      if (std::function<void()> hook = check_dead()) hook();
    }
    sysmon_note_.clear();
    // Idle: sleep long, but startm wakes us as soon as a P gets busy again (Go's sysmonwait).
    sysmon_idle_.store(!busy, std::memory_order_seq_cst);
    if (sysmon_stop_.load(std::memory_order_acquire)) break;
    // A P held by an M that is only looking for work counts as busy here (short sleeps), and
    // so does one that got busy since the scan (its pidle_get may have missed sysmon_idle_).
    const bool idle = !busy && npidle_.load(std::memory_order_seq_cst) == nprocs_;
    sysmon_note_.sleep_until(nanotime() + (idle ? kIdleTickNs : kBusyTickNs));
    sysmon_idle_.store(false, std::memory_order_relaxed);
  }
  internal_thread(-1);
}

void Scheduler::stop_sysmon() noexcept {
  sysmon_stop_.store(true, std::memory_order_release);
  sysmon_note_.wakeup();
  if (sysmon_.joinable()) sysmon_.join();
}

}  // namespace colony::sched
