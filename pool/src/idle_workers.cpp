#include "idle_workers.hpp"

#include <algorithm>
#include <cassert>

namespace colony::detail {

void IdleWorkers::init(bool ring, std::size_t capacity) {
  ring_ = ring;
  items_.clear();
  stacks_.clear();
  take_from_.clear();
  head_ = count_ = 0;
  if (ring_) items_.assign(capacity, nullptr);
}

void IdleWorkers::insert(Worker* w, int proc) {
  if (!ring_) {
    const std::size_t s = proc < 0 ? 0 : static_cast<std::size_t>(proc);
    if (s >= stacks_.size()) {
      take_from_.resize(s + 1);  // take()'s scratch (first: never shorter than stacks_)
      stacks_.resize(s + 1);
    }
    stacks_[s].push_back({w, w->last_used});
    ++count_;
    return;
  }
  assert(count_ < items_.size() && "colony::Pool: more idle workers than the ring holds");
  ring_at(count_) = w;
  ++count_;
}

Worker* IdleWorkers::detach(int proc) noexcept {
  if (count_ == 0) return nullptr;
  if (ring_) {
    Worker* w = items_[head_];
    items_[head_] = nullptr;
    head_ = (head_ + 1) % items_.size();
    --count_;
    return w;
  }
  std::vector<Entry>* from = nullptr;
  if (proc >= 0 && static_cast<std::size_t>(proc) < stacks_.size() &&
      !stacks_[static_cast<std::size_t>(proc)].empty()) {
    from = &stacks_[static_cast<std::size_t>(proc)];
  } else {
    for (std::vector<Entry>& st : stacks_)  // the newest on any processor
      if (!st.empty() && (!from || st.back().since > from->back().since)) from = &st;
  }
  Worker* w = from->back().w;
  from->pop_back();
  --count_;
  return w;
}

Worker* IdleWorkers::take_ring_prefix(std::size_t n) noexcept {
  if (n > count_) n = count_;
  Worker* chain = nullptr;
  for (std::size_t i = n; i-- > 0;) {  // chain oldest first
    Worker* w = ring_at(i);
    w->next_stale = chain;
    chain = w;
    ring_at(i) = nullptr;
  }
  if (n) head_ = (head_ + n) % items_.size();
  count_ -= n;
  return chain;
}

Worker* IdleWorkers::take_stack_prefix(std::size_t s, std::size_t n, Worker* chain) noexcept {
  std::vector<Entry>& st = stacks_[s];
  for (std::size_t i = n; i-- > 0;) {
    st[i].w->next_stale = chain;
    chain = st[i].w;
  }
  st.erase(st.begin(), st.begin() + static_cast<std::ptrdiff_t>(n));
  count_ -= n;
  return chain;
}

Worker* IdleWorkers::take_stale(std::int64_t cutoff) noexcept {
  // Binary search for the first worker used after the cutoff: everything before it expired.
  auto expired = [cutoff](auto&& since, std::size_t count) {
    std::size_t lo = 0, hi = count;
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (since(mid) <= cutoff)
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo;
  };
  if (ring_)
    return take_ring_prefix(
        expired([this](std::size_t i) { return ring_at(i)->last_used; }, count_));
  Worker* chain = nullptr;
  for (std::size_t s = 0; s < stacks_.size(); ++s) {
    std::vector<Entry>& st = stacks_[s];
    chain = take_stack_prefix(s, expired([&st](std::size_t i) { return st[i].since; }, st.size()),
                              chain);
  }
  return chain;
}

Worker* IdleWorkers::take(std::size_t n) noexcept {
  if (ring_) return take_ring_prefix(n);
  if (n >= count_) {  // all of them (release)
    Worker* chain = nullptr;
    for (std::size_t s = 0; s < stacks_.size(); ++s)
      chain = take_stack_prefix(s, stacks_[s].size(), chain);
    return chain;
  }
  // Oldest first across the stacks: count how many to take from each by merging their bottoms.
  std::vector<std::size_t>& from = take_from_;
  std::fill(from.begin(), from.end(), std::size_t{0});
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t best = stacks_.size();
    for (std::size_t s = 0; s < stacks_.size(); ++s) {
      if (from[s] == stacks_[s].size()) continue;
      if (best == stacks_.size() ||
          stacks_[s][from[s]].since < stacks_[best][from[best]].since)
        best = s;
    }
    ++from[best];
  }
  Worker* chain = nullptr;
  for (std::size_t s = 0; s < stacks_.size(); ++s) chain = take_stack_prefix(s, from[s], chain);
  return chain;
}

void IdleWorkers::remove(Worker* w) noexcept {
  if (!ring_) {
    for (std::vector<Entry>& st : stacks_) {
      for (std::size_t i = 0; i < st.size(); ++i) {
        if (st[i].w != w) continue;
        st.erase(st.begin() + static_cast<std::ptrdiff_t>(i));
        --count_;
        return;
      }
    }
    return;
  }
  for (std::size_t i = 0; i < count_; ++i) {
    if (ring_at(i) != w) continue;
    for (std::size_t j = i; j + 1 < count_; ++j) ring_at(j) = ring_at(j + 1);
    ring_at(count_ - 1) = nullptr;
    --count_;
    return;
  }
}

}  // namespace colony::detail
