// sysmon retakes the processor of a thread that a fiber has blocked in the kernel without
// colony::blocking (scheduler/src/retake.cpp), and the fiber gets a processor back at its next
// call into colony. This binary links colony::runtime only, never colony::hooks: every
// read, nanosleep and std::mutex here really blocks its thread.
#include <gtest/gtest.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <colony/colony.hpp>

#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using colony::testing::procs_name;
using colony::testing::proc_counts;

// The retake needs membarrier(2) with MEMBARRIER_CMD_PRIVATE_EXPEDITED (Linux 4.14); without
// it colony does not retake, and these tests have nothing to test.
bool retake_possible() {
  const long cmds = ::syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  return cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0;
}
#define SKIP_WITHOUT_RETAKE()                                                       \
  if (!retake_possible()) GTEST_SKIP() << "no membarrier(PRIVATE_EXPEDITED): no retake"

// Blocking calls colony does not see: the thread sleeps in the kernel.
void raw_sleep(std::chrono::nanoseconds d) {
  timespec ts{static_cast<time_t>(d.count() / 1'000'000'000),
              static_cast<long>(d.count() % 1'000'000'000)};
  while (::nanosleep(&ts, &ts) != 0) {
  }
}

char raw_read_byte(int fd) {
  char c = 0;
  while (::read(fd, &c, 1) != 1) {
  }
  return c;
}

struct Pipe {
  int fd[2]{-1, -1};
  Pipe() { EXPECT_EQ(::pipe(fd), 0); }
  ~Pipe() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
  void put(char c) { EXPECT_EQ(::write(fd[1], &c, 1), 1); }
};

// The scenario of the issue: with one processor, a fiber sleeps 1 s in nanosleep and then reads
// a pipe that a plain thread writes 0.5 s later. Another fiber's 10 ms ticker must keep going
// meanwhile (without the retake it ticked twice in those 1.5 s).
TEST(Retake, TickerKeepsTimeWhileAFiberBlocksItsThread) {
  SKIP_WITHOUT_RETAKE();
  Pipe pipe;
  int ticks = 0;
  std::chrono::nanoseconds blocked{0};
  colony::run(
      [&] {
        std::atomic<bool> done{false};
        auto ticker = colony::spawn([&] {
          while (!done.load()) {
            colony::this_fiber::sleep_for(10ms);
            if (!done.load()) ++ticks;
          }
        });
        colony::this_fiber::sleep_for(20ms);  // the ticker is under way
        std::thread writer([&] {
          std::this_thread::sleep_for(1500ms);
          pipe.put('x');
        });
        const auto t0 = std::chrono::steady_clock::now();
        raw_sleep(1s);
        EXPECT_EQ(raw_read_byte(pipe.fd[0]), 'x');
        blocked = std::chrono::steady_clock::now() - t0;
        done = true;
        ticker.get();
        colony::testing::join_thread(writer);
      },
      {.max_procs = 1});
  // ~150 expected (141-146 measured). Loose, so that a loaded or sanitized run passes (each
  // tick's lateness adds up over a sleep_for loop), yet far above the 2 ticks of a processor
  // held by the blocked thread.
  const double expected = static_cast<double>(blocked.count()) / 10e6;
  std::printf("ticks during %.0f ms blocked: %d\n", blocked.count() / 1e6, ticks);
  EXPECT_GE(ticks, static_cast<int>(expected * (colony::testing::kSanitized ? 0.25 : 0.35)))
      << "over " << blocked.count() / 1e6 << " ms";
}

class Retake : public colony::testing::ProcsTest {};

// A fiber blocks its thread on a pipe that only a later fiber writes: with every processor
// held by such readers nothing else could run. A plain thread writes 'w' after 30 s so that a
// failing run ends.
TEST_P(Retake, BlockedReadersDoNotStopTheWriter) {
  SKIP_WITHOUT_RETAKE();
  const int n = GetParam();
  std::vector<Pipe> pipes(static_cast<std::size_t>(n));
  std::atomic<bool> finished{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 3000 && !finished.load(); ++i) std::this_thread::sleep_for(10ms);
    if (!finished.load())
      for (auto& p : pipes) p.put('w');
  });
  run_fibers([&] {
    std::vector<colony::Future<char>> readers;
    for (auto& p : pipes) {
      int fd = p.fd[0];
      readers.push_back(colony::spawn([fd] { return raw_read_byte(fd); }));
    }
    colony::this_fiber::yield();  // the readers block their threads
    auto writer = colony::spawn([&] {
      for (auto& p : pipes) p.put('f');
    });
    writer.get();
    for (auto& r : readers) EXPECT_EQ(r.get(), 'f') << "the writer fiber never ran";
  });
  finished = true;
  watchdog.join();
}

// A std::condition_variable waited on by a fiber (blocking its thread) and notified by another
// fiber of the same runtime: with one processor, the notifier could never run unless sysmon
// hands the processor to another thread.
TEST_P(Retake, StdConditionVariableNotifiedByAnotherFiber) {
  SKIP_WITHOUT_RETAKE();
  run_fibers([&] {
    std::mutex mu;
    std::condition_variable cv;
    bool flag = false, woke = false;
    std::atomic<bool> waiting{false};
    colony::WaitGroup wg;
    wg.add(2);
    colony::go([&] {
      std::unique_lock<std::mutex> lk(mu);
      waiting = true;
      woke = cv.wait_for(lk, 30s, [&] { return flag; });  // blocks the thread
      wg.done();
    });
    colony::go([&] {
      while (!waiting.load()) colony::this_fiber::yield();
      {
        std::lock_guard<std::mutex> lk(mu);
        flag = true;
      }
      cv.notify_one();
      wg.done();
    });
    wg.wait();
    EXPECT_TRUE(woke) << "the notifying fiber never ran";
  });
}

// A fiber that computes is reported as a long run and never loses its processor.
TEST(RetakeOnly, AComputingFiberIsNotTaken) {
  std::uint64_t retakes = 1, long_runs = 0;
  colony::run(
      [&] {
        auto queued = colony::spawn([] { return 1; });  // waits behind the computation
        auto until = std::chrono::steady_clock::now() + 150ms;
        while (std::chrono::steady_clock::now() < until) {
        }
        EXPECT_EQ(queued.get(), 1);
        retakes = colony::stats().retakes;
        long_runs = colony::stats().long_runs;
      },
      {.max_procs = 1});
  EXPECT_EQ(retakes, 0u);
  EXPECT_GE(long_runs, 1u);
}

// The fiber dump says where a blocked fiber's processor went, and stats() counts the retake.
TEST(RetakeOnly, DumpAndStatsShowTheHandOff) {
  SKIP_WITHOUT_RETAKE();
  Pipe pipe;
  std::string dump;
  std::uint64_t retakes = 0;
  colony::run(
      [&] {
        auto reader = colony::spawn([&] { return raw_read_byte(pipe.fd[0]); });
        // This fiber gets to run again only once the reader's processor was handed off.
        colony::this_fiber::yield();
        auto until = std::chrono::steady_clock::now() + 30s;
        while (colony::stats().retakes == 0 && std::chrono::steady_clock::now() < until)
          colony::this_fiber::sleep_for(1ms);
        retakes = colony::stats().retakes;
        dump = colony::fiber_dump();
        pipe.put('d');
        EXPECT_EQ(reader.get(), 'd');
      },
      {.max_procs = 1});
  EXPECT_GE(retakes, 1u);
  EXPECT_NE(dump.find("running, in a blocking call, P handed off"), std::string::npos) << dump;
}

// A fiber whose processor was handed off comes back while the processor is busy: it goes on
// without one, parks without one (its thread parks too), and stops counting as a fiber in a
// blocking call then, so deadlock detection still finds the deadlock. The same with a fiber
// that exits without a processor.
TEST(RetakeOnly, FibersWithoutAProcessorParkAndExit) {
  SKIP_WITHOUT_RETAKE();
  colony::Chan<int> never;
  bool threw = false;
  std::atomic<bool> exited{false};
  try {
    colony::run(
        [&] {
          auto parker = colony::spawn([&] {
            raw_sleep(50ms);
            (void)never.recv();
          });
          colony::go([&] {
            raw_sleep(50ms);
            exited = true;
          });
          colony::this_fiber::yield();  // both block their threads; sysmon hands the P on
          // Hold the processor while they come back (no switch point for 400 ms: sysmon may be
          // late on a loaded machine, and they must be back before this ends).
          auto until = std::chrono::steady_clock::now() + 400ms;
          while (std::chrono::steady_clock::now() < until) {
          }
          while (!exited.load()) colony::this_fiber::sleep_for(1ms);
          EXPECT_GE(colony::stats().retakes, 1u);
          parker.get();  // parks: every fiber is now asleep for good
        },
        {.max_procs = 1, .on_deadlock = [](const std::string&) {}});
  } catch (const colony::Deadlock&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
  EXPECT_TRUE(exited.load());
}

// Fibers that block their threads for 4-7 milliseconds at a time (sysmon takes a P after two
// looks 2 ms apart), over and over, mixed with everything else a fiber does (spawn, channels,
// sleeps, yields, exits): the retake handshake under load, on 1 to 8 processors. Totals must
// add up and nothing may be lost.
TEST_P(Retake, ManyShortBlockingCallsAmongChannelWork) {
  SKIP_WITHOUT_RETAKE();
  const int fibers = 16, rounds = colony::testing::kSanitized ? 6 : 20;
  std::uint64_t retakes = 0;
  run_fibers([&] {
    colony::Chan<int> results(64);
    std::atomic<int> children{0};
    colony::WaitGroup wg;
    wg.add(fibers);
    for (int f = 0; f < fibers; ++f) {
      colony::go([&, f] {
        for (int r = 0; r < rounds; ++r) {
          raw_sleep(std::chrono::microseconds(4000 + 1000 * ((f + r) % 4)));  // retaken, often
          colony::WaitGroup inner;
          inner.add(1);
          colony::go([&] {  // spawned, maybe without a processor
            children.fetch_add(1);
            inner.done();
          });
          results.send(1);
          if (r % 3 == 0) colony::this_fiber::yield();
          if (r % 3 == 1) colony::this_fiber::sleep_for(200us);
          inner.wait();
        }
        wg.done();
      });
    }
    long sum = 0;
    for (int i = 0; i < fibers * rounds; ++i) sum += results.recv().value();
    wg.wait();
    EXPECT_EQ(sum, fibers * rounds);
    EXPECT_EQ(children.load(), fibers * rounds);
    retakes = colony::stats().retakes;
  });
  if (GetParam() == 1) {
    EXPECT_GT(retakes, 0u) << "nothing was retaken: the test did not test the handshake";
  }
}

INSTANTIATE_TEST_SUITE_P(Procs, Retake, ::testing::ValuesIn(proc_counts()), procs_name);

}  // namespace
