// The per-fd table (fdtable.hpp) and the netpoller waits built on it.
#include "fdtable.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>

#include <climits>
#include <cstdlib>
#include <new>

#include "bridge.hpp"
#include "colony/hooks.hpp"

namespace colony::hooks::detail {

namespace {

constexpr int kChunkBits = 10;
constexpr int kChunk = 1 << kChunkBits;  // entries per chunk
constexpr int kChunks = 1 << 11;         // fds up to 2^21 (Linux's nr_open default is 2^20)

struct Chunk {
  Fd fds[kChunk];
};
constinit std::atomic<Chunk*> g_chunks[kChunks] = {};

constinit std::atomic<std::uint64_t> g_waits{0}, g_fallbacks{0}, g_sleeps{0};

void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// The waits for a retired fd to drain, and for a retiring fd to be released, are a few
// microseconds; a fiber yields, a plain thread (or the scheduler's g0) relaxes its CPU.
void pause_a_moment(int round) {
  if (on_fiber()) {
    sched::yield();
  } else if (round < 64) {
    cpu_relax();
  } else {
    ::sched_yield();
  }
}

}  // namespace

int get_errno() noexcept {
  return errno;
}
void set_errno(int e) noexcept {
  errno = e;
}

void Lock::lock() noexcept {
  for (int round = 0;; ++round) {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    while (locked_.load(std::memory_order_relaxed)) {
      if (round++ < 64)
        cpu_relax();
      else
        ::sched_yield();
    }
  }
}

Fd* fd_find(int fd) noexcept {
  if (fd < 0 || fd >= kChunk * kChunks) return nullptr;
  Chunk* c = g_chunks[fd >> kChunkBits].load(std::memory_order_acquire);
  return c ? &c->fds[fd & (kChunk - 1)] : nullptr;
}

Fd* fd_get(int fd) noexcept {
  if (fd < 0 || fd >= kChunk * kChunks) return nullptr;
  std::atomic<Chunk*>& slot = g_chunks[fd >> kChunkBits];
  Chunk* c = slot.load(std::memory_order_acquire);
  if (!c) {
    Chunk* fresh = new (std::nothrow) Chunk;
    if (!fresh) return nullptr;
    if (slot.compare_exchange_strong(c, fresh, std::memory_order_acq_rel)) {
      c = fresh;
    } else {
      delete fresh;  // another thread installed one first; c is it
    }
  }
  return &c->fds[fd & (kChunk - 1)];
}

bool is_socket(int fd, Fd* e) noexcept {
  Kind k = e->kind.load(std::memory_order_acquire);
  if (k == Kind::unknown) {
    struct stat st;
    const int saved = errno;
    if (::fstat(fd, &st) != 0) {
      errno = saved;
      return false;  // not open: the real call reports EBADF
    }
    k = S_ISSOCK(st.st_mode) ? Kind::socket : Kind::other;
    e->kind.store(k, std::memory_order_release);
  }
  return k == Kind::socket;
}

void forget(int fd) noexcept {
  if (Fd* e = fd_find(fd)) e->kind.store(Kind::unknown, std::memory_order_release);
}

void mark_socket(int fd) noexcept {
  if (Fd* e = fd_get(fd)) e->kind.store(Kind::socket, std::memory_order_release);
}

Fd* retire(int fd) {
  Fd* e = fd_find(fd);
  if (!e) return nullptr;
  e->lock.lock();
  for (int round = 0; e->closing; ++round) {  // another close of the same number: let it finish
    e->lock.unlock();
    pause_a_moment(round);
    e->lock.lock();
  }
  e->closing = true;
  for (int round = 0; e->waiters != 0; ++round) {
    sched::PollDesc* pd = e->pd;
    e->lock.unlock();
    // Each waiter leaves with ECANCELED; one that is between its syscall and its poll_wait
    // finds the ready flag set instead, retries, and then sees `closing` (wait_fd).
    sched::poll_interrupt(pd, sched::PollMode::read);
    sched::poll_interrupt(pd, sched::PollMode::write);
    try {
      pause_a_moment(round);
    } catch (const FiberUnwind&) {
      // The runtime is unwinding this fiber while it closes (as in colony::net's close): the
      // waiters are unwound too and will not retry; close now, and this fiber unwinds at its
      // next park, which throws again at once.
      e->lock.lock();
      break;
    }
    e->lock.lock();
  }
  e->lock.unlock();
  return e;
}

void unretire(Fd* e) noexcept {
  if (!e) return;
  e->lock.lock();
  e->closing = false;
  e->lock.unlock();
}

bool user_nonblocking(int fd, Fd* e) noexcept {
  e->lock.lock();
  bool nb;
  if (e->nb_holders > 0) {
    nb = e->saved_nonblock;
  } else {
    const int fl = ::fcntl(fd, F_GETFL);
    nb = fl < 0 || (fl & O_NONBLOCK) != 0;
  }
  e->lock.unlock();
  return nb;
}

NonblockScope::NonblockScope(int fd, Fd* e) noexcept : fd_(fd), e_(e) {
  e_->lock.lock();
  if (e_->nb_holders == 0) {
    const int fl = ::fcntl(fd_, F_GETFL);
    if (fl < 0) {
      e_->lock.unlock();
      return;
    }
    e_->saved_nonblock = (fl & O_NONBLOCK) != 0;
    if (!e_->saved_nonblock && ::fcntl(fd_, F_SETFL, fl | O_NONBLOCK) != 0) {
      e_->lock.unlock();
      return;
    }
  }
  ++e_->nb_holders;
  ok_ = true;
  e_->lock.unlock();
}

NonblockScope::~NonblockScope() {
  if (!ok_) return;
  const int saved = errno;
  e_->lock.lock();
  if (--e_->nb_holders == 0 && !e_->saved_nonblock) {
    const int fl = ::fcntl(fd_, F_GETFL);
    if (fl >= 0) ::fcntl(fd_, F_SETFL, fl & ~O_NONBLOCK);
  }
  e_->lock.unlock();
  errno = saved;
}

WaitResult wait_fd(int fd, Fd* e, sched::PollMode mode, std::int64_t deadline_ns) {
  sched::PollDesc* pd;
  e->lock.lock();
  for (int round = 0; e->closing; ++round) {
    e->lock.unlock();
    pause_a_moment(round);
    e->lock.lock();
  }
  if (!e->pd) {
    try {
      e->pd = sched::poll_open(fd);  // under the lock: one registration per fd at a time
    } catch (...) {  // std::system_error: EPERM (not pollable), EEXIST (colony::net has it), ...
      e->lock.unlock();
      return WaitResult::nopoll;
    }
  }
  pd = e->pd;
  ++e->waiters;
  e->lock.unlock();

  struct Leave {  // also when poll_wait throws FiberUnwind
    Fd* e;
    ~Leave() {
      e->lock.lock();
      if (--e->waiters == 0) {
        sched::poll_close(e->pd);
        e->pd = nullptr;
      }
      e->lock.unlock();
    }
  } leave{e};
  count_wait();
  const int r = sched::poll_wait(pd, mode, deadline_ns);
  if (r == ETIMEDOUT) return WaitResult::timedout;
  e->lock.lock();
  const bool closing = e->closing;
  e->lock.unlock();
  if (closing) return WaitResult::closed;
  return WaitResult::ready;  // 0, or ECANCELED by a poll_interrupt that was not ours: retry
}

void count_wait() noexcept {
  g_waits.fetch_add(1, std::memory_order_relaxed);
}
void count_fallback() noexcept {
  g_fallbacks.fetch_add(1, std::memory_order_relaxed);
}
void count_sleep() noexcept {
  g_sleeps.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace colony::hooks::detail

namespace colony::hooks {

bool active() noexcept {
  return detail::available();
}

Stats stats() noexcept {
  return {detail::g_waits.load(std::memory_order_relaxed),
          detail::g_fallbacks.load(std::memory_order_relaxed),
          detail::g_sleeps.load(std::memory_order_relaxed)};
}

}  // namespace colony::hooks

extern "C" int colony_hooks_active(void) {
  return colony::hooks::active() ? 1 : 0;
}
