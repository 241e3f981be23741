// colony::testing::LeakCheck: a GoogleTest guard that fails the test if fibers started during
// its lifetime are still alive when it ends (like Go's goleak), printing their dump.
//
//   TEST(Server, ShutsDownCleanly) {
//     colony::run([] {
//       colony::testing::LeakCheck leaks;   // checked when it goes out of scope
//       ...
//     });
//   }
//
// Fibers that finish within `grace` after the scope ends are not leaks (a fiber that signalled
// completion may still be on its way out). Use it on a fiber or a plain thread; it watches the
// current runtime. Header-only; include it from tests that link GoogleTest.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <sstream>
#include <vector>

#include "colony/debug.hpp"
#include "colony/this_fiber.hpp"

namespace colony::testing {

class LeakCheck {
 public:
  explicit LeakCheck(std::chrono::milliseconds grace = std::chrono::seconds(1)) : grace_(grace) {
    for (const FiberInfo& f : colony::fibers()) before_.insert(f.id);
  }
  LeakCheck(const LeakCheck&) = delete;
  LeakCheck& operator=(const LeakCheck&) = delete;

  // leaked: fibers alive now that were not alive when the guard was made (the caller excluded).
  std::vector<FiberInfo> leaked() const {
    std::vector<FiberInfo> out;
    const std::uint64_t self = colony::this_fiber::id();
    for (const FiberInfo& f : colony::fibers())
      if (f.id != self && !before_.count(f.id)) out.push_back(f);
    return out;
  }

  ~LeakCheck() {
    auto deadline = std::chrono::steady_clock::now() + grace_;
    std::vector<FiberInfo> left = leaked();
    while (!left.empty() && std::chrono::steady_clock::now() < deadline) {
      colony::this_fiber::sleep_for(std::chrono::milliseconds(1));
      left = leaked();
    }
    if (!left.empty()) {
      std::ostringstream os;
      colony::dump_fibers(os, left);
      ADD_FAILURE() << "colony::testing::LeakCheck: " << left.size()
                    << " fiber(s) started in this scope are still alive:\n"
                    << os.str();
    }
  }

 private:
  std::chrono::milliseconds grace_;
  std::set<std::uint64_t> before_;
};

}  // namespace colony::testing
