// IdleWorkers: where a pool keeps its idle workers, guarded by the pool's lock. Two layouts, as
// ants has: a LIFO stack (the default: the most recently idle worker is reused first, so the
// others age and get purged) and, with pre_alloc, a ring allocated for cap() workers up front
// (ants' loop queue: FIFO, the oldest idle worker is reused first).
//
// Invariant: in both layouts the workers are ordered by Worker::last_used, oldest first (the
// stack's bottom, the ring's head), because a worker's last_used is set, under the pool's lock,
// on the coarse monotonic clock, right before it is inserted. take_stale() therefore finds the
// expired prefix with a binary search, as ants' refresh() does.
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
  // insert: precondition for the ring: size() < capacity. `proc`: the processor the worker went
  // idle on (sched::current_proc()).
  void insert(Worker* w, int proc);
  // detach: the worker to reuse, or null. Ring: the oldest. Stack: among the kLocalScan newest,
  // the newest that went idle on `proc` (its stack and record are likely in this processor's
  // cache), else the newest.
  Worker* detach(int proc) noexcept;
  // take_stale: removes every worker with last_used <= cutoff; returns them chained through
  // Worker::next_stale (null if none).
  Worker* take_stale(std::int64_t cutoff) noexcept;
  // take: removes up to n workers, oldest first, chained as take_stale.
  Worker* take(std::size_t n) noexcept;
  // remove: removes w wherever it is (a worker unwound at shutdown); O(size).
  void remove(Worker* w) noexcept;

 private:
  Worker*& at(std::size_t i) noexcept {  // i-th oldest
    return ring_ ? items_[(head_ + i) % items_.size()] : items_[i];
  }
  Worker* take_prefix(std::size_t n) noexcept;  // the n oldest, chained

  static constexpr std::size_t kLocalScan = 8;

  bool ring_ = false;
  std::vector<Worker*> items_;  // stack: exactly count_ entries; ring: capacity slots
  std::vector<int> procs_;      // stack only: items_[i] went idle on processor procs_[i]
  std::size_t head_ = 0;        // ring only: the oldest
  std::size_t count_ = 0;
};

}  // namespace colony::detail
