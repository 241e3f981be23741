// The registry of live runtimes (for SIGQUIT dumps and deadlock detection), the fibers of a
// runtime (for dumps), the process's default runtime, and the calling thread's place in the
// scheduler (current_g, current_scheduler, current_proc, ...): the functions of fiber.hpp that
// find things rather than run them.
#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "sched.hpp"

namespace colony::sched {

// The registry of live runtimes.

namespace {
// Recursive: deadlock detection walks the registry from within a walk (deadlock.cpp).
std::recursive_mutex g_registry_mu;
std::vector<Scheduler*>& registry() {
  static std::vector<Scheduler*> r;
  return r;
}
}  // namespace

void register_scheduler(Scheduler* s, bool add) {
  std::lock_guard<std::recursive_mutex> lk(g_registry_mu);
  auto& r = registry();
  if (add) r.push_back(s);
  else r.erase(std::remove(r.begin(), r.end(), s), r.end());
}

void for_each_scheduler(void (*fn)(Scheduler&, void*), void* arg) {
  std::lock_guard<std::recursive_mutex> lk(g_registry_mu);
  for (Scheduler* s : registry()) fn(*s, arg);
}

std::vector<FiberInfo> fibers(Scheduler& s) {
  std::vector<FiberInfo> out;
  const std::int64_t now = coarse_now();
  s.for_each_g([&](G* g) {
    GStatus st = g->status.load(std::memory_order_acquire);
    if (st != GStatus::runnable && st != GStatus::running && st != GStatus::waiting) return;
    FiberInfo fi;
    fi.id = g_id(g);
    fi.status = st;
    fi.handed_off = st == GStatus::running && g->handed_off.load(std::memory_order_relaxed);
    if (st == GStatus::waiting) {
      fi.reason = g->wait_reason.load(std::memory_order_relaxed);
      fi.waited_ns = std::max<std::int64_t>(0, now - g->wait_since.load(std::memory_order_relaxed));
    }
    fi.file = g->site_file.load(std::memory_order_relaxed);
    fi.line = g->site_line.load(std::memory_order_relaxed);
    fi.function = g->site_function.load(std::memory_order_relaxed);
    out.push_back(fi);
  });
  std::sort(out.begin(), out.end(), [](const FiberInfo& a, const FiberInfo& b) { return a.id < b.id; });
  return out;
}

// The default runtime, created on first use and shut down at exit.

namespace {
std::mutex g_default_mu;
Scheduler* g_default = nullptr;
bool g_default_dead = false;

void shutdown_default_at_exit() {
  Scheduler* s;
  {
    std::lock_guard<std::mutex> lk(g_default_mu);
    s = g_default;
    g_default_dead = true;
  }
  if (!s) return;
  M* m = current_m();
  if (m && m->sched == s) return;  // exit() called on one of its own threads: just exit
  // Parked fibers are unwound; a fiber still running after 1 s is left to the process exit.
  if (s->shutdown(1'000'000'000)) delete s;
}
}  // namespace

Scheduler& current_or_default() {
  M* m = current_m();
  if (m && m->sched) return *m->sched;
  return default_scheduler();
}

Scheduler& default_scheduler() {
  std::lock_guard<std::mutex> lk(g_default_mu);
  if (g_default_dead)
    throw std::runtime_error("colony: the default runtime has shut down (the process is exiting)");
  if (!g_default) {
    g_default = new Scheduler(Config{});
    std::atexit(shutdown_default_at_exit);
  }
  return *g_default;
}

// Where the caller is.

Scheduler* current_scheduler() noexcept {
  M* m = current_m();
  return m ? m->sched : nullptr;
}

G* current_g() noexcept {
  M* m = current_m();
  return m ? m->curg : nullptr;
}
std::uint64_t fiber_id(const G* g) noexcept { return g ? g_id(g) : 0; }
Scheduler& scheduler_of(const G* g) noexcept { return *g->sched; }

std::uint32_t local_backlog() noexcept {
  M* m = current_m();
  return (m && m->curg && m->p) ? m->p->runq.size() : 0;
}

int current_proc() noexcept {
  M* m = current_m();
  return (m && m->curg && m->p) ? m->p->id : -1;
}

int current_nprocs() noexcept {
  M* m = current_m();
  return (m && m->curg && m->sched) ? m->sched->nprocs() : 0;
}

}  // namespace colony::sched
