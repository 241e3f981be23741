// Extreme durations and time points, through every API that takes a timeout or a deadline.
// As in Go: a duration too large to represent, or a time point beyond the clock's range, means
// "never"; zero, a negative duration or a time point in the past means "now". Each API is called
// with a table of such values of several clocks, representations and periods (min() and max()
// included); a "never" wait must still be waiting 20 ms later (and succeed when its event comes),
// a "now" wait must give up at once.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <colony/colony.hpp>
#include <colony/net.hpp>
#include <limits>
#include <mutex>
#include <system_error>
#include <thread>
#include <tuple>

#include "colony/sched/deadline.hpp"
#include "test_util.hpp"

#ifdef COLONY_TESTS_HAVE_POOL
#include <colony/pool.hpp>
#endif

using namespace std::chrono_literals;
using colony::ChanStatus;
using colony::TimePoint;
using colony::sched::kNoDeadline;
using colony::testing::ProcsTest;
using Steady = std::chrono::steady_clock;
using System = std::chrono::system_clock;

namespace {

using Years = std::chrono::duration<std::int64_t, std::ratio<31556952>>;
using DSec = std::chrono::duration<double>;
using FMs = std::chrono::duration<float, std::milli>;
using Thirds = std::chrono::duration<std::int32_t, std::ratio<1, 3>>;

// Durations that mean "never".
auto never_durations() {
  return std::make_tuple(std::chrono::nanoseconds::max(), std::chrono::microseconds::max(),
                         std::chrono::seconds::max(), std::chrono::hours::max(), Years(1000),
                         DSec(1e300), DSec(std::numeric_limits<double>::infinity()),
                         FMs(std::numeric_limits<float>::max()));
}
// Durations that mean "now".
auto now_durations() {
  return std::make_tuple(std::chrono::nanoseconds::min(), std::chrono::seconds::min(),
                         std::chrono::hours::min(), std::chrono::nanoseconds(0),
                         std::chrono::nanoseconds(-1), Years(-1000),
                         DSec(-std::numeric_limits<double>::infinity()), DSec(-1e300), Thirds(-1),
                         FMs(0));
}
// Time points that never come.
auto never_time_points() {
  using SteadySec = std::chrono::time_point<Steady, std::chrono::seconds>;
  using SysHours = std::chrono::time_point<System, std::chrono::hours>;
  using SysDouble = std::chrono::time_point<System, DSec>;
  return std::make_tuple(
      Steady::time_point::max(), System::time_point::max(), SteadySec::max(), SysHours::max(),
      std::chrono::time_point_cast<std::chrono::seconds>(Steady::now()) + Years(400),
      std::chrono::time_point_cast<std::chrono::hours>(System::now()) + Years(1000),
      SysDouble(DSec(1e300)));
}
// Time points already past.
auto past_time_points() {
  using SteadySec = std::chrono::time_point<Steady, std::chrono::seconds>;
  using SysHours = std::chrono::time_point<System, std::chrono::hours>;
  using SysDouble = std::chrono::time_point<System, DSec>;
  return std::make_tuple(Steady::time_point::min(), System::time_point::min(), SteadySec::min(),
                         SysHours::min(), Steady::time_point{}, System::time_point{},
                         Steady::now() - 1s, System::now() - 1s, SysDouble(DSec(-1e300)),
                         std::chrono::time_point_cast<std::chrono::hours>(System::now()) -
                             Years(1000));
}

template <class Tuple, class F>
void for_each(Tuple&& t, F&& f) {
  std::apply([&](auto&&... v) { (f(v), ...); }, t);
}

// elapsed_ms since t0.
double elapsed_ms(Steady::time_point t0) {
  return std::chrono::duration<double, std::milli>(Steady::now() - t0).count();
}

// The conversion itself, without a runtime.
TEST(Deadline, SaturatingConversion) {
  using colony::sched::saturating_ns;
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
  static_assert(saturating_ns(std::chrono::seconds::max()) == kMax);
  static_assert(saturating_ns(std::chrono::seconds::min()) == kMin);
  static_assert(saturating_ns(std::chrono::nanoseconds::max()) == kMax);
  static_assert(saturating_ns(std::chrono::hours(1)) == 3'600'000'000'000);
  static_assert(saturating_ns(Thirds(3)) == 1'000'000'000);
  static_assert(saturating_ns(Thirds(-1)) == -333'333'333);
  EXPECT_EQ(saturating_ns(DSec(1.5e-3)), 1'500'000);
  EXPECT_EQ(saturating_ns(DSec(std::numeric_limits<double>::infinity())), kMax);
  EXPECT_EQ(saturating_ns(DSec(-std::numeric_limits<double>::infinity())), kMin);
  EXPECT_EQ(saturating_ns(DSec(std::nan(""))), 0);
  EXPECT_EQ(saturating_ns(FMs(std::numeric_limits<float>::max())), kMax);

  for_each(never_durations(), [](auto d) {
    EXPECT_EQ(colony::sched::deadline_after(d), kNoDeadline) << d.count();
  });
  for_each(now_durations(), [](auto d) {
    const auto before = colony::sched::nanotime();
    const auto dl = colony::sched::deadline_after(d);
    EXPECT_GE(dl, before);
    EXPECT_LE(dl, colony::sched::nanotime());
  });
  for_each(never_time_points(), [](auto t) {
    EXPECT_EQ(colony::sched::deadline_at(t), kNoDeadline) << t.time_since_epoch().count();
  });
  for_each(past_time_points(), [](auto t) {
    const auto dl = colony::sched::deadline_at(t);
    EXPECT_LE(dl, colony::sched::nanotime()) << t.time_since_epoch().count();
  });
  // Ordinary values of other clocks land where they should (within 200 ms).
  const auto in_1s = colony::sched::deadline_at(System::now() + 1s);
  EXPECT_NEAR(static_cast<double>(in_1s - colony::sched::nanotime()), 1e9, 2e8);
  const auto in_2s = colony::sched::deadline_at(
      std::chrono::time_point<System, DSec>(System::now().time_since_epoch()) + DSec(2));
  EXPECT_NEAR(static_cast<double>(in_2s - colony::sched::nanotime()), 2e9, 2e8);
  EXPECT_EQ(colony::sched::deadline_after_ns(kNoDeadline - 5, 10), kNoDeadline);
  EXPECT_EQ(colony::sched::deadline_after_ns(100, -10), 100);
}

class Deadlines : public ProcsTest {};
INSTANTIATE_TEST_SUITE_P(Procs, Deadlines, ::testing::ValuesIn(colony::testing::proc_counts()),
                         colony::testing::procs_name);

// sleeping_forever: in a runtime of its own, a fiber calls sleep(); 20 ms later it must still be
// asleep. Returning from run() unwinds it.
template <class Sleep>
void expect_sleeps_forever(int procs, Sleep sleep) {
  std::atomic<bool> woke{false};
  colony::run(
      [&] {
        colony::go([&] {
          sleep();
          woke = true;
        });
        colony::this_fiber::sleep_for(20ms);
      },
      {.max_procs = procs});
  EXPECT_FALSE(woke.load());
}

TEST_P(Deadlines, SleepsSaturate) {
  for_each(never_durations(), [&](auto d) {
    expect_sleeps_forever(GetParam(), [d] { colony::this_fiber::sleep_for(d); });
  });
  for_each(never_time_points(), [&](auto t) {
    expect_sleeps_forever(GetParam(), [t] { colony::this_fiber::sleep_until(t); });
  });
  run_fibers([&] {
    const auto t0 = Steady::now();
    for_each(now_durations(), [](auto d) { colony::this_fiber::sleep_for(d); });
    for_each(past_time_points(), [](auto t) { colony::this_fiber::sleep_until(t); });
    EXPECT_LT(elapsed_ms(t0), 2000);
  });
  // A plain thread too.
  const auto t0 = Steady::now();
  for_each(now_durations(), [](auto d) { colony::this_fiber::sleep_for(d); });
  for_each(past_time_points(), [](auto t) { colony::this_fiber::sleep_until(t); });
  EXPECT_LT(elapsed_ms(t0), 2000);
}

TEST_P(Deadlines, TimersAndTickersSaturate) {
  run_fibers([&] {
    TimePoint tp;
    for_each(never_durations(), [&](auto d) {
      colony::Timer t(d);
      EXPECT_EQ(t.chan().recv_for(tp, 20ms), ChanStatus::timeout) << "Timer " << d.count();
      EXPECT_TRUE(t.reset(d));
      EXPECT_EQ(t.chan().recv_for(tp, 1ms), ChanStatus::timeout) << "Timer::reset " << d.count();
      EXPECT_TRUE(t.stop());
      EXPECT_EQ(colony::after(d).recv_for(tp, 1ms), ChanStatus::timeout)
          << "after " << d.count();
      colony::Ticker k(d);
      EXPECT_EQ(k.chan().recv_for(tp, 1ms), ChanStatus::timeout) << "Ticker " << d.count();
      k.reset(d);
      EXPECT_EQ(k.chan().recv_for(tp, 1ms), ChanStatus::timeout) << "Ticker " << d.count();
    });
    for_each(now_durations(), [&](auto d) {
      const auto t0 = Steady::now();
      colony::Timer t(d);
      EXPECT_EQ(t.chan().recv_for(tp, 5s), ChanStatus::success);
      EXPECT_FALSE(t.reset(d));
      EXPECT_EQ(t.chan().recv_for(tp, 5s), ChanStatus::success);
      EXPECT_EQ(colony::after(d).recv_for(tp, 5s), ChanStatus::success);
      EXPECT_LT(elapsed_ms(t0), 2000) << d.count();
      EXPECT_THROW(colony::Ticker{d}, std::invalid_argument) << d.count();
    });
  });
}

TEST_P(Deadlines, ContextsSaturate) {
  run_fibers([&] {
    const auto bg = colony::background();
    auto check_never = [](std::pair<colony::Context, std::function<void()>> p, const char* what) {
      EXPECT_FALSE(p.first.err()) << what;
      colony::this_fiber::sleep_for(2ms);
      EXPECT_FALSE(p.first.err()) << what << " ended by itself";
      std::monostate m;
      EXPECT_EQ(p.first.done().recv_for(m, 1ms), ChanStatus::timeout)
          << what;
      p.second();
      EXPECT_EQ(p.first.err(), colony::context_errc::canceled) << what;
    };
    for_each(never_durations(), [&](auto d) { check_never(colony::with_timeout(bg, d), "timeout"); });
    for_each(never_time_points(),
             [&](auto t) { check_never(colony::with_deadline(bg, t), "deadline"); });
    for_each(now_durations(), [&](auto d) {
      auto [ctx, cancel] = colony::with_timeout(bg, d);
      EXPECT_EQ(ctx.err(), colony::context_errc::deadline_exceeded) << d.count();
      cancel();
    });
    for_each(past_time_points(), [&](auto t) {
      auto [ctx, cancel] = colony::with_deadline(bg, t);
      EXPECT_EQ(ctx.err(), colony::context_errc::deadline_exceeded)
          << t.time_since_epoch().count();
      cancel();
    });
  });
}

// expect_waits: op(...) must wait for the event that trigger() causes 20 ms later (return true),
// not time out at once.
template <class Op, class Trigger>
void expect_waits(Op op, Trigger trigger, const char* what) {
  const auto t0 = Steady::now();
  auto f = colony::spawn([&] {
    colony::this_fiber::sleep_for(20ms);
    trigger();
  });
  EXPECT_TRUE(op()) << what;
  EXPECT_GE(elapsed_ms(t0), 15) << what << " returned early";
  f.get();
}

TEST_P(Deadlines, BlockingCallsSaturate) {
  run_fibers([&] {
    colony::Chan<int> ch;
    colony::Mutex mu;
    colony::CondVar cv;
    colony::Semaphore sem(1);
    auto never = [&](auto d_or_t) {
      // Channels: send and receive, for and until.
      int v = 0;
      if constexpr (requires { d_or_t.count(); }) {
        const auto d = d_or_t;
        expect_waits([&] { return ch.recv_for(v, d) == ChanStatus::success; },
                     [&] { ch.send(1); }, "recv_for");
        expect_waits([&] { return ch.send_for(2, d) == ChanStatus::success; },
                     [&] { ch.recv(); }, "send_for");
        expect_waits(
            [&] {
              bool timed_out = false;
              colony::select(colony::on_recv(ch), colony::on_timeout(d, [&] { timed_out = true; }));
              return !timed_out;
            },
            [&] { ch.send(3); }, "select on_timeout");
        expect_waits([&] { return colony::spawn([] { colony::this_fiber::sleep_for(20ms); })
                                      .wait_for(d) == std::future_status::ready; },
                     [] {}, "Future::wait_for");
        mu.lock();
        expect_waits([&] { return mu.try_lock_for(d); }, [&] { mu.unlock(); }, "try_lock_for");
        mu.unlock();
        {
          std::unique_lock lk(mu);
          bool flag = false;
          expect_waits([&] { return cv.wait_for(lk, d, [&] { return flag; }); },
                       [&] {
                         std::lock_guard g(mu);
                         flag = true;
                         cv.notify_all();
                       },
                       "CondVar::wait_for");
        }
        sem.acquire();
        expect_waits([&] { return sem.try_acquire_for(1, d); }, [&] { sem.release(); },
                     "Semaphore::try_acquire_for");
        sem.release();
        colony::WaitGroup wg;
        wg.add(1);
        expect_waits([&] { return wg.wait_for(d); }, [&] { wg.done(); }, "WaitGroup::wait_for");
      } else {
        const auto t = d_or_t;
        expect_waits([&] { return ch.recv_until(v, t) == ChanStatus::success; },
                     [&] { ch.send(1); }, "recv_until");
        expect_waits([&] { return ch.send_until(2, t) == ChanStatus::success; },
                     [&] { ch.recv(); }, "send_until");
        expect_waits([&] { return colony::spawn([] { colony::this_fiber::sleep_for(20ms); })
                                      .wait_until(t) == std::future_status::ready; },
                     [] {}, "Future::wait_until");
        mu.lock();
        expect_waits([&] { return mu.try_lock_until(t); }, [&] { mu.unlock(); },
                     "try_lock_until");
        mu.unlock();
        {
          std::unique_lock lk(mu);
          bool flag = false;
          expect_waits([&] { return cv.wait_until(lk, t, [&] { return flag; }); },
                       [&] {
                         std::lock_guard g(mu);
                         flag = true;
                         cv.notify_all();
                       },
                       "CondVar::wait_until");
        }
        sem.acquire();
        expect_waits([&] { return sem.try_acquire_until(1, t); }, [&] { sem.release(); },
                     "Semaphore::try_acquire_until");
        sem.release();
        colony::WaitGroup wg;
        wg.add(1);
        expect_waits([&] { return wg.wait_until(t); }, [&] { wg.done(); }, "WaitGroup::wait_until");
      }
    };
    auto now = [&](auto d_or_t) {
      const auto t0 = Steady::now();
      int v = 0;
      mu.lock();
      sem.acquire();
      colony::WaitGroup wg;
      wg.add(1);
      colony::Chan<int> gate;  // the spawned fiber finishes only when it closes
      auto sleeper = colony::spawn([gate] { gate.recv(); });
      if constexpr (requires { d_or_t.count(); }) {
        const auto d = d_or_t;
        EXPECT_EQ(ch.recv_for(v, d), ChanStatus::timeout);
        EXPECT_EQ(ch.send_for(1, d), ChanStatus::timeout);
        bool timed_out = false;
        colony::select(colony::on_recv(ch), colony::on_timeout(d, [&] { timed_out = true; }));
        EXPECT_TRUE(timed_out);
        EXPECT_EQ(sleeper.wait_for(d), std::future_status::timeout);
        EXPECT_FALSE(mu.try_lock_for(d));
        EXPECT_FALSE(sem.try_acquire_for(1, d));
        EXPECT_FALSE(wg.wait_for(d));
      } else {
        const auto t = d_or_t;
        EXPECT_EQ(ch.recv_until(v, t), ChanStatus::timeout);
        EXPECT_EQ(ch.send_until(1, t), ChanStatus::timeout);
        EXPECT_EQ(sleeper.wait_until(t), std::future_status::timeout);
        EXPECT_FALSE(mu.try_lock_until(t));
        EXPECT_FALSE(sem.try_acquire_until(1, t));
        EXPECT_FALSE(wg.wait_until(t));
      }
      // Nothing above can succeed: a call that waited would wait for ever (caught here at 2 s,
      // generous for sanitizer builds on a loaded machine).
      EXPECT_LT(elapsed_ms(t0), 2000) << "a call with an expired deadline waited";
      wg.done();
      sem.release();
      mu.unlock();
      {
        std::unique_lock lk(mu);
        if constexpr (requires { d_or_t.count(); })
          EXPECT_EQ(cv.wait_for(lk, d_or_t), std::cv_status::timeout);
        else
          EXPECT_EQ(cv.wait_until(lk, d_or_t), std::cv_status::timeout);
      }
      gate.close();
      sleeper.get();
    };
    for_each(never_durations(), never);
    for_each(never_time_points(), never);
    for_each(now_durations(), now);
    for_each(past_time_points(), now);
  });
}

// A plain thread blocks on the same calls: a "never" receive waits for its value, a "now" one
// does not.
TEST_P(Deadlines, PlainThreadsSaturateToo) {
  run_fibers([&] {
    colony::Chan<int> ch;
    std::thread t([&] {
      int v = 0;
      for_each(never_durations(), [&](auto d) {
        EXPECT_EQ(ch.recv_for(v, d), ChanStatus::success) << d.count();
      });
      for_each(never_time_points(), [&](auto tp) {
        EXPECT_EQ(ch.recv_until(v, tp), ChanStatus::success);
      });
      for_each(now_durations(), [&](auto d) { EXPECT_EQ(ch.recv_for(v, d), ChanStatus::timeout); });
      for_each(past_time_points(),
               [&](auto tp) { EXPECT_EQ(ch.recv_until(v, tp), ChanStatus::timeout); });
    });
    for (int i = 0; i < 15; ++i) {
      colony::this_fiber::sleep_for(2ms);
      ch.send(i);
    }
    colony::testing::join_thread(t);
  });
}

TEST_P(Deadlines, SocketsSaturate) {
  run_fibers([&] {
    using namespace colony::net;
    auto ln = TcpListener::listen(Address::parse("127.0.0.1:0"));
    const auto addr = ln.local_address();
    auto acceptor = colony::spawn([&] {
      for (;;) {
        try {
          auto s = ln.accept();
          char b;
          while (s.read(&b, 1) > 0) {
          }
        } catch (const std::exception&) {
          return;
        }
      }
    });
    for_each(never_durations(), [&](auto d) {
      auto s = TcpStream::connect(addr, d);  // a listening peer: connects, does not time out
      s.set_read_deadline(Steady::time_point::max());
      auto f = colony::spawn([&] {
        char b;
        try {
          s.read(&b, 1);
        } catch (const std::system_error& e) {
          return is_timeout(e);
        }
        return false;
      });
      EXPECT_EQ(f.wait_for(20ms), std::future_status::timeout) << "read deadline max() expired";
      s.shutdown(Shutdown::read);
      EXPECT_FALSE(f.get());
    });
    // A deadline in the past expires the next read at once.
    auto s = TcpStream::connect(addr, 5s);
    s.set_read_deadline(Steady::time_point::min());
    char b;
    try {
      s.read(&b, 1);
      ADD_FAILURE() << "read returned";
    } catch (const std::system_error& e) {
      EXPECT_TRUE(is_timeout(e)) << e.what();
    }
    s.close();
    ln.close();
    acceptor.get();
  });
}

#ifdef COLONY_TESTS_HAVE_POOL
TEST_P(Deadlines, PoolsSaturate) {
  run_fibers([&] {
    for_each(never_durations(), [&](auto d) {
      colony::Pool pool(1);
      colony::Chan<int> gate;
      ASSERT_FALSE(pool.submit([&] { gate.recv(); }));
      expect_waits([&] { return !pool.submit_for([] {}, d); }, [&] { gate.send(1); },
                   "Pool::submit_for");
      colony::Chan<int> gate2;
      ASSERT_FALSE(pool.submit([&] { gate2.recv(); }));
      expect_waits([&] { return !pool.release_timeout(d); }, [&] { gate2.send(1); },
                   "Pool::release_timeout");
    });
    for_each(never_time_points(), [&](auto t) {
      colony::Pool pool(1);
      colony::Chan<int> gate;
      ASSERT_FALSE(pool.submit([&] { gate.recv(); }));
      expect_waits([&] { return !pool.submit_until([] {}, t); }, [&] { gate.send(1); },
                   "Pool::submit_until");
      pool.release_timeout(5s);
    });
    for_each(now_durations(), [&](auto d) {
      colony::Pool pool(1);
      colony::Chan<int> gate;
      ASSERT_FALSE(pool.submit([&] { gate.recv(); }));
      EXPECT_EQ(pool.submit_for([] {}, d), colony::pool_errc::timeout);
      EXPECT_EQ(pool.release_timeout(d), colony::pool_errc::timeout);
      gate.send(1);
    });
  });
}
#endif

}  // namespace
