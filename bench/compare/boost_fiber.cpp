// colony_compare_boost_fiber: the workloads on Boost.Fiber with the work_stealing algorithm, one
// thread per processor (the calling thread is one of them), except yield, which runs two fibers
// on one thread with the default round_robin algorithm.
//
// Stacks: 32 KiB, carved out of large MAP_NORESERVE regions and recycled through per-thread
// caches (a shared depot between threads). Boost's stock fixedsize_stack mallocs 128 KiB per
// fiber: above glibc's mmap threshold that is one mapping per fiber, and a million fibers would
// exceed vm.max_map_count. colony and Go both recycle stacks too.
//
// Lifetime: work_stealing keeps process-wide static state, so it is installed once per process
// (each run of this worker is its own process anyway). Detached fibers are counted; the runtime
// is torn down only after every one of them has returned.
#include <sys/mman.h>

#include <atomic>
#include <boost/fiber/algo/work_stealing.hpp>
#include <boost/fiber/all.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"

namespace {

using compare::Args;
using compare::Clock;
using compare::Result;
namespace bf = boost::fibers;

const std::string kSystem = "Boost.Fiber";

// ------------------------------------------------------------------ stacks

constexpr std::size_t kStackSize = 32 * 1024;
constexpr std::size_t kBatch = 256;          // stacks moved between cache and depot
constexpr std::size_t kRegionStacks = 8192;  // 256 MiB of address space per region

struct Depot {
  std::mutex m;
  std::vector<void*> free;
  char* next = nullptr;  // uncarved part of the current region
  char* end = nullptr;

  void refill(std::vector<void*>& cache) {
    std::lock_guard<std::mutex> lk(m);
    if (free.size() >= kBatch) {
      cache.insert(cache.end(), free.end() - kBatch, free.end());
      free.resize(free.size() - kBatch);
      return;
    }
    for (std::size_t i = 0; i < kBatch; ++i) {
      if (next == end) {
        const std::size_t bytes = kStackSize * kRegionStacks;
        void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        next = static_cast<char*>(p);
        end = next + bytes;
      }
      cache.push_back(next);
      next += kStackSize;
    }
  }
  void give_back(std::vector<void*>& cache) {
    std::lock_guard<std::mutex> lk(m);
    free.insert(free.end(), cache.end() - kBatch, cache.end());
    cache.resize(cache.size() - kBatch);
  }
};

Depot g_depot;  // never destroyed before the fibers: the process exits with it
thread_local std::vector<void*>* t_cache = nullptr;

// A fiber may move to another thread while suspended and the compiler may cache a
// thread_local's address across that; reading it in a function that never suspends is safe.
[[gnu::noinline]] std::vector<void*>& stack_cache() {
  if (t_cache == nullptr) t_cache = new std::vector<void*>();  // leaked on purpose (see above)
  return *t_cache;
}

struct RecycledStack {
  boost::context::stack_context allocate() {
    std::vector<void*>& cache = stack_cache();
    if (cache.empty()) g_depot.refill(cache);
    void* base = cache.back();
    cache.pop_back();
    boost::context::stack_context sctx;
    sctx.size = kStackSize;
    sctx.sp = static_cast<char*>(base) + kStackSize;
    return sctx;
  }
  void deallocate(boost::context::stack_context& sctx) noexcept {
    std::vector<void*>& cache = stack_cache();
    cache.push_back(static_cast<char*>(sctx.sp) - sctx.size);
    if (cache.size() >= 2 * kBatch) g_depot.give_back(cache);
  }
};

// ------------------------------------------------------------------ runtime

std::atomic<long> g_live{0};  // detached fibers not yet returned

template <class F>
void go(F&& f) {
  g_live.fetch_add(1, std::memory_order_relaxed);
  bf::fiber(std::allocator_arg, RecycledStack{}, [fn = std::forward<F>(f)]() mutable {
    fn();
    g_live.fetch_sub(1, std::memory_order_release);
  }).detach();
}

// Runtime: `procs` threads running work_stealing(procs); the calling thread is participant 0.
// work_stealing with one thread never finds a victim and spins forever in pick_next(), so one
// processor means the default round_robin on the calling thread alone.
class Runtime {
 public:
  explicit Runtime(int procs) : n_(procs) {
    if (n_ < 2) return;
    for (int i = 1; i < n_; ++i)
      helpers_.emplace_back([this] {
        bf::use_scheduling_algorithm<bf::algo::work_stealing>(n_);
        std::unique_lock<bf::mutex> lk(m_);
        cv_.wait(lk, [this] { return done_; });
      });
    bf::use_scheduling_algorithm<bf::algo::work_stealing>(n_);
  }
  // drain: wait until every detached fiber has returned (call before the objects they use die).
  static void drain() {
    while (g_live.load(std::memory_order_acquire) > 0)
      boost::this_fiber::sleep_for(std::chrono::microseconds(100));
  }
  ~Runtime() {
    drain();
    {
      std::lock_guard<bf::mutex> lk(m_);
      done_ = true;
    }
    cv_.notify_all();
    for (auto& t : helpers_) t.join();
  }

 private:
  int n_;
  std::vector<std::thread> helpers_;
  bf::mutex m_;
  bf::condition_variable cv_;
  bool done_ = false;
};

// Latch: count_down by n fibers, wait by one.
class Latch {
 public:
  explicit Latch(long n) : n_(n) {}
  void count_down() {
    if (n_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    std::lock_guard<bf::mutex> lk(m_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<bf::mutex> lk(m_);
    cv_.wait(lk, [this] { return open_; });
  }

 private:
  std::atomic<long> n_;
  bf::mutex m_;
  bf::condition_variable cv_;
  bool open_ = false;
};

// ------------------------------------------------------------------ workloads

Result spawn(const Args& a) {
  Runtime rt(a.procs);
  return compare::first_and_warm(a, [&] {
    Latch done(a.n);
    auto t0 = Clock::now();
    for (long i = 0; i < a.n; ++i) go([&done] { done.count_down(); });
    done.wait();
    double ns = compare::ns_since(t0);
    Runtime::drain();
    return compare::per_op(ns, static_cast<double>(a.n), std::to_string(a.n) + " done");
  });
}

// skynet: each node owns a buffered_channel (capacity 16: Boost's capacity is a power of two
// and holds capacity - 1 values, so the ten children never block) and pushes its sum into its
// parent's.
using SumChannel = bf::buffered_channel<std::int64_t>;

void skynet_node(SumChannel* parent, std::int64_t num, std::int64_t size) {
  if (size == 1) {
    parent->push(num);
    return;
  }
  SumChannel children(16);
  size /= 10;
  for (std::int64_t i = 0; i < 10; ++i)
    go([&children, num, i, size] { skynet_node(&children, num + i * size, size); });
  std::int64_t sum = 0;
  for (int i = 0; i < 10; ++i) sum += children.value_pop();
  parent->push(sum);
}

Result skynet(const Args& a) {
  Runtime rt(a.procs);
  return compare::first_and_warm(a, [&] {
    SumChannel root(2);
    auto t0 = Clock::now();
    go([&root, &a] { skynet_node(&root, 0, a.n); });
    std::int64_t sum = root.value_pop();
    double ms = compare::ms_since(t0);
    Runtime::drain();
    if (sum != compare::skynet_expected(a.n))
      compare::fail(kSystem, "skynet sum " + std::to_string(sum));
    return compare::in_ms(ms, "sum=" + std::to_string(sum));
  });
}

Result pingpong(const Args& a) {
  Runtime rt(a.procs);
  bf::unbuffered_channel<long> ping, pong;
  go([&] {
    long v;
    while (ping.pop(v) == bf::channel_op_status::success) pong.push(v + 1);
  });
  auto t0 = Clock::now();
  for (long i = 0; i < a.n; ++i) {
    ping.push(i);
    if (pong.value_pop() != i + 1) compare::fail(kSystem, "pingpong: wrong answer");
  }
  double ns = compare::ns_since(t0);
  ping.close();
  Runtime::drain();
  return compare::per_op(ns, static_cast<double>(a.n), std::to_string(a.n) + " round trips");
}

Result yield(const Args& a) {
  // No Runtime: the calling thread's default round_robin scheduler, one thread.
  const long each = a.n / 2;
  auto body = [each] {
    for (long i = 0; i < each; ++i) boost::this_fiber::yield();
  };
  auto t0 = Clock::now();
  bf::fiber f1(std::allocator_arg, RecycledStack{}, body);
  bf::fiber f2(std::allocator_arg, RecycledStack{}, body);
  f1.join();
  f2.join();
  Result r = compare::per_op(compare::ns_since(t0), 2.0 * static_cast<double>(each),
                             std::to_string(2 * each) + " yields");
  r.note = "round_robin, one thread";
  return r;
}

Result parked(const Args& a) {
  Runtime rt(a.procs);
  bf::mutex m;
  bf::condition_variable cv;
  bool open = false;
  Latch started(a.n), exited(a.n);
  const long rss0 = compare::status_kib("VmRSS");
  auto t0 = Clock::now();
  for (long i = 0; i < a.n; ++i)
    go([&] {
      started.count_down();
      {
        std::unique_lock<bf::mutex> lk(m);
        cv.wait(lk, [&] { return open; });
      }
      exited.count_down();
    });
  started.wait();
  boost::this_fiber::sleep_for(std::chrono::milliseconds(5));  // the last ones park
  const long rss1 = compare::status_kib("VmRSS");
  {
    std::lock_guard<bf::mutex> lk(m);
    open = true;
  }
  cv.notify_all();
  exited.wait();
  const double ms = compare::ms_since(t0);
  Runtime::drain();
  Result r;
  compare::rss_per_task(r, rss0, rss1, a.n, ms);
  r.check = std::to_string(a.n) + " woken";
  return r;
}

// sleep: a counting semaphore of `cap` (fiber mutex + condition variable) taken before each
// spawn and given back by the fiber after its sleep.
Result sleep_bound(const Args& a) {
  Runtime rt(a.procs);
  bf::mutex m;
  bf::condition_variable cv;
  long inflight = 0;
  std::atomic<long> slept{0};
  Latch done(a.n);
  const auto d = std::chrono::milliseconds(a.sleep_ms);
  auto t0 = Clock::now();
  for (long i = 0; i < a.n; ++i) {
    {
      std::unique_lock<bf::mutex> lk(m);
      cv.wait(lk, [&] { return inflight < a.cap; });
      ++inflight;
    }
    go([&, d] {
      boost::this_fiber::sleep_for(d);
      slept.fetch_add(1, std::memory_order_relaxed);
      {
        std::lock_guard<bf::mutex> lk(m);
        --inflight;
      }
      cv.notify_one();
      done.count_down();
    });
  }
  done.wait();
  double ms = compare::ms_since(t0);
  Runtime::drain();
  if (slept.load() != a.n) compare::fail(kSystem, "sleep: lost tasks");
  return compare::in_ms(ms, std::to_string(a.n) + " slept");
}

std::int64_t pfib(int n, int cutoff) {
  if (n <= cutoff) return compare::fib_seq(n);
  std::int64_t left = 0;
  bf::fiber f(std::allocator_arg, RecycledStack{},
              [&left, n, cutoff] { left = pfib(n - 1, cutoff); });
  std::int64_t right = pfib(n - 2, cutoff);
  f.join();
  return left + right;
}

Result fib(const Args& a) {
  Runtime rt(a.procs);
  return compare::fib_result(kSystem, a, [&] { return pfib(a.fib, a.cutoff); });
}

}  // namespace

int main(int argc, char** argv) {
  return compare::main(argc, argv, kSystem,
                       {{"spawn", spawn, {}},
                        {"skynet", skynet, {}},
                        {"pingpong", pingpong, {}},
                        {"yield", yield, {}},
                        {"parked", parked, {}},
                        {"sleep", sleep_bound, {}},
                        {"fib", fib, {}}});
}
