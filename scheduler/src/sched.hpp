// Scheduler internals: P (processor), M (OS thread), and the Scheduler that owns them.
// The algorithms follow Go's runtime (proc.go); the overview is the opening comment of proc.cpp,
// the full design docs/design.md. The Scheduler's members are defined one concept per file:
//   proc.cpp      Ms: mstart, the g0 loop, find_runnable, startm/wakep/stopm; blocking calls
//   runq.cpp      the local and global run queues, pick_local, stealing (the ring: runq.hpp)
//   switch.hpp    the jump (the one switch site) and switch_out, the fiber's side of a switch
//   switch.cpp    execute, finish_switch, fiber_main, exit_g
//   gcache.cpp    the G and stack caches, new_g, bind_stack, start_g, ready_g, abandon_g
//   garena.*      the G arena: where control blocks come from
//   park.cpp      yield, park, ready, sleep
//   timer.cpp     the per-P timer heaps, and nanotime
//   netpoll.cpp   the netpoller          sysmon.cpp    the monitor thread
//   deadlock.cpp  deadlock detection     wait.cpp      Waiter, WaitList, futex waits
//   shutdown.cpp  shutdown, unwind_all
//   registry.cpp  the registry of runtimes, fibers(), the default runtime, current_g & co.
//   sched.cpp     construction and destruction, statistics, panics
//   status.hpp    the checked status transitions, and fatal
//   stack.*       fiber stacks           current.cpp   current_m, the one thread_local
//   runtime.cpp   colony/sched/runtime.hpp, the interface for making and observing a runtime
// Lock order: Scheduler::lock_ -> P::timer_lock -> StackClass::lock; allg_lock_ and the G
// arena's lock are leaves.
// No scheduler lock is ever held across a fiber switch.
#pragma once

#include <time.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/context/detail/fcontext.hpp>

#include "colony/sched/config.hpp"
#include "colony/sched/fiber.hpp"
#include "colony/sched/spinlock.hpp"
#include "g.hpp"
#include "garena.hpp"
#include "note.hpp"
#include "runq.hpp"
#include "stack.hpp"

namespace colony::sched {

struct M;
struct EhGlobals;

// Counter: written only by the M that holds the P (single writer), read by anyone.
struct Counter {
  std::atomic<std::uint64_t> v{0};
  void inc(std::uint64_t n = 1) noexcept {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
};

// xorshift: the next value of a 64-bit xorshift generator with state `s` (never 0).
inline std::uint64_t xorshift(std::uint64_t& s) noexcept {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

struct alignas(64) P {
  int id = 0;
  M* m = nullptr;                   // the M holding this P (guarded by Scheduler::lock_ when idle)
  P* link = nullptr;                // idle-P list (Scheduler::lock_)
  bool idle = false;                // on the idle list (Scheduler::lock_)
  // Run queue. runnext: the fiber readied by the running one (runs next, inheriting locality).
  RunQueue<G> runq;
  std::atomic<G*> runnext{nullptr};
  std::atomic<G*> cur{nullptr};     // the fiber running on this P, if any (read by sysmon)
  // Owner only:
  std::uint32_t schedtick = 0;      // fibers scheduled; every 61st checks the global queue
  std::uint32_t runnext_streak = 0; // consecutive picks from runnext (bounded for fairness)
  G* gcache[64];                    // local cache of dead G's (no stacks)
  int ngcache = 0;
  Stack* scache[64];                // local cache of idle stacks of the default class
  int nscache = 0;
  std::atomic<std::int64_t> live{0};  // fibers started here minus fibers that exited here
  std::uint64_t id_next = 0, id_end = 0;  // block of fiber ids reserved by this P
  // Timers (timer_lock): a 4-ary min-heap by `when`; timer0_when mirrors the minimum
  // (INT64_MAX when empty) for lock-free peeking by other Ps.
  SpinLock timer_lock;
  // The timer heap (timer.cpp) keeps each timer's `when` next to it, so that sifting reads one
  // contiguous array instead of a Timer on some fiber's stack per comparison. An entry names
  // its timer by a slot of this P's slot table, which holds the timer and its heap position:
  // sifting then writes positions into that small, warm table, not into each moved Timer (cold,
  // on a sleeping fiber's stack: those writes were most of the cost of firing a timer).
  struct TimerEntry {
    std::int64_t when;
    std::uint32_t slot;
  };
  std::vector<TimerEntry> timers;
  std::vector<std::int32_t> timer_pos;  // slot -> position in `timers`; free: -2 - next free
  std::vector<Timer*> timer_of;         // slot -> timer
  std::int32_t timer_free = -1;         // the last freed slot (reused first: warm), or -1
  std::atomic<std::int64_t> timer0_when{INT64_MAX};
  std::int64_t timers_read_at = 0;  // the owner's last precise clock read for its timers
  // Statistics (owner-written).
  Counter switches, parks, yields, steals, stolen, spawns, global_gets, timers_fired;
};

struct M {
  int id = 0;
  Scheduler* sched = nullptr;
  G g0;                           // the scheduler context on this thread's own stack
  G* curg = nullptr;              // fiber running on this M (owner)
  EhGlobals* eh = nullptr;        // this thread's C++ exception globals (looked up once)
  P* p = nullptr;                 // P held (owner)
  P* nextp = nullptr;             // P handed over by startm (Scheduler::lock_)
  bool spinning = false;          // looking for work to steal (counted in nmspinning_)
  bool idle = false;              // on the idle-M list (Scheduler::lock_)
  M* link = nullptr;              // idle-M list (Scheduler::lock_)
  Note park;                      // sleeps here when idle
  std::thread thread;
  std::atomic<bool> exited{false}; // mstart has returned
  Timer* firing = nullptr;        // the timer whose fn this M is running (owner; timer.cpp)
  bool firing_deleted = false;    // that fn called del_timer on it: it may be gone (timer.cpp)
  // The retake handshake (retake.cpp). in_rt: false only while this M runs a fiber's own code,
  // outside every scheduler call (entry.hpp); sysmon takes the P only from an M whose in_rt it
  // saw false. retake: kRetakeNone, or kRetakeAsked / kRetakeTaken written by sysmon.
  std::atomic<bool> in_rt{true};
  std::atomic<std::uint8_t> retake{0};
  int tid = 0;                    // the thread's id (gettid), for sysmon's look at its state
  // xorshift state (owner): steal order, fastrand. Never 0; startm seeds each M by its id, and
  // a temporary M (unwind_all's) keeps this.
  std::uint64_t rng = 0x9E3779B97F4A7C15ull;
};

struct Poller;

class Scheduler {
 public:
  explicit Scheduler(const Config& cfg);
  ~Scheduler();  // shutdown() then frees everything
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // shutdown: stops every M once its running fiber reaches a switch point, then unwinds every
  // fiber still alive (parked fibers see FiberUnwind thrown from their blocking call; fibers
  // that never started are destroyed unrun). Idempotent. Must not be called from one of this
  // scheduler's fibers (std::logic_error). `grace_ns` < 0: wait as long as it takes; otherwise
  // if Ms are still running fibers after that long, returns false and leaves them (used at
  // process exit, where waiting forever for a fiber stuck in a loop would hang the exit).
  bool shutdown(std::int64_t grace_ns = -1);
  bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }

  int nprocs() const noexcept { return nprocs_; }
  const Config& config() const noexcept { return cfg_; }
  std::int64_t live_fibers() const noexcept;
  std::vector<ProcStats> proc_stats() const;
  int num_threads() const noexcept;
  std::size_t stack_mapped_bytes() const noexcept { return stacks_.mapped_bytes(); }
  std::size_t guarded_stacks() const noexcept { return stacks_.guarded_stacks(); }
  StackGuard stack_guard() const noexcept { return stacks_.guard_mode(); }
  std::size_t stack_guard_bytes() const noexcept { return stacks_.guard_bytes(); }
  void panic(G* g, std::exception_ptr e) noexcept;

  // Fiber operations (see fiber.hpp).
  G* new_g(const SpawnOptions& opts, std::size_t fn_size, std::size_t fn_align, void** storage,
           const colony::SourceLocation& site);
  void start_g(G* g, FiberEntry entry) noexcept;
  void abandon_g(G* g) noexcept;
  void ready_g(G* g, bool next, std::atomic<bool>* handed = nullptr) noexcept;
  void add_timer(Timer* t);
  bool del_timer(Timer* t) noexcept;

  // Called on a fiber: switch away. See switch.hpp and switch.cpp.
  // yield_global: to the back of the global queue (behind everything already queued there).
  // blocked_return: yield_global for a fiber back from a blocking call with no P to take; it
  // stops counting in blocking_ only once it is in the global queue (see exit_blocking).
  enum class After : std::uint8_t { none, yield, yield_global, blocked_return, park, exit };
  // `m` is current_m(), read by the caller just before; returns the M the fiber resumed on.
  // Defined in switch.hpp (always_inline).
  inline M* switch_out(M* m, G* self, After after, UnlockFn unlock, void* arg);

  // Deadlock detection (deadlock.cpp): `hook` runs at most once, on the thread that noticed that
  // no fiber can run again, with no lock held. Set by colony::run; empty = no detection.
  // check_dead returns the hook when this runtime is dead (and marks it reported), else empty.
  void set_deadlock_hook(std::function<void()> hook);
  std::function<void()> check_dead() noexcept;
  // quiet: no fiber running or runnable, no timer pending (or shutting down); adds its Ms to
  // *threads. Takes lock_.
  bool quiet(long* threads) noexcept;

  std::uint64_t long_runs() const noexcept { return long_runs_.load(std::memory_order_relaxed); }
  std::uint64_t retakes() const noexcept { return retakes_.load(std::memory_order_relaxed); }

  // retaken: rt_enter (entry.hpp) found m->retake set: wait for sysmon's decision; if it took
  // the P, the fiber goes on without one (or with an idle P, if there is one). retake.cpp.
  void retaken(M* m) noexcept;

  // Blocking calls (see fiber.hpp). `m` is current_m(), with a fiber running.
  void enter_blocking(M* m);
  void exit_blocking(M* m, G* self) noexcept;

  // Netpoller (netpoll.cpp). poller() creates it on first use (throws std::system_error).
  Poller* poller();
  void io_wait_begin() noexcept { io_waiters_.fetch_add(1, std::memory_order_seq_cst); }
  void io_wait_end() noexcept { io_waiters_.fetch_sub(1, std::memory_order_relaxed); }
  void ensure_poller() noexcept;  // a plain thread waits on I/O: make sure some M will poll

  // Test hook: direct access for tests of queues and stealing.
  P* proc(int i) noexcept { return allp_[static_cast<std::size_t>(i)].get(); }

  // Fiber registry walk (dumps, shutdown). fn(G*) for every G ever carved (any status).
  template <class F> void for_each_g(F&& fn) {
    std::lock_guard<std::mutex> lk(allg_lock_);
    for (G* g = allg_; g; g = g->allg_next) fn(g);
  }

 private:
  // Post: what the fiber that just switched out wants done once it is off its stack; carried
  // out by whoever lands (finish_switch). Lives on the old fiber's stack.
  struct Post {
    G* prev;
    After after;
    UnlockFn unlock;
    void* arg;
  };
  static void fiber_main(boost::context::detail::transfer_t t);
  void finish_switch(M* m, G* self, boost::context::detail::transfer_t t) noexcept;
  void execute(M* m, G* g) noexcept;   // on g0: run g until it switches back to g0
  void requeue(G* g, GStatus from, bool blocked, bool wake) noexcept;  // switch.cpp

  void mstart(M* m);
  void schedule(M* m);                 // the g0 loop
  G* find_runnable(M* m);              // on g0; blocks the M; null when stopping
  G* pick_local(P* p, bool timers = true) noexcept;        // runnext / local / global every 61 ticks
  G* runq_get(P* p) noexcept;
  bool runq_put(P* p, G* g, bool next) noexcept;  // true if the ring overflowed
  void runq_put_slow(P* p, G* g) noexcept;
  G* steal_work(M* m, std::int64_t now, bool* ran_timers) noexcept;
  void glob_put(G* const* gs, int n) noexcept;               // lock_ held
  G* glob_pop() noexcept;                                     // lock_ held
  G* glob_get(P* p, int max) noexcept;                        // lock_ held
  void wakep() noexcept;
  void startm(P* p, bool spinning) noexcept;
  void reset_spinning(M* m) noexcept;
  P* pidle_get() noexcept;                                    // lock_ held
  void pidle_put(P* p) noexcept;                              // lock_ held
  M* midle_get() noexcept;                                    // lock_ held
  void stopm(M* m, std::int64_t until) noexcept;
  void acquirep(M* m, P* p) noexcept;
  P* releasep(M* m) noexcept;
  bool any_runq_nonempty() const noexcept;
  bool dead_locked() const noexcept;                          // lock_ held
  // Netpoller: netpoll(0) polls; netpoll(t) blocks until t (INT64_MAX: until events or a
  // netpoll_break). Returns the number of waiters woken.
  int netpoll(std::int64_t until_ns) noexcept;
  void netpoll_break() noexcept;
  void destroy_poller() noexcept;
  void wake_m(M* m) noexcept;  // m->park.wakeup(), and out of epoll_wait if it is the poller
  bool idle_locked() const noexcept;                          // lock_ held

  // Timers.
  static bool timers_may_be_due(P* p) noexcept;  // cheap pre-check of run_own_timers (owner)
  std::int64_t run_own_timers(P* p) noexcept;     // run_timers at nanotime(), by p's owner
  std::int64_t run_timers(P* p, std::int64_t now) noexcept;   // returns now (or 0 if no timers)
  std::int64_t earliest_timer() const noexcept;
  void timers_changed(std::int64_t when) noexcept;
  void add_timer_locked(P* p, Timer* t) noexcept;

  // G and stack caches (gcache.cpp).
  G* gfget(P* p) noexcept;
  void gfput(P* p, G* g) noexcept;      // a dead G: unbinds its stack, caches both
  void gf_flush(P* p) noexcept;         // p goes idle: its caches go to the global ones
  // bind_stack: gives g, about to run for the first time, a stack and its initial context.
  // `p` is the running M's P. Aborts if no stack can be mapped (nothing to throw to).
  void bind_stack(P* p, G* g) noexcept;
  void unbind_stack(P* p, G* g) noexcept;
  void note_released(std::int64_t now) noexcept;  // schedules the stack trimmer

  void unwind_all();
  [[noreturn]] void exit_g(G* self) noexcept;
  std::uint64_t new_id(P* p) noexcept;

  Config cfg_;
  int nprocs_;
  std::vector<std::unique_ptr<P>> allp_;
  StackPool stacks_;

  std::mutex lock_;                    // "sched.lock"
  // Global run queue (lock_): a growable ring of pointers, so that moving a batch in or out
  // never touches the G's themselves (a cache miss each).
  std::vector<G*> gq_ = std::vector<G*>(1024);
  std::size_t gq_head_ = 0;
  std::atomic<int> runq_size_{0};      // number of G's in gq_ (written under lock_)
  P* pidle_ = nullptr;                 // idle Ps (lock_)
  std::atomic<int> npidle_{0};
  M* midle_ = nullptr;                 // idle Ms (lock_)
  std::vector<std::unique_ptr<M>> allm_;   // (lock_)
  std::atomic<int> nmspinning_{0};
  M* timer_m_ = nullptr;               // the idle M sleeping until the next timer (lock_)
  std::atomic<std::int64_t> timer_m_until_{INT64_MAX};
  std::atomic<std::int64_t> next_trim_{INT64_MAX};
  std::atomic<bool> stopping_{false};
  // Shutdown is unwinding parked fibers. Written once by the shutdown thread; read there and by
  // plain threads that ready a fiber meanwhile (ready_g).
  std::atomic<bool> unwinding_{false};
  bool shut_down_ = false;             // (shutdown_mu_)
  std::mutex shutdown_mu_;
  std::atomic<std::int64_t> outside_live_{0};  // fibers started from plain threads
  std::atomic<int> outside_calls_{0};          // ready_g/start_g calls from outside, under way
  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<std::uint32_t> timer_rr_{0};

  std::mutex allg_lock_;
  G* allg_ = nullptr;
  GArena garena_;                      // every G of this scheduler, freed with it

  // sysmon (sysmon.cpp): the monitor thread.
  void sysmon() noexcept;
  // try_retake (retake.cpp): sysmon takes p from the M running g, which has not switched since
  // switch count `tick`, if that M's thread is blocked in the kernel outside the scheduler.
  // `seen_blocked`: sysmon's previous look at this run found the thread asleep too.
  enum class Retake : std::uint8_t { taken, computing, blocked_once, not_now };
  Retake try_retake(P* p, G* g, std::uint64_t tick, std::int64_t stuck_ns,
                    bool seen_blocked) noexcept;
  bool retake_ok_ = false;  // membarrier registered (sysmon thread only)
  std::atomic<std::uint64_t> retakes_{0};
  void stop_sysmon() noexcept;
  std::thread sysmon_;
  Note sysmon_note_;
  Note sysmon_started_;  // the constructor waits: sysmon is vouched for before any check
  std::atomic<bool> sysmon_stop_{false};
  std::atomic<bool> sysmon_idle_{false};  // sysmon sleeps long: startm wakes it
  std::atomic<std::uint64_t> long_runs_{0};

  int blocking_ = 0;                           // fibers in blocking calls, without a P (lock_)
  std::atomic<Poller*> poller_{nullptr};
  std::mutex poller_mu_;                       // creating poller_
  std::atomic<int> io_waiters_{0};             // fibers and threads in poll_wait
  std::atomic<M*> netpoll_m_{nullptr};         // the M blocked in epoll_wait (set under lock_)
  std::atomic<std::int64_t> last_poll_{0};     // nanotime of the last netpoll

  std::function<void()> deadlock_hook_;  // (lock_)
  bool deadlock_reported_ = false;       // (lock_)

  // Operations on fibers, used by the unlocked free functions in fiber.hpp.
 public:
  void lost_ready(G* g) noexcept;
  bool is_unwinding() const noexcept { return unwinding_.load(std::memory_order_relaxed); }
};

void deadlock_epoch_bump() noexcept;  // deadlock.cpp: a P left an idle list
bool retake_supported() noexcept;     // retake.cpp: membarrier registered for this process
void register_scheduler(Scheduler* s, bool add);  // registry.cpp: for dumps (SIGQUIT)

// The calling thread's M (null on threads that are not Ms). Never cache the result across a
// switch: re-read it (the fiber may have moved to another thread).
M* current_m() noexcept;
void set_current_m(M* m) noexcept;

}  // namespace colony::sched
