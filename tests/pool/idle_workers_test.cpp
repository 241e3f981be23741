// IdleWorkers, driven directly (no pool, no fibers): where a pool's idle workers wait, in which
// order they are reused, purged and retired.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <vector>

#include "idle_workers.hpp"

namespace {

using colony::detail::IdleWorkers;
using colony::detail::Worker;

// Workers whose last_used is their index: inserting them in index order keeps the clock order.
struct Workers {
  explicit Workers(int n) : w(static_cast<std::size_t>(n)) {
    for (int i = 0; i < n; ++i) w[static_cast<std::size_t>(i)].last_used = i;
  }
  Worker* operator[](int i) { return &w[static_cast<std::size_t>(i)]; }
  std::deque<Worker> w;  // Worker holds an atomic: not movable, so no vector
};

std::vector<std::int64_t> chain_ids(Worker* w) {
  std::vector<std::int64_t> out;
  for (; w; w = w->next_stale) out.push_back(w->last_used);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(IdleWorkers, StacksReuseTheNewestOfTheCallersProcessorFirst) {
  IdleWorkers idle;
  idle.init(false, 0);
  Workers w(6);
  idle.insert(w[0], 0);
  idle.insert(w[1], 1);
  idle.insert(w[2], 0);
  idle.insert(w[3], 1);
  EXPECT_EQ(idle.size(), 4u);
  EXPECT_EQ(idle.detach(0), w[2]);
  EXPECT_EQ(idle.detach(0), w[0]);
  // Processor 0 has none left: the newest of another processor.
  EXPECT_EQ(idle.detach(0), w[3]);
  EXPECT_EQ(idle.detach(5), w[1]) << "a processor never seen takes the newest anywhere";
  EXPECT_EQ(idle.detach(0), nullptr);
  EXPECT_TRUE(idle.empty());
}

TEST(IdleWorkers, PlainThreadTakesTheNewestOfAnyProcessor) {
  IdleWorkers idle;
  idle.init(false, 0);
  Workers w(3);
  idle.insert(w[0], 2);
  idle.insert(w[1], 0);
  idle.insert(w[2], 2);
  EXPECT_EQ(idle.detach(-1), w[2]);
  EXPECT_EQ(idle.detach(-1), w[1]);
  EXPECT_EQ(idle.detach(-1), w[0]);
}

TEST(IdleWorkers, TakeStaleRemovesTheExpiredOfEveryProcessor) {
  IdleWorkers idle;
  idle.init(false, 0);
  Workers w(10);
  for (int i = 0; i < 10; ++i) idle.insert(w[i], i % 3);
  EXPECT_EQ(chain_ids(idle.take_stale(4)), (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(idle.size(), 5u);
  EXPECT_EQ(idle.take_stale(4), nullptr) << "nothing left that old";
  // The survivors are still reused newest first, each processor's own first.
  EXPECT_EQ(idle.detach(1), w[7]);
  EXPECT_EQ(idle.detach(1), w[9]) << "processor 1 empty: the newest of any (9, on processor 0)";
}

TEST(IdleWorkers, TakeRetiresTheOldestAcrossProcessors) {
  IdleWorkers idle;
  idle.init(false, 0);
  Workers w(9);
  const int procs[9] = {1, 0, 0, 2, 1, 1, 0, 2, 2};
  for (int i = 0; i < 9; ++i) idle.insert(w[i], procs[i]);
  EXPECT_EQ(chain_ids(idle.take(4)), (std::vector<std::int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(idle.size(), 5u);
  EXPECT_EQ(chain_ids(idle.take(100)), (std::vector<std::int64_t>{4, 5, 6, 7, 8}));
  EXPECT_TRUE(idle.empty());
}

TEST(IdleWorkers, RemoveFindsAWorkerOnAnyProcessor) {
  IdleWorkers idle;
  idle.init(false, 0);
  Workers w(4);
  for (int i = 0; i < 4; ++i) idle.insert(w[i], i);
  idle.remove(w[2]);
  idle.remove(w[2]);  // gone already: no effect
  EXPECT_EQ(idle.size(), 3u);
  EXPECT_EQ(chain_ids(idle.take(10)), (std::vector<std::int64_t>{0, 1, 3}));
}

TEST(IdleWorkers, RingIsFifoAndWraps) {
  IdleWorkers idle;
  idle.init(true, 3);
  Workers w(6);
  idle.insert(w[0], 1);
  idle.insert(w[1], 0);
  idle.insert(w[2], 1);
  EXPECT_EQ(idle.detach(1), w[0]) << "the loop queue reuses the oldest, whatever the processor";
  idle.insert(w[3], 0);  // wraps around
  EXPECT_EQ(chain_ids(idle.take_stale(2)), (std::vector<std::int64_t>{1, 2}));
  idle.insert(w[4], 0);
  idle.insert(w[5], 0);
  idle.remove(w[4]);
  EXPECT_EQ(idle.detach(0), w[3]);
  EXPECT_EQ(idle.detach(0), w[5]);
  EXPECT_TRUE(idle.empty());
}

}  // namespace
