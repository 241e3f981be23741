// Shared helpers: every scheduler test runs once per processor count (1, 2, 4 and 8 on a 2-core
// machine, so more Ps than cores is always covered), and fails if fibers are left behind.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "colony/future.hpp"

namespace colony::testing {

inline const std::vector<int>& proc_counts() {
  static const std::vector<int> v{1, 2, 4, 8};
  return v;
}

// The pool suites run over 1, 2 and 4 processors (the matrix; 8 adds nothing there but
// time).
inline const std::vector<int>& pool_proc_counts() {
  static const std::vector<int> v{1, 2, 4};
  return v;
}

// Sanitizer builds run the million-fiber tests smaller: ASan at a tenth (shadow memory), TSan
// at 1/250 (TSan counts every fiber context against its limit of 8128 threads).
#if defined(COLONY_ASAN) || defined(COLONY_TSAN)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#if defined(COLONY_TSAN)
inline constexpr double kSanitizerShrink = 250;
#else
inline constexpr double kSanitizerShrink = 10;
#endif

// stress_scale: COLONY_STRESS_SCALE (default 1.0) multiplies the size of stress tests.
inline double stress_scale() {
  const char* s = std::getenv("COLONY_STRESS_SCALE");
  double v = s ? std::atof(s) : 1.0;
  if (v <= 0) v = 1.0;
  return kSanitized ? v / kSanitizerShrink : v;
}

// Latch: counts down from n; wait() parks the fiber (or blocks the thread) until zero.
class Latch {
 public:
  explicit Latch(std::int64_t n) : n_(n) {
    if (n == 0) st_.set_value();
  }
  void count_down() {
    if (n_.fetch_sub(1, std::memory_order_acq_rel) == 1) st_.set_value();
  }
  void wait() { st_.wait(); }
  bool done() const { return st_.is_ready(); }

 private:
  std::atomic<std::int64_t> n_;
  colony::detail::FutureState<void> st_;
};

// join_thread: joins a plain thread from a fiber without holding the fiber's processor while it
// waits. A bare t.join() on a fiber blocks its M and so its P (HACKING.md, "What blocks what"):
// with max_procs = 1 a thread that still needs a fiber of this runtime (a server answering it, a
// channel send it waits on) then never finishes. Inside colony::blocking the P is handed to
// another M for the duration of the join. On a plain thread it is a plain join.
inline void join_thread(std::thread& t) {
  colony::blocking([&] { t.join(); });
}

inline long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

class ProcsTest : public ::testing::TestWithParam<int> {
 protected:
  // run_fibers: runs fn as the main fiber of a fresh runtime with GetParam() processors and
  // checks that, when fn returns, no other fiber is left alive.
  template <class F>
  void run_fibers(F&& fn, Config cfg = {}) {
    cfg.max_procs = GetParam();
    colony::run(
        [&] {
          fn();
          // Fibers that signalled completion may still be on their way out: give them a
          // moment (as goleak retries) before calling it a leak.
          auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
          while (colony::num_fibers() > 1 && std::chrono::steady_clock::now() < deadline)
            colony::this_fiber::sleep_for(std::chrono::microseconds(200));
          EXPECT_EQ(colony::num_fibers(), 1) << "fibers leaked by the test";
        },
        cfg);
  }
};

inline std::string procs_name(const ::testing::TestParamInfo<int>& info) {
  return "P" + std::to_string(info.param);
}

}  // namespace colony::testing
