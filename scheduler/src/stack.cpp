#include "stack.hpp"

#include <signal.h>
#include <sys/mman.h>
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

// Process-wide registry of guarded slabs, read by the SIGSEGV handler (a signal handler cannot
// find a Scheduler, so this one table is global by necessity). Append-only; entries of a
// destroyed pool are cleared.
struct SlabRecord {
  std::atomic<char*> base{nullptr};
  std::size_t len = 0;
  std::size_t stride = 0;
};
constexpr std::size_t kMaxGuardedSlabs = 1 << 14;
SlabRecord g_guarded_slabs[kMaxGuardedSlabs];
std::atomic<std::size_t> g_nguarded_slabs{0};
struct sigaction g_prev_segv;
struct sigaction g_prev_bus;

constexpr std::size_t kGuardedSlabBytes = 16u << 20;     // 16 MiB of guarded slots per mapping
constexpr std::size_t kPlainSlabBytes = 256u << 20;      // 256 MiB of unguarded slots

std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

G* g_in_slot(char* slot_base, std::size_t stride) {
  auto top = reinterpret_cast<std::uintptr_t>(slot_base + stride);
  return reinterpret_cast<G*>((top - sizeof(G)) & ~std::uintptr_t{63});
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

void write_report(const G* g, const char* what) {
  char buf[1024];
  std::size_t n = 0;
  put(buf, n, sizeof buf, "colony: fiber ");
  put_u(buf, n, sizeof buf, g_id(g));
  put(buf, n, sizeof buf, what);
  put_u(buf, n, sizeof buf, static_cast<unsigned long long>(g->stack_hi - g->stack_lo));
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
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::size_t count = g_nguarded_slabs.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < count; ++i) {
    char* base = g_guarded_slabs[i].base.load(std::memory_order_acquire);
    if (!base || addr < base || addr >= base + g_guarded_slabs[i].len) continue;
    std::size_t stride = g_guarded_slabs[i].stride;
    char* slot = base + (static_cast<std::size_t>(addr - base) / stride) * stride;
    if (addr >= slot + page) break;  // inside a stack, not its guard page: not ours
    write_report(g_in_slot(slot, stride), " overflowed its ");
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

void StackPool::report_overflow(const G* g, const void* sp) noexcept {
  if (g->magic != kGMagic || g->magic_tail != kGMagic) {
    char buf[256];
    int n = std::snprintf(buf, sizeof buf,
                          "colony: the control block of fiber stack slot at %p was overwritten: "
                          "the fiber in the slot above it overflowed its stack\n",
                          static_cast<const void*>(g));
    ssize_t r = ::write(2, buf, static_cast<std::size_t>(n));
    (void)r;
  } else {
    (void)sp;
    write_report(g, " overflowed (stack pointer past the end at a switch) its ");
  }
  std::abort();
}

StackPool::StackPool(std::size_t default_usable, long guard_budget)
    : guard_budget_(guard_budget < 0 ? auto_guard_budget() : static_cast<std::size_t>(guard_budget)) {
  default_ = class_for(default_usable);
}

StackPool::~StackPool() {
  std::lock_guard<std::mutex> lk(mu_);
  std::size_t count = g_nguarded_slabs.load(std::memory_order_acquire);
  for (const Slab& s : slabs_) {
    for (std::size_t i = 0; i < count; ++i)
      if (g_guarded_slabs[i].base.load(std::memory_order_relaxed) == s.base)
        g_guarded_slabs[i].base.store(nullptr, std::memory_order_release);
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
  const std::size_t page = page_size();
  bool guarded;
  std::size_t stride, len;
  {
    std::lock_guard<std::mutex> lk(mu_);
    std::size_t slots_guarded = kGuardedSlabBytes / (c->usable + page);
    if (slots_guarded == 0) slots_guarded = 1;
    guarded = guarded_ + slots_guarded <= guard_budget_ &&
              g_nguarded_slabs.load(std::memory_order_relaxed) < kMaxGuardedSlabs;
    stride = c->usable + (guarded ? page : 0);
    std::size_t slots = guarded ? slots_guarded : std::max<std::size_t>(1, kPlainSlabBytes / stride);
    len = slots * stride;
    void* mem = ::mmap(nullptr, len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
      throw std::system_error(errno, std::generic_category(),
                              "colony: cannot map memory for fiber stacks");
    char* base = static_cast<char*>(mem);
    if (guarded) {
      for (std::size_t i = 0; i < slots; ++i) {
        if (::mprotect(base + i * stride, page, PROT_NONE) != 0) {
          int e = errno;
          ::munmap(base, len);
          throw std::system_error(e, std::generic_category(),
                                  "colony: cannot protect a fiber stack guard page");
        }
      }
      std::size_t idx = g_nguarded_slabs.fetch_add(1, std::memory_order_relaxed);
      g_guarded_slabs[idx].len = len;
      g_guarded_slabs[idx].stride = stride;
      g_guarded_slabs[idx].base.store(base, std::memory_order_release);
      guarded_ += slots;
    }
    slabs_.push_back({base, len});
    mapped_ += len;
    c->slab_next = base;
    c->slab_end = base + len;
  }
  c->slab_guarded = guarded;
  c->slab_stride = stride;
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

// Moves the G's of a magazine out, then recycles the magazine.
int drain(StackClass* c, Magazine* m, G** out) {
  int n = m->n;
  for (int i = 0; i < n; ++i) out[i] = m->g[i];
  c->nfree -= static_cast<std::size_t>(n);
  m->n = 0;
  m->next = c->spare;
  c->spare = m;
  return n;
}

}  // namespace

G* StackPool::alloc(StackClass* c, bool* fresh) {
  std::lock_guard<SpinLock> lk(c->lock);
  *fresh = false;
  if (c->partial.n == 0) {
    // Refill the partial magazine from a warm, then a cold one.
    Magazine* m = pop_warm(c);
    if (!m && c->cold) {
      m = c->cold;
      c->cold = m->next;
    }
    if (m) {
      for (int i = 0; i < m->n; ++i) c->partial.g[i] = m->g[i];
      c->partial.n = m->n;
      m->n = 0;
      m->next = c->spare;
      c->spare = m;
    }
  }
  if (c->partial.n > 0) {
    --c->nfree;
    return c->partial.g[--c->partial.n];
  }
  if (c->slab_next == c->slab_end) carve_slab(c);
  char* slot = c->slab_next;
  c->slab_next += c->slab_stride;
  G* g = new (g_in_slot(slot, c->slab_stride)) G;
  g->guarded = c->slab_guarded;
  g->stack_lo = slot + (c->slab_guarded ? page_size() : 0);
  g->stack_hi = reinterpret_cast<char*>(g);
  g->stack_class = c;
  *fresh = true;
  return g;
}

int StackPool::take_magazine(StackClass* c, G** out) noexcept {
  std::lock_guard<SpinLock> lk(c->lock);
  if (Magazine* m = pop_warm(c)) return drain(c, m, out);
  if (c->partial.n > 0) {
    int n = c->partial.n;
    for (int i = 0; i < n; ++i) out[i] = c->partial.g[i];
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

void StackPool::give_magazine(StackClass* c, G* const* gs, int n, std::int64_t now) noexcept {
  std::lock_guard<SpinLock> lk(c->lock);
  Magazine* m = new_magazine(c);
  if (!m) {  // out of memory for the bookkeeping: keep them one at a time instead
    for (int i = 0; i < n && c->partial.n < Magazine::kSize; ++i) {
      c->partial.g[c->partial.n++] = gs[i];
      ++c->nfree;
    }
    return;  // any others are leaked to the slab (still mapped, never reused)
  }
  for (int i = 0; i < n; ++i) m->g[i] = gs[i];
  m->n = n;
  m->idle_since = now;
  c->nfree += static_cast<std::size_t>(n);
  push_warm(c, m);
}

void StackPool::release(G* g, std::int64_t now) noexcept {
  StackClass* c = g->stack_class;
  std::lock_guard<SpinLock> lk(c->lock);
  if (c->partial.n < Magazine::kSize) {
    c->partial.g[c->partial.n++] = g;
    ++c->nfree;
    return;
  }
  // The partial magazine is full: it becomes a warm magazine.
  Magazine* m = new_magazine(c);
  if (!m) return;  // no memory for bookkeeping: the stack stays mapped, unused
  ++c->nfree;
  for (int i = 0; i < Magazine::kSize; ++i) m->g[i] = c->partial.g[i];
  m->n = Magazine::kSize;
  m->idle_since = now;
  push_warm(c, m);
  c->partial.g[0] = g;
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
        G* g = batch[i]->g[k];
        auto top_page = reinterpret_cast<std::uintptr_t>(g) & ~(page - 1);
        char* end = reinterpret_cast<char*>(top_page);
        if (end > g->stack_lo)
          ::madvise(g->stack_lo, static_cast<std::size_t>(end - g->stack_lo), MADV_DONTNEED);
        g->trimmed = true;
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
