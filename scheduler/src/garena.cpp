// The G arena (garena.hpp).
#include "garena.hpp"

#include <mutex>
#include <new>

namespace colony::sched {

GArena::~GArena() {
  for (G* c : chunks_) {
    for (std::size_t i = 0; i < kChunk; ++i) c[i].~G();
    ::operator delete(c, std::align_val_t{alignof(G)});
  }
}

G* GArena::alloc(bool* fresh) {
  std::lock_guard<SpinLock> lk(lock_);
  if (G* g = free_) {
    free_ = g->schedlink;
    g->schedlink = nullptr;
    *fresh = false;
    return g;
  }
  if (next_ == end_) {
    chunks_.reserve(chunks_.size() + 1);  // may throw: before the chunk exists
    auto* c = static_cast<G*>(::operator new(kChunk * sizeof(G), std::align_val_t{alignof(G)}));
    for (std::size_t i = 0; i < kChunk; ++i) ::new (c + i) G;
    chunks_.push_back(c);
    next_ = c;
    end_ = c + kChunk;
  }
  *fresh = true;
  return next_++;
}

int GArena::take(G** out, int max) noexcept {
  std::lock_guard<SpinLock> lk(lock_);
  int n = 0;
  while (n < max && free_) {
    out[n++] = free_;
    free_ = free_->schedlink;
  }
  for (int i = 0; i < n; ++i) out[i]->schedlink = nullptr;
  return n;
}

void GArena::give(G* const* gs, int n) noexcept {
  if (n == 0) return;
  for (int i = 0; i + 1 < n; ++i) gs[i]->schedlink = gs[i + 1];
  std::lock_guard<SpinLock> lk(lock_);
  gs[n - 1]->schedlink = free_;
  free_ = gs[0];
}

}  // namespace colony::sched
