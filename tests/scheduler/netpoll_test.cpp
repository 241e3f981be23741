// The netpoller (scheduler/src/netpoll.cpp) through its runtime-facing interface: readiness
// wakes parked fibers and blocked threads, deadlines, close and interrupt, no lost edges, and
// I/O that is not starved while every processor is busy.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>
#include <vector>

#include <colony/colony.hpp>
#include <colony/sched/netpoll.hpp>
#include <colony/sched/wait.hpp>

#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using colony::sched::PollDesc;
using colony::sched::PollMode;
using colony::sched::nanotime;
using colony::sched::poll_close;
using colony::sched::poll_open;
using colony::sched::poll_wait;
using colony::testing::procs_name;
using colony::testing::proc_counts;

std::int64_t in_ns(std::chrono::nanoseconds d) { return nanotime() + d.count(); }

// Pipe: a non-blocking pipe whose read end is registered with the poller.
struct Pipe {
  int fd[2] = {-1, -1};
  PollDesc* pd = nullptr;
  Pipe() {
    if (::pipe2(fd, O_NONBLOCK | O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    pd = poll_open(fd[0]);
  }
  ~Pipe() {
    if (pd) poll_close(pd);
    ::close(fd[0]);
    ::close(fd[1]);
  }
  void put(char c) const { ASSERT_EQ(::write(fd[1], &c, 1), 1); }
  // get: reads one byte, waiting on the poller while the pipe is empty.
  int get(std::int64_t deadline = INT64_MAX) const {
    for (;;) {
      char c;
      ssize_t n = ::read(fd[0], &c, 1);
      if (n == 1) return static_cast<unsigned char>(c);
      if (n < 0 && errno != EAGAIN) return -errno;
      int r = poll_wait(pd, PollMode::read, deadline);
      if (r != 0) return -r;
    }
  }
};

class Netpoll : public colony::testing::ProcsTest {};

TEST_P(Netpoll, ReadinessWakesAParkedFiber) {
  run_fibers([] {
    Pipe p;
    auto got = colony::spawn([&] { return p.get(); });
    colony::this_fiber::sleep_for(5ms);  // let it park
    p.put('x');
    EXPECT_EQ(got.get(), 'x');
  });
}

TEST_P(Netpoll, ParkedFiberShowsIoWaitInTheDump) {
  run_fibers([] {
    Pipe p;
    auto got = colony::spawn([&] { return p.get(); });
    std::string dump;
    for (int i = 0; i < 200 && dump.find("IO wait") == std::string::npos; ++i) {
      colony::this_fiber::sleep_for(1ms);
      dump = colony::fiber_dump();
    }
    EXPECT_NE(dump.find("IO wait"), std::string::npos) << dump;
    p.put('y');
    EXPECT_EQ(got.get(), 'y');
  });
}

TEST_P(Netpoll, DeadlineFires) {
  run_fibers([] {
    Pipe p;
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(p.get(in_ns(20ms)), -ETIMEDOUT);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
    EXPECT_EQ(p.get(in_ns(-1ms)), -ETIMEDOUT);  // already past: at once
    p.put('z');
    EXPECT_EQ(p.get(in_ns(1s)), 'z');  // data wins over a deadline not yet reached
  });
}

// wait_until_io_parked: until some fiber shows "IO wait" in the dump (bounded).
void wait_until_io_parked() {
  for (int i = 0; i < 5000; ++i) {
    if (colony::fiber_dump().find("IO wait") != std::string::npos) return;
    colony::this_fiber::sleep_for(1ms);
  }
  ADD_FAILURE() << "no fiber parked on I/O";
}

TEST_P(Netpoll, CloseAndInterruptWakeWaitersWithCancelled) {
  run_fibers([] {
    auto p = std::make_unique<Pipe>();
    auto a = colony::spawn([&] { return poll_wait(p->pd, PollMode::read, INT64_MAX); });
    wait_until_io_parked();
    colony::sched::poll_interrupt(p->pd, PollMode::read);
    EXPECT_EQ(a.get(), ECANCELED);
    auto b = colony::spawn([&] { return poll_wait(p->pd, PollMode::read, INT64_MAX); });
    wait_until_io_parked();
    poll_close(p->pd);
    EXPECT_EQ(b.get(), ECANCELED);
    EXPECT_EQ(poll_wait(p->pd, PollMode::read, INT64_MAX), ECANCELED);  // closed: at once
    p->pd = nullptr;
  });
}

TEST_P(Netpoll, InterruptWithNobodyWaitingIsNotLost) {
  // A caller between its check and its poll_wait must not sleep through the interrupt: the
  // wait returns at once (0: look again), once.
  run_fibers([] {
    Pipe p;
    colony::sched::poll_interrupt(p.pd, PollMode::read);
    EXPECT_EQ(poll_wait(p.pd, PollMode::read, in_ns(10s)), 0);
    EXPECT_EQ(poll_wait(p.pd, PollMode::read, in_ns(5ms)), ETIMEDOUT);  // consumed
  });
}

TEST_P(Netpoll, WritableAfterTheReaderDrains) {
  run_fibers([] {
    Pipe p;
    ::fcntl(p.fd[1], F_SETFL, O_NONBLOCK);
    PollDesc* wpd = poll_open(p.fd[1]);
    std::vector<char> chunk(4096, 'a');
    std::size_t written = 0;
    while (::write(p.fd[1], chunk.data(), chunk.size()) > 0) written += chunk.size();
    ASSERT_EQ(errno, EAGAIN);  // full
    auto writer = colony::spawn([&] {
      for (;;) {
        if (::write(p.fd[1], "b", 1) == 1) return 0;
        if (errno != EAGAIN) return errno;
        if (int r = poll_wait(wpd, PollMode::write, in_ns(5s))) return r;
      }
    });
    colony::this_fiber::sleep_for(5ms);
    char buf[65536];
    std::size_t drained = 0;
    while (drained < written) {
      ssize_t n = ::read(p.fd[0], buf, sizeof buf);
      if (n > 0) drained += static_cast<std::size_t>(n);
      else ASSERT_EQ(poll_wait(p.pd, PollMode::read, in_ns(5s)), 0);
    }
    EXPECT_EQ(writer.get(), 0);
    poll_close(wpd);
  });
}

TEST_P(Netpoll, PlainThreadsWaitOnTheirOwnToo) {
  run_fibers([] {
    Pipe p;
    std::atomic<int> got{-1};
    std::thread th([&] { got = p.get(); });
    colony::this_fiber::sleep_for(5ms);
    p.put('t');
    colony::detail::FutureState<void> joined;
    std::thread joiner([&] {
      th.join();
      joined.set_value();
    });
    joined.wait();
    joiner.join();
    EXPECT_EQ(got.load(), 't');
  });
}

TEST_P(Netpoll, IoIsNotStarvedWhileEveryProcessorIsBusy) {
  // Every P runs a fiber that only yields: nobody goes idle to block in epoll_wait, so the
  // busy processors must poll themselves.
  run_fibers([] {
    Pipe p;
    std::atomic<bool> stop{false};
    std::vector<colony::Future<void>> spinners;
    for (int i = 0; i < GetParam(); ++i)
      spinners.push_back(colony::spawn([&] {
        while (!stop.load()) colony::this_fiber::yield();
      }));
    auto got = colony::spawn([&] { return p.get(in_ns(10s)); });
    std::thread writer([&] {
      std::this_thread::sleep_for(10ms);
      p.put('w');
    });
    EXPECT_EQ(got.get(), 'w');
    stop = true;
    for (auto& f : spinners) f.get();
    writer.join();
  });
}

// Many pipes, many fibers, several rounds: every byte is delivered once, nothing hangs (a lost
// edge would leave a reader parked until its 10 s deadline and fail the byte count).
TEST_P(Netpoll, NoLostWakeUpsUnderChurn) {
  const int pipes = colony::testing::kSanitized ? 16 : 128;
  const int rounds = colony::testing::kSanitized ? 20 : 200;
  run_fibers([&] {
    std::vector<std::unique_ptr<Pipe>> ps;
    for (int i = 0; i < pipes; ++i) ps.push_back(std::make_unique<Pipe>());
    std::atomic<long> received{0};
    colony::WaitGroup wg;
    wg.add(pipes * 2);
    for (int i = 0; i < pipes; ++i) {
      colony::go([&, i] {
        for (int r = 0; r < rounds; ++r)
          if (ps[i]->get(in_ns(10s)) >= 0) ++received;
        wg.done();
      });
      colony::go([&, i] {
        for (int r = 0; r < rounds; ++r) {
          ps[i]->put('c');
          if (r % 7 == 0) colony::this_fiber::yield();
        }
        wg.done();
      });
    }
    wg.wait();
    EXPECT_EQ(received.load(), static_cast<long>(pipes) * rounds);
  });
}

TEST_P(Netpoll, WaitingOnIoIsNotADeadlock) {
  // The writer is vouched for as a runtime helper, so everything else looks dead for 30 ms: only
  // the rule that an I/O waiter is a pending wake-up keeps this from being reported.
  run_fibers(
      [&] {
        Pipe p;
        auto got = colony::spawn([&] { return p.get(); });
        std::thread writer([&] {
          colony::sched::internal_thread(+1);
          std::this_thread::sleep_for(30ms);
          p.put('d');
          colony::sched::internal_thread(-1);
        });
        EXPECT_EQ(got.get(), 'd');
        colony::detail::FutureState<void> joined;
        std::thread joiner([&] {
          writer.join();
          joined.set_value();
        });
        joined.wait();
        joiner.join();
      },
      {.on_deadlock = [](const std::string& r) { ADD_FAILURE() << "false report:\n" << r; }});
}

TEST(NetpollErrors, BadFdIsAClearError) {
  try {
    (void)poll_open(-1);
    ADD_FAILURE() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EBADF);
    EXPECT_NE(std::string(e.what()).find("poll_open"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Procs, Netpoll, ::testing::ValuesIn(proc_counts()), procs_name);

}  // namespace
