// IdleWorkers: where a pool keeps its idle workers, guarded by the pool's lock. Two layouts, as
// ants has: LIFO stacks (the default: the most recently idle worker is reused first, so the
// others age and get purged) and, with pre_alloc, a ring allocated for cap() workers up front
// (ants' loop queue: FIFO, the oldest idle worker is reused first).
//
// The LIFO layout keeps one stack per processor: a worker goes on the stack of the processor it
// went idle on, and a submitter pops from its own processor's stack first. A worker idle on the
// submitter's processor has its stack and its record in that core's cache, and it will run
// there (it is readied on the submitter's processor); a worker from another processor's stack
// costs a cache miss on every line it touches. Only when its own stack is empty does a
// submitter take the newest worker of another processor.
//
// Invariant: in both layouts each sequence is ordered by Worker::last_used, oldest first (a
// stack's bottom, the ring's head), because a worker reads its last_used off the coarse
// monotonic clock right before it locks the pool and inserts itself, with no switch in between:
// workers joining one processor's stack do so one after another. (The ring takes them from
// every processor; two racing workers may land a clock tick out of order there, which only
// delays one worker's purge by a period.) take_stale() therefore finds the
// expired prefix of each with a binary search, as ants' refresh() does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "worker.hpp"

namespace colony::detail {

class IdleWorkers {
 public:
  // init: ring = pre_alloc, with room for `capacity` workers.
  void init(bool ring, std::size_t capacity);

  bool empty() const noexcept { return count_ == 0; }
  std::size_t size() const noexcept { return count_; }
  // insert: `proc` is the processor the worker went idle on (sched::current_proc()). May throw
  // std::bad_alloc (stacks). Precondition for the ring: size() < capacity.
  void insert(Worker* w, int proc);
  // detach: the worker to reuse, or null. Ring: the oldest. Stacks: the newest of `proc`'s
  // stack, else the newest of any processor's (`proc` -1, a plain thread: the latter).
  Worker* detach(int proc) noexcept;
  // take_stale: removes every worker with last_used <= cutoff; returns them chained through
  // Worker::next_stale (null if none).
  Worker* take_stale(std::int64_t cutoff) noexcept;
  // take: removes up to n workers, oldest first, chained as take_stale.
  Worker* take(std::size_t n) noexcept;
  // remove: removes w wherever it is (a worker unwound at shutdown); O(size).
  void remove(Worker* w) noexcept;

 private:
  Worker*& ring_at(std::size_t i) noexcept { return items_[(head_ + i) % items_.size()]; }
  Worker* take_ring_prefix(std::size_t n) noexcept;  // the n oldest of the ring, chained
  // take_stack_prefix: the n oldest of stacks_[s], chained in front of `chain`.
  Worker* take_stack_prefix(std::size_t s, std::size_t n, Worker* chain) noexcept;

  // A stack entry carries its worker's last_used: choosing among stacks, and the purger's
  // binary search, read the entries, not the workers (each on its own fiber's stack, likely in
  // another core's cache).
  struct Entry {
    Worker* w;
    std::int64_t since;  // w->last_used
  };

  bool ring_ = false;
  std::vector<Worker*> items_;                // ring only: capacity slots
  std::size_t head_ = 0;                      // ring only: the oldest
  std::vector<std::vector<Entry>> stacks_;    // stacks only: by processor id
  std::vector<std::size_t> take_from_;        // stacks only: take()'s scratch, one per stack
  std::size_t count_ = 0;
};

}  // namespace colony::detail
