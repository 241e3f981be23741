// The headline demo: a million fibers in a skynet tree, then a hundred thousand fibers sleeping
// at once, on a handful of OS threads.
#include <atomic>
#include <chrono>
#include <cstdio>

#include <colony/colony.hpp>

namespace {

// skynet: every node spawns ten children until a million leaves; each returns its subtree sum.
long skynet(long num, long size) {
  if (size == 1) return num;
  colony::Future<long> kids[10];
  for (long i = 0; i < 10; ++i) kids[i] = colony::spawn(skynet, num + i * (size / 10), size / 10);
  long sum = 0;
  for (auto& k : kids) sum += k.get();
  return sum;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main() {
  return colony::run([] {
    auto t0 = std::chrono::steady_clock::now();
    long total = skynet(0, 1'000'000);
    std::printf("skynet: 1,000,000 leaf fibers, sum %ld, %.1f ms\n", total, ms_since(t0));

    // 100k fibers sleeping 50 ms each, all at the same time: they park, their threads do not.
    constexpr int kSleepers = 100'000;
    std::atomic<int> woke{0};
    auto t1 = std::chrono::steady_clock::now();
    colony::Future<void> sleepers[100];
    for (auto& s : sleepers)
      s = colony::spawn([&woke] {
        colony::Future<void> inner[kSleepers / 100];
        for (auto& f : inner)
          f = colony::spawn([&woke] {
            colony::this_fiber::sleep_for(std::chrono::milliseconds(50));
            woke.fetch_add(1, std::memory_order_relaxed);
          });
        for (auto& f : inner) f.get();
      });
    for (auto& s : sleepers) s.get();
    std::printf("sleepers: %d fibers slept 50 ms concurrently, all done in %.1f ms\n", woke.load(),
                ms_since(t1));

    colony::Stats st = colony::stats();
    std::printf("runtime: %d processors, %d OS threads; %llu fibers scheduled, %llu stolen, "
                "%llu timers fired\n",
                st.max_procs, st.threads, static_cast<unsigned long long>(st.total.switches),
                static_cast<unsigned long long>(st.total.stolen),
                static_cast<unsigned long long>(st.total.timers_fired));
    return total == 499999500000L && woke.load() == kSleepers ? 0 : 1;
  });
}
