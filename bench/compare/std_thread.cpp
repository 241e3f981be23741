// colony_compare_thread: the workloads with one std::thread per task, the baseline every user
// knows. At most --thread-cap threads (default 10,000) are alive at once: the suite shares the
// machine's thread/PID space (kernel.pid_max is often 32768), so a task that would need more
// threads waits for the oldest one to be joined, and the table says so. Blocking is
// std::mutex + std::condition_variable.
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "common.hpp"

namespace {

using compare::Args;
using compare::Clock;
using compare::Result;

const std::string kSystem = "std::thread";

// Window: starts threads, joining the oldest first whenever `cap` are alive.
class Window {
 public:
  explicit Window(long cap) : cap_(static_cast<std::size_t>(cap)) {}
  template <class F>
  void start(F&& f) {
    if (live_.size() >= cap_) {
      live_.front().join();
      live_.pop_front();
    }
    try {
      live_.emplace_back(std::forward<F>(f));
    } catch (const std::system_error& e) {
      compare::fail(kSystem, std::string("cannot start a thread: ") + e.what() + " (" +
                                 std::to_string(live_.size()) + " alive; lower --thread-cap)");
    }
  }
  void join_all() {
    for (auto& t : live_) t.join();
    live_.clear();
  }
  ~Window() { join_all(); }

 private:
  std::size_t cap_;
  std::deque<std::thread> live_;
};

std::string cap_note(const Args& a) {
  return "thread per task, at most " + std::to_string(a.thread_cap) + " alive";
}

// spawn: n threads with an empty body (a counter, to check), at most thread_cap alive.
Result spawn(const Args& a) {
  Result r = compare::first_and_warm(a, [&] {
    std::atomic<long> ran{0};
    auto t0 = Clock::now();
    {
      Window w(a.thread_cap);
      for (long i = 0; i < a.n; ++i)
        w.start([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
    }
    double ns = compare::ns_since(t0);
    if (ran.load() != a.n) compare::fail(kSystem, "spawn: lost tasks");
    return compare::per_op(ns, static_cast<double>(a.n), std::to_string(a.n) + " done");
  });
  r.note = cap_note(a);
  return r;
}


// pingpong: two threads, two mailboxes; the partner answers v + 1; -1 ends it.
Result pingpong(const Args& a) {
  compare::MailboxPingPong pp(a.n);
  std::thread partner([&] { pp.partner(); });
  pp.driver();
  partner.join();
  return pp.result(kSystem, "mutex + condition_variable");
}

// yield: two threads pinned to the same CPU, each calling std::this_thread::yield() n/2 times.
Result yield(const Args& a) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
    compare::fail(kSystem, "sched_getaffinity");
  int cpu = 0;
  while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &allowed)) ++cpu;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);

  const long each = a.n / 2;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  auto body = [&] {
    if (pthread_setaffinity_np(pthread_self(), sizeof one, &one) != 0)
      compare::fail(kSystem, "pthread_setaffinity_np");
    ready.fetch_add(1);
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
    for (long i = 0; i < each; ++i) std::this_thread::yield();
  };
  std::thread t1(body), t2(body);
  while (ready.load() < 2) std::this_thread::yield();
  auto t0 = Clock::now();
  go.store(true, std::memory_order_release);
  t1.join();
  t2.join();
  Result r = compare::per_op(compare::ns_since(t0), 2.0 * static_cast<double>(each),
                             std::to_string(2 * each) + " yields");
  r.note = "two threads pinned to CPU " + std::to_string(cpu) + ", sched_yield";
  return r;
}

// parked: min(n, thread_cap) threads blocked on one condition variable, then notify_all.
Result parked(const Args& a) {
  const long n = std::min(a.n, a.thread_cap);
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  long started = 0;
  std::condition_variable all_started;
  const long rss0 = compare::status_kib("VmRSS");
  auto t0 = Clock::now();
  Window w(n);
  for (long i = 0; i < n; ++i)
    w.start([&] {
      std::unique_lock<std::mutex> lk(m);
      if (++started == n) all_started.notify_one();
      cv.wait(lk, [&] { return open; });
    });
  {
    std::unique_lock<std::mutex> lk(m);
    all_started.wait(lk, [&] { return started == n; });
  }
  const long rss1 = compare::status_kib("VmRSS");
  {
    std::lock_guard<std::mutex> lk(m);
    open = true;
  }
  cv.notify_all();
  w.join_all();
  Result r;
  compare::rss_per_task(r, rss0, rss1, n, compare::ms_since(t0));
  r.check = std::to_string(n) + " woken";
  r.note = n < a.n ? "capped: " + std::to_string(n) + " threads, not " + std::to_string(a.n)
                   : std::to_string(n) + " threads";
  r.note += " (8 MiB default stacks)";
  return r;
}

// sleep: a thread per task, each sleeping sleep_ms; at most min(cap, thread_cap) alive.
Result sleep_bound(const Args& a) {
  const long cap = std::min(a.cap, a.thread_cap);
  std::atomic<long> slept{0};
  const auto d = std::chrono::milliseconds(a.sleep_ms);
  auto t0 = Clock::now();
  {
    Window w(cap);
    for (long i = 0; i < a.n; ++i)
      w.start([&slept, d] {
        std::this_thread::sleep_for(d);
        slept.fetch_add(1, std::memory_order_relaxed);
      });
  }
  double ms = compare::ms_since(t0);
  if (slept.load() != a.n) compare::fail(kSystem, "sleep: lost tasks");
  Result r = compare::in_ms(ms, std::to_string(a.n) + " slept");
  r.note = cap < a.cap ? "concurrency capped at " + std::to_string(cap) + " threads, not " +
                             std::to_string(a.cap)
                       : "";
  return r;
}

// fib: a thread for one branch of every fork above the cut-off, joined.
std::int64_t pfib(int n, int cutoff) {
  if (n <= cutoff) return compare::fib_seq(n);
  std::int64_t left = 0;
  std::thread t([&left, n, cutoff] { left = pfib(n - 1, cutoff); });
  std::int64_t right = pfib(n - 2, cutoff);
  t.join();
  return left + right;
}

Result fib(const Args& a) {
  return compare::fib_result(kSystem, a, [&] { return pfib(a.fib, a.cutoff); });
}

}  // namespace

int main(int argc, char** argv) {
  return compare::main(argc, argv, kSystem,
                       {{"spawn", spawn, {}},
                        {"skynet",
                         {},
                         "a thread per node: 1,111,111 threads for 1M leaves, most blocked at once "
                         "(far over the thread cap)"},
                        {"pingpong", pingpong, {}},
                        {"yield", yield, {}},
                        {"parked", parked, {}},
                        {"sleep", sleep_bound, {}},
                        {"fib", fib, {}}});
}
