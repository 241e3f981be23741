// The Scheduler object: construction (Config validation, the Ps, sysmon) and destruction, the
// names of fiber statuses and wait reasons, statistics, and panics (an exception that escaped a
// fiber). How the scheduler works: the opening comment of proc.cpp, and docs/design.md; which
// file holds what: sched.hpp.
#include "sched.hpp"

#include <cxxabi.h>
#include <sched.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>

#include "colony/sched/demangle.hpp"
#include "status.hpp"

#if defined(COLONY_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace colony::sched {

namespace {

int resolve_procs(int requested) {
  if (requested < 0)
    throw std::invalid_argument("colony: Config::max_procs must be >= 0 (0 = automatic), got " +
                                std::to_string(requested));
  if (requested == 0) {
    if (const char* env = std::getenv("COLONY_MAXPROCS"); env && *env) {
      char* end = nullptr;
      long v = std::strtol(env, &end, 10);
      if (*end != '\0' || v <= 0 || v > 4096)
        throw std::invalid_argument(std::string("colony: COLONY_MAXPROCS must be an integer in "
                                                "[1, 4096], got '") + env + "'");
      return static_cast<int>(v);
    }
    unsigned hw = std::thread::hardware_concurrency();
    return hw ? static_cast<int>(hw) : 1;
  }
  if (requested > 4096)
    throw std::invalid_argument("colony: Config::max_procs must be <= 4096, got " +
                                std::to_string(requested));
  return requested;
}

void validate(const Config& cfg) {
  if (cfg.stack_size < 16 * 1024 || cfg.stack_size > (std::size_t{1} << 30))
    throw std::invalid_argument("colony: Config::stack_size must be between 16 KiB and 1 GiB, got " +
                                std::to_string(cfg.stack_size));
  if (cfg.stack_guard_size > (std::size_t{64} << 20))
    throw std::invalid_argument("colony: Config::stack_guard_size must be at most 64 MiB, got " +
                                std::to_string(cfg.stack_guard_size));
  if (cfg.guard_page_budget < -1)
    throw std::invalid_argument("colony: Config::guard_page_budget must be -1 (automatic) or >= 0");
  if (cfg.stack_trim_after.count() < 0)
    throw std::invalid_argument("colony: Config::stack_trim_after must not be negative");
}

}  // namespace

void fatal(const char* msg, const G* g) noexcept {
  std::fprintf(stderr, "colony: fatal: %s (fiber %" PRIu64 ")\n", msg, g ? g_id(g) : 0);
  std::abort();
}

std::string_view to_string(GStatus s) noexcept {
  switch (s) {
    case GStatus::idle: return "idle";
    case GStatus::runnable: return "runnable";
    case GStatus::running: return "running";
    case GStatus::waiting: return "waiting";
    case GStatus::dead: return "dead";
  }
  return "?";
}

std::string_view to_string(WaitReason r) noexcept {
  switch (r) {
    case WaitReason::none: return "";
    case WaitReason::sleep: return "sleep";
    case WaitReason::future: return "future wait";
    case WaitReason::chan_receive: return "chan receive";
    case WaitReason::chan_send: return "chan send";
    case WaitReason::chan_receive_nil: return "chan receive (nil chan)";
    case WaitReason::chan_send_nil: return "chan send (nil chan)";
    case WaitReason::select: return "select";
    case WaitReason::select_no_cases: return "select (no cases)";
    case WaitReason::mutex: return "mutex";
    case WaitReason::rwmutex_read: return "rwmutex read";
    case WaitReason::rwmutex_write: return "rwmutex write";
    case WaitReason::cond: return "cond wait";
    case WaitReason::waitgroup: return "waitgroup";
    case WaitReason::semaphore: return "semaphore";
    case WaitReason::once: return "once";
    case WaitReason::io: return "IO wait";
    case WaitReason::pool: return "pool worker wait";
    case WaitReason::event: return "event wait";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Construction and destruction.

Scheduler::Scheduler(const Config& cfg)
    : cfg_((validate(cfg), cfg)),
      nprocs_(resolve_procs(cfg.max_procs)),
      stacks_(cfg.stack_size, cfg.guard_page_budget, cfg.stack_guard_size) {
  StackPool::install_overflow_handler();
  allp_.reserve(static_cast<std::size_t>(nprocs_));
  for (int i = 0; i < nprocs_; ++i) {
    auto p = std::make_unique<P>();
    p->id = i;
    allp_.push_back(std::move(p));
  }
  // All Ps start idle; the first ready fiber's wakep() starts an M.
  {
    std::lock_guard<std::mutex> lk(lock_);
    for (int i = nprocs_ - 1; i >= 0; --i) pidle_put(allp_[static_cast<std::size_t>(i)].get());
  }
  register_scheduler(this, true);
  sysmon_ = std::thread([this] { sysmon(); });
  sysmon_started_.sleep();
}

Scheduler::~Scheduler() {
  register_scheduler(this, false);
  set_deadlock_hook(nullptr);
  if (!shutdown(-1)) return;  // not reached: an unbounded shutdown always completes
  // A plain thread that readied or started a fiber may still be finishing that call (its
  // wakep()) although the fiber it readied has long run: let it leave first.
  while (outside_calls_.load(std::memory_order_acquire) != 0) ::sched_yield();
  destroy_poller();
#if defined(COLONY_TSAN)
  for_each_g([](G* g) {
    if (g->tsan_fiber) __tsan_destroy_fiber(g->tsan_fiber);
  });
#endif
}

// ---------------------------------------------------------------------------------------------
// Statistics.

std::int64_t Scheduler::live_fibers() const noexcept {
  std::int64_t n = outside_live_.load(std::memory_order_relaxed);
  for (const auto& p : allp_) n += p->live.load(std::memory_order_relaxed);
  return n;
}

std::vector<ProcStats> Scheduler::proc_stats() const {
  std::vector<ProcStats> out;
  for (const auto& p : allp_) {
    ProcStats s;
    s.switches = p->switches.get();
    s.parks = p->parks.get();
    s.yields = p->yields.get();
    s.steals = p->steals.get();
    s.stolen = p->stolen.get();
    s.spawns = p->spawns.get();
    s.global_gets = p->global_gets.get();
    s.timers_fired = p->timers_fired.get();
    out.push_back(s);
  }
  return out;
}

int Scheduler::num_threads() const noexcept {
  auto* self = const_cast<Scheduler*>(this);
  std::lock_guard<std::mutex> lk(self->lock_);
  return static_cast<int>(allm_.size());
}

// ---------------------------------------------------------------------------------------------
// Panics: an exception escaped a fiber (docs/design.md, "Exceptions and panics").

void Scheduler::panic(G* g, std::exception_ptr e) noexcept {
  if (cfg_.on_panic) {
    try {
      cfg_.on_panic(e, g_id(g));
      return;
    } catch (...) {
      std::fprintf(stderr, "colony: fatal: Config::on_panic threw while handling a panic in fiber %" PRIu64 "\n", g_id(g));
      std::abort();
    }
  }
  std::string what;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {
    const std::type_info* ti = abi::__cxa_current_exception_type();
    what = "non-std exception";
    if (ti) {
      what += " of type ";
      what += demangle(ti->name());
    }
  }
  std::fprintf(stderr, "panic in fiber %" PRIu64 ": %s [spawned at %s:%u]\n", g_id(g), what.c_str(),
               g->site_file.load(std::memory_order_relaxed),
               g->site_line.load(std::memory_order_relaxed));
  std::fflush(stderr);
  std::abort();
}

}  // namespace colony::sched
