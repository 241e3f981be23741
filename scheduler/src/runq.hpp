// RunQueue: a P's bounded local run queue, a single-producer / multi-consumer ring of N slots.
// The owner P puts at the tail and gets from the head; thieves (other Ps) take half of it from
// the head with one CAS. This is the structure of Go's runq (proc.go runqput/runqget/runqgrab):
// head is advanced by CAS by owner and thieves alike, tail only by the owner. Slots are atomics
// (relaxed) because a thief may read a slot the owner is about to reuse; such a thief's CAS on
// head then fails and it discards what it read.
//
// Memory ordering: put publishes the slot with a release store of tail; get/grab read tail with
// acquire, then claim slots with an acq_rel CAS on head.
#pragma once

#include <atomic>
#include <cstdint>

namespace colony::sched {

template <class T, std::uint32_t N = 256>
class RunQueue {
  static_assert((N & (N - 1)) == 0, "N must be a power of two");

 public:
  static constexpr std::uint32_t kCapacity = N;

  // put: owner only. Returns false when full (the caller moves half to the global queue).
  bool put(T* x) noexcept {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    std::uint32_t t = tail_.load(std::memory_order_relaxed);
    if (t - h >= N) return false;
    buf_[t % N].store(x, std::memory_order_relaxed);
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }

  // take_half_for_overflow: owner only, when put failed. Claims the older half of the ring into
  // `out` (capacity >= N/2) and returns how many, or 0 if thieves raced (then retry put).
  std::uint32_t take_half_for_overflow(T** out) noexcept {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    std::uint32_t t = tail_.load(std::memory_order_relaxed);
    std::uint32_t n = (t - h) / 2;
    if (n != N / 2) return 0;  // not full any more: thieves took some
    for (std::uint32_t i = 0; i < n; ++i) out[i] = buf_[(h + i) % N].load(std::memory_order_relaxed);
    if (!head_.compare_exchange_strong(h, h + n, std::memory_order_acq_rel)) return 0;
    return n;
  }

  // get: owner only. Null when empty.
  T* get() noexcept {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    for (;;) {
      std::uint32_t t = tail_.load(std::memory_order_relaxed);
      if (t == h) return nullptr;
      T* x = buf_[h % N].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + 1, std::memory_order_acq_rel)) return x;
    }
  }

  // grab: any thread. Copies half (rounded up) of the queue into `dst`'s ring starting at its
  // tail, without publishing them (steal_from does). Returns how many were claimed.
  std::uint32_t grab(RunQueue& dst, std::uint32_t dst_tail) noexcept {
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      std::uint32_t t = tail_.load(std::memory_order_acquire);
      std::uint32_t n = t - h;
      n = n - n / 2;
      if (n == 0) return 0;
      if (n > N / 2) continue;  // inconsistent h and t: the owner moved; read again
      for (std::uint32_t i = 0; i < n; ++i)
        dst.buf_[(dst_tail + i) % N].store(buf_[(h + i) % N].load(std::memory_order_relaxed),
                                           std::memory_order_relaxed);
      if (head_.compare_exchange_strong(h, h + n, std::memory_order_acq_rel)) return n;
    }
  }

  // steal_from: called by this ring's owner. Steals half of `victim` into this ring; returns
  // one of the stolen items to run now (the rest are published in this ring), or null.
  // *count = number stolen.
  T* steal_from(RunQueue& victim, std::uint32_t* count) noexcept {
    std::uint32_t t = tail_.load(std::memory_order_relaxed);
    std::uint32_t n = victim.grab(*this, t);
    *count = n;
    if (n == 0) return nullptr;
    --n;
    T* x = buf_[(t + n) % N].load(std::memory_order_relaxed);
    if (n == 0) return x;
    tail_.store(t + n, std::memory_order_release);
    return x;
  }

  std::uint32_t size() const noexcept {
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      std::uint32_t t = tail_.load(std::memory_order_acquire);
      if (h == head_.load(std::memory_order_acquire)) return t - h;
    }
  }
  bool empty() const noexcept { return size() == 0; }

 private:
  alignas(64) std::atomic<std::uint32_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  alignas(64) std::atomic<T*> buf_[N] = {};
};

}  // namespace colony::sched
