// The LD_PRELOAD form of colony::hooks (libcolony_hooks.so): this program links colony but not
// the hooks, and exports its symbols (ENABLE_EXPORTS), so the preloaded object binds its weak
// references to this program's scheduler. ctest runs it with LD_PRELOAD set; run by hand
// without it, the tests skip.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <colony/colony.hpp>
#include <string>
#include <thread>

#include "hooks/hooks_util.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
using namespace colony::hooks_test;

namespace {

bool preloaded() {
  auto* active = reinterpret_cast<int (*)()>(::dlsym(RTLD_DEFAULT, "colony_hooks_active"));
  return active && active() == 1;
}

class Preload : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!::getenv("LD_PRELOAD")) GTEST_SKIP() << "run without LD_PRELOAD=libcolony_hooks.so";
  }
};

TEST_F(Preload, TheHooksFindTheProgramsScheduler) {
  EXPECT_TRUE(preloaded());
}

TEST_F(Preload, ReadParksTheFiber) {
  colony::Config cfg;
  cfg.max_procs = 1;
  colony::run(
      [] {
        Pair p;
        TickFiber ticker;
        std::thread peer([&] {
          std::this_thread::sleep_for(300ms);
          ::write(p.b, "hello", 5);
        });
        char buf[8];
        EXPECT_EQ(::read(p.a, buf, sizeof buf), 5);
        const int ticks = ticker.ticks();
        ticker.stop();
        colony::testing::join_thread(peer);
        EXPECT_GE(ticks, 10) << "read blocked the only thread";
      },
      cfg);
}

TEST_F(Preload, NanosleepParksTheFiber) {
  colony::Config cfg;
  cfg.max_procs = 1;
  colony::run(
      [] {
        const auto t0 = Clock::now();
        auto a = colony::spawn([] {
          timespec ts{0, 200'000'000};
          ::nanosleep(&ts, nullptr);
        });
        auto b = colony::spawn([] { ::usleep(200'000); });
        a.get();
        b.get();
        EXPECT_LT(ms_since(t0), 380) << "the two sleeps ran one after the other";
      },
      cfg);
}

}  // namespace
