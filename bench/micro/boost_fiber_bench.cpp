// Peer-reference benchmarks: Boost.Fiber and raw Boost.Context.
//
// Linked with benchmark::benchmark_main, Boost::fiber and Boost::context (no
// main() here). Standalone build for a quick check:
//
//   g++ -O2 -std=c++20 bench/micro/boost_fiber_bench.cpp -lbenchmark_main
//       -lbenchmark -lboost_fiber -lboost_context -pthread -o /tmp/pb
//   /tmp/pb
//
// Benchmarks
//
//   BM_BoostFiber_Skynet  10-way skynet tree of fibers with 1,000,000 leaves
//                         (1,111,111 fibers) on the work_stealing algorithm,
//                         every thread of the process participating (see
//                         WorkStealingPool). Each node owns a
//                         buffered_channel<uint64_t> of capacity 16 (holds
//                         15 values, so the ten children never block on
//                         push, like the Go version's buffer of 10) and every
//                         child pushes its sum into its parent's channel. The
//                         sum is checked against 499999500000. One iteration
//                         = one full tree, reported in ms of wall time. The
//                         first run in a process builds one untimed tree
//                         first (warm-up). Fiber stacks are 32 KiB and are
//                         recycled (CachedStackAllocator). Note: Boost's
//                         work_stealing ready queue is FIFO (unless Boost was
//                         built with BOOST_FIBERS_USE_SPMC_QUEUE), so the tree
//                         unfolds breadth-first: ~450,000 fibers are alive at
//                         the peak and the process peaks at ~3.5 GB RSS.
//   BM_BoostFiber_Yield   two fibers on one thread alternating with
//                         boost::this_fiber::yield(), on a dedicated
//                         std::thread with the default round_robin algorithm
//                         (so it never meets the work_stealing threads). One
//                         iteration = 2 yields (one per fiber); the
//                         "per_yield" counter is the time of ONE yield.
//   BM_BoostContext_Jump  the floor: jump_fcontext ping-pong between the
//                         benchmark thread and one context made by
//                         make_fcontext on a malloc'd 64 KiB stack. One
//                         iteration = a jump there and a jump back; the
//                         "per_jump" counter is the time of ONE jump.
//
// work_stealing pitfall: the algorithm keeps process-wide static state (a
// static scheduler array sized by the first thread_count, a static id counter
// and a static barrier), so the set of participating threads can be created
// only once per process. WorkStealingPool is therefore a function-local
// static: on first use it starts hardware_concurrency()-1 helper threads
// that, together with the benchmark (main) thread, install
// work_stealing(N). Helpers only run their fiber scheduler while a skynet
// benchmark is in progress; otherwise they block on a std::condition_variable
// (so they do not spin and steal CPU from other benchmarks: work_stealing
// without its `suspend` option busy-polls for work, and with it an idle
// thread is never woken when new work appears elsewhere). The pool's
// destructor, run at process exit, wakes the helpers with a shutdown flag
// and joins them.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <boost/context/detail/fcontext.hpp>
#include <boost/fiber/algo/work_stealing.hpp>
#include <boost/fiber/all.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

namespace {

// ------------------------------------------------------------------ skynet

constexpr std::uint64_t kSkynetLeaves = 1'000'000;
constexpr std::uint64_t kSkynetExpected = 499'999'500'000ULL;
constexpr std::uint64_t kSkynetFibers = 1'111'111;  // 1 + 10 + ... + 10^6
// Stack of every skynet fiber. The nodes are shallow; 32 KiB is plenty.
constexpr std::size_t kSkynetStackSize = 32 * 1024;

using SumChannel = boost::fibers::buffered_channel<std::uint64_t>;
constexpr std::size_t kChannelCapacity = 16;  // power of two, >= 10 + 1

// Per participating thread: a completion counter, so a benchmark run can wait
// until every fiber it created has finished before it parks the helper
// threads, and a cache of free fiber stacks. Each slot is used only by its
// own thread (no contended read-modify-write on the hot path). The slots have
// static storage duration, so they outlive every thread's fiber scheduler
// (the main thread's is destroyed at exit before static objects, the
// helpers' when WorkStealingPool joins them); their destructors free the
// cached stacks.
struct alignas(64) ThreadSlot {
  std::atomic<std::uint64_t> done{0};
  std::vector<void*> free_stacks;

  ThreadSlot() = default;
  ThreadSlot(const ThreadSlot&) = delete;
  ThreadSlot& operator=(const ThreadSlot&) = delete;
  ~ThreadSlot() {
    for (void* p : free_stacks) {
      std::free(p);
    }
  }
};

// Stacks travel between threads in magazines of this many.
constexpr std::size_t kMagazine = 256;

struct StackDepot {
  std::mutex mtx;
  std::vector<std::vector<void*>> magazines;

  ~StackDepot() {
    for (auto& magazine : magazines) {
      for (void* p : magazine) {
        std::free(p);
      }
    }
  }
};

constexpr std::size_t kMaxSlots = 256;
StackDepot g_depot;
ThreadSlot g_slots[kMaxSlots];
// Trivially destructible, so it stays usable while thread_local objects
// (such as the fiber scheduler) are destroyed.
thread_local ThreadSlot* t_slot = nullptr;

// The helpers below are not inlined: a fiber may migrate between threads
// while it is suspended, and the compiler is allowed to cache the address of
// a thread_local across a suspension point inside one function. Reading it
// in a separate function that never suspends is always correct.

[[gnu::noinline]] void count_fiber_done() noexcept {
  ThreadSlot* slot = t_slot;
  slot->done.store(slot->done.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

// Fixed-size stacks recycled through per-thread caches plus a shared depot
// of magazines (a stack freed on another thread than the one that allocated
// it joins that thread's cache; surplus moves to the depot kMagazine at a
// time). Boost's stock fixedsize_stack calls malloc/free for every fiber; in
// this workload that makes glibc trim and regrow its heaps continuously (a
// page-fault storm: several seconds per tree) and free stacks into other
// threads' arenas (arena-lock futex traffic). Go and colony both reuse
// stacks, so the Boost peer does too.
class CachedStackAllocator {
 public:
  [[gnu::noinline]] boost::context::stack_context allocate() {
    ThreadSlot* slot = t_slot;
    void* base = nullptr;
    if (slot != nullptr) {
      if (slot->free_stacks.empty()) {
        std::lock_guard<std::mutex> lk(g_depot.mtx);
        if (!g_depot.magazines.empty()) {
          slot->free_stacks.swap(g_depot.magazines.back());
          g_depot.magazines.pop_back();
        }
      }
      if (!slot->free_stacks.empty()) {
        base = slot->free_stacks.back();
        slot->free_stacks.pop_back();
      }
    }
    if (base == nullptr) {
      base = std::malloc(kSkynetStackSize);
      if (base == nullptr) {
        throw std::bad_alloc();
      }
    }
    boost::context::stack_context sctx;
    sctx.size = kSkynetStackSize;
    sctx.sp = static_cast<char*>(base) + kSkynetStackSize;
    return sctx;
  }

  [[gnu::noinline]] void deallocate(boost::context::stack_context& sctx) noexcept {
    void* base = static_cast<char*>(sctx.sp) - sctx.size;
    ThreadSlot* slot = t_slot;
    if (slot == nullptr) {
      std::free(base);
      return;
    }
    std::vector<void*>& cache = slot->free_stacks;
    if (cache.capacity() < 2 * kMagazine) {
      cache.reserve(2 * kMagazine);
    }
    cache.push_back(base);
    if (cache.size() == 2 * kMagazine) {
      std::vector<void*> magazine(cache.end() - kMagazine, cache.end());
      cache.resize(kMagazine);
      std::lock_guard<std::mutex> lk(g_depot.mtx);
      g_depot.magazines.push_back(std::move(magazine));
    }
  }
};

class WorkStealingPool {
 public:
  static WorkStealingPool& instance() {
    static WorkStealingPool pool;
    return pool;
  }

  unsigned threads() const noexcept { return n_; }

  // Let the helper threads run their schedulers (and steal).
  void open() {
    {
      std::lock_guard<std::mutex> lk(os_mtx_);
      active_.store(true);
    }
    os_cv_.notify_all();
  }

  // Park the helper threads again. Call only once every fiber created since
  // open() has finished (see wait_all_done).
  void close() {
    {
      std::unique_lock<boost::fibers::mutex> lk(fiber_mtx_);
      active_.store(false);
    }
    fiber_cv_.notify_all();
  }

  std::uint64_t done_total() const noexcept {
    std::uint64_t total = 0;
    for (unsigned i = 0; i < n_; ++i) {
      total += g_slots[i].done.load(std::memory_order_acquire);
    }
    return total;
  }

  // Block the calling fiber until `expected` fibers have finished in total.
  // Sleeps rather than yields, so that the dispatcher (which moves remotely
  // woken fibers into the ready queue) runs even if the ready queue's order
  // would hand the CPU straight back to a yielding fiber (work_stealing's
  // queue is FIFO by default but LIFO when Boost is built with
  // BOOST_FIBERS_USE_SPMC_QUEUE).
  void wait_all_done(std::uint64_t expected) const {
    while (done_total() < expected) {
      boost::this_fiber::sleep_for(std::chrono::microseconds(100));
    }
  }

  WorkStealingPool(const WorkStealingPool&) = delete;
  WorkStealingPool& operator=(const WorkStealingPool&) = delete;

 private:
  WorkStealingPool() {
    // work_stealing with one thread never finds a victim and loops forever
    // in pick_next(), so use at least two threads.
    n_ = std::clamp<unsigned>(std::thread::hardware_concurrency(), 2, kMaxSlots);
    helpers_.reserve(n_ - 1);
    for (unsigned i = 1; i < n_; ++i) {
      helpers_.emplace_back([this, i] { helper_main(i); });
    }
    // The calling (benchmark) thread is participant 0. The work_stealing
    // constructor waits on a barrier until all n_ threads have installed it.
    t_slot = &g_slots[0];
    boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(n_);
  }

  ~WorkStealingPool() {
    {
      std::lock_guard<std::mutex> lk(os_mtx_);
      shutdown_ = true;
    }
    os_cv_.notify_all();
    for (auto& t : helpers_) {
      t.join();
    }
  }

  void helper_main(unsigned index) {
    t_slot = &g_slots[index];
    boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(n_);
    std::unique_lock<std::mutex> os_lk(os_mtx_);
    for (;;) {
      // Parked at OS level: this thread's fiber scheduler does not run.
      os_cv_.wait(os_lk, [this] { return shutdown_ || active_.load(); });
      if (shutdown_) {
        break;
      }
      os_lk.unlock();
      {
        // Blocked at fiber level: the scheduler's dispatcher runs fibers
        // of this thread and steals from the others until close().
        std::unique_lock<boost::fibers::mutex> lk(fiber_mtx_);
        fiber_cv_.wait(lk, [this] { return !active_.load(); });
      }
      os_lk.lock();
    }
  }

  unsigned n_ = 0;
  std::vector<std::thread> helpers_;
  std::mutex os_mtx_;
  std::condition_variable os_cv_;
  bool shutdown_ = false;  // guarded by os_mtx_
  // Written with os_mtx_ held when set and fiber_mtx_ held when cleared.
  std::atomic<bool> active_{false};
  boost::fibers::mutex fiber_mtx_;
  boost::fibers::condition_variable fiber_cv_;
};

void skynet_node(SumChannel* parent, std::uint64_t num, std::uint64_t size);

void spawn_skynet(SumChannel* parent, std::uint64_t num, std::uint64_t size) {
  boost::fibers::fiber(std::allocator_arg, CachedStackAllocator{}, skynet_node, parent, num, size)
      .detach();
}

void skynet_node(SumChannel* parent, std::uint64_t num, std::uint64_t size) {
  if (size == 1) {
    parent->push(num);
  } else {
    SumChannel children(kChannelCapacity);
    size /= 10;
    for (std::uint64_t i = 0; i < 10; ++i) {
      spawn_skynet(&children, num + i * size, size);
    }
    std::uint64_t sum = 0;
    for (int i = 0; i < 10; ++i) {
      sum += children.value_pop();
    }
    parent->push(sum);
  }
  count_fiber_done();
}

// One full tree; returns the root's sum. Called from the benchmark thread's
// main fiber, which blocks in value_pop() while all threads run the tree.
std::uint64_t run_skynet_tree() {
  SumChannel root(2);
  spawn_skynet(&root, 0, kSkynetLeaves);
  return root.value_pop();
}

void BM_BoostFiber_Skynet(benchmark::State& state) {
  WorkStealingPool& pool = WorkStealingPool::instance();
  const std::uint64_t done_before = pool.done_total();
  std::uint64_t trees = 0;
  pool.open();
  if (done_before == 0) {
    // First run in this process: one untimed tree, so that the timed ones
    // do not pay for first-touch page faults of the stack pool and heap.
    run_skynet_tree();
    ++trees;
  }
  for (auto _ : state) {
    const std::uint64_t sum = run_skynet_tree();
    ++trees;
    if (sum != kSkynetExpected) {
      state.SkipWithError("skynet: wrong sum");
      break;
    }
  }
  // Outside the timed region: let stragglers (fibers that delivered their
  // value but have not returned yet) finish before parking the helpers.
  pool.wait_all_done(done_before + trees * kSkynetFibers);
  pool.close();
  state.counters["threads"] = pool.threads();
  state.counters["fibers"] = static_cast<double>(kSkynetFibers);
}
BENCHMARK(BM_BoostFiber_Skynet)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

// ------------------------------------------------------------------ yield

void BM_BoostFiber_Yield(benchmark::State& state) {
  // The whole measurement loop runs on a fresh thread whose fiber scheduler
  // is the default round_robin. Real time is the reported time.
  std::thread worker([&state] {
    std::atomic<bool> stop{false};
    boost::fibers::fiber partner([&stop] {
      while (!stop.load(std::memory_order_relaxed)) {
        boost::this_fiber::yield();
      }
    });
    boost::fibers::fiber driver([&state, &stop] {
      for (auto _ : state) {
        boost::this_fiber::yield();
      }
      stop.store(true, std::memory_order_relaxed);
    });
    driver.join();
    partner.join();
  });
  worker.join();
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 2);
  state.counters["per_yield"] = benchmark::Counter(
      2, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_BoostFiber_Yield)->UseRealTime();

// ------------------------------------------------------------------ raw jump

namespace ctx = boost::context::detail;

constexpr std::size_t kJumpStackSize = 64 * 1024;

// Runs on the new context: bounce straight back to whoever jumped here.
// Never returns (returning from a context function would end the process);
// the context is simply abandoned when the benchmark is done.
[[noreturn]] void bounce(ctx::transfer_t t) {
  for (;;) {
    t = ctx::jump_fcontext(t.fctx, nullptr);
  }
}

void BM_BoostContext_Jump(benchmark::State& state) {
  struct FreeDeleter {
    void operator()(void* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<void, FreeDeleter> stack(std::malloc(kJumpStackSize));
  if (!stack) {
    state.SkipWithError("malloc failed");
    return;
  }
  void* stack_top = static_cast<char*>(stack.get()) + kJumpStackSize;
  ctx::fcontext_t other = ctx::make_fcontext(stack_top, kJumpStackSize, bounce);
  // First entry: start `bounce`, which jumps straight back.
  other = ctx::jump_fcontext(other, nullptr).fctx;
  for (auto _ : state) {
    ctx::transfer_t t = ctx::jump_fcontext(other, nullptr);
    other = t.fctx;
    benchmark::DoNotOptimize(other);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 2);
  state.counters["per_jump"] = benchmark::Counter(
      2, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_BoostContext_Jump);

}  // namespace
