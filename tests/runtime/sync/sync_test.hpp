// What the sync tests (colony_sync_test: one file per primitive beside this one) share: the
// Sync suite, run with 1, 2, 4 and 8 processors (instantiated once, in mutex_test.cpp), and
// helpers to wait for parked fibers, to wait for plain threads from a fiber, and to race a
// primitive's last release against its destruction.
#pragma once

#include <atomic>
#include <chrono>
#include <colony/colony.hpp>
#include <colony/sync.hpp>
#include <thread>
#include <utility>
#include <vector>

#include "test_util.hpp"

namespace colony::testing {

class Sync : public ProcsTest {};

// kScale: smaller loops under the sanitizers (TSan makes every switch and atomic much slower).
inline constexpr int kScale = kSanitized ? 4 : 1;

// parked: fibers of the calling fiber's runtime now parked for `why`.
inline int parked(colony::sched::WaitReason why) {
  int n = 0;
  for (const colony::sched::FiberInfo& f :
       colony::sched::fibers(*colony::sched::current_scheduler()))
    if (f.status == colony::sched::GStatus::waiting && f.reason == why) ++n;
  return n;
}

// wait_parked: yields until at least n fibers are parked for `why` (or 10 s pass).
inline bool wait_parked(colony::sched::WaitReason why, int n) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (parked(why) < n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    colony::this_fiber::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

// OnThread: runs f on a plain OS thread; wait() parks the calling fiber until f has returned
// (joining at once would block the processor), then joins.
class OnThread {
 public:
  template <class F>
  explicit OnThread(F f) {
    done_.add(1);
    t_ = std::thread([this, f = std::move(f)]() mutable {
      f();
      done_.done();
    });
  }
  void wait() {
    done_.wait();
    t_.join();
  }
  ~OnThread() {
    if (t_.joinable()) wait();
  }

 private:
  colony::WaitGroup done_;
  std::thread t_;
};

// Lifetime: an object may be destroyed by whoever sees the last release, even while the
// releasing call has not returned yet (ASan and TSan catch a releasing call that still touches
// it). Each round of a "MayBeDestroyed" test races the release against the destruction; plain
// threads take part.
inline constexpr int kLifetimeRounds = kSanitized ? 200 : 2000;

// Threads: plain threads of a lifetime test, joined in batches. They must end before the
// runtime does: a thread that readies a fiber is still inside the scheduler for a moment after
// the fiber can run (see the report on sched::ready from plain threads).
class Threads {
 public:
  template <class F>
  void start(F f) {
    threads_.emplace_back(std::move(f));
  }
  // join_all: the threads have done their part (the caller waited for them); only their way
  // out of a notify remains, so blocking this processor is brief.
  void join_all() {
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  ~Threads() { join_all(); }

 private:
  std::vector<std::thread> threads_;
};

}  // namespace colony::testing
