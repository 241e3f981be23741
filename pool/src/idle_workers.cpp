#include "idle_workers.hpp"

#include <cassert>

namespace colony::detail {

void IdleWorkers::init(bool ring, std::size_t capacity) {
  ring_ = ring;
  items_.clear();
  procs_.clear();
  head_ = count_ = 0;
  if (ring_) items_.assign(capacity, nullptr);
}

void IdleWorkers::insert(Worker* w, int proc) {
  if (!ring_) {
    items_.push_back(w);
    procs_.push_back(proc);
    ++count_;
    return;
  }
  assert(count_ < items_.size() && "colony::Pool: more idle workers than the ring holds");
  items_[(head_ + count_) % items_.size()] = w;
  ++count_;
}

Worker* IdleWorkers::detach(int proc) noexcept {
  if (count_ == 0) return nullptr;
  if (!ring_) {
    // Removing from the middle keeps the stack ordered by last_used (take_stale relies on it).
    std::size_t pick = count_ - 1;
    for (std::size_t k = 0; k < kLocalScan && k < count_; ++k) {
      if (procs_[count_ - 1 - k] == proc) {
        pick = count_ - 1 - k;
        break;
      }
    }
    Worker* w = items_[pick];
    items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(pick));
    procs_.erase(procs_.begin() + static_cast<std::ptrdiff_t>(pick));
    --count_;
    return w;
  }
  Worker* w = items_[head_];
  items_[head_] = nullptr;
  head_ = (head_ + 1) % items_.size();
  --count_;
  return w;
}

Worker* IdleWorkers::take_prefix(std::size_t n) noexcept {
  if (n > count_) n = count_;
  Worker* chain = nullptr;
  for (std::size_t i = n; i-- > 0;) {  // chain oldest first
    Worker* w = at(i);
    w->next_stale = chain;
    chain = w;
  }
  if (n == 0) return nullptr;
  if (!ring_) {
    items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(n));
    procs_.erase(procs_.begin(), procs_.begin() + static_cast<std::ptrdiff_t>(n));
  } else {
    for (std::size_t i = 0; i < n; ++i) at(i) = nullptr;
    head_ = (head_ + n) % items_.size();
  }
  count_ -= n;
  return chain;
}

Worker* IdleWorkers::take_stale(std::int64_t cutoff) noexcept {
  // Binary search for the first worker used after the cutoff: everything before it expired.
  std::size_t lo = 0, hi = count_;
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (at(mid)->last_used <= cutoff)
      lo = mid + 1;
    else
      hi = mid;
  }
  return take_prefix(lo);
}

Worker* IdleWorkers::take(std::size_t n) noexcept {
  return take_prefix(n);
}

void IdleWorkers::remove(Worker* w) noexcept {
  for (std::size_t i = 0; i < count_; ++i) {
    if (at(i) != w) continue;
    for (std::size_t j = i; j + 1 < count_; ++j) at(j) = at(j + 1);
    at(count_ - 1) = nullptr;
    if (!ring_) {
      items_.pop_back();
      procs_.erase(procs_.begin() + static_cast<std::ptrdiff_t>(i));
    }
    --count_;
    return;
  }
}

}  // namespace colony::detail
