// What the scheduler tests (colony_sched_test: one file per scheduler concept beside this one)
// share: the Sched suite, run with 1, 2, 4 and 8 processors (instantiated once, in
// spawn_test.cpp).
#pragma once

#include "test_util.hpp"

namespace colony::testing {

class Sched : public ProcsTest {};

}  // namespace colony::testing
