// colony::detail::PoolTask: a move-only, type-erased `void()` callable plus the site that
// submitted it (for panic reports). Callables of up to kInline bytes that move without throwing
// are stored inline; larger ones go to the heap. Not a user API: Pool::submit builds one.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

#include "colony/sched/source_location.hpp"

namespace colony::detail {

class PoolTask {
 public:
  static constexpr std::size_t kInline = 48;

  PoolTask() noexcept = default;

  template <class F>
  requires(!std::is_same_v<std::remove_cvref_t<F>, PoolTask>)
      PoolTask(F&& f, const SourceLocation& site)
      : site_(site) {
    using D = std::decay_t<F>;
    static_assert(std::is_invocable_v<D&>,
                  "colony::Pool: a task must be callable with no arguments");
    if constexpr (fits_inline<D>()) {
      ::new (static_cast<void*>(buf_)) D(std::forward<F>(f));
      ops_ = &kInlineOps<D>;
    } else {
      D* heap = new D(std::forward<F>(f));
      ::new (static_cast<void*>(buf_)) D*(heap);
      ops_ = &kHeapOps<D>;
    }
  }

  PoolTask(PoolTask&& o) noexcept : ops_(o.ops_), site_(o.site_) {
    if (ops_) {
      ops_->relocate(o.buf_, buf_);
      o.ops_ = nullptr;
    }
  }
  PoolTask& operator=(PoolTask&& o) noexcept {
    if (this != &o) {
      reset();
      ops_ = o.ops_;
      site_ = o.site_;
      if (ops_) {
        ops_->relocate(o.buf_, buf_);
        o.ops_ = nullptr;
      }
    }
    return *this;
  }
  PoolTask(const PoolTask&) = delete;
  PoolTask& operator=(const PoolTask&) = delete;
  ~PoolTask() { reset(); }

  // reset: destroys the callable (if any); the task becomes empty.
  void reset() noexcept {
    if (ops_) {
      const Ops* ops = ops_;
      ops_ = nullptr;
      ops->destroy(buf_);
    }
  }
  explicit operator bool() const noexcept { return ops_ != nullptr; }
  // operator(): runs the callable. Precondition: not empty.
  void operator()() { ops_->invoke(buf_); }
  const SourceLocation& site() const noexcept { return site_; }

  // target: the stored callable, which the caller knows to be a D (no type check).
  template <class D>
  D* target() noexcept {
    if (!ops_) return nullptr;
    if constexpr (fits_inline<D>())
      return std::launder(reinterpret_cast<D*>(buf_));
    else
      return *std::launder(reinterpret_cast<D**>(buf_));
  }

 private:
  struct Ops {
    void (*invoke)(void* buf);
    void (*relocate)(void* from, void* to) noexcept;  // move-construct into `to`, destroy `from`
    void (*destroy)(void* buf) noexcept;
  };

  template <class D>
  static constexpr bool fits_inline() {
    return sizeof(D) <= kInline && alignof(D) <= alignof(std::max_align_t) &&
           std::is_nothrow_move_constructible_v<D>;
  }

  template <class D>
  static constexpr Ops kInlineOps{[](void* b) { (*std::launder(static_cast<D*>(b)))(); },
                                  [](void* from, void* to) noexcept {
                                    D* src = std::launder(static_cast<D*>(from));
                                    ::new (to) D(std::move(*src));
                                    src->~D();
                                  },
                                  [](void* b) noexcept { std::launder(static_cast<D*>(b))->~D(); }};

  template <class D>
  static constexpr Ops kHeapOps{
      [](void* b) { (**std::launder(static_cast<D**>(b)))(); },
      [](void* from, void* to) noexcept { ::new (to) D*(*std::launder(static_cast<D**>(from))); },
      [](void* b) noexcept { delete *std::launder(static_cast<D**>(b)); }};

  alignas(std::max_align_t) unsigned char buf_[kInline];
  const Ops* ops_ = nullptr;
  SourceLocation site_;
};

}  // namespace colony::detail
