// What the pool tests (colony_pool_test: one file per pool feature beside this one) share: the
// PoolTest suite, run with 1, 2 and 4 processors inside a fresh runtime (instantiated once, in
// capacity_test.cpp), and helpers to poll for a state, to hold tasks until a gate opens, and to
// run code on a plain thread.
#pragma once

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/pool.hpp>
#include <thread>

#include "test_util.hpp"

namespace colony::testing {

class PoolTest : public ProcsTest {};

// kShrink: smaller loops under the sanitizers.
inline constexpr int kShrink = kSanitized ? 10 : 1;

// eventually: polls pred (sleeping 1 ms between tries) until it holds or `limit` passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    colony::this_fiber::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Gate: tasks block on it until it opens (parks their worker fibers).
class Gate {
 public:
  void wait() { latch_.wait(); }
  void open() {
    if (!opened_.exchange(true)) latch_.count_down();
  }

 private:
  Latch latch_{1};
  std::atomic<bool> opened_{false};
};

// on_thread: runs fn on a plain thread and waits for it through a colony primitive (joining
// right away would block this fiber's processor).
template <class F>
void on_thread(F fn) {
  Latch done(1);
  std::thread t([&] {
    fn();
    done.count_down();
  });
  done.wait();
  t.join();
}

}  // namespace colony::testing
