// colony::Pool and exceptions thrown by tasks (ants' panics), ported from ants_test.go: the panic
// handler, and the log without one.
// Every test runs with 1, 2 and 4 processors inside a fresh runtime and fails if a fiber is left
// behind. No assertion depends on timing beyond generous upper bounds for progress: the machine
// is a noisy 2-core VM.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <colony/colony.hpp>
#include <colony/pool.hpp>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "pool_test.hpp"

using colony::testing::eventually;
using colony::testing::PoolTest;

namespace {

// TestPanicHandler / TestPanicHandlerPreMalloc: the handler sees every panic, and (unlike ants,
// where a panicking worker exits) the worker stays and runs the next task.
TEST_P(PoolTest, PanicHandler) {
  run_fibers([] {
    for (bool pre_alloc : {false, true}) {
      std::atomic<int> panics{0};
      std::vector<std::string> messages;
      std::mutex mu;
      colony::WaitGroup wg;
      auto handler = [&](std::exception_ptr e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::lock_guard<std::mutex> lk(mu);
          messages.emplace_back(ex.what());
        } catch (int v) {
          std::lock_guard<std::mutex> lk(mu);
          messages.push_back("int " + std::to_string(v));
        }
        panics.fetch_add(1);
        wg.done();
      };
      colony::Pool p0(10, {.pre_alloc = pre_alloc, .panic_handler = handler});
      wg.add(1);
      ASSERT_FALSE(p0.submit([] { throw std::runtime_error("Oops!"); }));
      wg.wait();
      EXPECT_EQ(panics.load(), 1);
      EXPECT_EQ(p0.running(), 1);  // the worker survived
      ASSERT_TRUE(eventually([&] { return p0.stats().idle == 1; }));
      wg.add(1);
      ASSERT_FALSE(p0.submit([] { throw 42; }));  // not a std::exception
      wg.wait();
      ASSERT_TRUE(eventually([&] { return p0.stats().idle == 1; }));
      std::atomic<bool> ran{false};
      ASSERT_FALSE(p0.submit([&] { ran = true; }));
      p0.wait();
      EXPECT_TRUE(ran.load());
      EXPECT_EQ(p0.stats().workers_started, 1u);  // one worker did all three
      EXPECT_EQ(p0.stats().panics, 2u);
      EXPECT_EQ(p0.stats().completed, 3u);

      colony::PoolWithFunc<std::string> p1(10,
                                           [](std::string s) { throw std::invalid_argument(s); },
                                           {.pre_alloc = pre_alloc, .panic_handler = handler});
      wg.add(1);
      ASSERT_FALSE(p1.invoke("Oops again!"));
      wg.wait();
      EXPECT_EQ(panics.load(), 3);
      std::lock_guard<std::mutex> lk(mu);
      EXPECT_EQ(messages, (std::vector<std::string>{"Oops!", "int 42", "Oops again!"}));
    }
  });
}

// TestPoolPanicWithoutHandler / ...PreMalloc: logged with what() and the submit site.
TEST_P(PoolTest, PanicWithoutHandler) {
  run_fibers([] {
    for (bool pre_alloc : {false, true}) {
      std::vector<std::string> lines;
      std::mutex mu;
      colony::Pool pool(10, {.pre_alloc = pre_alloc, .logger = [&](std::string_view l) {
                               std::lock_guard<std::mutex> lk(mu);
                               lines.emplace_back(l);
                             }});
      ASSERT_FALSE(pool.submit([] { throw std::runtime_error("Oops!"); }));
      ASSERT_FALSE(pool.submit([] { throw 7; }));
      pool.wait();
      std::lock_guard<std::mutex> lk(mu);
      ASSERT_EQ(lines.size(), 2u);
      std::sort(lines.begin(), lines.end());
      for (const auto& l : lines) {
        EXPECT_NE(l.find("colony::Pool: task panicked"), std::string::npos) << l;
        EXPECT_NE(l.find("pool/panic_test.cpp:"), std::string::npos) << l;
      }
      EXPECT_NE(lines[0].find("non-std exception of type int"), std::string::npos) << lines[0];
      EXPECT_NE(lines[1].find("std::runtime_error: Oops!"), std::string::npos) << lines[1];
    }
    // The default logger (stderr) and a handler that throws are survivable too.
    colony::Pool quiet(1, {.panic_handler = [](std::exception_ptr) { throw 1; },
                           .logger = [](std::string_view) { throw 2; }});
    ASSERT_FALSE(quiet.submit([] { throw std::runtime_error("handler throws"); }));
    colony::Pool loud(1);
    ASSERT_FALSE(loud.submit([] { throw std::runtime_error("expected test panic (stderr)"); }));
    quiet.wait();
    loud.wait();
    EXPECT_EQ(quiet.stats().panics, 1u);
    EXPECT_EQ(loud.running(), 1);
  });
}

}  // namespace
