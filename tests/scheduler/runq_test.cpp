// The run queue ring and steal-half, driven directly (no scheduler).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "runq.hpp"

namespace {

using colony::sched::RunQueue;

struct Item {
  int id;
};

TEST(RunQueue, FifoForTheOwner) {
  RunQueue<Item, 8> q;
  Item items[8];
  for (int i = 0; i < 8; ++i) {
    items[i].id = i;
    ASSERT_TRUE(q.put(&items[i]));
  }
  Item extra{99};
  EXPECT_FALSE(q.put(&extra)) << "a full ring must refuse";
  EXPECT_EQ(q.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    Item* x = q.get();
    ASSERT_NE(x, nullptr);
    EXPECT_EQ(x->id, i);
  }
  EXPECT_EQ(q.get(), nullptr);
  EXPECT_TRUE(q.empty());
}

TEST(RunQueue, WrapsAround) {
  RunQueue<Item, 4> q;
  Item items[100];
  int next_get = 0;
  for (int i = 0; i < 100; ++i) {
    items[i].id = i;
    if (!q.put(&items[i])) {
      EXPECT_EQ(q.get()->id, next_get++);
      ASSERT_TRUE(q.put(&items[i]));
    }
  }
  while (Item* x = q.get()) EXPECT_EQ(x->id, next_get++);
  EXPECT_EQ(next_get, 100);
}

TEST(RunQueue, OverflowTakesTheOlderHalf) {
  RunQueue<Item, 8> q;
  Item items[8];
  for (int i = 0; i < 8; ++i) {
    items[i].id = i;
    q.put(&items[i]);
  }
  Item* out[4];
  ASSERT_EQ(q.take_half_for_overflow(out), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i]->id, i);
  EXPECT_EQ(q.size(), 4u);
  EXPECT_EQ(q.get()->id, 4);
}

TEST(RunQueue, StealTakesHalfRoundedUp) {
  RunQueue<Item, 16> victim, thief;
  Item items[7];
  for (int i = 0; i < 7; ++i) {
    items[i].id = i;
    victim.put(&items[i]);
  }
  std::uint32_t n = 0;
  Item* first = thief.steal_from(victim, &n);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(n, 4u);                 // 7 - 7/2
  EXPECT_EQ(victim.size(), 3u);
  EXPECT_EQ(thief.size(), 3u);      // one of the four is returned to run now
  EXPECT_EQ(first->id, 3);          // the newest of the stolen batch
  EXPECT_EQ(thief.get()->id, 0);    // the rest keep their order
  EXPECT_EQ(victim.get()->id, 4);
  RunQueue<Item, 16> empty;
  EXPECT_EQ(thief.steal_from(empty, &n), nullptr);
  EXPECT_EQ(n, 0u);
}

// One owner putting and getting while thieves steal: every item is taken exactly once.
TEST(RunQueue, ConcurrentStealingTakesEachItemOnce) {
  constexpr int kItems = 200000;
  constexpr int kThieves = 3;
  std::vector<Item> items(kItems);
  std::vector<std::atomic<int>> taken(kItems);
  RunQueue<Item, 256> owner_q;
  std::atomic<bool> done{false};
  std::atomic<int> total{0};
  auto take = [&](Item* x) {
    taken[static_cast<std::size_t>(x->id)].fetch_add(1);
    total.fetch_add(1);
  };
  std::vector<std::thread> thieves;
  for (int t = 0; t < kThieves; ++t) {
    thieves.emplace_back([&] {
      RunQueue<Item, 256> mine;
      while (!done.load()) {
        std::uint32_t n;
        if (Item* x = mine.steal_from(owner_q, &n)) {
          take(x);
          while (Item* y = mine.get()) take(y);
        }
      }
    });
  }
  for (int i = 0; i < kItems; ++i) {
    items[static_cast<std::size_t>(i)].id = i;
    while (!owner_q.put(&items[static_cast<std::size_t>(i)]))
      if (Item* x = owner_q.get()) take(x);
    if (i % 3 == 0)
      if (Item* x = owner_q.get()) take(x);
  }
  while (Item* x = owner_q.get()) take(x);
  while (total.load() < kItems) std::this_thread::yield();
  done = true;
  for (auto& t : thieves) t.join();
  for (int i = 0; i < kItems; ++i) ASSERT_EQ(taken[static_cast<std::size_t>(i)].load(), 1) << i;
}

}  // namespace
