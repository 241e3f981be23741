// The installed-package check: only public headers and colony::runtime. Exit status 0 on success.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <vector>

#include <colony/colony.hpp>

int main() {
  return colony::run(
      [] {
        // spawn/Future: values come back through get().
        std::vector<colony::Future<int>> squares;
        for (int i = 0; i < 8; ++i) squares.push_back(colony::spawn([](int x) { return x * x; }, i));
        int sum = 0;
        for (auto& f : squares) sum += f.get();

        // go: detached fibers that sleep, then report back.
        std::atomic<int> done{0};
        for (int i = 0; i < 4; ++i)
          colony::go([&done] {
            colony::this_fiber::sleep_for(std::chrono::milliseconds(1));
            done.fetch_add(1);
          });
        while (done.load() < 4) colony::this_fiber::sleep_for(std::chrono::milliseconds(1));

        std::printf("colony consumer: sum of squares %d, %d sleepers done, %d procs\n", sum,
                    done.load(), colony::max_procs());
        return sum == 140 && done.load() == 4 ? 0 : 1;
      },
      {.max_procs = 2});
}
