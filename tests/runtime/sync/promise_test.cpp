// Promise: the producing side of a Future (what spawn and the pool's submit_future build on).
// Set from a plain thread or a fiber, run a callable into it, break it by destroying it unset.
#include <gtest/gtest.h>

#include <colony/colony.hpp>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace {

TEST(Promise, SetFromAPlainThreadWakesAFiber) {
  colony::Promise<int> p;
  colony::Future<int> f = p.get_future();
  EXPECT_THROW((void)p.get_future(), std::future_error);  // future_already_retrieved
  auto got = colony::spawn([&f] { return f.get(); });
  std::thread t([&p] { p.set_value(42); });
  EXPECT_EQ(got.get(), 42);
  t.join();
  p.set_value(7);  // the first result wins
}

TEST(Promise, RunStoresTheValueOrTheException) {
  colony::Promise<std::string> ok;
  colony::Future<std::string> fok = ok.get_future();
  ok.run([] { return std::string("done"); });
  EXPECT_EQ(fok.get(), "done");
  colony::Promise<void> bad;
  colony::Future<void> fbad = bad.get_future();
  bad.run([] { throw std::runtime_error("boom"); });
  EXPECT_THROW(fbad.get(), std::runtime_error);
}

TEST(Promise, DestroyedWithoutAResultBreaksThePromise) {
  colony::Future<int> f;
  {
    colony::Promise<int> p;
    f = p.get_future();
    colony::Promise<int> moved = std::move(p);
    EXPECT_THROW((void)p.get_future(), std::future_error);  // no_state: moved from
  }
  try {
    (void)f.get();
    ADD_FAILURE() << "expected broken_promise";
  } catch (const std::future_error& e) {
    EXPECT_EQ(e.code(), std::future_errc::broken_promise);
  }
}

}  // namespace
