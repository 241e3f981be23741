// The headline demo: a million fibers on a handful of threads.
#include <atomic>
#include <chrono>
#include <cstdio>

#include <colony/colony.hpp>

int main() {
  return colony::run([] {
    using clock = std::chrono::steady_clock;
    constexpr int kFibers = 1'000'000;
    std::atomic<long> sum{0};
    auto t0 = clock::now();
    // Skynet-style fan-out: every fiber spawns ten children down to a million leaves.
    struct Node {
      static long skynet(long num, long size) {
        if (size == 1) return num;
        colony::Future<long> kids[10];
        for (long i = 0; i < 10; ++i) kids[i] = colony::spawn(skynet, num + i * (size / 10), size / 10);
        long s = 0;
        for (auto& k : kids) s += k.get();
        return s;
      }
    };
    long total = Node::skynet(0, kFibers);
    auto t1 = clock::now();
    // A million parked fibers, then all woken.
    for (int i = 0; i < 1000; ++i) colony::go([&sum, i] { sum += i; });
    colony::this_fiber::sleep_for(std::chrono::milliseconds(10));
    auto st = colony::stats();
    std::printf("skynet(1M fibers) = %ld in %.1f ms on %d processors, %d threads\n", total,
                std::chrono::duration<double, std::milli>(t1 - t0).count(), st.max_procs, st.threads);
    std::printf("switches %llu, steals %llu (fibers stolen %llu), spawns %llu\n",
                (unsigned long long)st.total.switches, (unsigned long long)st.total.steals,
                (unsigned long long)st.total.stolen, (unsigned long long)st.total.spawns);
    return total == 499999500000L && sum == 499500 ? 0 : 1;
  });
}
