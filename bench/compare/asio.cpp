// colony_compare_asio: the workloads on a boost::asio::thread_pool of --procs threads.
//
// A pool thread must not block waiting for other tasks of the same pool (with every thread
// blocked nothing is left to run the tasks they wait for), so the tree workloads (skynet, fib)
// are written in continuation-passing style: a node posts its children and returns; the last
// child to finish completes its parent. The blocking workloads (parked, sleep) need one thread
// per blocked task and are reported as not runnable. pingpong blocks exactly two tasks, one per
// pool thread (mutex + condition variable); yield re-posts each task's continuation to a
// one-thread pool, whose queue is FIFO, so the two tasks alternate.
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <condition_variable>
#include <cstdint>
#include <latch>
#include <mutex>
#include <string>

#include "common.hpp"

namespace {

using compare::Args;
using compare::Clock;
using compare::Result;
namespace asio = boost::asio;

const std::string kSystem = "Boost.Asio";

std::string pool_note(const Args& a) {
  return "thread_pool(" + std::to_string(a.procs) + ")";
}

// spawn: n empty tasks posted from the main thread; each counts down a std::latch.
Result spawn(const Args& a) {
  asio::thread_pool pool(static_cast<std::size_t>(a.procs));
  Result r = compare::first_and_warm(a, [&] {
    std::latch done(a.n);
    auto t0 = Clock::now();
    for (long i = 0; i < a.n; ++i) asio::post(pool, [&done] { done.count_down(); });
    done.wait();
    return compare::per_op(compare::ns_since(t0), static_cast<double>(a.n),
                           std::to_string(a.n) + " done");
  });
  pool.join();
  r.note = pool_note(a);
  return r;
}

// skynet, continuation-passing: a node waits for nothing; each finished subtree adds its sum to
// its parent, and the tenth to report completes the parent (which reports to its own parent).
struct SkyNode {
  SkyNode* parent;
  std::atomic<std::int64_t> sum{0};
  std::atomic<int> pending{10};
  explicit SkyNode(SkyNode* p) : parent(p) {}
};

struct SkyRoot {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::int64_t sum = 0;
};

void sky_report(SkyNode* parent, std::int64_t value, SkyRoot* root) {
  while (parent != nullptr) {
    parent->sum.fetch_add(value, std::memory_order_relaxed);
    if (parent->pending.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    value = parent->sum.load(std::memory_order_relaxed);
    SkyNode* up = parent->parent;
    delete parent;
    parent = up;
  }
  std::lock_guard<std::mutex> lk(root->m);
  root->sum = value;
  root->done = true;
  root->cv.notify_one();
}

void sky_node(asio::thread_pool& pool, SkyNode* parent, std::int64_t num, std::int64_t size,
              SkyRoot* root) {
  if (size == 1) {
    sky_report(parent, num, root);
    return;
  }
  auto* self = new SkyNode(parent);
  size /= 10;
  for (std::int64_t i = 0; i < 10; ++i)
    asio::post(pool, [&pool, self, num, i, size, root] {
      sky_node(pool, self, num + i * size, size, root);
    });
}

Result skynet(const Args& a) {
  asio::thread_pool pool(static_cast<std::size_t>(a.procs));
  Result r = compare::first_and_warm(a, [&] {
    SkyRoot root;
    auto t0 = Clock::now();
    asio::post(pool, [&] { sky_node(pool, nullptr, 0, a.n, &root); });
    {
      std::unique_lock<std::mutex> lk(root.m);
      root.cv.wait(lk, [&] { return root.done; });
    }
    double ms = compare::ms_since(t0);
    if (root.sum != compare::skynet_expected(a.n))
      compare::fail(kSystem, "skynet sum " + std::to_string(root.sum));
    return compare::in_ms(ms, "sum=" + std::to_string(root.sum));
  });
  pool.join();
  r.note = "continuation-passing tasks, " + pool_note(a);
  return r;
}


// pingpong: two tasks of the pool (each holds a pool thread while it blocks).
Result pingpong(const Args& a) {
  if (a.procs < 2) compare::fail(kSystem, "pingpong needs --procs >= 2");
  asio::thread_pool pool(static_cast<std::size_t>(a.procs));
  compare::MailboxPingPong pp(a.n);
  asio::post(pool, [&] { pp.partner(); });
  asio::post(pool, [&] { pp.driver(); });
  pool.join();
  return pp.result(kSystem, "two blocking tasks, mutex + condition_variable");
}

// yield: a one-thread pool; two tasks, each re-posting itself n/2 times.
struct Yielder {
  asio::thread_pool* pool;
  long left;
  void operator()() {
    if (--left > 0) asio::post(*pool, *this);
  }
};

Result yield(const Args& a) {
  asio::thread_pool pool(1);
  const long each = a.n / 2;
  auto t0 = Clock::now();
  asio::post(pool, Yielder{&pool, each});
  asio::post(pool, Yielder{&pool, each});
  pool.join();
  Result r = compare::per_op(compare::ns_since(t0), 2.0 * static_cast<double>(each),
                             std::to_string(2 * each) + " switches");
  r.note = "thread_pool(1), a task re-posts its continuation";
  return r;
}

// fib, continuation-passing: a fork posts both branches; the second to finish adds them up and
// reports to its own parent.
struct FibNode {
  FibNode* parent;
  std::atomic<int> pending{2};
  std::atomic<std::int64_t> sum{0};
  explicit FibNode(FibNode* p) : parent(p) {}
};

struct FibRoot {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::int64_t value = 0;
};

void fib_report(FibNode* parent, std::int64_t value, FibRoot* root) {
  while (parent != nullptr) {
    parent->sum.fetch_add(value, std::memory_order_relaxed);
    if (parent->pending.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    value = parent->sum.load(std::memory_order_relaxed);
    FibNode* up = parent->parent;
    delete parent;
    parent = up;
  }
  std::lock_guard<std::mutex> lk(root->m);
  root->value = value;
  root->done = true;
  root->cv.notify_one();
}

void fib_task(asio::thread_pool& pool, FibNode* parent, int n, int cutoff, FibRoot* root) {
  if (n <= cutoff) {
    fib_report(parent, compare::fib_seq(n), root);
    return;
  }
  auto* self = new FibNode(parent);
  asio::post(pool, [&pool, self, n, cutoff, root] { fib_task(pool, self, n - 1, cutoff, root); });
  fib_task(pool, self, n - 2, cutoff, root);  // the second branch runs here, as in fork-join
}

Result fib(const Args& a) {
  asio::thread_pool pool(static_cast<std::size_t>(a.procs));
  FibRoot root;
  Result r = compare::fib_result(kSystem, a, [&] {
    root.done = false;
    asio::post(pool, [&] { fib_task(pool, nullptr, a.fib, a.cutoff, &root); });
    std::unique_lock<std::mutex> lk(root.m);
    root.cv.wait(lk, [&] { return root.done; });
    return root.value;
  });
  pool.join();
  r.note += ", continuation-passing";
  return r;
}

const char* kNoBlocking =
    "a parked task holds a pool thread: a pool of P threads parks at most P tasks";
const char* kNoSleep =
    "a sleeping task holds a pool thread: 50,000 concurrent sleepers need 50,000 threads";

}  // namespace

int main(int argc, char** argv) {
  return compare::main(argc, argv, kSystem,
                       {{"spawn", spawn, {}},
                        {"skynet", skynet, {}},
                        {"pingpong", pingpong, {}},
                        {"yield", yield, {}},
                        {"parked", {}, kNoBlocking},
                        {"sleep", {}, kNoSleep},
                        {"fib", fib, {}}});
}
