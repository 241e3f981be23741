#include "stack.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <system_error>

namespace colony::sched {
namespace {

// Guard regions (Linux 6.13): a range of an anonymous mapping that faults on any access,
// installed without splitting the mapping. Defined here for headers older than the kernel.
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif

// Process-wide registry of guarded slabs, read by the SIGSEGV handler (a signal handler cannot
// find a Scheduler, so this one table is global by necessity). Entries of a destroyed pool are
// cleared and reused; `base` is published last (release) and cleared first.
struct SlabRecord {
  std::atomic<char*> base{nullptr};
  std::atomic<std::size_t> len{0};
  std::atomic<std::size_t> stride{0};
  std::atomic<std::size_t> guard{0};
};
constexpr std::size_t kMaxGuardedSlabs = 1 << 14;
SlabRecord g_guarded_slabs[kMaxGuardedSlabs];
std::atomic<std::size_t> g_nguarded_slabs{0};
std::mutex g_registry_mu;  // serialises writers of the registry
struct sigaction g_prev_segv;
struct sigaction g_prev_bus;

// Registers a guarded slab; false when the registry is full.
bool register_slab(char* base, std::size_t len, std::size_t stride, std::size_t guard) {
  std::lock_guard<std::mutex> lk(g_registry_mu);
  std::size_t n = g_nguarded_slabs.load(std::memory_order_relaxed);
  std::size_t idx = n;
  for (std::size_t i = 0; i < n; ++i)
    if (!g_guarded_slabs[i].base.load(std::memory_order_relaxed)) { idx = i; break; }
  if (idx == kMaxGuardedSlabs) return false;
  g_guarded_slabs[idx].len.store(len, std::memory_order_relaxed);
  g_guarded_slabs[idx].stride.store(stride, std::memory_order_relaxed);
  g_guarded_slabs[idx].guard.store(guard, std::memory_order_relaxed);
  g_guarded_slabs[idx].base.store(base, std::memory_order_release);
  if (idx == n) g_nguarded_slabs.store(n + 1, std::memory_order_release);
  return true;
}

void unregister_slab(char* base) {
  std::lock_guard<std::mutex> lk(g_registry_mu);
  std::size_t n = g_nguarded_slabs.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < n; ++i)
    if (g_guarded_slabs[i].base.load(std::memory_order_relaxed) == base)
      g_guarded_slabs[i].base.store(nullptr, std::memory_order_release);
}

// Guarded slabs in budgeted mode are small (each guard splits the mapping anyway); with guard
// regions a slab is one mapping whatever it holds, so they are as large as unguarded ones.
constexpr std::size_t kGuardedSlabBytes = 16u << 20;     // 16 MiB of mprotect-guarded slots
constexpr std::size_t kPlainSlabBytes = 256u << 20;      // 256 MiB otherwise
// Slots whose guard regions one call installs (process_madvise takes up to 1,024 ranges). 256
// slots are 80 MiB of address space carved ahead (no memory: guards commit none) for one system
// call; with 32 a cold skynet made ~2,400 process_madvise calls (docs/design.md, "Cold start").
constexpr std::size_t kArmBatch = 256;

std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

// The header of the slot at slot_base (slot tops are page aligned).
Stack* header_of(char* slot_base, std::size_t stride) {
  return reinterpret_cast<Stack*>(slot_base + stride - sizeof(Stack));
}

// Async-signal-safe formatting.
void put(char* buf, std::size_t& n, std::size_t cap, const char* s) {
  while (*s && n + 1 < cap) buf[n++] = *s++;
}
void put_u(char* buf, std::size_t& n, std::size_t cap, unsigned long long v) {
  char tmp[24];
  int k = 0;
  do { tmp[k++] = static_cast<char>('0' + v % 10); v /= 10; } while (v);
  while (k && n + 1 < cap) buf[n++] = tmp[--k];
}

// write_report: names the fiber bound to slot header s (g, or null if none is: then the slot's
// size only).
void write_report(const G* g, const Stack* s, const char* what) {
  char buf[1024];
  std::size_t n = 0;
  put(buf, n, sizeof buf, "colony: fiber ");
  if (g) put_u(buf, n, sizeof buf, g_id(g));
  else put(buf, n, sizeof buf, "?");
  put(buf, n, sizeof buf, what);
  // The size the fiber asked for (its class), not what the header leaves of it.
  put_u(buf, n, sizeof buf, static_cast<unsigned long long>(s->cls->usable));
  if (!g) {
    put(buf, n, sizeof buf, "-byte stack; raise SpawnOptions::stack_size or Config::stack_size\n");
    ssize_t r = ::write(2, buf, n);
    (void)r;
    return;
  }
  put(buf, n, sizeof buf, "-byte stack (spawned at ");
  const char* file = g->site_file.load(std::memory_order_relaxed);
  put(buf, n, sizeof buf, file ? file : "?");
  put(buf, n, sizeof buf, ":");
  put_u(buf, n, sizeof buf, g->site_line.load(std::memory_order_relaxed));
  put(buf, n, sizeof buf, "); raise SpawnOptions::stack_size or Config::stack_size\n");
  ssize_t r = ::write(2, buf, n);
  (void)r;
}

void on_segv(int sig, siginfo_t* info, void* uctx) {
  char* addr = static_cast<char*>(info->si_addr);
  std::size_t count = g_nguarded_slabs.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < count; ++i) {
    char* base = g_guarded_slabs[i].base.load(std::memory_order_acquire);
    if (!base || addr < base ||
        addr >= base + g_guarded_slabs[i].len.load(std::memory_order_relaxed))
      continue;
    std::size_t stride = g_guarded_slabs[i].stride.load(std::memory_order_relaxed);
    std::size_t guard = g_guarded_slabs[i].guard.load(std::memory_order_relaxed);
    char* slot = base + (static_cast<std::size_t>(addr - base) / stride) * stride;
    if (addr >= slot + guard) break;  // inside a stack, not its guard: not ours
    const Stack* s = header_of(slot, stride);
    write_report(s->owner, s, " overflowed its ");
    ::signal(SIGSEGV, SIG_DFL);
    ::signal(SIGBUS, SIG_DFL);
    return;  // the faulting access repeats and the default action ends the process
  }
  const struct sigaction& prev = sig == SIGBUS ? g_prev_bus : g_prev_segv;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction) { prev.sa_sigaction(sig, info, uctx); return; }
  } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN && prev.sa_handler) {
    prev.sa_handler(sig);
    return;
  }
  ::signal(sig, SIG_DFL);
}

std::size_t auto_guard_budget() {
  long max_maps = 65530;
  if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
    if (std::fscanf(f, "%ld", &max_maps) != 1) max_maps = 65530;
    std::fclose(f);
  }
  // Each guarded stack splits its slab: two mappings. Use about a third of the limit.
  return static_cast<std::size_t>(std::max(0L, max_maps / 3 / 2));
}

}  // namespace

std::size_t StackPool::page_size() noexcept {
  static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

void StackPool::install_overflow_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGSEGV, &sa, &g_prev_segv);
    ::sigaction(SIGBUS, &sa, &g_prev_bus);
  });
}

void StackPool::setup_thread_altstack() {
  stack_t cur;
  if (::sigaltstack(nullptr, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) return;
  constexpr std::size_t kAltSize = 64 * 1024;
  // Leaked on purpose per M thread: the kernel may use it until the thread is gone.
  void* mem = std::malloc(kAltSize);
  if (!mem) return;
  stack_t ss;
  ss.ss_sp = mem;
  ss.ss_size = kAltSize;
  ss.ss_flags = 0;
  ::sigaltstack(&ss, nullptr);
}

void StackPool::report_smashed(const Stack* s) noexcept {
  char buf[256];
  int n = std::snprintf(buf, sizeof buf,
                        "colony: the header of fiber stack slot at %p was overwritten: "
                        "the fiber in the slot above it overflowed its stack\n",
                        static_cast<const void*>(s));
  ssize_t r = ::write(2, buf, static_cast<std::size_t>(n));
  (void)r;
  std::abort();
}

void StackPool::report_overflow(const G* g, const void* sp) noexcept {
  (void)sp;
  if (!intact(g->stack)) report_smashed(g->stack);
  write_report(g, g->stack, " overflowed (stack pointer past the end at a switch) its ");
  std::abort();
}

bool StackPool::guard_regions_supported() noexcept {
  static const bool supported = [] {
    const std::size_t page = page_size();
    void* mem = ::mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) return false;
    bool ok = ::madvise(mem, page, MADV_GUARD_INSTALL) == 0;
    ::munmap(mem, 2 * page);
    return ok;
  }();
  if (const char* env = std::getenv("COLONY_GUARD_REGIONS"); env && std::strcmp(env, "0") == 0)
    return false;
  return supported;
}

std::string_view to_string(StackGuard m) noexcept {
  switch (m) {
    case StackGuard::regions: return "guard regions on every stack";
    case StackGuard::budgeted: return "guard pages on a budget, switch checks beyond it";
    case StackGuard::none: return "no guards, switch checks only";
  }
  return "?";
}

StackPool::StackPool(std::size_t default_usable, long guard_budget, std::size_t guard_bytes)
    : guard_budget_(guard_budget < 0 ? auto_guard_budget() : static_cast<std::size_t>(guard_budget)),
      guard_(round_up(std::max<std::size_t>(guard_bytes, 1), page_size())),
      mode_(guard_regions_supported() ? StackGuard::regions
            : guard_budget_ > 0       ? StackGuard::budgeted
                                      : StackGuard::none) {
  default_ = class_for(default_usable);
}

StackPool::~StackPool() {
  std::lock_guard<std::mutex> lk(mu_);
  for (const Slab& s : slabs_) {
    if (s.registered) unregister_slab(s.base);
    ::munmap(s.base, s.len);
  }
  for (auto& [size, c] : classes_) {
    for (Magazine* lists : {c->warm, c->cold, c->spare}) {
      while (Magazine* m = lists) {
        lists = m->next;
        delete m;
      }
    }
    delete c;
  }
}

StackClass* StackPool::class_for(std::size_t usable) {
  const std::size_t page = page_size();
  usable = round_up(std::max<std::size_t>(usable, 16 * 1024), page);
  std::lock_guard<std::mutex> lk(mu_);
  auto it = classes_.find(usable);
  if (it != classes_.end()) return it->second;
  auto* c = new StackClass;
  c->usable = usable;
  classes_.emplace(usable, c);
  return c;
}

// Precondition: c->lock held.
void StackPool::carve_slab(StackClass* c) {
  std::size_t guard = 0, stride, len;
  {
    std::lock_guard<std::mutex> lk(mu_);
    std::size_t slots;
    if (mode_ == StackGuard::regions) {
      guard = guard_;
      stride = c->usable + guard;
      slots = std::max<std::size_t>(1, kPlainSlabBytes / stride);
    } else {
      std::size_t slots_guarded = std::max<std::size_t>(1, kGuardedSlabBytes / (c->usable + guard_));
      bool guarded = mode_ == StackGuard::budgeted &&
                     guarded_.load(std::memory_order_relaxed) + slots_guarded <= guard_budget_;
      guard = guarded ? guard_ : 0;
      stride = c->usable + guard;
      slots = guarded ? slots_guarded : std::max<std::size_t>(1, kPlainSlabBytes / stride);
    }
    len = slots * stride;
    void* mem = ::mmap(nullptr, len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
      throw std::system_error(errno, std::generic_category(),
                              "colony: cannot map memory for fiber stacks");
    char* base = static_cast<char*>(mem);
    if (guard && mode_ == StackGuard::budgeted) {
      for (std::size_t i = 0; i < slots; ++i) {
        if (::mprotect(base + i * stride, guard, PROT_NONE) != 0) {
          int e = errno;
          ::munmap(base, len);
          throw std::system_error(e, std::generic_category(),
                                  "colony: cannot protect a fiber stack guard page");
        }
      }
      guarded_.fetch_add(slots, std::memory_order_relaxed);
    }
    // A full registry (4 TiB of guarded default-size stacks) leaves the guards in place, but a
    // hit is then reported by the default action only.
    bool registered = guard && register_slab(base, len, stride, guard);
    slabs_.push_back({base, len, registered});
    mapped_ += len;
    c->slab_next = base;
    c->slab_end = base + len;
    // Guard regions are installed batch by batch as slots are carved (arm_slots).
    c->slab_armed = mode_ == StackGuard::regions ? base : c->slab_end;
  }
  c->slab_guard = guard;
  c->slab_stride = stride;
}

namespace {

// install_guards: guard regions of `n` bytes at base, base + stride, ... (count slots). One
// process_madvise call for the batch where the kernel takes it (Linux 6.13 accepts any advice
// for the calling process), one madvise per slot otherwise. Returns 0 or an errno value.
// The process_madvise state: the pidfd naming this process and the batch's ranges, under one
// lock. A fork leaves the child a pidfd naming its parent: the atfork handlers hold the lock
// across fork() and mark the child's copy stale (no getpid() per batch).
struct GuardBatch {
  std::mutex mu;
  int pidfd = -1;
  bool stale = false;
  iovec iov[kArmBatch];
};
GuardBatch& guard_batch() {
  static GuardBatch* b = [] {
    auto* gb = new GuardBatch;  // never destroyed: fibers may be carved during static destruction
    ::pthread_atfork([] { guard_batch().mu.lock(); },
                     [] { guard_batch().mu.unlock(); },
                     [] {
                       GuardBatch& g = guard_batch();
                       g.stale = g.pidfd >= 0;
                       g.mu.unlock();
                     });
    return gb;
  }();
  return *b;
}

int install_guards(char* base, std::size_t stride, std::size_t n, std::size_t count) {
  static std::atomic<int> batch_ok{1};  // cleared once process_madvise refuses
  std::size_t done = 0;
#ifdef SYS_process_madvise
  if (batch_ok.load(std::memory_order_relaxed)) {
    GuardBatch& b = guard_batch();
    std::lock_guard<std::mutex> lk(b.mu);
    if (b.pidfd < 0 || b.stale) {
      if (b.pidfd >= 0) ::close(b.pidfd);  // a forked child's copy of its parent's pidfd
      b.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
      b.stale = false;
    }
    std::size_t k = std::min<std::size_t>(count, kArmBatch);
    for (std::size_t i = 0; i < k; ++i) b.iov[i] = {base + i * stride, n};
    long r = b.pidfd < 0 ? -1
                         : ::syscall(SYS_process_madvise, b.pidfd, b.iov, k, MADV_GUARD_INSTALL, 0u);
    if (r < 0) batch_ok.store(0, std::memory_order_relaxed);
    else done = static_cast<std::size_t>(r) / n;  // ranges are applied in order
  }
#endif
  for (std::size_t i = done; i < count; ++i)
    if (::madvise(base + i * stride, n, MADV_GUARD_INSTALL) != 0) return errno;
  return 0;
}

}  // namespace

// Precondition: c->lock held; c->slab_next == c->slab_armed < c->slab_end.
void StackPool::arm_slots(StackClass* c) {
  std::size_t left = static_cast<std::size_t>(c->slab_end - c->slab_armed) / c->slab_stride;
  std::size_t count = std::min(left, kArmBatch);
  if (int e = install_guards(c->slab_armed, c->slab_stride, c->slab_guard, count))
    throw std::system_error(e, std::generic_category(),
                            "colony: cannot install the guard region of a fiber stack");
  c->slab_armed += count * c->slab_stride;
  guarded_.fetch_add(count, std::memory_order_relaxed);
}

namespace {

// Preconditions below: c->lock held.
Magazine* new_magazine(StackClass* c) {
  if (Magazine* m = c->spare) {
    c->spare = m->next;
    m->next = m->prev = nullptr;
    m->n = 0;
    return m;
  }
  return new (std::nothrow) Magazine;
}

void push_warm(StackClass* c, Magazine* m) {
  m->prev = nullptr;
  m->next = c->warm;
  if (c->warm) c->warm->prev = m;
  else c->warm_tail = m;
  c->warm = m;
}

Magazine* pop_warm(StackClass* c) {
  Magazine* m = c->warm;
  if (!m) return nullptr;
  c->warm = m->next;
  if (c->warm) c->warm->prev = nullptr;
  else c->warm_tail = nullptr;
  m->next = nullptr;
  return m;
}

// Moves the stacks of a magazine out, then recycles the magazine.
int drain(StackClass* c, Magazine* m, Stack** out) {
  int n = m->n;
  for (int i = 0; i < n; ++i) out[i] = m->s[i];
  c->nfree -= static_cast<std::size_t>(n);
  m->n = 0;
  m->next = c->spare;
  c->spare = m;
  return n;
}

}  // namespace

Stack* StackPool::alloc(StackClass* c) {
  std::lock_guard<SpinLock> lk(c->lock);
  if (c->partial.n == 0) {
    // Refill the partial magazine from a warm, then a cold one.
    Magazine* m = pop_warm(c);
    if (!m && c->cold) {
      m = c->cold;
      c->cold = m->next;
    }
    if (m) {
      for (int i = 0; i < m->n; ++i) c->partial.s[i] = m->s[i];
      c->partial.n = m->n;
      m->n = 0;
      m->next = c->spare;
      c->spare = m;
    }
  }
  if (c->partial.n > 0) {
    --c->nfree;
    return c->partial.s[--c->partial.n];
  }
  if (c->slab_next == c->slab_end) carve_slab(c);
  if (c->slab_next == c->slab_armed) arm_slots(c);
  char* slot = c->slab_next;
  c->slab_next += c->slab_stride;
  Stack* s = new (header_of(slot, c->slab_stride)) Stack;
  s->guarded = c->slab_guard != 0;
  s->lo = slot + c->slab_guard;
  s->cls = c;
  return s;
}

int StackPool::take_magazine(StackClass* c, Stack** out) noexcept {
  std::lock_guard<SpinLock> lk(c->lock);
  if (Magazine* m = pop_warm(c)) return drain(c, m, out);
  if (c->partial.n > 0) {
    int n = c->partial.n;
    for (int i = 0; i < n; ++i) out[i] = c->partial.s[i];
    c->partial.n = 0;
    c->nfree -= static_cast<std::size_t>(n);
    return n;
  }
  if (Magazine* m = c->cold) {
    c->cold = m->next;
    return drain(c, m, out);
  }
  return 0;
}

void StackPool::give_magazine(StackClass* c, Stack* const* ss, int n, std::int64_t now) noexcept {
  std::lock_guard<SpinLock> lk(c->lock);
  Magazine* m = new_magazine(c);
  if (!m) {  // out of memory for the bookkeeping: keep them one at a time instead
    for (int i = 0; i < n && c->partial.n < Magazine::kSize; ++i) {
      c->partial.s[c->partial.n++] = ss[i];
      ++c->nfree;
    }
    return;  // any others are leaked to the slab (still mapped, never reused)
  }
  for (int i = 0; i < n; ++i) m->s[i] = ss[i];
  m->n = n;
  m->idle_since = now;
  c->nfree += static_cast<std::size_t>(n);
  push_warm(c, m);
}

void StackPool::release(Stack* s, std::int64_t now) noexcept {
  StackClass* c = s->cls;
  std::lock_guard<SpinLock> lk(c->lock);
  if (c->partial.n < Magazine::kSize) {
    c->partial.s[c->partial.n++] = s;
    ++c->nfree;
    return;
  }
  // The partial magazine is full: it becomes a warm magazine.
  Magazine* m = new_magazine(c);
  if (!m) return;  // no memory for bookkeeping: the stack stays mapped, unused
  ++c->nfree;
  for (int i = 0; i < Magazine::kSize; ++i) m->s[i] = c->partial.s[i];
  m->n = Magazine::kSize;
  m->idle_since = now;
  push_warm(c, m);
  c->partial.s[0] = s;
  c->partial.n = 1;
}

std::int64_t StackPool::trim(std::int64_t cutoff) noexcept {
  constexpr int kBatch = 64;  // magazines per class and call: the class lock is never held long
  std::int64_t earliest = INT64_MAX;
  std::vector<StackClass*> classes;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& [size, c] : classes_) classes.push_back(c);
  }
  const std::size_t page = page_size();
  for (StackClass* c : classes) {
    Magazine* batch[kBatch];
    int n = 0;
    {
      std::lock_guard<SpinLock> lk(c->lock);
      while (n < kBatch && c->warm_tail && c->warm_tail->idle_since <= cutoff) {
        Magazine* m = c->warm_tail;
        c->warm_tail = m->prev;
        if (c->warm_tail) c->warm_tail->next = nullptr;
        else c->warm = nullptr;
        m->prev = nullptr;
        c->nfree -= static_cast<std::size_t>(m->n);
        batch[n++] = m;
      }
      if (c->warm_tail)
        earliest = std::min(earliest, n == kBatch ? cutoff : c->warm_tail->idle_since);
    }
    for (int i = 0; i < n; ++i) {
      for (int k = 0; k < batch[i]->n; ++k) {
        Stack* s = batch[i]->s[k];
        auto top_page = reinterpret_cast<std::uintptr_t>(s) & ~(page - 1);
        char* end = reinterpret_cast<char*>(top_page);
        if (end > s->lo) ::madvise(s->lo, static_cast<std::size_t>(end - s->lo), MADV_DONTNEED);
        s->trimmed = true;
      }
    }
    if (n) {
      std::lock_guard<SpinLock> lk(c->lock);
      for (int i = 0; i < n; ++i) {
        batch[i]->next = c->cold;
        c->cold = batch[i];
        c->nfree += static_cast<std::size_t>(batch[i]->n);
      }
    }
  }
  return earliest;
}

}  // namespace colony::sched
